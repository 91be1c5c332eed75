import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IToolbarWidgetRegistry,
  Notification
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { requestPlan } from '../api/notebook';
import { VERIFY_SNIPPET_ID } from '../api/notebook';
import { GpuMenuButton } from '../views/gpu-menu';
import {
  applyPlan,
  cellInfos,
  isEmptyNotebook,
  planCells
} from '../tools/notebook-edits';
import { SnippetCatalog } from '../tools/snippet-catalog';
import {
  addToolCommands,
  gpuMenuEntries,
  IToolContext,
  NotebookToolsCommandIDs
} from '../tools/tool-commands';
import { activateCell, ToolRunner } from '../tools/tool-runner';
import { ITrainingModel } from '../tokens';
import { TrainingModel } from '../models/training';

export { NotebookToolsCommandIDs } from '../tools/tool-commands';

const PLUGIN_ID = 'jupyterlab-kerasgpu:notebook-tools';
const CATEGORY = 'GPU';
/** The notebook toolbar item of the GPU menu (schema/notebook-tools.json). */
const GPU_MENU_ITEM = 'kerasgpu-gpu-menu';

/** The notebook toolbar's GPU menu, palette commands, the cell context menu entry, the verification cell. */
export const notebookToolsPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    "The GPU menu of the notebook toolbar and palette commands that add GPU cells the server's planner places, and the GPU verification cell.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [
    ICommandPalette,
    ISettingRegistry,
    ITranslator,
    IToolbarWidgetRegistry,
    ITrainingModel
  ],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    toolbarRegistry: IToolbarWidgetRegistry | null,
    training: TrainingModel | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyterlab-kerasgpu');
    const ctx: IToolContext = {
      app,
      tracker,
      trans,
      training,
      catalog: new SnippetCatalog(app.serviceManager.serverSettings),
      runner: new ToolRunner({
        commands: app.commands,
        serverSettings: app.serviceManager.serverSettings,
        trans
      })
    };
    addToolCommands(ctx);
    addToPalette(ctx, palette);
    toolbarRegistry?.addFactory<NotebookPanel>(
      'Notebook',
      GPU_MENU_ITEM,
      () =>
        new GpuMenuButton({
          commands: app.commands,
          entries: () => gpuMenuEntries(ctx.catalog),
          trans
        })
    );
    // Enable and label the wrap entry (code cells only) as the active cell changes.
    tracker.activeCellChanged.connect(() => {
      app.commands.notifyCommandChanged(NotebookToolsCommandIDs.insertSnippet);
    });
    training?.changed.connect(() => {
      app.commands.notifyCommandChanged(
        NotebookToolsCommandIDs.fixInputPipeline
      );
    });
    const settings = { verifyOnNewNotebook: false };
    verifyNewNotebooks(ctx, () => settings.verifyOnNewNotebook);
    if (settingRegistry) {
      loadSettings(settingRegistry, loaded => {
        settings.verifyOnNewNotebook = loaded.verifyOnNewNotebook === true;
        ctx.runner.previewEdits = loaded.previewEdits !== false;
      });
    }
  }
};

/** The tools in the palette: the named ones, then each catalog snippet once it arrives. */
function addToPalette(ctx: IToolContext, palette: ICommandPalette | null) {
  const C = NotebookToolsCommandIDs;
  palette?.addItem({ command: C.insertVerificationCell, category: CATEGORY });
  palette?.addItem({ command: C.distributeNotebook, category: CATEGORY });
  ctx.catalog.ready
    .then(snippets => {
      for (const snippet of snippets) {
        if (snippet.id !== VERIFY_SNIPPET_ID) {
          palette?.addItem({
            command: C.insertSnippet,
            args: { id: snippet.id },
            category: CATEGORY,
            rank: snippet.order
          });
        }
      }
      ctx.app.commands.notifyCommandChanged(C.insertSnippet);
    })
    .catch(reason => {
      console.warn('jupyterlab-kerasgpu: no snippet catalog.', reason);
    });
}

/** A verification cell in each new empty notebook, while `enabled()` says so. */
function verifyNewNotebooks(ctx: IToolContext, enabled: () => boolean) {
  let restored = false;
  void ctx.app.restored.then(() => {
    restored = true;
  });
  ctx.tracker.widgetAdded.connect((_, panel) => {
    if (!restored) {
      return; // Notebooks restored with the layout are not new.
    }
    void panel.context.ready.then(() => {
      if (enabled()) {
        return addVerificationToNew(ctx, panel);
      }
    });
  });
}

/**
 * Adds the verification cell where the server's planner puts it in a new
 * empty notebook (not undoable: it is part of the new notebook, not an edit).
 * Without the server, says so and adds nothing.
 */
async function addVerificationToNew(
  ctx: IToolContext,
  panel: NotebookPanel
): Promise<void> {
  const shared = panel.model?.sharedModel;
  if (!shared || !isEmptyNotebook(cellInfos(shared))) {
    return;
  }
  const before = shared.cells.map(cell => cell.getSource());
  try {
    const plan = await requestPlan(
      'verify',
      planCells(shared),
      null,
      {},
      ctx.app.serviceManager.serverSettings
    );
    if (panel.isDisposed || !isEmptyNotebook(cellInfos(shared))) {
      return;
    }
    applyPlan(shared, plan, before, false);
  } catch (reason) {
    Notification.error(
      ctx.trans.__(
        'The GPU verification cell was not added to the new notebook: %1',
        reason instanceof Error ? reason.message : String(reason)
      ),
      { autoClose: false }
    );
    return;
  }
  if (shared.cells.length === 1) {
    // The notebook had no cell at all: leave an empty one to type in.
    shared.transact(() => {
      shared.insertCell(1, { cell_type: 'code', source: '' });
    }, false);
  }
  activateCell(panel.content, shared.cells.length - 1);
}

/** Loads the plugin's settings and calls `apply` with them now and on each change. */
function loadSettings(
  registry: ISettingRegistry,
  apply: (composite: Record<string, unknown>) => void
): void {
  registry
    .load(PLUGIN_ID)
    .then(settings => {
      apply(settings.composite as Record<string, unknown>);
      settings.changed.connect(() =>
        apply(settings.composite as Record<string, unknown>)
      );
    })
    .catch(reason => {
      console.error(
        'jupyterlab-kerasgpu: cannot load the notebook tools settings.',
        reason
      );
    });
}

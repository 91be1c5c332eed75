import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  Notification
} from '@jupyterlab/apputils';
import {
  INotebookTracker,
  Notebook,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import {
  memoryGrowthIcon,
  snippetIcon,
  strategyIcon,
  verifyIcon
} from './icons';
import { previewPlan, showMessages } from './plan-dialog';
import { cellLabel, hasEdits, toastText } from './plan-preview';
import { requestAPI } from './request';
import { IDevicesReply } from './api';
import {
  applyPlan,
  cellInfos,
  FALLBACK_VERIFY_CODE,
  fetchSnippets,
  firstTensorFlowCell,
  IPlan,
  IPlanMessage,
  isEmptyNotebook,
  ISnippet,
  NotebookTool,
  requestPlan,
  SnippetIds,
  upsertVerificationCell,
  VERIFY_SNIPPET_ID
} from './snippets';

/** Command ids of the notebook tools. */
export namespace NotebookToolsCommandIDs {
  /** Inserts the catalog snippet `args.id` where its placement says. */
  export const insertSnippet = 'kerasgpu:insert-snippet';
  /** Adds the tagged verification cell at the top (or updates it); `args.run` runs it. */
  export const insertVerificationCell = 'kerasgpu:insert-verification-cell';
  /** One tf.distribute strategy for the whole notebook (`%gpu_distribute`), before the first model. */
  export const distributeNotebook = 'kerasgpu:distribute-notebook';
  /**
   * A training finding's one-click fix: `.cache()`, `.prefetch`, a parallel `map` or
   * `from_tensor_slices` in the cell that builds `args.dataset` (args: path, dataset, fixes).
   */
  export const fixInputPipeline = 'kerasgpu:fix-input-pipeline';
}

const PLUGIN_ID = 'jupyterlab-kerasgpu:notebook-tools';
const CATEGORY = 'GPU';

/** Snippet buttons of the cell toolbar, palette commands, and the notebook's GPU verification cell. */
export const notebookToolsPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Cell toolbar buttons and palette commands that insert GPU snippets, and the GPU verification cell.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyterlab-kerasgpu');
    const catalog = new SnippetCatalog(app.serviceManager.serverSettings);
    const runs = new KernelRuns(tracker);
    const { commands } = app;

    const current = (): NotebookPanel | null => tracker.currentWidget;
    // Show each tool's edits before applying them (setting `previewEdits`).
    let previewEdits = true;

    const verificationCode = async (): Promise<string> => {
      try {
        return (await catalog.get(VERIFY_SNIPPET_ID)).code;
      } catch {
        // The cell still works without the catalog: the magics say what is missing.
        return FALLBACK_VERIFY_CODE;
      }
    };

    /** Selects a cell of a notebook and scrolls to it. */
    const selectCell = (panel: NotebookPanel, index: number): void => {
      if (
        !panel.isDisposed &&
        index >= 0 &&
        index < panel.content.widgets.length
      ) {
        Private.activate(panel.content, index);
      }
    };

    /**
     * A link to the cell now at `index` that still finds it after later edits
     * move it (notifications stay in the notification centre).
     */
    const cellLink = (panel: NotebookPanel, index: number): (() => void) => {
      const id = panel.model?.sharedModel.cells[index]?.id;
      return () => {
        const cells = panel.model?.sharedModel.cells ?? [];
        const now = id ? cells.findIndex(cell => cell.id === id) : -1;
        selectCell(panel, now >= 0 ? now : index);
      };
    };

    /**
     * Tells the user what the plan said, as notifications: text that fits a
     * toast whole, else its start and a Details action with the full text; a
     * link to the cell a message is about; the command a message offers.
     */
    const tell = (
      panel: NotebookPanel,
      title: string,
      messages: readonly IPlanMessage[]
    ): void => {
      for (const message of messages) {
        const { text, cut } = toastText(message.text);
        const actions: Notification.IAction[] = [];
        const label = cellLabel(message);
        // Found by id when the link is followed, wherever the cell is then.
        const go =
          typeof message.cell === 'number'
            ? cellLink(panel, message.cell)
            : () => undefined;
        if (label !== null) {
          actions.push({
            label: trans.__('Cell %1', message.cell! + 1),
            caption: trans.__('Select %1 and scroll to it', label),
            displayType: 'link',
            callback: event => {
              event.preventDefault(); // The toast stays: Details may follow.
              go();
            }
          });
        }
        if (cut) {
          actions.push({
            label: trans.__('Details'),
            caption: trans.__('The whole message'),
            callback: () => {
              void showMessages(title, [message], trans, () => go());
            }
          });
        }
        if (message.action === 'distribute-notebook') {
          actions.push({
            label: trans.__('Distribute This Notebook'),
            caption: trans.__(
              'One strategy for the whole notebook, before the first model is built'
            ),
            callback: () => {
              void commands.execute(NotebookToolsCommandIDs.distributeNotebook);
            }
          });
        }
        const notify =
          message.level === 'error'
            ? Notification.error
            : message.level === 'warning'
              ? Notification.warning
              : Notification.info;
        notify(text, {
          autoClose: message.level === 'info' && !cut ? 6000 : false,
          actions
        });
      }
    };

    /**
     * Asks the server for the tool's plan, shows what it changes (unless the
     * setting turns the preview off) and applies it to the notebook as one
     * undo step. Resolves with the plan applied (or refused), null when
     * nothing was applied.
     */
    const runTool = async (
      panel: NotebookPanel,
      tool: NotebookTool,
      options: Record<string, unknown> = {},
      title = ''
    ): Promise<IPlan | null> => {
      const shared = panel.model?.sharedModel;
      if (!shared) {
        return null;
      }
      title = title || trans.__('The GPU tool');
      const before = shared.cells.map(cell => cell.getSource());
      const active = panel.content.activeCell
        ? panel.content.activeCellIndex
        : null;
      const fail = (reason: unknown): null => {
        const text = trans.__(
          '%1 did not change the notebook: %2',
          title,
          reason instanceof Error ? reason.message : String(reason)
        );
        tell(panel, title, [{ level: 'error', text }]);
        return null;
      };
      let plan: IPlan;
      try {
        plan = await requestPlan(
          tool,
          shared,
          active,
          options,
          app.serviceManager.serverSettings
        );
      } catch (reason) {
        return fail(reason);
      }
      if (panel.isDisposed || !panel.model) {
        return null;
      }
      if (!hasEdits(plan)) {
        // Refused, or nothing to do: the reason in full, nothing changed.
        if (plan.select !== null && plan.select !== undefined) {
          selectCell(panel, plan.select);
        }
        tell(panel, title, plan.messages);
        return plan;
      }
      let shown = false;
      if (previewEdits) {
        let accepted: boolean;
        try {
          accepted = await previewPlan({
            title,
            plan,
            before,
            trans,
            select: index => selectCell(panel, index)
          });
        } catch (reason) {
          return fail(reason);
        }
        if (!accepted || panel.isDisposed || !panel.model) {
          return null;
        }
        shown = true;
      }
      try {
        applyPlan(shared, plan, before);
      } catch (reason) {
        return fail(reason);
      }
      if (plan.select !== null && plan.select !== undefined) {
        selectCell(panel, plan.select);
      }
      // Notes were read in the preview; what still needs doing stays in the notification centre.
      tell(
        panel,
        title,
        shown
          ? plan.messages.filter(message => message.level !== 'info')
          : plan.messages
      );
      return plan;
    };

    /** After a `top` insertion: a restart is needed when the TensorFlow cell below already ran. */
    const warnIfRestartNeeded = (
      panel: NotebookPanel,
      plan: IPlan,
      title: string
    ): void => {
      const shared = panel.model!.sharedModel;
      // The first TensorFlow cell other than the one just inserted.
      const inserted = new Set(
        plan.edits.filter(edit => edit.op === 'insert').map(edit => edit.index)
      );
      const tfIndex = firstTensorFlowCell(
        cellInfos(shared).map((cell, i) =>
          inserted.has(i) ? { ...cell, source: '' } : cell
        )
      );
      const tfCell = tfIndex >= 0 ? shared.cells[tfIndex] : null;
      if (tfCell && runs.ranInThisKernel(panel, tfCell)) {
        Notification.warning(
          trans.__(
            '"%1" needs a kernel restart to take effect: the TensorFlow cell below it already ran in this kernel.',
            title
          ),
          {
            autoClose: false,
            actions: [
              {
                label: trans.__('Restart Kernel'),
                caption: trans.__('Restart the kernel, then run this cell'),
                callback: () => {
                  void commands.execute('notebook:restart-kernel');
                }
              }
            ]
          }
        );
      }
    };

    /** The memory limit to propose: half of the smallest GPU's memory, in MiB (8 GiB when unknown). */
    const defaultLimit = async (): Promise<number> => {
      try {
        const devices = await requestAPI<IDevicesReply>(
          'devices',
          {},
          app.serviceManager.serverSettings
        );
        const totals = (devices.devices ?? [])
          .map(d => d.memory_total_mib)
          .filter((v): v is number => typeof v === 'number' && v > 0);
        if (totals.length > 0) {
          return Math.max(
            1024,
            Math.floor(Math.min(...totals) / 2 / 1024) * 1024
          );
        }
      } catch {
        // No telemetry: a value the user will change anyway.
      }
      return 8 * 1024;
    };

    const insertVerification = async (
      panel: NotebookPanel,
      run: boolean
    ): Promise<void> => {
      const plan = await runTool(
        panel,
        'verify',
        {},
        trans.__('GPU verification cell')
      );
      if (plan && run && plan.select !== null) {
        Private.activate(panel.content, plan.select);
        await panel.sessionContext.ready;
        await NotebookActions.run(panel.content, panel.sessionContext);
      }
    };

    commands.addCommand(NotebookToolsCommandIDs.distributeNotebook, {
      label: trans.__('Distribute This Notebook'),
      caption: trans.__(
        'One tf.distribute strategy for the whole notebook (%gpu_distribute), placed before the first cell that builds a model: your build, compile and fit cells run on it unchanged'
      ),
      icon: strategyIcon,
      isEnabled: () => current() !== null,
      execute: async () => {
        const panel = current();
        if (panel) {
          await runTool(
            panel,
            'distribute',
            {},
            trans.__('Distribute This Notebook')
          );
        }
      }
    });
    palette?.addItem({
      command: NotebookToolsCommandIDs.distributeNotebook,
      category: CATEGORY
    });

    // Run from a training card's finding (it names the dataset and the fixes): not in the palette.
    commands.addCommand(NotebookToolsCommandIDs.fixInputPipeline, {
      label: trans.__('Fix the Input Pipeline'),
      caption: trans.__(
        "Makes the training finding's changes in the cell that builds the input (cache, prefetch, a parallel map, from_tensor_slices), previewed, as one undo step"
      ),
      isEnabled: args => Private.notebookAt(tracker, args) !== null,
      execute: async args => {
        const panel = Private.notebookAt(tracker, args);
        const dataset = typeof args.dataset === 'string' ? args.dataset : '';
        const fixes = Array.isArray(args.fixes) ? args.fixes.map(String) : [];
        if (panel && dataset) {
          await runTool(
            panel,
            'input_pipeline',
            { dataset, fixes },
            trans.__('Fix the Input Pipeline')
          );
        }
      }
    });

    commands.addCommand(NotebookToolsCommandIDs.insertSnippet, {
      label: args => {
        const snippet = catalog.find(Private.snippetId(args));
        return snippet
          ? Private.label(snippet, trans)
          : trans.__('Insert GPU Snippet');
      },
      caption: args => catalog.find(Private.snippetId(args))?.description ?? '',
      icon: args => Private.icon(Private.snippetId(args), catalog),
      isEnabled: args => {
        const panel = current();
        if (!panel) {
          return false;
        }
        const snippet = catalog.find(Private.snippetId(args));
        return (
          snippet?.placement !== 'wrap' ||
          panel.content.activeCell?.model.type === 'code'
        );
      },
      execute: async args => {
        const panel = current();
        const id = Private.snippetId(args);
        if (!panel || !panel.model || !id) {
          return;
        }
        if (id === VERIFY_SNIPPET_ID) {
          return insertVerification(panel, false);
        }
        let snippet: ISnippet;
        try {
          snippet = await catalog.get(id);
        } catch (reason) {
          Notification.error(
            trans.__(
              'Cannot insert the GPU snippet "%1": %2',
              id,
              reason instanceof Error ? reason.message : String(reason)
            ),
            { autoClose: false }
          );
          return;
        }
        if (panel.isDisposed || !panel.model) {
          return;
        }
        const options: Record<string, unknown> = { id };
        if (id === 'memory_limit') {
          const value = await InputDialog.getNumber({
            title: trans.__('GPU memory limit'),
            label: trans.__(
              'MiB TensorFlow may use on each GPU (the default is half of the smallest GPU):'
            ),
            value: await defaultLimit()
          });
          if (!value.button.accept || value.value === null) {
            return;
          }
          options.limit_mib = Math.round(value.value);
        }
        const plan = await runTool(
          panel,
          snippet.placement === 'wrap' ? 'wrap' : 'snippet',
          options,
          snippet.title
        );
        if (plan && hasEdits(plan) && snippet.placement === 'top') {
          warnIfRestartNeeded(panel, plan, snippet.title);
        }
      },
      describedBy: {
        args: {
          type: 'object',
          properties: {
            id: {
              type: 'string',
              description: trans.__(
                'The snippet id in the catalog, e.g. memory_growth'
              )
            }
          },
          required: ['id']
        }
      }
    });

    commands.addCommand(NotebookToolsCommandIDs.insertVerificationCell, {
      label: args =>
        args.toolbar ? '' : trans.__('Insert GPU Verification Cell'),
      caption: args =>
        args.run
          ? trans.__(
              'Add (or update) the GPU verification cell at the top of the notebook and run it'
            )
          : trans.__(
              'Add (or update) the GPU verification cell at the top of the notebook: it shows the %gpu_check report'
            ),
      icon: verifyIcon,
      isEnabled: () => current() !== null,
      execute: async args => {
        const panel = current();
        if (panel) {
          await insertVerification(panel, args.run === true);
        }
      },
      describedBy: {
        args: {
          type: 'object',
          properties: {
            run: {
              type: 'boolean',
              description: trans.__('Run the cell after inserting it')
            }
          }
        }
      }
    });

    palette?.addItem({
      command: NotebookToolsCommandIDs.insertVerificationCell,
      category: CATEGORY
    });
    catalog.ready
      .then(snippets => {
        for (const snippet of snippets) {
          if (snippet.id !== VERIFY_SNIPPET_ID) {
            palette?.addItem({
              command: NotebookToolsCommandIDs.insertSnippet,
              args: { id: snippet.id },
              category: CATEGORY,
              rank: snippet.order
            });
          }
        }
        commands.notifyCommandChanged(NotebookToolsCommandIDs.insertSnippet);
      })
      .catch(reason => {
        console.warn('jupyterlab-kerasgpu: no snippet catalog.', reason);
      });

    // Enable and label the toolbar buttons as the active cell changes.
    tracker.activeCellChanged.connect(() => {
      commands.notifyCommandChanged(NotebookToolsCommandIDs.insertSnippet);
    });

    // A verification cell in each new empty notebook, when the setting says so.
    let verifyOnNewNotebook = false;
    let restored = false;
    void app.restored.then(() => {
      restored = true;
    });
    tracker.widgetAdded.connect((_, panel) => {
      if (!restored) {
        return; // Notebooks restored with the layout are not new.
      }
      void panel.context.ready.then(async () => {
        const model = panel.model;
        if (
          !verifyOnNewNotebook ||
          !model ||
          !isEmptyNotebook(cellInfos(model.sharedModel))
        ) {
          return;
        }
        const code = await verificationCode();
        if (
          panel.isDisposed ||
          !isEmptyNotebook(cellInfos(model.sharedModel))
        ) {
          return;
        }
        // Not undoable: it is part of the new notebook, not an edit.
        const shared = model.sharedModel;
        upsertVerificationCell(shared, code, false);
        if (shared.cells.length === 1) {
          // The notebook had no cell at all: leave an empty one to type in.
          shared.transact(() => {
            shared.insertCell(1, { cell_type: 'code', source: '' });
          }, false);
        }
        Private.activate(panel.content, 1);
      });
    });

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            verifyOnNewNotebook = settings.composite
              .verifyOnNewNotebook as boolean;
            previewEdits = settings.composite.previewEdits !== false;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error(
            'jupyterlab-kerasgpu: cannot load the notebook tools settings.',
            reason
          );
        });
    }
  }
};

/** The snippet catalog, fetched once from the server (again after a failure). */
class SnippetCatalog {
  constructor(serverSettings: ServerConnection.ISettings) {
    this._serverSettings = serverSettings;
    this._ready = this._fetch();
  }

  /** Resolves with the snippets once fetched. */
  get ready(): Promise<ISnippet[]> {
    return this._ready;
  }

  /** A snippet already fetched, if any. */
  find(id: string): ISnippet | undefined {
    return this._snippets.find(snippet => snippet.id === id);
  }

  /** A snippet by id: fetches the catalog (again) when needed; throws when unknown. */
  async get(id: string): Promise<ISnippet> {
    let snippets: ISnippet[];
    try {
      snippets = await this._ready;
    } catch {
      this._ready = this._fetch();
      snippets = await this._ready;
    }
    const snippet = snippets.find(s => s.id === id);
    if (!snippet) {
      throw new Error(`no snippet "${id}" in the catalog`);
    }
    return snippet;
  }

  private async _fetch(): Promise<ISnippet[]> {
    this._snippets = await fetchSnippets(this._serverSettings);
    return this._snippets;
  }

  private _ready: Promise<ISnippet[]>;
  private _serverSettings: ServerConnection.ISettings;
  private _snippets: ISnippet[] = [];
}

/**
 * Which cells ran in each notebook's current kernel: known from the kernel's
 * last restart seen here; before that, a cell with an execution count is
 * taken to have run in it.
 */
class KernelRuns {
  constructor(tracker: INotebookTracker) {
    this._tracker = tracker;
    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
      const panel = this._panelOf(notebook);
      if (panel) {
        this._ran.get(panel)?.add(cell.model.id);
      }
    });
    tracker.widgetAdded.connect((_, panel) => {
      panel.sessionContext.statusChanged.connect((_, status) => {
        if (
          status === 'restarting' ||
          status === 'autorestarting' ||
          status === 'starting'
        ) {
          this._ran.set(panel, new Set());
        }
      });
      panel.sessionContext.kernelChanged.connect((_, change) => {
        if (change.oldValue && change.newValue) {
          this._ran.set(panel, new Set()); // The user picked another kernel.
        }
      });
    });
  }

  /** Whether a cell ran (or is running) in the notebook's current kernel. */
  ranInThisKernel(
    panel: NotebookPanel,
    cell: { id: string; cell_type: string; execution_count?: unknown }
  ): boolean {
    const ran = this._ran.get(panel);
    if (ran) {
      return ran.has(cell.id);
    }
    return (
      cell.cell_type === 'code' &&
      cell.execution_count !== null &&
      cell.execution_count !== undefined &&
      !!panel.sessionContext.session?.kernel
    );
  }

  private _panelOf(notebook: Notebook): NotebookPanel | undefined {
    return this._tracker.find(panel => panel.content === notebook);
  }

  private _tracker: INotebookTracker;
  private _ran = new WeakMap<NotebookPanel, Set<string>>();
}

namespace Private {
  /** The `id` argument of a snippet command. */
  export function snippetId(args: ReadonlyPartialJSONObject): string {
    return typeof args.id === 'string' ? args.id : '';
  }

  /** A snippet command's label, saying where the code goes. */
  export function label(
    snippet: ISnippet,
    trans: ReturnType<ITranslator['load']>
  ): string {
    switch (snippet.placement) {
      case 'top':
        return trans.__(
          'Insert %1 (above the TensorFlow import)',
          snippet.title
        );
      case 'wrap':
        return trans.__(snippet.title);
      default:
        return trans.__('Insert %1 (below this cell)', snippet.title);
    }
  }

  /** The icon of a snippet command. */
  export function icon(id: string, catalog: SnippetCatalog): LabIcon {
    if (id === SnippetIds.memoryGrowth) {
      return memoryGrowthIcon;
    }
    if (id === VERIFY_SNIPPET_ID) {
      return verifyIcon;
    }
    if (
      id === SnippetIds.mirroredStrategy ||
      catalog.find(id)?.placement === 'wrap'
    ) {
      return strategyIcon;
    }
    return snippetIcon;
  }

  /** Makes one cell the active and only selected one, and scrolls to it. */
  /** The open notebook at `args.path` (null when it is not open), the current one without a path. */
  export function notebookAt(
    tracker: INotebookTracker,
    args: ReadonlyPartialJSONObject
  ): NotebookPanel | null {
    const path = typeof args.path === 'string' ? args.path : '';
    return path
      ? (tracker.find(panel => panel.context.path === path) ?? null)
      : tracker.currentWidget;
  }

  export function activate(notebook: Notebook, index: number): void {
    notebook.deselectAll();
    notebook.activeCellIndex = index;
    const cell = notebook.widgets[index];
    if (cell) {
      void notebook.scrollToCell(cell).catch(() => undefined);
    }
  }
}

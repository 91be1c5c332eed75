import { JupyterFrontEnd } from '@jupyterlab/application';
import { InputDialog, Notification } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { IDevicesReply } from '../api/gpu';
import { requestAPI } from '../api/request';
import { ISnippet, VERIFY_SNIPPET_ID } from '../api/notebook';
import { GpuMenuEntry } from '../views/gpu-menu';
import {
  memoryGrowthIcon,
  snippetIcon,
  strategyIcon,
  verifyIcon
} from '../views/icons';
import { hasEdits } from './plan-preview';
import { SnippetCatalog } from './snippet-catalog';
import { activateCell, DISTRIBUTE_COMMAND, ToolRunner } from './tool-runner';
import { TrainingModel } from '../models/training';

/** Command ids of the notebook tools. */
export namespace NotebookToolsCommandIDs {
  /** Inserts the catalog snippet `args.id` where the server's planner puts it. */
  export const insertSnippet = 'kerasgpu:insert-snippet';
  /** Adds the tagged verification cell at the top (or updates it); `args.run` runs it. */
  export const insertVerificationCell = 'kerasgpu:insert-verification-cell';
  /** One tf.distribute strategy for the whole notebook (`%gpu_distribute`), before the first model. */
  export const distributeNotebook = DISTRIBUTE_COMMAND;
  /**
   * A training finding's one-click fix: `.cache()`, `.prefetch`, a parallel `map` or
   * `from_tensor_slices` in the cell that builds `args.dataset` (args: path, dataset, fixes;
   * without them, the fix the notebook's last watched fit offers).
   */
  export const fixInputPipeline = 'kerasgpu:fix-input-pipeline';
}

/** The catalog ids the tools name. */
export namespace SnippetIds {
  export const memoryGrowth = 'memory_growth';
  export const memoryLimit = 'memory_limit';
  export const mirroredStrategy = 'mirrored_strategy';
  export const mixedPrecision = 'mixed_precision';
}

/** What the notebook tools' commands share. */
export interface IToolContext {
  app: JupyterFrontEnd;
  tracker: INotebookTracker;
  trans: TranslationBundle;
  runner: ToolRunner;
  catalog: SnippetCatalog;
  /** Each notebook's watched fit (its findings offer the pipeline fix), when the panel runs. */
  training: TrainingModel | null;
}

/** Adds every notebook tool command. */
export function addToolCommands(ctx: IToolContext): void {
  addVerifyCommand(ctx);
  addDistributeCommand(ctx);
  addFixPipelineCommand(ctx);
  addSnippetCommand(ctx);
}

/** The GPU menu's entries: the tools by name, then the catalog's other snippets. */
export function gpuMenuEntries(catalog: SnippetCatalog): GpuMenuEntry[] {
  const C = NotebookToolsCommandIDs;
  const named = new Set<string>([
    VERIFY_SNIPPET_ID,
    SnippetIds.mirroredStrategy,
    SnippetIds.mixedPrecision
  ]);
  const entries: GpuMenuEntry[] = [
    { command: C.insertVerificationCell, args: { run: true } },
    { command: C.distributeNotebook },
    {
      command: C.insertSnippet,
      args: { id: SnippetIds.mirroredStrategy }
    },
    { command: C.insertSnippet, args: { id: SnippetIds.mixedPrecision } },
    { command: C.fixInputPipeline },
    { separator: true }
  ];
  for (const snippet of catalog.snippets) {
    if (!named.has(snippet.id)) {
      entries.push({ command: C.insertSnippet, args: { id: snippet.id } });
    }
  }
  return entries;
}

function current(ctx: IToolContext): NotebookPanel | null {
  return ctx.tracker.currentWidget;
}

function addVerifyCommand(ctx: IToolContext): void {
  const { trans } = ctx;
  ctx.app.commands.addCommand(NotebookToolsCommandIDs.insertVerificationCell, {
    label: args =>
      args.run
        ? trans.__('Insert GPU Verification Cell and Run It')
        : trans.__('Insert GPU Verification Cell'),
    caption: args =>
      args.run
        ? trans.__(
            'Add (or update) the GPU verification cell at the top of the notebook, below its title, and run it'
          )
        : trans.__(
            'Add (or update) the GPU verification cell at the top of the notebook, below its title: it shows the %gpu_check report'
          ),
    icon: verifyIcon,
    isEnabled: () => current(ctx) !== null,
    execute: async args => {
      const panel = current(ctx);
      if (panel) {
        await insertVerification(ctx, panel, args.run === true);
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
}

/** The verification cell as the server's planner places it; `run` runs it. */
async function insertVerification(
  ctx: IToolContext,
  panel: NotebookPanel,
  run: boolean
): Promise<void> {
  const plan = await ctx.runner.run(
    panel,
    'verify',
    {},
    ctx.trans.__('GPU verification cell')
  );
  if (plan && run && plan.select !== null) {
    activateCell(panel.content, plan.select);
    await panel.sessionContext.ready;
    await NotebookActions.run(panel.content, panel.sessionContext);
  }
}

function addDistributeCommand(ctx: IToolContext): void {
  const { trans } = ctx;
  ctx.app.commands.addCommand(NotebookToolsCommandIDs.distributeNotebook, {
    label: trans.__('Distribute This Notebook'),
    caption: trans.__(
      'One tf.distribute strategy for the whole notebook (%gpu_distribute), placed above the first cell that builds a model: your build, compile and fit cells run on it unchanged'
    ),
    icon: strategyIcon,
    isEnabled: () => current(ctx) !== null,
    execute: async () => {
      const panel = current(ctx);
      if (panel) {
        await ctx.runner.run(
          panel,
          'distribute',
          {},
          trans.__('Distribute This Notebook')
        );
      }
    }
  });
}

/** The notebook a pipeline fix is for, and the fix: from the args, else its last fit. */
function pipelineFixFor(
  ctx: IToolContext,
  args: ReadonlyPartialJSONObject
): { panel: NotebookPanel; dataset: string; fixes: string[] } | null {
  const path = typeof args.path === 'string' ? args.path : '';
  const panel = path
    ? (ctx.tracker.find(p => p.context.path === path) ?? null)
    : current(ctx);
  if (!panel) {
    return null;
  }
  if (typeof args.dataset === 'string' && args.dataset) {
    const fixes = Array.isArray(args.fixes) ? args.fixes.map(String) : [];
    return { panel, dataset: args.dataset, fixes };
  }
  const fix = ctx.training?.pipelineFix(panel.context.path) ?? null;
  return fix ? { panel, dataset: fix.dataset, fixes: fix.fixes } : null;
}

function addFixPipelineCommand(ctx: IToolContext): void {
  const { trans } = ctx;
  // Offered by a training finding (the card's button) and, while one offers it, the GPU menu.
  ctx.app.commands.addCommand(NotebookToolsCommandIDs.fixInputPipeline, {
    label: trans.__('Fix the Input Pipeline'),
    caption: trans.__(
      "Makes the last training finding's changes in the cell that builds the input (cache, prefetch, a parallel map, from_tensor_slices), previewed, as one undo step"
    ),
    isVisible: args => pipelineFixFor(ctx, args) !== null,
    isEnabled: args => pipelineFixFor(ctx, args) !== null,
    execute: async args => {
      const found = pipelineFixFor(ctx, args);
      if (found) {
        await ctx.runner.run(
          found.panel,
          'input_pipeline',
          { dataset: found.dataset, fixes: found.fixes },
          trans.__('Fix the Input Pipeline')
        );
      }
    }
  });
}

function snippetId(args: ReadonlyPartialJSONObject): string {
  return typeof args.id === 'string' ? args.id : '';
}

function addSnippetCommand(ctx: IToolContext): void {
  const { catalog, trans } = ctx;
  ctx.app.commands.addCommand(NotebookToolsCommandIDs.insertSnippet, {
    label: args => {
      const snippet = catalog.find(snippetId(args));
      return snippet
        ? snippetLabel(snippet, trans)
        : trans.__('Insert GPU Snippet');
    },
    caption: args => catalog.find(snippetId(args))?.description ?? '',
    icon: args => snippetIcon_(snippetId(args), catalog),
    isEnabled: args => {
      const panel = current(ctx);
      if (!panel) {
        return false;
      }
      const snippet = catalog.find(snippetId(args));
      return (
        snippet?.placement !== 'wrap' ||
        panel.content.activeCell?.model.type === 'code'
      );
    },
    execute: args => insertSnippet(ctx, snippetId(args)),
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
}

/** Inserts catalog snippet `id` (the wrap for `wrap` snippets) as the planner says. */
async function insertSnippet(ctx: IToolContext, id: string): Promise<void> {
  const panel = current(ctx);
  if (!panel || !panel.model || !id) {
    return;
  }
  if (id === VERIFY_SNIPPET_ID) {
    return insertVerification(ctx, panel, false);
  }
  let snippet: ISnippet;
  try {
    snippet = await ctx.catalog.get(id);
  } catch (reason) {
    Notification.error(
      ctx.trans.__(
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
  if (id === SnippetIds.memoryLimit) {
    const limit = await askMemoryLimit(ctx);
    if (limit === null) {
      return;
    }
    options.limit_mib = limit;
  }
  const plan = await ctx.runner.run(
    panel,
    snippet.placement === 'wrap' ? 'wrap' : 'snippet',
    options,
    snippet.title
  );
  if (plan && hasEdits(plan) && snippet.placement === 'top') {
    await warnIfRestartNeeded(ctx, panel, snippet.title);
  }
}

/** The memory limit the user picks (MiB), null when cancelled. */
async function askMemoryLimit(ctx: IToolContext): Promise<number | null> {
  const value = await InputDialog.getNumber({
    title: ctx.trans.__('GPU memory limit'),
    label: ctx.trans.__(
      'MiB TensorFlow may use on each GPU (the default is half of the smallest GPU):'
    ),
    value: await defaultLimit(ctx)
  });
  if (!value.button.accept || value.value === null) {
    return null;
  }
  return Math.round(value.value);
}

/** The memory limit to propose: half of the smallest GPU's memory, in MiB (8 GiB when unknown). */
async function defaultLimit(ctx: IToolContext): Promise<number> {
  try {
    const devices = await requestAPI<IDevicesReply>(
      'devices',
      {},
      ctx.app.serviceManager.serverSettings
    );
    const totals = (devices.devices ?? [])
      .map(d => d.memory_total_mib)
      .filter((v): v is number => typeof v === 'number' && v > 0);
    if (totals.length > 0) {
      return Math.max(1024, Math.floor(Math.min(...totals) / 2 / 1024) * 1024);
    }
  } catch {
    // No telemetry: a value the user will change anyway.
  }
  return 8 * 1024;
}

/**
 * Whether TensorFlow is already imported in the notebook's kernel (asked of the
 * kernel itself, silently); false without a kernel or when it does not answer soon.
 */
export async function tensorflowStarted(
  panel: NotebookPanel
): Promise<boolean> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel || kernel.status === 'dead') {
    return false;
  }
  const future = kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    user_expressions: { tf: "'tensorflow' in __import__('sys').modules" }
  });
  const timeout = new Promise<null>(resolve =>
    setTimeout(() => resolve(null), 5000)
  );
  const reply = await Promise.race([future.done, timeout]).catch(() => null);
  const result = (reply?.content as any)?.user_expressions?.tf;
  return result?.status === 'ok' && result.data?.['text/plain'] === 'True';
}

/** After a `top` insertion: a restart is needed when TensorFlow already started in this kernel. */
async function warnIfRestartNeeded(
  ctx: IToolContext,
  panel: NotebookPanel,
  title: string
): Promise<void> {
  if (!(await tensorflowStarted(panel))) {
    return;
  }
  const { trans } = ctx;
  Notification.warning(
    trans.__(
      '"%1" needs a kernel restart to take effect: TensorFlow already started in this kernel.',
      title
    ),
    {
      autoClose: false,
      actions: [
        {
          label: trans.__('Restart Kernel'),
          caption: trans.__('Restart the kernel, then run this cell'),
          callback: () => {
            void ctx.app.commands.execute('notebook:restart-kernel');
          }
        }
      ]
    }
  );
}

/**
 * A snippet command's label, saying where the server's planner puts the code:
 * `top` snippets above the first TensorFlow cell, the precision policy above
 * the first cell that builds a model, `cursor` snippets below the active cell.
 */
export function snippetLabel(
  snippet: ISnippet,
  trans: TranslationBundle
): string {
  if (snippet.id === SnippetIds.mixedPrecision) {
    return trans.__('Insert %1 (above the first model)', snippet.title);
  }
  switch (snippet.placement) {
    case 'top':
      return trans.__('Insert %1 (above the TensorFlow import)', snippet.title);
    case 'wrap':
      return trans.__(snippet.title);
    default:
      return trans.__('Insert %1 (below this cell)', snippet.title);
  }
}

/** The icon of a snippet command. */
function snippetIcon_(id: string, catalog: SnippetCatalog): LabIcon {
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

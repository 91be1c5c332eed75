import type { INotebookModel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';

import { planResult } from './plan-preview';
import { requestAPI } from './request';

/** Where a snippet goes: above the first TensorFlow cell, around the selected cell, or below it. */
export type SnippetPlacement = 'top' | 'wrap' | 'cursor';

/** One snippet of the server's catalog (`GET /kerasgpu/api/v1/snippets`). */
export interface ISnippet {
  /** The snippet file's stem, e.g. `memory_growth`. */
  id: string;
  title: string;
  description: string;
  placement: SnippetPlacement;
  /** Menu order (lower first). */
  order: number;
  /** The Python code, with the `# {cell}` marker line for `wrap` snippets. */
  code: string;
  /** `wrap` snippets only: the marker (`# {cell}`). */
  marker?: string;
}

/** The catalog as the server sends it. */
export interface ISnippetCatalog {
  version: number;
  /** What ends the line that a `wrap` snippet replaces with the cell's code. */
  marker: string;
  snippets: ISnippet[];
}

/** What the pure logic needs to know of a notebook cell. */
export interface ICellInfo {
  source: string;
  cellType: string;
  tags?: readonly string[];
  /** The catalog id of the snippet this cell was inserted from, if any. */
  snippetId?: string;
}

/** The tag of the notebook's GPU verification cell. */
export const VERIFY_TAG = 'kerasgpu-verify';

/** The catalog id of the verification snippet. */
export const VERIFY_SNIPPET_ID = 'verify_gpu';

/** The catalog ids behind the cell toolbar buttons. */
export namespace SnippetIds {
  export const memoryGrowth = 'memory_growth';
  export const mirroredStrategy = 'mirrored_strategy';
}

/** The verification cell's code when the server's catalog cannot be read. */
export const FALLBACK_VERIFY_CODE = '%load_ext kerasgpu\n%gpu_check';

/** Fetches the snippet catalog from the server extension, in menu order. */
export async function fetchSnippets(
  serverSettings?: ServerConnection.ISettings
): Promise<ISnippet[]> {
  const catalog = await requestAPI<ISnippetCatalog>(
    'snippets',
    {},
    serverSettings
  );
  return [...(catalog.snippets ?? [])].sort(
    (a, b) => a.order - b.order || a.id.localeCompare(b.id)
  );
}

/**
 * Index of the first code cell that imports TensorFlow or Keras (or uses an
 * alias such as `tf.` bound by `import tensorflow as tf` anywhere in the
 * notebook, since cells may run out of order); -1 when there is none.
 */
export function firstTensorFlowCell(cells: readonly ICellInfo[]): number {
  const aliases = new Set<string>();
  for (const cell of cells) {
    if (cell.cellType === 'code') {
      Private.aliases(cell.source).forEach(alias => aliases.add(alias));
    }
  }
  return cells.findIndex(
    cell =>
      cell.cellType === 'code' &&
      Private.touchesTensorFlow(cell.source, aliases)
  );
}

/** Whether a cell's code imports TensorFlow or Keras. */
export function importsTensorFlow(source: string): boolean {
  return Private.touchesTensorFlow(source, new Set());
}

/** Whether a cell is the notebook's GPU verification cell (by its tag). */
export function isVerificationCell(cell: ICellInfo): boolean {
  return (cell.tags ?? []).includes(VERIFY_TAG);
}

/** Index of the notebook's verification cell, -1 when it has none. */
export function findVerificationCell(cells: readonly ICellInfo[]): number {
  return cells.findIndex(isVerificationCell);
}

/** The shared model of a notebook, the object that insertions change. */
export type SharedNotebook = INotebookModel['sharedModel'];

/** The cells of a shared notebook as the pure logic sees them. */
export function cellInfos(shared: SharedNotebook): ICellInfo[] {
  return shared.cells.map(cell => {
    const tags = cell.getMetadata('tags');
    const own = cell.getMetadata('kerasgpu') as { snippet?: unknown } | null;
    return {
      source: cell.getSource(),
      cellType: cell.cell_type,
      tags: Array.isArray(tags) ? (tags as string[]) : [],
      snippetId: typeof own?.snippet === 'string' ? own.snippet : undefined
    };
  });
}

/** The notebook tools the server plans (`POST notebook-tools/plan`). */
export type NotebookTool =
  | 'verify'
  | 'snippet'
  | 'wrap'
  | 'distribute'
  | 'mixed_precision'
  | 'input_pipeline';

/** One change of a plan: a new code cell before `index`, or new code for the cell at `index`. */
export type PlanEdit =
  | {
      op: 'insert';
      index: number;
      source: string;
      metadata?: Record<string, unknown>;
    }
  | { op: 'replace'; index: number; source: string };

/** What the user is told about a plan; `action` names a command to offer. */
export interface IPlanMessage {
  level: 'info' | 'warning' | 'error';
  /** The whole message, never cut. */
  text: string;
  action?: 'distribute-notebook';
  /** What kind of message it is, e.g. `model_marked_built` (an id, not Python code). */
  code?: string;
  /** The cell the message is about: its index in the notebook after the plan's edits. */
  cell?: number;
  /** That cell's first non-empty line, for display. */
  cell_line?: string;
}

/** What a notebook tool does to this notebook (the server's `notebook_tools.plan`). */
export interface IPlan {
  tool: NotebookTool;
  /** False when the tool refused: no edits, the reason in `messages`. */
  ok: boolean;
  edits: PlanEdit[];
  messages: IPlanMessage[];
  /** The cell to select after the edits, if any. */
  select: number | null;
}

/** The cells of a shared notebook as the server's planner reads them. */
export function planCells(
  shared: SharedNotebook
): { source: string; cell_type: string; tags: string[]; snippet?: string }[] {
  return cellInfos(shared).map(cell => ({
    source: cell.source,
    cell_type: cell.cellType,
    tags: [...(cell.tags ?? [])],
    ...(cell.snippetId ? { snippet: cell.snippetId } : {})
  }));
}

/** Asks the server what `tool` does to this notebook. */
export async function requestPlan(
  tool: NotebookTool,
  shared: SharedNotebook,
  active: number | null,
  options: Record<string, unknown> = {},
  serverSettings?: ServerConnection.ISettings
): Promise<IPlan> {
  return requestAPI<IPlan>(
    'notebook-tools/plan',
    {
      method: 'POST',
      body: JSON.stringify({
        tool,
        cells: planCells(shared),
        active,
        options
      })
    },
    serverSettings
  );
}

/**
 * Applies a plan's edits (new cells and new code of existing cells) as ONE
 * undo step of the notebook (`notebook:undo-cell-action`, Z in command mode).
 * Edits apply in list order: insert indices count earlier inserts, replace
 * indices are in the numbering after the inserts. Refuses when the notebook
 * changed since it was planned: `expected` is its cell count, or its cells'
 * sources then.
 */
export function applyPlan(
  shared: SharedNotebook,
  plan: IPlan,
  expected: number | readonly string[],
  undoable = true
): void {
  const sources = shared.cells.map(cell => cell.getSource());
  const changed =
    typeof expected === 'number'
      ? sources.length !== expected
      : sources.length !== expected.length ||
        sources.some((source, i) => source !== expected[i]);
  if (changed) {
    throw new Error(
      'The notebook changed while the tool was planning: try again.'
    );
  }
  if (plan.edits.length === 0) {
    return;
  }
  // The notebook after the edits, checked before anything changes (throws on a
  // cell that is not there). Inside one transaction `shared.cells` only follows
  // the inserts once it ends, so existing cells get their new code first, then
  // new cells go in at their final indices, lowest first.
  const after = planResult(sources, plan.edits);
  const cells = shared.cells;
  // Nested transactions join this one, whose origin is the notebook: the
  // notebook's undo manager records the new cells and the new code together.
  Private.oneStep(
    shared,
    () => {
      after.forEach(cell => {
        if (cell.origin !== null && cell.source !== sources[cell.origin]) {
          cells[cell.origin].setSource(cell.source);
        }
      });
      after.forEach((cell, index) => {
        if (cell.origin === null) {
          shared.insertCell(index, {
            cell_type: 'code',
            source: cell.source,
            metadata: cell.metadata as any
          });
        }
      });
    },
    undoable
  );
  // A changed cell's own undo history (Ctrl+Z in its editor) holds typing the
  // tool's code replaced: replayed over it, it would mix old and new text.
  // The notebook's undo step restores the cell's code as it was.
  const notebookHistory = Private.undoManager(shared);
  after.forEach(cell => {
    if (cell.origin !== null && cell.source !== sources[cell.origin]) {
      const own = Private.undoManager(cells[cell.origin]);
      if (undoable && own && own !== notebookHistory) {
        own.clear();
      }
    }
  });
}

/** What `upsertVerificationCell` did. */
export interface IUpsertResult {
  /** The verification cell's index. */
  index: number;
  /** Whether it was added (false: an existing one was updated). */
  added: boolean;
}

/**
 * Adds the tagged verification cell at the top of the notebook, or updates the
 * code of the one it has, in ONE undo step of the notebook.
 */
export function upsertVerificationCell(
  shared: SharedNotebook,
  code: string,
  undoable = true
): IUpsertResult {
  const existing = findVerificationCell(cellInfos(shared));
  const source = code.replace(/\n+$/, '');
  if (existing >= 0) {
    const cell = shared.cells[existing];
    if (cell.getSource() !== source) {
      Private.oneStep(shared, () => cell.setSource(source), undoable);
    }
    return { index: existing, added: false };
  }
  Private.oneStep(
    shared,
    () => {
      shared.insertCell(0, {
        cell_type: 'code',
        source,
        metadata: {
          tags: [VERIFY_TAG],
          kerasgpu: { snippet: VERIFY_SNIPPET_ID }
        }
      });
    },
    undoable
  );
  return { index: 0, added: true };
}

/**
 * Whether a notebook is new and empty: one code or markdown cell with no code
 * (what JupyterLab creates for File > New > Notebook).
 */
export function isEmptyNotebook(cells: readonly ICellInfo[]): boolean {
  return cells.length === 0 || (cells.length === 1 && !cells[0].source.trim());
}

namespace Private {
  /** Top-level modules that import TensorFlow (or Keras, which may run on it). */
  const MODULE = String.raw`(?:tensorflow(?:_\w+)?|tf_keras|keras(?:_\w+)?)`;
  const IMPORT = new RegExp(
    String.raw`^(?:import\s+(?:[\w.]+(?:\s+as\s+\w+)?\s*,\s*)*${MODULE}\b|from\s+${MODULE}\b[\w.]*\s+import\b)`
  );
  const ALIAS = new RegExp(
    String.raw`\b${MODULE}(?:\.[\w.]+)?\s+as\s+(\w+)`,
    'g'
  );

  /** The statements of a cell's code, without comments, magics and shell lines. */
  export function statements(source: string): string[] {
    return source
      .split(/\r\n|\r|\n/)
      .map(line => line.replace(/#.*$/, ''))
      .filter(line => !/^\s*[%!]/.test(line))
      .flatMap(line => line.split(';'))
      .map(statement =>
        statement.trim().replace(/^(?:try|else|finally)\s*:\s*/, '')
      )
      .filter(statement => statement.length > 0);
  }

  /** Names bound to TensorFlow / Keras modules by `import ... as NAME`. */
  export function aliases(source: string): string[] {
    const names: string[] = [];
    for (const statement of statements(source)) {
      if (/^(?:import|from)\b/.test(statement)) {
        for (const match of statement.matchAll(ALIAS)) {
          names.push(match[1]);
        }
      }
    }
    return names;
  }

  /** Whether code imports TensorFlow / Keras or uses one of their aliases. */
  export function touchesTensorFlow(
    source: string,
    known: ReadonlySet<string>
  ): boolean {
    const uses =
      known.size > 0
        ? new RegExp(
            String.raw`(?:^|[^\w.])(?:${[...known].join('|')})\s*\.\s*\w`
          )
        : null;
    return statements(source).some(
      statement => IMPORT.test(statement) || (uses?.test(statement) ?? false)
    );
  }

  /** Something with Yjs transactions and (maybe) an undo manager. */
  interface IUndoable {
    transact(f: () => void, undoable?: boolean): void;
  }

  /** What the shared models' Yjs undo managers offer here. */
  interface IHistory {
    stopCapturing(): void;
    clear(): void;
  }

  /** A shared notebook's or cell's undo manager, if it has one. */
  export function undoManager(target: unknown): IHistory | null {
    return (target as { undoManager?: IHistory | null }).undoManager ?? null;
  }

  /**
   * Runs `change` in one transaction that the undo manager keeps as its own
   * step: not merged with the user's typing just before or after it (Yjs
   * merges changes less than 500 ms apart).
   */
  export function oneStep(
    target: IUndoable,
    change: () => void,
    undoable = true
  ): void {
    const manager = undoManager(target);
    manager?.stopCapturing();
    target.transact(change, undoable);
    manager?.stopCapturing();
  }
}

import type { INotebookModel } from '@jupyterlab/notebook';

import type { IPlan, IPlanCell } from '../api/notebook';
import { planResult } from './plan-preview';

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

/** The cells of a shared notebook as the server's planner reads them. */
export function planCells(shared: SharedNotebook): IPlanCell[] {
  return cellInfos(shared).map(cell => ({
    source: cell.source,
    cell_type: cell.cellType,
    tags: [...(cell.tags ?? [])],
    ...(cell.snippetId ? { snippet: cell.snippetId } : {})
  }));
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

/**
 * Whether a notebook is new and empty: one code or markdown cell with no code
 * (what JupyterLab creates for File > New > Notebook).
 */
export function isEmptyNotebook(cells: readonly ICellInfo[]): boolean {
  return cells.length === 0 || (cells.length === 1 && !cells[0].source.trim());
}

namespace Private {
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

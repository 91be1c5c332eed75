/**
 * What a notebook tool's plan will do, described before it is applied: the
 * cells it adds (where, with their code) and the lines it changes in cells
 * that exist. Pure functions over cell sources (no DOM).
 */

import type { IPlan, IPlanMessage, PlanEdit } from '../api/notebook';

/** One line of a line diff. */
export interface IDiffLine {
  kind: 'same' | 'removed' | 'added';
  text: string;
}

/** A cell the plan adds. */
export interface ICellAdded {
  kind: 'added';
  /** Its index in the notebook after the plan (0-based). */
  index: number;
  source: string;
  /** The first non-empty line of the cell below it (an existing one), if any. */
  above: string | null;
  /** The first non-empty line of the cell above it, when none is below. */
  below: string | null;
}

/** A cell of the notebook whose code the plan changes. */
export interface ICellChanged {
  kind: 'changed';
  /** Its index in the notebook after the plan (0-based). */
  index: number;
  /** Its index in the notebook now (0-based). */
  was: number;
  /** The first non-empty line of its code now. */
  line: string;
  diff: IDiffLine[];
}

/** One change a plan makes, in notebook order. */
export type PlanChange = ICellAdded | ICellChanged;

/** A cell of the notebook after the plan, and where it came from. */
export interface IPlannedCell {
  source: string;
  /** Its index in the notebook before the plan; null for a new cell. */
  origin: number | null;
  /** A new cell's metadata. */
  metadata?: Record<string, unknown>;
}

/** The first non-empty line of a cell's code, trimmed ('' when it has none). */
export function firstLine(source: string): string {
  for (const line of source.split(/\r\n|\r|\n/)) {
    if (line.trim()) {
      return line.trim();
    }
  }
  return '';
}

/**
 * The notebook after a plan's edits, applied as `applyPlan` does: in list
 * order, insert indices counting earlier inserts, replace indices in the
 * numbering after the inserts. Throws on an index outside the notebook.
 */
export function planResult(
  before: readonly string[],
  edits: readonly PlanEdit[]
): IPlannedCell[] {
  const cells: IPlannedCell[] = before.map((source, origin) => ({
    source,
    origin
  }));
  for (const edit of edits) {
    if (edit.op === 'insert') {
      if (edit.index < 0 || edit.index > cells.length) {
        throw new Error(`a new cell at ${edit.index} is outside the notebook`);
      }
      cells.splice(edit.index, 0, {
        source: edit.source,
        origin: null,
        metadata: edit.metadata
      });
    } else {
      if (edit.index < 0 || edit.index >= cells.length) {
        throw new Error(`cell ${edit.index + 1} is not in the notebook`);
      }
      cells[edit.index] = { ...cells[edit.index], source: edit.source };
    }
  }
  return cells;
}

/** What the plan adds and changes, in notebook order (cells whose code stays the same are left out). */
export function describePlan(
  before: readonly string[],
  edits: readonly PlanEdit[]
): PlanChange[] {
  const after = planResult(before, edits);
  const changes: PlanChange[] = [];
  after.forEach((cell, index) => {
    if (cell.origin === null) {
      const next = after.slice(index + 1).find(c => c.origin !== null);
      const previous = [...after.slice(0, index)]
        .reverse()
        .find(c => c.origin !== null);
      changes.push({
        kind: 'added',
        index,
        source: cell.source,
        above: next ? firstLine(before[next.origin!]) : null,
        below: !next && previous ? firstLine(before[previous.origin!]) : null
      });
    } else if (cell.source !== before[cell.origin]) {
      changes.push({
        kind: 'changed',
        index,
        was: cell.origin,
        line: firstLine(before[cell.origin]),
        diff: lineDiff(before[cell.origin], cell.source)
      });
    }
  });
  return changes;
}

/** A change in one line of words, e.g. "new cell 3, above `model = make_model()`". */
export function describeChange(change: PlanChange): string {
  if (change.kind === 'added') {
    const where =
      change.above !== null
        ? `, above \`${change.above}\``
        : change.below !== null
          ? `, at the end, below \`${change.below}\``
          : '';
    return `new cell ${change.index + 1}${where}`;
  }
  const added = change.diff.filter(line => line.kind === 'added').length;
  const removed = change.diff.filter(line => line.kind === 'removed').length;
  const moved =
    change.was !== change.index ? ` (was cell ${change.was + 1})` : '';
  return (
    `cell ${change.index + 1}${moved}` +
    (change.line ? `, \`${change.line}\`` : '') +
    `: ${plural(added, 'line')} added, ${plural(removed, 'line')} removed`
  );
}

/** The plan's changes counted, e.g. "1 cell added, 1 cell changed". */
export function summarize(changes: readonly PlanChange[]): string {
  const added = changes.filter(c => c.kind === 'added').length;
  const changed = changes.length - added;
  const parts: string[] = [];
  if (added) {
    parts.push(`${plural(added, 'cell')} added`);
  }
  if (changed) {
    parts.push(`${plural(changed, 'cell')} changed`);
  }
  return parts.join(', ') || 'no change';
}

/**
 * The line diff of two texts: the longest common run of lines kept, the rest
 * removed then added. Cells are short; beyond `limit` lines on a side the
 * common head and tail are kept and the middle is shown replaced whole.
 */
export function lineDiff(
  before: string,
  after: string,
  limit = 2000
): IDiffLine[] {
  const a = splitLines(before);
  const b = splitLines(after);
  // The common head and tail need no table.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) {
    head++;
  }
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  ) {
    tail++;
  }
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const middle: IDiffLine[] =
    x.length > limit || y.length > limit
      ? [
          ...x.map(text => ({ kind: 'removed' as const, text })),
          ...y.map(text => ({ kind: 'added' as const, text }))
        ]
      : lcsDiff(x, y);
  return [
    ...a.slice(0, head).map(text => ({ kind: 'same' as const, text })),
    ...middle,
    ...a.slice(a.length - tail).map(text => ({ kind: 'same' as const, text }))
  ];
}

/** What a message says about a cell, e.g. "cell 3: model = make_model()"; null when it names none. */
export function cellLabel(
  message: IPlanMessage,
  after?: readonly IPlannedCell[]
): string | null {
  if (typeof message.cell !== 'number') {
    return null;
  }
  const line =
    message.cell_line ?? firstLine(after?.[message.cell]?.source ?? '');
  return line
    ? `cell ${message.cell + 1}: ${line}`
    : `cell ${message.cell + 1}`;
}

/**
 * Text that fits a toast (JupyterLab cuts at 140 characters): the whole text
 * when it fits, else its start cut at a word and ending in an ellipsis.
 */
export function toastText(
  text: string,
  max = 140
): { text: string; cut: boolean } {
  if (text.length <= max) {
    return { text, cut: false };
  }
  const room = text.slice(0, max - 1);
  const space = room.lastIndexOf(' ');
  const cut = space > max / 2 ? room.slice(0, space) : room;
  return { text: `${cut.replace(/[\s,;:.]+$/, '')}…`, cut: true };
}

/** Whether a plan changes the notebook. */
export function hasEdits(plan: IPlan): boolean {
  return plan.ok && plan.edits.length > 0;
}

function splitLines(text: string): string[] {
  return text === '' ? [] : text.split(/\r\n|\r|\n/);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The classic longest-common-subsequence diff; removed lines before added ones in each run. */
function lcsDiff(a: readonly string[], b: readonly string[]): IDiffLine[] {
  const n = a.length;
  const m = b.length;
  // common[i][j]: the longest common subsequence of a[i:] and b[j:].
  const common: Uint32Array[] = [];
  for (let i = 0; i <= n; i++) {
    common.push(new Uint32Array(m + 1));
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      common[i][j] =
        a[i] === b[j]
          ? common[i + 1][j + 1] + 1
          : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const out: IDiffLine[] = [];
  const added: IDiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push(...added.splice(0), { kind: 'same', text: a[i] });
      i++;
      j++;
    } else if (j < m && (i === n || common[i][j + 1] >= common[i + 1][j])) {
      added.push({ kind: 'added', text: b[j] });
      j++;
    } else {
      out.push({ kind: 'removed', text: a[i] });
      i++;
    }
  }
  out.push(...added);
  return out;
}

/**
 * The notebook tools' endpoints (python_ext/kerasgpu/server/notebook.py): the
 * snippet catalog and the planner, whose plans the frontend only previews and
 * applies (it never places a cell itself).
 */
import { ServerConnection } from '@jupyterlab/services';

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

/** The catalog id of the verification snippet. */
export const VERIFY_SNIPPET_ID = 'verify_gpu';

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

/** A cell as the server's planner reads it. */
export interface IPlanCell {
  source: string;
  cell_type: string;
  tags: string[];
  /** The catalog id of the snippet the cell was inserted from. */
  snippet?: string;
}

/** Asks the server what `tool` does to this notebook. */
export async function requestPlan(
  tool: NotebookTool,
  cells: IPlanCell[],
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
        cells,
        active,
        options
      })
    },
    serverSettings
  );
}

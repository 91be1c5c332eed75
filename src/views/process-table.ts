import { Dialog, showDialog } from '@jupyterlab/apputils';

import { IProcessRow } from '../api/gpu';
import { formatGiB } from '../format';
import { GpuModel } from '../models/model';

/**
 * The panel's list of processes holding GPU memory: one row per process (its
 * GPUs, memory, who holds it, since when), a link to its notebook, and a
 * *Shut down* button (asks first) for this server's kernels.
 */
export class ProcessTable {
  constructor(options: ProcessTable.IOptions) {
    this._model = options.model;
    this._openPath = options.openPath ?? null;
    this.node = document.createElement('section');
    this.node.className = 'jp-kerasgpu-processes';
    this.node.setAttribute('aria-label', 'Processes using GPU memory');
  }

  readonly node: HTMLElement;

  /** Shows the model's processes (rebuilt only when they changed). */
  render(): void {
    const rows = this._model.processes;
    // Rebuilt only when something changed: keyboard focus on a button survives polls.
    const key = JSON.stringify(rows);
    if (key === this._key) {
      return;
    }
    this._key = key;
    this.node.replaceChildren();
    if (rows.length === 0) {
      return;
    }
    const heading = document.createElement('h3');
    heading.textContent = 'Processes';
    const list = document.createElement('ul');
    list.className = 'jp-kerasgpu-process-list';
    for (const row of groupProcesses(rows)) {
      list.appendChild(this._row(row));
    }
    this.node.append(heading, list);
  }

  private _row(row: IProcessGroup): HTMLElement {
    const item = document.createElement('li');
    item.className = 'jp-kerasgpu-process';
    item.dataset.pid = `${row.pid}`;
    const what = document.createElement('span');
    what.className = 'jp-kerasgpu-process-what';
    const session = row.sessions[0];
    if (session && this._openPath) {
      const link = document.createElement('a');
      link.href = '#';
      link.className = 'jp-kerasgpu-process-link';
      link.textContent = basename(session.path);
      link.title = `Open ${session.path}`;
      link.addEventListener('click', event => {
        event.preventDefault();
        this._openPath?.(session.path);
      });
      what.appendChild(link);
    } else if (session) {
      what.textContent = basename(session.path);
    } else if (row.kernel) {
      what.textContent = `Kernel ${row.kernel.name ?? ''} ${row.kernel.id.slice(0, 8)}`;
    } else {
      what.textContent = row.name ?? `pid ${row.pid}`;
    }
    const detail = document.createElement('span');
    detail.className = 'jp-kerasgpu-process-detail';
    const gpus = row.gpus.length
      ? `GPU ${row.gpus.join(', ')}`
      : row.gpu_index === null
        ? null
        : `GPU ${row.gpu_index}`;
    // Who holds it, in words: this server's kernel, or a process this server did not start.
    const who = row.kernel
      ? `${row.name ?? 'kernel'} · pid ${row.pid}`
      : row.user
        ? `pid ${row.pid}, ${row.user}'s process outside this Jupyter server`
        : `pid ${row.pid}, a process outside this Jupyter server (another user, container or server)`;
    const since =
      typeof row.started === 'number' ? formatElapsed(row.started) : null;
    const user = row.kernel && row.user ? row.user : null;
    detail.textContent = [
      gpus,
      formatGiB(row.used_memory_mib),
      who,
      user,
      since
    ]
      .filter(Boolean)
      .join(' · ');
    item.append(what, detail);
    if (row.cmdline) {
      const cmd = document.createElement('code');
      cmd.className = 'jp-kerasgpu-process-cmd';
      cmd.textContent = row.cmdline;
      cmd.title = row.cmdline;
      item.append(cmd);
    }
    if (row.can_shutdown && row.kernel) {
      // Small and neutral: the red is for the confirmation, where it is the choice.
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'jp-kerasgpu-shutdown';
      button.textContent = 'Shut down';
      button.title =
        'Shut down this kernel (asks first) to free its GPU memory';
      button.setAttribute(
        'aria-label',
        `Shut down the kernel of ${session?.path ?? `process ${row.pid}`}`
      );
      button.addEventListener('click', () => void this._shutdown(row));
      detail.append(' ', button);
    }
    return item;
  }

  private async _shutdown(row: IProcessRow): Promise<void> {
    const holder = row.sessions[0]?.path ?? `kernel ${row.kernel?.id}`;
    const result = await showDialog({
      title: 'Shut down kernel?',
      body: `This stops the kernel of ${holder} and frees the ${formatGiB(row.used_memory_mib)} of GPU memory it holds. Its variables are lost; the notebook file is kept.`,
      buttons: [
        Dialog.cancelButton(),
        Dialog.warnButton({ label: 'Shut Down' })
      ]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      await this._model.shutdownKernelOf(row.pid);
    } catch (error) {
      await showDialog({
        title: 'Could not shut the kernel down',
        body: (error as Error).message,
        buttons: [Dialog.okButton()]
      });
    }
  }

  private _key = '';
  private _model: GpuModel;
  private _openPath: ((path: string) => void) | null;
}

export namespace ProcessTable {
  export interface IOptions {
    model: GpuModel;
    /** Opens a notebook by path (a row links to its notebook). */
    openPath?: ((path: string) => void) | null;
  }
}

/** One process with every GPU it holds memory on (NVML lists it once per GPU). */
export interface IProcessGroup extends IProcessRow {
  gpus: number[];
}

/** One row per process: its GPUs listed, its memory summed; largest first. */
export function groupProcesses(rows: readonly IProcessRow[]): IProcessGroup[] {
  const byPid = new Map<number, IProcessGroup>();
  for (const row of rows) {
    const seen = byPid.get(row.pid);
    if (!seen) {
      byPid.set(row.pid, {
        ...row,
        gpus: row.gpu_index === null ? [] : [row.gpu_index]
      });
      continue;
    }
    if (row.gpu_index !== null && !seen.gpus.includes(row.gpu_index)) {
      seen.gpus.push(row.gpu_index);
    }
    seen.used_memory_mib =
      seen.used_memory_mib === null && row.used_memory_mib === null
        ? null
        : (seen.used_memory_mib ?? 0) + (row.used_memory_mib ?? 0);
  }
  const out = [...byPid.values()];
  for (const g of out) {
    g.gpus.sort((a, b) => a - b);
  }
  return out.sort(
    (a, b) => (b.used_memory_mib ?? 0) - (a.used_memory_mib ?? 0)
  );
}

/** How long ago a process started: "for 3 min", "for 2 h 5 min". */
export function formatElapsed(
  startedEpochS: number,
  nowMs = Date.now()
): string {
  const s = Math.max(0, Math.round(nowMs / 1000 - startedEpochS));
  if (s < 60) {
    return `for ${s} s`;
  }
  const min = Math.floor(s / 60);
  if (min < 60) {
    return `for ${min} min`;
  }
  const h = Math.floor(min / 60);
  return h < 48
    ? `for ${h} h ${min % 60} min`
    : `for ${Math.floor(h / 24)} days`;
}

function basename(path: string): string {
  return path.split('/').pop() || path;
}

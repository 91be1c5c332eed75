import { INotebookTracker } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { formatGiB, formatPercent, percentOf } from '../format';
import {
  chooseHost,
  hostProcessRows,
  IHostGpusState,
  IHostProcessRow,
  IRemoteGpus,
  KernelHostGpus,
  remoteGpus
} from '../models/host-gpus';
import { GpuModel } from '../models/model';
import { el } from './dom';

/**
 * A section of the GPU panel: the GPUs of the host where the current notebook's kernel runs,
 * labelled with that host, and that host's GPU processes (this notebook's kernel named), when
 * they are not the server's (a kernel behind Enterprise Gateway or in a Kubernetes pod); they
 * then take the place of the server's cards and process list (`data-show="kernel"`, see
 * style/host-gpus.css). Or the hint to install the package in the kernel's environment.
 * The kernel streams only while this section is visible (the panel open) for its notebook.
 */
export class HostGpusSection extends Widget {
  constructor(options: HostGpusSection.IOptions) {
    super({ node: document.createElement('section') });
    this.addClass('jp-kerasgpu-host');
    this.node.setAttribute('aria-label', "GPUs of the kernel's host");
    this._notebooks = options.notebooks;
    this._server = options.serverModel;
    this._notebooks?.currentChanged.connect(this._follow, this);
    this._server.changed.connect(this._render, this);
    if (typeof IntersectionObserver !== 'undefined') {
      // The panel shows or hides (sidebar opened, collapsed): watch only while seen.
      this._observer = new IntersectionObserver(entries => {
        this.setVisible(entries.some(e => e.isIntersecting));
      });
      this._observer.observe(this.node);
    }
    this._follow();
  }

  /** Whether the section is on screen (set by an IntersectionObserver in browsers). */
  setVisible(visible: boolean): void {
    if (visible === this._visible) {
      return;
    }
    this._visible = visible;
    this._follow();
  }

  /** The GPUs of the current kernel's host when they are not the server's (status bar). */
  get remote(): IRemoteGpus | null {
    return remoteGpus(
      this._server.devices.map(d => d.uuid),
      this._current?.state ?? null
    );
  }

  /** Emitted when what `remote` says may have changed. */
  get remoteChanged(): ISignal<this, void> {
    return this._remoteChanged;
  }

  /** The current kernel's host GPUs model (tests read it). */
  get current(): KernelHostGpus | null {
    return this._current;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._observer?.disconnect();
    this._notebooks?.currentChanged.disconnect(this._follow, this);
    this._notebook?.sessionContext.statusChanged?.disconnect(
      this._onStatus,
      this
    );
    this._server.changed.disconnect(this._render, this);
    this._drop();
    super.dispose();
  }

  private _follow(): void {
    const nb = this._notebooks?.currentWidget ?? null;
    if (nb && nb !== this._notebook) {
      this._notebook?.sessionContext.kernelChanged.disconnect(
        this._follow,
        this
      );
      this._notebook?.sessionContext.statusChanged?.disconnect(
        this._onStatus,
        this
      );
      this._notebook = nb;
      nb.sessionContext.kernelChanged.connect(this._follow, this);
      nb.sessionContext.statusChanged?.connect(this._onStatus, this);
    }
    const kernel = nb?.sessionContext.session?.kernel ?? null;
    if (kernel !== this._kernel) {
      this._drop();
      this._kernel = kernel;
      if (kernel) {
        this._current = new KernelHostGpus(kernel);
        this._current.changed.connect(this._render, this);
      }
    }
    if (this._current) {
      if (this._visible) {
        void this._current.watch();
      } else {
        void this._current.unwatch();
      }
    }
    this._render();
  }

  /**
   * A restart keeps the kernel connection (no kernelChanged) but ends the old process and its
   * stream: what it streamed is dropped at once (the status bar must not go on showing memory
   * a dead process held), and the new process is asked again once it is idle.
   */
  private _onStatus(_: unknown, status: string): void {
    if (
      status === 'restarting' ||
      status === 'autorestarting' ||
      status === 'dead'
    ) {
      this._restarting = true;
      this._drop();
      this._render();
    } else if (this._restarting && status === 'idle') {
      this._restarting = false;
      this._follow();
    }
  }

  private _drop(): void {
    const current = this._current;
    this._current = null;
    this._kernel = null;
    if (current) {
      void current.unwatch().finally(() => current.dispose());
    }
  }

  private _render(): void {
    this._remoteChanged.emit();
    const state = this._current?.state ?? null;
    this.node.replaceChildren();
    if (!state) {
      this.node.dataset.show = 'server';
      return;
    }
    const choice = chooseHost(
      this._server.devices.map(d => d.uuid),
      state,
      this._server.status?.reason ?? null
    );
    this.node.dataset.show = choice.show;
    if (choice.hint) {
      this.node.appendChild(el('p', 'jp-kerasgpu-host-hint', choice.hint));
    }
    if (choice.show === 'kernel') {
      this.node.appendChild(el('h3', 'jp-kerasgpu-host-title', choice.title));
      if (choice.note) {
        this.node.appendChild(el('p', 'jp-kerasgpu-host-note', choice.note));
      }
      this.node.appendChild(gpuList(state));
      const path = this._notebook?.context?.path ?? null;
      const notebook = path ? path.split('/').pop() || path : null;
      const rows = hostProcessRows(state.processes, notebook);
      if (rows.length) {
        this.node.appendChild(processList(state.host, rows));
      }
    }
  }

  private _notebooks: INotebookTracker | null;
  private _server: GpuModel;
  private _observer: IntersectionObserver | null = null;
  private _visible = false;
  private _notebook: INotebookTracker['currentWidget'] = null;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _current: KernelHostGpus | null = null;
  private _restarting = false;
  private _remoteChanged = new Signal<this, void>(this);
}

/** HostGpusSection's options. */
export namespace HostGpusSection {
  export interface IOptions {
    notebooks: INotebookTracker | null;
    /** The server's own GPUs (to tell whether the kernel's are elsewhere). */
    serverModel: GpuModel;
  }
}

function gpuList(state: IHostGpusState): HTMLElement {
  const list = el('ul', 'jp-kerasgpu-host-gpus');
  for (const device of state.devices) {
    const sample = state.samples.find(s => s.index === device.index);
    const used = sample?.memory_used_mib ?? null;
    const total = sample?.memory_total_mib ?? device.memory_total_mib;
    const row = el('li', 'jp-kerasgpu-host-gpu');
    row.appendChild(el('span', 'jp-kerasgpu-index', String(device.index)));
    row.appendChild(el('span', 'jp-kerasgpu-name', device.name));
    row.appendChild(
      el(
        'span',
        'jp-kerasgpu-host-memory',
        `${formatGiB(used)} / ${formatGiB(total)} (${formatPercent(percentOf(used, total))})`
      )
    );
    row.appendChild(
      el(
        'span',
        'jp-kerasgpu-host-util',
        `${formatPercent(sample?.utilization_gpu ?? null)} busy`
      )
    );
    const mine = state.processes.filter(
      p => p.this_kernel && p.gpu_uuid === device.uuid
    );
    if (mine.length) {
      const held = mine.reduce((sum, p) => sum + (p.used_memory_mib ?? 0), 0);
      row.appendChild(
        el(
          'span',
          'jp-kerasgpu-host-mine',
          `this kernel holds ${formatGiB(held)}`
        )
      );
    }
    list.appendChild(row);
  }
  return list;
}

/** The kernel host's GPU processes, under their own heading (never in the server's list). */
function processList(
  host: string | null,
  rows: IHostProcessRow[]
): HTMLElement {
  const section = el('section', 'jp-kerasgpu-host-processes');
  const where = host
    ? `Processes on ${host}`
    : "Processes on the kernel's host";
  section.setAttribute('aria-label', where);
  section.appendChild(el('h4', 'jp-kerasgpu-host-processes-title', where));
  const list = el('ul', 'jp-kerasgpu-host-process-list');
  for (const row of rows) {
    const item = el('li', 'jp-kerasgpu-host-process');
    item.dataset.pid = String(row.pid);
    item.classList.toggle('jp-mod-this-kernel', row.thisKernel);
    item.appendChild(el('span', 'jp-kerasgpu-host-process-what', row.label));
    item.appendChild(el('span', 'jp-kerasgpu-host-process-detail', row.detail));
    list.appendChild(item);
  }
  section.appendChild(list);
  return section;
}

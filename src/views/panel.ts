import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { el, withCode } from './dom';
import { formatGiB, formatPercent } from '../format';
import {
  DEFAULT_PANEL_CONFIG,
  GpuCard,
  IPanelConfig,
  rowHead
} from './gpu-card';
import { GpuModel } from '../models/model';
import { ProcessTable } from './process-table';

export { DEFAULT_PANEL_CONFIG, IPanelConfig, notMeasured } from './gpu-card';
export { formatElapsed, groupProcesses, IProcessGroup } from './process-table';
export { withCode } from './dom';

/** The sidebar panel's id (for `app.shell.activateById`). */
export const PANEL_ID = 'jp-kerasgpu-panel';

/**
 * The "GPUs" sidebar panel: one card per GPU (memory, utilization, history
 * chart, temperature, power, clock), the processes holding GPU memory, or a
 * clear message saying why there is nothing to show.
 *
 * Cards are built once per device list and then updated in place.
 */
export class GpuPanel extends Widget {
  constructor(options: GpuPanel.IOptions) {
    super();
    this._dashboard = options.layout === 'dashboard';
    this.id = options.id ?? PANEL_ID;
    this.addClass('jp-kerasgpu-panel');
    this.toggleClass('jp-kerasgpu-dashboard', this._dashboard);
    this.node.setAttribute('role', 'region');
    this.node.setAttribute(
      'aria-label',
      this._dashboard ? 'GPU dashboard' : 'GPU monitor'
    );
    this._model = options.model;
    this._onShow = options.onShow ?? null;

    const header = document.createElement('header');
    header.className = 'jp-kerasgpu-header';
    const title = document.createElement('h2');
    title.textContent = 'GPUs';
    header.appendChild(title);
    if (options.openDashboard) {
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'jp-kerasgpu-open-dashboard';
      open.textContent = 'Dashboard';
      open.title = 'Open the GPUs in a main-area tab (for a big screen)';
      open.setAttribute('aria-label', 'Open the GPU dashboard');
      const openDashboard = options.openDashboard;
      open.addEventListener('click', () => openDashboard());
      header.appendChild(open);
    }
    this._message = document.createElement('div');
    this._message.className = 'jp-kerasgpu-state';
    this._message.setAttribute('aria-live', 'polite');
    this._cards = document.createElement('ul');
    this._cards.className = 'jp-kerasgpu-cards';
    this._cards.setAttribute('aria-label', 'GPUs');
    // What every GPU shares (model, driver, CUDA) once, with the totals: not on each card.
    this._summary = document.createElement('div');
    this._summary.className = 'jp-kerasgpu-summary';
    this._currentKernel = options.currentKernel ?? null;
    this._procs = new ProcessTable({
      model: this._model,
      openPath: options.openPath
    });
    this.node.append(header, this._message);
    if (options.extra) {
      this.node.appendChild(options.extra);
    }
    this.node.append(this._summary, this._cards, this._procs.node);

    this._model.changed.connect(this._onChange, this);
    options.themeChanged?.connect(this._restyle, this);
    this._themeChanged = options.themeChanged ?? null;
    this._renderState();
    this._procs.render();
  }

  /** The model this panel shows. */
  get model(): GpuModel {
    return this._model;
  }

  /** What to show (from the settings). */
  get config(): IPanelConfig {
    return this._config;
  }
  set config(value: IPanelConfig) {
    this._config = { ...value };
    this._deviceKey = '';
    this._renderState();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.setViewVisible(this.id, false);
    this._model.changed.disconnect(this._onChange, this);
    this._themeChanged?.disconnect(this._restyle, this);
    for (const card of this._cardViews.values()) {
      card.dispose();
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    this._model.setViewVisible(this.id, true);
    this._renderState();
    this._onShow?.();
  }

  protected onAfterHide(msg: Message): void {
    this._model.setViewVisible(this.id, false);
  }

  protected onAfterAttach(msg: Message): void {
    this._model.setViewVisible(this.id, this.isVisible);
  }

  protected onBeforeDetach(msg: Message): void {
    this._model.setViewVisible(this.id, false);
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    this._fitDashboard();
    for (const card of this._cardViews.values()) {
      card.chart?.resize();
    }
  }

  /** Marks the GPUs the current notebook's kernel holds memory on (call when the notebook changes). */
  refreshMarks(): void {
    const kernelId = this._currentKernel?.() ?? null;
    const mine = new Set(
      this._model.processes
        .filter(p => kernelId && p.kernel?.id === kernelId)
        .map(p => p.gpu_index)
    );
    for (const [index, card] of this._cardViews) {
      card.mark(mine.has(index));
    }
  }

  /** The dashboard: a grid of 1, 2x1, 2x2, 3x2 or 4x2 GPUs whose charts share the tab's height. */
  private _fitDashboard(): void {
    if (!this._dashboard || this._cardViews.size === 0) {
      return;
    }
    const n = this._cardViews.size;
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 6 ? 3 : 4;
    const rows = Math.ceil(n / cols);
    this._cards.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    const height = this.node.clientHeight;
    if (!height) {
      return;
    }
    const above = this._cards.offsetTop;
    // A card's title, meters and facts (measured) take their height; the rest of its row is its chart's.
    const first = this._cardViews.values().next().value as GpuCard;
    const host = first.node.querySelector(
      '.jp-kerasgpu-chart'
    ) as HTMLElement | null;
    const chrome = first.node.offsetHeight - (host?.offsetHeight ?? 0) || 190;
    const room = (height - above - 24) / rows - 12 - chrome;
    for (const card of this._cardViews.values()) {
      if (card.chart) {
        card.chart.maxHeight = Math.max(80, Math.floor(room));
      }
    }
  }

  private _onChange(_: GpuModel, change: GpuModel.Change): void {
    if (change === 'processes') {
      this._procs.render();
      this.refreshMarks();
    } else if (change === 'status') {
      this._renderState();
    } else {
      this._updateCards();
    }
  }

  private _restyle(): void {
    for (const card of this._cardViews.values()) {
      card.chart?.restyle();
    }
  }

  /** The state message, and the card list when the device list changed. */
  private _renderState(): void {
    const model = this._model;
    const status = model.status;
    this.node.dataset.state = model.state;
    let text: string | null = null;
    let hint: string | null = null;
    let kind = model.state as string;
    switch (model.state) {
      case 'loading':
        text = 'Looking for GPUs…';
        break;
      case 'disconnected':
        if (model.everConnected) {
          text = 'Disconnected from the Jupyter server.';
          hint = 'Reconnecting… the readings below are from before.';
        } else {
          text = 'Cannot reach the GPU service of the Jupyter server.';
          hint =
            'Retrying… Check that `jupyter server extension list` shows kerasgpu enabled and OK, then restart the server.';
        }
        break;
      case 'unavailable':
      case 'error':
        text =
          status?.reason ??
          (model.state === 'unavailable'
            ? 'No NVIDIA GPU is available.'
            : 'The GPUs cannot be read right now.');
        hint = status?.hint ?? null;
        break;
      default:
        kind = 'ok';
    }
    this._message.replaceChildren();
    if (text) {
      this._message.appendChild(message(text, hint, kind));
    }

    const devices = model.devices;
    const key = devices.map(d => `${d.index}:${d.uuid}`).join(',');
    if (key !== this._deviceKey) {
      this._deviceKey = key;
      for (const card of this._cardViews.values()) {
        card.dispose();
      }
      this._cardViews.clear();
      this._cards.replaceChildren();
      // The dashboard has room for full cards (in a grid); the sidebar goes dense from N GPUs.
      const compact =
        !this._dashboard && devices.length >= this._config.compactThreshold;
      this._cards.classList.toggle('jp-kerasgpu-compact', compact);
      if (compact) {
        this._cards.appendChild(rowHead());
      }
      for (const device of devices) {
        const card = new GpuCard(
          device,
          this._config,
          compact,
          this._dashboard
        );
        this._cardViews.set(device.index, card);
        this._cards.appendChild(card.node);
      }
      this._renderSummary();
      this.refreshMarks();
      this._fitDashboard();
    }
    this._updateCards();
  }

  /** "8 × NVIDIA H200 · driver 580.159.04 · CUDA 13.0", once for all GPUs (hidden for one). */
  private _renderSummary(): void {
    const devices = this._model.devices;
    this._summary.replaceChildren();
    if (devices.length < 2 && !this._dashboard) {
      return;
    }
    const names = [...new Set(devices.map(d => d.name))];
    const d0 = devices[0];
    const shared = [
      names.length === 1
        ? `${devices.length} × ${names[0]}`
        : `${devices.length} GPUs`,
      d0?.driver_version ? `driver ${d0.driver_version}` : null,
      d0?.cuda_driver_version ? `CUDA ${d0.cuda_driver_version}` : null
    ].filter(Boolean);
    this._summary.appendChild(
      el('span', 'jp-kerasgpu-summary-shared', shared.join(' · '))
    );
    this._totals = el('span', 'jp-kerasgpu-summary-totals');
    this._summary.appendChild(this._totals);
  }

  /** The totals of the summary row: memory used of all, mean utilization, power. */
  private _updateTotals(): void {
    if (!this._totals) {
      return;
    }
    let used = 0;
    let total = 0;
    let util = 0;
    let n = 0;
    let power = 0;
    for (const d of this._model.devices) {
      const s = this._model.latest(d.index);
      used += s?.memory_used_mib ?? 0;
      total += s?.memory_total_mib ?? d.memory_total_mib ?? 0;
      if (s?.utilization_gpu !== null && s?.utilization_gpu !== undefined) {
        util += s.utilization_gpu;
        n++;
      }
      power += s?.power_draw_w ?? 0;
    }
    // Each part on one line (the panel is narrow: they wrap between parts, never inside one).
    const parts = [
      `memory ${formatGiB(used)} / ${formatGiB(total)}`,
      `busy ${formatPercent(n ? util / n : null)} on average`,
      power ? `${Math.round(power)} W` : ''
    ].filter(Boolean);
    const key = parts.join(' · ');
    if (this._totals.dataset.text !== key) {
      this._totals.dataset.text = key;
      this._totals.replaceChildren();
      parts.forEach((part, i) => {
        if (i > 0) {
          this._totals!.append(' · ');
        }
        this._totals!.appendChild(el('span', 'jp-kerasgpu-summary-part', part));
      });
    }
  }

  /** New readings: text, bars and charts updated in place. */
  private _updateCards(): void {
    if (!this.isVisible) {
      return; // the status bar item keeps readings coming; redraw when shown (onAfterShow)
    }
    const model = this._model;
    const window = model.historySeconds;
    const stale = model.state !== 'ok';
    for (const [index, card] of this._cardViews) {
      card.update(model.latest(index), model.series(index), window, stale);
    }
    this._updateTotals();
  }

  private _cardViews = new Map<number, GpuCard>();
  private _currentKernel: (() => string | null) | null;
  private _summary: HTMLElement;
  private _totals: HTMLElement | null = null;
  private _cards: HTMLElement;
  private _config: IPanelConfig = { ...DEFAULT_PANEL_CONFIG };
  private _dashboard: boolean;
  private _deviceKey = '';
  private _message: HTMLElement;
  private _model: GpuModel;
  private _onShow: (() => void) | null;
  private _procs: ProcessTable;
  private _themeChanged: GpuPanel.IThemeSignal | null;
}

export namespace GpuPanel {
  /** A signal emitted when the theme changes (IThemeManager.themeChanged). */
  export interface IThemeSignal {
    connect(slot: () => void, thisArg?: unknown): boolean;
    disconnect(slot: () => void, thisArg?: unknown): boolean;
  }

  /** Options of the GPU panel. */
  export interface IOptions {
    model: GpuModel;
    /** Opens a notebook by path (the process list links to it). */
    openPath?: (path: string) => void;
    /** Redraw charts in the new theme's colors. */
    themeChanged?: IThemeSignal | null;
    /** A node shown under the state message (the TensorFlow line). */
    extra?: HTMLElement;
    /** Called each time the panel is shown. */
    onShow?: () => void;
    /** The widget id (default: the sidebar panel's). */
    id?: string;
    /** "sidebar" (default) or "dashboard": full cards in a grid, for a main-area tab. */
    layout?: 'sidebar' | 'dashboard';
    /** Opens the dashboard (a button in the sidebar's header). */
    openDashboard?: () => void;
    /** The current notebook's kernel id: its GPUs are marked. */
    currentKernel?: () => string | null;
  }
}

/** A state message: a sentence, and what to do about it. */
function message(text: string, hint: string | null, kind: string): HTMLElement {
  const box = document.createElement('div');
  box.className = `jp-kerasgpu-message jp-kerasgpu-message-${kind}`;
  box.setAttribute('role', kind === 'loading' ? 'status' : 'alert');
  const p = document.createElement('p');
  p.className = 'jp-kerasgpu-reason';
  p.textContent = text;
  box.appendChild(p);
  if (hint) {
    const h = document.createElement('p');
    h.className = 'jp-kerasgpu-hint';
    h.append(...withCode(hint));
    box.appendChild(h);
  }
  return box;
}

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IDeviceInfo, IGpuSample, IProcessRow } from './api';
import { HistoryChart } from './chart';
import {
  formatClock,
  formatThroughput,
  formatGiB,
  formatPercent,
  formatPower,
  formatTemperature,
  percentOf
} from './format';
import { GpuModel } from './model';
import { el, setText } from './dom';

/** The sidebar panel's id (for `app.shell.activateById`). */
export const PANEL_ID = 'jp-kerasgpu-panel';

/** What the panel shows, from the settings. */
export interface IPanelConfig {
  showTemperature: boolean;
  showPower: boolean;
  showClocks: boolean;
  showChart: boolean;
  /** From this many GPUs on, cards are compact. */
  compactThreshold: number;
}

/** Defaults of the panel's settings. */
export const DEFAULT_PANEL_CONFIG: IPanelConfig = {
  showTemperature: true,
  showPower: true,
  showClocks: true,
  showChart: true,
  compactThreshold: 2
};

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
    this._openPath = options.openPath ?? null;
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
    this._procs = document.createElement('section');
    this._procs.className = 'jp-kerasgpu-processes';
    this._procs.setAttribute('aria-label', 'Processes using GPU memory');
    this.node.append(header, this._message);
    if (options.extra) {
      this.node.appendChild(options.extra);
    }
    this.node.append(this._summary, this._cards, this._procs);

    this._model.changed.connect(this._onChange, this);
    options.themeChanged?.connect(this._restyle, this);
    this._themeChanged = options.themeChanged ?? null;
    this._renderState();
    this._renderProcesses();
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
      this._renderProcesses();
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

  private _renderProcesses(): void {
    const rows = this._model.processes;
    // Rebuilt only when something changed: keyboard focus on a button survives polls.
    const key = JSON.stringify(rows);
    if (key === this._processKey) {
      return;
    }
    this._processKey = key;
    this._procs.replaceChildren();
    if (rows.length === 0) {
      return;
    }
    const heading = document.createElement('h3');
    heading.textContent = 'Processes';
    const list = document.createElement('ul');
    list.className = 'jp-kerasgpu-process-list';
    for (const row of groupProcesses(rows)) {
      list.appendChild(this._processRow(row));
    }
    this._procs.append(heading, list);
  }

  private _processRow(row: IProcessGroup): HTMLElement {
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
  private _openPath: ((path: string) => void) | null;
  private _processKey = '';
  private _procs: HTMLElement;
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

/** One GPU's card, built once and updated in place. */
class GpuCard {
  constructor(
    device: IDeviceInfo,
    config: IPanelConfig,
    compact: boolean,
    dashboard = false
  ) {
    this.device = device;
    const item = (this.node = document.createElement('li'));
    item.className = 'jp-kerasgpu-card';
    item.dataset.uuid = device.uuid;
    item.setAttribute('aria-label', `GPU ${device.index}: ${device.name}`);

    const title = document.createElement('div');
    title.className = 'jp-kerasgpu-card-title';
    const index = document.createElement('span');
    index.className = 'jp-kerasgpu-index';
    index.textContent = `${device.index}`;
    const name = document.createElement('span');
    name.className = 'jp-kerasgpu-name';
    name.textContent = device.name;
    name.title = [
      device.uuid,
      device.pci_bus_id,
      device.compute_capability
        ? `compute capability ${device.compute_capability}`
        : null,
      device.driver_version ? `driver ${device.driver_version}` : null,
      device.cuda_driver_version ? `CUDA ${device.cuda_driver_version}` : null
    ]
      .filter(Boolean)
      .join('\n');
    title.append(index, name);
    item.appendChild(title);
    this._compact = compact;
    if (compact) {
      // Many GPUs: one line each (nvitop's density); the chevron opens that GPU's details.
      item.classList.add('jp-kerasgpu-row');
      const toggle = document.createElement('button');
      toggle.type = 'button';
      toggle.className = 'jp-kerasgpu-row-toggle';
      toggle.setAttribute('aria-expanded', 'false');
      toggle.setAttribute('aria-label', `Details of GPU ${device.index}`);
      toggle.title = `Details of GPU ${device.index}: ${device.name}`;
      toggle.textContent = '▸';
      toggle.addEventListener('click', () => {
        const open = !item.classList.contains('jp-mod-expanded');
        item.classList.toggle('jp-mod-expanded', open);
        toggle.setAttribute('aria-expanded', `${open}`);
        toggle.textContent = open ? '▾' : '▸';
      });
      // Temperature and power on the row itself, each in its own column.
      this._rowTemp = el('span', 'jp-kerasgpu-row-temp');
      this._rowTemp.title = 'Temperature';
      this._rowPower = el('span', 'jp-kerasgpu-row-power');
      this._rowPower.title = 'Power draw';
      title.append(this._rowTemp, this._rowPower, toggle);
      index.title = `GPU ${device.index}: ${device.name}`;
    }
    this._mine = el('span', 'jp-kerasgpu-mine-badge', 'this notebook');
    this._mine.title = "This notebook's kernel holds memory on this GPU";
    this._mine.hidden = true;
    title.insertBefore(this._mine, name.nextSibling);

    this._memory = new Meter('Memory', 'memory');
    this._util = new Meter('Utilization', 'util');
    const meters = document.createElement('div');
    meters.className = 'jp-kerasgpu-meters';
    meters.append(this._memory.node, this._util.node);
    item.append(meters);

    if (config.showChart) {
      const host = document.createElement('div');
      host.className = 'jp-kerasgpu-chart';
      item.appendChild(host);
      this.chart = new HistoryChart(host, {
        sparkline: compact,
        minHeight: dashboard ? 80 : 96
      });
      this.chart.memoryTotalMib = device.memory_total_mib;
    }
    const facts = document.createElement('dl');
    facts.className = 'jp-kerasgpu-facts';
    if (config.showTemperature) {
      this._temp = addFact(facts, 'Temp');
    }
    if (config.showPower) {
      this._power = addFact(facts, 'Power');
    }
    if (config.showClocks) {
      this._clock = addFact(facts, 'SM clock');
    }
    // The memory bus's busy share (nvidia-smi's utilization.memory), memory clock, P-state.
    this._memBusy = addFact(
      facts,
      'Memory-bus busy',
      'Share of the last sample period in which device memory was read or written ' +
        "(nvidia-smi's utilization.memory). Not how full the memory is: that is Memory above."
    );
    if (config.showClocks) {
      this._memClock = addFact(facts, 'Memory clock');
    }
    this._pstate = addFact(
      facts,
      'P-state',
      'Performance state: P0 is full speed, higher numbers save power.'
    );
    // PCIe / NVLink traffic from NVML's counters; where not measured, the reason is said.
    this._pcie = addFact(facts, 'PCIe');
    this._nvlink = addFact(facts, 'NVLink');
    for (const [node, reason] of [
      [this._pcie, device.pcie_throughput_reason],
      [this._nvlink, device.nvlink_throughput_reason]
    ] as const) {
      if (reason) {
        node.title = reason;
        node.classList.add('jp-kerasgpu-unmeasured');
      }
    }
    {
      const versions = [
        device.driver_version ? `driver ${device.driver_version}` : null,
        device.cuda_driver_version
          ? `CUDA ${device.cuda_driver_version}`
          : null,
        device.compute_capability ? `CC ${device.compute_capability}` : null
      ].filter(Boolean);
      // With several GPUs the shared line above the rows says them once.
      if (versions.length > 0 && !compact) {
        const dd = addFact(facts, 'Versions');
        dd.classList.add('jp-kerasgpu-fact-wide');
        setText(dd, versions.join(' · '));
      }
    }
    if (facts.childElementCount > 0) {
      item.appendChild(facts);
    }
  }

  readonly device: IDeviceInfo;
  readonly node: HTMLElement;
  readonly chart: HistoryChart | null = null;

  update(
    sample: IGpuSample | undefined,
    series: Parameters<HistoryChart['update']>[0],
    window: number,
    stale: boolean
  ): void {
    this.node.classList.toggle('jp-kerasgpu-stale', stale);
    const total = sample?.memory_total_mib ?? this.device.memory_total_mib;
    const used = sample?.memory_used_mib ?? null;
    const memPct = percentOf(used, total);
    this._memory.set(
      used === null
        ? `${formatGiB(total)} total`
        : this._compact
          ? `${(used / 1024).toFixed(1)}G`
          : `${formatGiB(used)} / ${formatGiB(total)} (${formatPercent(memPct)})`,
      memPct
    );
    this._util.set(
      this._compact
        ? formatPercent(sample?.utilization_gpu).replace(' %', '%')
        : formatPercent(sample?.utilization_gpu),
      sample?.utilization_gpu ?? null
    );
    setText(this._temp, formatTemperature(sample?.temperature_c));
    setText(
      this._power,
      formatPower(sample?.power_draw_w, sample?.power_limit_w)
    );
    setText(this._clock, formatClock(sample?.clock_sm_mhz));
    setText(this._memClock, formatClock(sample?.clock_mem_mhz));
    setText(this._memBusy, formatPercent(sample?.utilization_memory));
    setText(this._pstate, sample?.pstate ?? '–');
    setText(
      this._pcie,
      this.device.pcie_throughput_reason
        ? notMeasured(this.device.pcie_throughput_reason)
        : formatThroughput(sample?.pcie_rx_mib_s, sample?.pcie_tx_mib_s)
    );
    setText(
      this._nvlink,
      this.device.nvlink_throughput_reason
        ? notMeasured(this.device.nvlink_throughput_reason)
        : formatThroughput(sample?.nvlink_rx_mib_s, sample?.nvlink_tx_mib_s)
    );
    if (this._rowTemp && this._rowPower) {
      // Narrow columns: "57°C", "691 W"; the tooltips and the details say them in full.
      setText(
        this._rowTemp,
        formatTemperature(sample?.temperature_c).replace(' °', '°')
      );
      setText(
        this._rowPower,
        sample?.power_draw_w !== null && sample?.power_draw_w !== undefined
          ? `${Math.round(sample.power_draw_w)} W`
          : '–'
      );
      this._rowPower.title = `Power draw: ${formatPower(sample?.power_draw_w, sample?.power_limit_w)}`;
      this._memory.node.title = `Memory: ${formatGiB(used)} of ${formatGiB(total)} (${formatPercent(memPct)})`;
    }
    this.chart?.update(series, window);
  }

  /** Marks (or unmarks) this GPU as the current notebook's. */
  mark(mine: boolean): void {
    this._mine.hidden = !mine;
    this.node.classList.toggle('jp-kerasgpu-mine', mine);
  }

  dispose(): void {
    this.chart?.dispose();
  }

  private _mine: HTMLElement;
  private _rowPower: HTMLElement | null = null;
  private _rowTemp: HTMLElement | null = null;

  private _clock: HTMLElement | null = null;
  private _compact = false;
  private _memBusy: HTMLElement | null = null;
  private _memClock: HTMLElement | null = null;
  private _memory: Meter;
  private _nvlink: HTMLElement;
  private _pcie: HTMLElement;
  private _pstate: HTMLElement | null = null;
  private _power: HTMLElement | null = null;
  private _temp: HTMLElement | null = null;
  private _util: Meter;
}

/** A labelled bar, exposed to screen readers as a meter. */
class Meter {
  constructor(label: string, kind: string) {
    const row = (this.node = document.createElement('div'));
    row.className = `jp-kerasgpu-meter jp-kerasgpu-meter-${kind}`;
    const head = document.createElement('div');
    head.className = 'jp-kerasgpu-meter-head';
    const l = document.createElement('span');
    l.textContent = label;
    this._value = document.createElement('span');
    this._value.className = 'jp-kerasgpu-meter-value';
    head.append(l, this._value);
    this._bar = document.createElement('div');
    this._bar.className = 'jp-kerasgpu-bar';
    this._bar.setAttribute('role', 'meter');
    this._bar.setAttribute('aria-label', label);
    this._bar.setAttribute('aria-valuemin', '0');
    this._bar.setAttribute('aria-valuemax', '100');
    this._fill = document.createElement('div');
    this._fill.className = 'jp-kerasgpu-bar-fill';
    this._bar.appendChild(this._fill);
    row.append(head, this._bar);
  }

  readonly node: HTMLElement;

  set(text: string, percent: number | null): void {
    if (text === this._text && percent === this._percent) {
      return;
    }
    this._text = text;
    this._percent = percent;
    this._value.textContent = text;
    this._bar.setAttribute('aria-valuetext', text);
    if (percent === null) {
      this._bar.removeAttribute('aria-valuenow');
    } else {
      this._bar.setAttribute('aria-valuenow', `${Math.round(percent)}`);
    }
    this._fill.style.width = `${percent ?? 0}%`;
  }

  private _bar: HTMLElement;
  private _fill: HTMLElement;
  private _percent: number | null = -1;
  private _text = '';
  private _value: HTMLElement;
}

/** A short word for a throughput that is not measured (the reason is in the tooltip). */
export function notMeasured(reason: string): string {
  return reason.startsWith('nvidia-smi')
    ? 'needs NVML'
    : reason.includes('NVLink')
      ? 'none'
      : 'not counted by this driver';
}

/** The column names above the one-line GPU rows (each cell says its own in a tooltip too). */
function rowHead(): HTMLElement {
  const head = el('li', 'jp-kerasgpu-row-head');
  head.setAttribute('aria-hidden', 'true');
  for (const [cls, text, help] of [
    ['index', '#', 'GPU index'],
    ['memory', 'Mem', 'Memory used, in GiB (the bar: share of the total)'],
    ['util', 'Busy', 'Utilization: share of time a kernel ran on the GPU'],
    ['temp', 'Temp', 'Temperature'],
    ['power', 'Power', 'Power draw'],
    ['chart', 'History', 'Utilization (green) and memory (blue) over time']
  ]) {
    const cell = el('span', `jp-kerasgpu-row-head-${cls}`, text);
    if (help) {
      cell.title = help;
    }
    head.appendChild(cell);
  }
  return head;
}

function basename(path: string): string {
  return path.split('/').pop() || path;
}

function addFact(list: HTMLElement, term: string, help?: string): HTMLElement {
  const dt = document.createElement('dt');
  dt.textContent = term;
  if (help) {
    dt.title = help;
    dt.classList.add('jp-kerasgpu-help');
  }
  const dd = document.createElement('dd');
  list.append(dt, dd);
  return dd;
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

/** Text whose `backticked` parts are code: nodes to append (never parsed as HTML). */
export function withCode(text: string): Node[] {
  return text.split('`').map((part, i) => {
    if (i % 2 === 0) {
      return document.createTextNode(part);
    }
    const code = document.createElement('code');
    code.textContent = part;
    return code;
  });
}

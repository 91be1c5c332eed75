import { IDeviceInfo, IGpuSample } from '../api/gpu';
import { HistoryChart } from './chart';
import { el, setText } from './dom';
import {
  formatClock,
  formatGiB,
  formatPercent,
  formatPower,
  formatTemperature,
  formatThroughput,
  percentOf
} from '../format';

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

/** One GPU's card, built once and updated in place. */
export class GpuCard {
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

    this._compact = compact;
    const title = this._title(device, compact);
    item.appendChild(title);
    this._mine = el('span', 'jp-kerasgpu-mine-badge', 'this notebook');
    this._mine.title = "This notebook's kernel holds memory on this GPU";
    this._mine.hidden = true;
    title.insertBefore(
      this._mine,
      title.querySelector('.jp-kerasgpu-name')!.nextSibling
    );

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
    this._addFacts(facts, device, config, compact);
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

  /** The card's title: index and name; on a one-line row also temperature, power and a details toggle. */
  private _title(device: IDeviceInfo, compact: boolean): HTMLElement {
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
    if (compact) {
      // Many GPUs: one line each (nvitop's density); the chevron opens that GPU's details.
      this.node.classList.add('jp-kerasgpu-row');
      const toggle = document.createElement('button');
      toggle.type = 'button';
      toggle.className = 'jp-kerasgpu-row-toggle';
      toggle.setAttribute('aria-expanded', 'false');
      toggle.setAttribute('aria-label', `Details of GPU ${device.index}`);
      toggle.title = `Details of GPU ${device.index}: ${device.name}`;
      toggle.textContent = '▸';
      toggle.addEventListener('click', () => {
        const open = !this.node.classList.contains('jp-mod-expanded');
        this.node.classList.toggle('jp-mod-expanded', open);
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
    return title;
  }

  /** The details under the meters and the chart, as the settings choose them. */
  private _addFacts(
    facts: HTMLElement,
    device: IDeviceInfo,
    config: IPanelConfig,
    compact: boolean
  ): void {
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
  private _nvlink!: HTMLElement; // set by _addFacts
  private _pcie!: HTMLElement;
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
export function rowHead(): HTMLElement {
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

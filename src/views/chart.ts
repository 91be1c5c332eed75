import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import { formatClockTime, formatGiB, formatPercent } from '../format';
import { ISeries } from '../models/model';
import { setText } from './dom';

/**
 * The reading the pointer at time `x` shows: uPlot's `closest` index when that
 * reading is within `tolerance` seconds of `x`; null over an empty part of the
 * chart (before the first reading, after the last, or in a gap), where uPlot
 * would otherwise snap to the nearest reading however far it is.
 */
export function sampleNear(
  t: ArrayLike<number | null | undefined>,
  closest: number | null | undefined,
  x: number,
  tolerance: number
): number | null {
  if (closest === null || closest === undefined || !isFinite(x)) {
    return null;
  }
  const at = t[closest];
  if (typeof at !== 'number' || Math.abs(at - x) > tolerance) {
    return null;
  }
  return closest;
}

/**
 * At most one point per pixel column: each bucket keeps its first time and its
 * highest values, so a spike still shows. Returns the series itself when small.
 */
export function decimate(series: ISeries, width: number): uPlot.AlignedData {
  const n = series.t.length;
  const buckets = Math.max(1, Math.floor(width));
  if (n <= buckets) {
    return [series.t, series.util, series.mem];
  }
  const size = n / buckets;
  const t: number[] = [];
  const util: (number | null)[] = [];
  const mem: (number | null)[] = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(n, Math.floor((b + 1) * size));
    let u: number | null = null;
    let m: number | null = null;
    for (let i = start; i < end; i++) {
      const ui = series.util[i];
      const mi = series.mem[i];
      if (ui !== null && (u === null || ui > u)) {
        u = ui;
      }
      if (mi !== null && (m === null || mi > m)) {
        m = mi;
      }
    }
    t.push(series.t[start]);
    util.push(u);
    mem.push(m);
  }
  // The newest reading is always the last point.
  t[t.length - 1] = series.t[n - 1];
  return [t, util, mem];
}

/** Seconds between time-axis ticks: the first of these that leaves ~70 px per label. */
const TICK_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

/** Ticks at "now" and whole steps before it, so labels read "-2 min", "-1 min", "now". */
export function timeTicks(min: number, max: number, widthPx: number): number[] {
  const span = max - min;
  if (!(span > 0) || !(widthPx > 0)) {
    return [max];
  }
  const fit = Math.max(1, Math.floor(widthPx / 70));
  const step =
    TICK_STEPS.find(s => span / s <= fit) ?? TICK_STEPS[TICK_STEPS.length - 1];
  const ticks: number[] = [];
  for (let t = max; t >= min - 1e-9; t -= step) {
    ticks.unshift(t);
  }
  return ticks;
}

/** A tick's label, relative to the newest reading: "now", "-30 s", "-5 min", "-1 h". */
export function relativeLabel(secondsBefore: number): string {
  const s = Math.round(secondsBefore);
  if (s <= 0) {
    return 'now';
  }
  if (s < 60) {
    return `-${s} s`;
  }
  if (s < 3600) {
    const min = s / 60;
    return `-${Number.isInteger(min) ? min : min.toFixed(1)} min`;
  }
  const h = s / 3600;
  return `-${Number.isInteger(h) ? h : h.toFixed(1)} h`;
}

/** A dense row's sparkline: tall enough to read a trend. */
export const SPARKLINE_HEIGHT = 20;

/** The chart's height for a width: grows with the panel, within bounds. */
export function chartHeight(width: number, min = 96, max = 200): number {
  return Math.round(Math.min(max, Math.max(min, width * 0.3)));
}

/** Reads a --jp-* CSS variable where the chart lives (canvas can't use var()). */
function cssVar(node: HTMLElement, name: string, fallback: string): string {
  return getComputedStyle(node).getPropertyValue(name).trim() || fallback;
}

/**
 * A utilization / memory history chart (uPlot, canvas).
 *
 * Full size: its height follows its width (taller in a wide sidebar or the
 * dashboard), a time axis counts back from "now", and a legend under it gives
 * the values at the pointer (the newest ones otherwise). Sparkline: 20 px (one row), no
 * axis, no legend. Created lazily: nothing is drawn while the host has no width
 * (hidden panel), and data are handed to uPlot without copying.
 */
export class HistoryChart {
  constructor(host: HTMLElement, options: HistoryChart.IOptions = {}) {
    this._host = host;
    this._sparkline = options.sparkline ?? false;
    this._fixedHeight = options.height ?? null;
    this._minHeight = options.minHeight ?? 96;
    this._plotHost = document.createElement('div');
    this._plotHost.className = 'jp-kerasgpu-chart-plot';
    // The canvas as one image for screen readers; the legend beside it is text they read.
    this._plotHost.setAttribute('role', 'img');
    this._plotHost.setAttribute(
      'aria-label',
      this._sparkline
        ? 'History of utilization (green) and memory used (blue), in percent'
        : 'History of utilization (green) and memory used (blue), in percent; arrow keys step through the readings, the legend gives their values'
    );
    host.appendChild(this._plotHost);
    if (!this._sparkline) {
      this._legend = new Legend();
      host.appendChild(this._legend.node);
      // Keyboard: focus the chart, then arrows step through the readings (Shift: 10 at a
      // time), Home / End jump to the oldest / newest; the legend gives the values.
      this._plotHost.tabIndex = 0;
      this._plotHost.title = 'Arrow keys: step through the readings';
      this._plotHost.addEventListener('keydown', this._onKey);
      this._plotHost.addEventListener('blur', () => this._moveCursor(null));
    }
  }

  /** GPU memory in MiB (the legend shows the memory line in GiB too). */
  memoryTotalMib: number | null = null;

  /** Shows `series` over the last `windowSeconds`. */
  update(series: ISeries, windowSeconds: number): void {
    this._series = series;
    this._window = windowSeconds;
    // The width is read only when unknown (first draw, or after being hidden) and on
    // resize: reading it on every update would force a layout per chart per reading.
    if (this._width <= 0) {
      this._width = this._plotHost.clientWidth;
      if (this._width <= 0) {
        return;
      }
    }
    const data = decimate(series, this._width);
    this._data = data;
    if (!this._plot) {
      this._plot = new uPlot(this._options(this._width), data, this._plotHost);
    } else {
      this._plot.setData(data, false);
      this._setWindow();
    }
    if (this._hover === null) {
      this._showLatest();
    }
  }

  /** Re-reads the theme's colors (after a theme change). */
  restyle(): void {
    this._plot?.destroy();
    this._plot = null;
    if (this._series) {
      this.update(this._series, this._window);
    }
  }

  /** The most height the chart may take (the dashboard gives it the room it has). */
  get maxHeight(): number {
    return this._maxHeight;
  }
  set maxHeight(value: number) {
    if (value !== this._maxHeight) {
      this._maxHeight = value;
      this._width = -1; // drawn again at the new height
      this.resize();
    }
  }

  /** Follows the host's new width (0 while hidden: drawn again once shown). */
  resize(): void {
    const width = this._plotHost.clientWidth;
    if (width === this._width) {
      return;
    }
    this._width = width;
    if (width > 0) {
      this._plot?.setSize({ width, height: this._heightFor(width) });
    }
    if (this._series) {
      this.update(this._series, this._window);
    }
  }

  dispose(): void {
    this._plot?.destroy();
    this._plot = null;
  }

  private _onKey = (event: KeyboardEvent): void => {
    const n = this._data[0].length;
    if (!this._plot || n === 0) {
      return;
    }
    const last = n - 1;
    const at = this._hover ?? last;
    const step = event.shiftKey ? 10 : 1;
    const moves: Record<string, number> = {
      ArrowLeft: at - step,
      ArrowRight: at + step,
      Home: 0,
      End: last
    };
    if (event.key === 'Escape') {
      this._moveCursor(null);
      return;
    }
    if (!(event.key in moves)) {
      return;
    }
    event.preventDefault();
    this._moveCursor(Math.min(last, Math.max(0, moves[event.key])));
  };

  /** Puts uPlot's cursor on reading `idx` (null: off the chart, the legend shows now). */
  private _moveCursor(idx: number | null): void {
    const u = this._plot;
    if (!u) {
      return;
    }
    if (idx === null) {
      u.setCursor({ left: -10, top: -10 });
      this._showAt(null);
      return;
    }
    const left = u.valToPos(this._data[0][idx] as number, 'x');
    u.setCursor({ left, top: u.over.clientHeight / 2 });
    this._showAt(idx);
  }

  /** The reading under uPlot's cursor, or null over a part of the chart with none. */
  private _sampleUnder(u: uPlot): number | null {
    const left = u.cursor.left;
    if (left === undefined || left < 0) {
      return null;
    }
    return sampleNear(
      this._data[0],
      u.cursor.idx,
      u.posToVal(left, 'x'),
      this._tolerance(u)
    );
  }

  /** How far from a reading (in seconds) the pointer still shows it: two steps, or 4 px. */
  private _tolerance(u: uPlot): number {
    const t = this._data[0] as number[];
    const step = t.length > 1 ? (t[t.length - 1] - t[0]) / (t.length - 1) : 0;
    const { min, max } = u.scales.x;
    const width = u.bbox.width / devicePixelRatio;
    const perPixel =
      min !== undefined && max !== undefined && width > 0
        ? (max - min) / width
        : 0;
    return Math.max(2 * step, 4 * perPixel);
  }

  private _heightFor(width: number): number {
    if (this._fixedHeight !== null) {
      return this._fixedHeight;
    }
    return this._sparkline
      ? SPARKLINE_HEIGHT
      : chartHeight(
          width,
          this._minHeight,
          Math.max(this._maxHeight, this._minHeight)
        );
  }

  private _setWindow(): void {
    const t = this._series?.t;
    if (!this._plot || !t || t.length === 0) {
      return;
    }
    const max = t[t.length - 1];
    // A sparkline spans what it has (at least 30 s) so a short history fills its few pixels;
    // the full chart keeps the window so its time axis reads the same on every card.
    const min = this._sparkline
      ? Math.min(max - 30, Math.max(t[0], max - this._window))
      : max - this._window;
    this._plot.setScale('x', { min, max });
  }

  /** The legend at the pointer (index into the drawn data), or the newest values. */
  private _showAt(idx: number | null): void {
    this._hover = idx;
    if (idx === null) {
      this._showLatest();
      return;
    }
    const [t, util, mem] = this._data;
    const when = formatClockTime(new Date((t[idx] as number) * 1000), true);
    this._legend?.set(
      when,
      util[idx] ?? null,
      mem[idx] ?? null,
      this.memoryTotalMib
    );
  }

  private _showLatest(): void {
    const s = this._series;
    if (!this._legend || !s) {
      return;
    }
    const n = s.t.length;
    this._legend.set(
      'now',
      n ? s.util[n - 1] : null,
      n ? s.mem[n - 1] : null,
      this.memoryTotalMib
    );
  }

  private _options(width: number): uPlot.Options {
    const host = this._host;
    const util = cssVar(host, '--jp-success-color1', '#388e3c');
    const mem = cssVar(host, '--jp-brand-color1', '#1976d2');
    const grid = cssVar(host, '--jp-border-color2', '#e0e0e0');
    const text = cssVar(host, '--jp-ui-font-color2', '#616161');
    const font = `10px ${cssVar(host, '--jp-ui-font-family', 'sans-serif')}`;
    const full = !this._sparkline;
    return {
      width,
      height: this._heightFor(width),
      legend: { show: false },
      cursor: full
        ? {
            show: true,
            x: true,
            y: false,
            points: { show: true, size: 6 },
            // No point drawn where there is no reading under the pointer.
            dataIdx: (u, series, closest, x) =>
              series === 0
                ? closest
                : (sampleNear(this._data[0], closest, x, this._tolerance(u)) ??
                  (null as unknown as number)),
            drag: { x: false, y: false, setScale: false }
          }
        : { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: false },
        y: { range: [0, 100] }
      },
      axes: [
        {
          show: full,
          size: 18,
          font,
          stroke: text,
          grid: { show: false },
          ticks: { show: true, stroke: grid, size: 3 },
          splits: (u, _i, min, max) =>
            timeTicks(min, max, u.bbox.width / devicePixelRatio),
          values: (u, splits) => {
            const max = u.scales.x.max ?? 0;
            return splits.map(v => relativeLabel(max - v));
          }
        },
        {
          show: full,
          size: 38,
          font,
          stroke: text,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          splits: () => [0, 50, 100],
          values: (_u, splits) => splits.map(v => `${v} %`)
        }
      ],
      series: [
        {},
        // No point markers: uPlot adds them to sparse lines, which reads as noise here.
        {
          label: 'Utilization',
          stroke: util,
          width: 1.5,
          fill: `${util}33`,
          points: { show: false }
        },
        { label: 'Memory', stroke: mem, width: 1.5, points: { show: false } }
      ],
      hooks: {
        ready: [() => this._setWindow()],
        // An empty part of the chart (before the first reading, or a gap) shows the newest values.
        setCursor: [u => this._showAt(this._sampleUnder(u))]
      }
    };
  }

  private _data: uPlot.AlignedData = [[], [], []];
  private _fixedHeight: number | null;
  private _host: HTMLElement;
  private _hover: number | null = null;
  private _legend: Legend | null = null;
  private _minHeight: number;
  private _maxHeight = 200;
  private _plot: uPlot | null = null;
  private _plotHost: HTMLElement;
  private _series: ISeries | null = null;
  private _sparkline: boolean;
  private _width = 0;
  private _window = 300;
}

export namespace HistoryChart {
  /** Options of a history chart. */
  export interface IOptions {
    /** A small line without axes or legend (dense rows). */
    sparkline?: boolean;
    /** A fixed height in CSS pixels (default: follows the width). */
    height?: number;
    /** The least height when it follows the width (default 96 px). */
    minHeight?: number;
  }
}

/** What the lines mean, and their values at the pointer or now. */
class Legend {
  constructor() {
    const node = (this.node = document.createElement('div'));
    node.className = 'jp-kerasgpu-legend';
    this._when = document.createElement('span');
    this._when.className = 'jp-kerasgpu-legend-when';
    this._util = item('Utilization', 'util');
    this._mem = item('Memory', 'mem');
    node.append(this._util.node, this._mem.node, this._when);
  }

  readonly node: HTMLElement;

  set(
    when: string,
    util: number | null,
    mem: number | null,
    totalMib: number | null
  ): void {
    setText(this._when, when);
    setText(this._util.value, formatPercent(util));
    const gib =
      mem !== null && totalMib ? ` · ${formatGiB((mem / 100) * totalMib)}` : '';
    setText(this._mem.value, `${formatPercent(mem)}${gib}`);
  }

  private _mem: { node: HTMLElement; value: HTMLElement };
  private _util: { node: HTMLElement; value: HTMLElement };
  private _when: HTMLElement;
}

function item(
  label: string,
  kind: string
): { node: HTMLElement; value: HTMLElement } {
  const node = document.createElement('span');
  node.className = `jp-kerasgpu-legend-item jp-kerasgpu-legend-${kind}`;
  const swatch = document.createElement('span');
  swatch.className = 'jp-kerasgpu-legend-swatch';
  const name = document.createElement('span');
  name.textContent = `${label} `;
  const value = document.createElement('span');
  value.className = 'jp-kerasgpu-legend-value';
  node.append(swatch, name, value);
  return { node, value };
}

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import { ISeries } from './model';

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

/** Reads a --jp-* CSS variable where the chart lives (canvas can't use var()). */
function cssVar(node: HTMLElement, name: string, fallback: string): string {
  return getComputedStyle(node).getPropertyValue(name).trim() || fallback;
}

/**
 * A small utilization / memory history chart (uPlot, canvas).
 *
 * Created lazily: nothing is drawn while the host has no width (hidden panel),
 * and data are handed to uPlot as-is, without copying.
 */
export class HistoryChart {
  constructor(host: HTMLElement, options: HistoryChart.IOptions = {}) {
    this._host = host;
    this._height = options.height ?? 64;
    this._axis = options.axis ?? true;
  }

  /** Shows `series` over the last `windowSeconds`. */
  update(series: ISeries, windowSeconds: number): void {
    this._series = series;
    this._window = windowSeconds;
    // The width is read only when unknown (first draw, or after being hidden) and on
    // resize: reading it on every update would force a layout per chart per reading.
    if (this._width <= 0) {
      this._width = this._host.clientWidth;
      if (this._width <= 0) {
        return;
      }
    }
    const data = decimate(series, this._width);
    if (!this._plot) {
      this._plot = new uPlot(this._options(this._width), data, this._host);
      return;
    }
    this._plot.setData(data, false);
    this._setWindow();
  }

  /** Re-reads the theme's colors (after a theme change). */
  restyle(): void {
    this._plot?.destroy();
    this._plot = null;
    if (this._series) {
      this.update(this._series, this._window);
    }
  }

  /** Follows the host's new width (0 while hidden: drawn again once shown). */
  resize(): void {
    const width = this._host.clientWidth;
    if (width === this._width) {
      return;
    }
    this._width = width;
    if (width > 0) {
      this._plot?.setSize({ width, height: this._height });
    }
    if (this._series) {
      this.update(this._series, this._window);
    }
  }

  dispose(): void {
    this._plot?.destroy();
    this._plot = null;
  }

  private _setWindow(): void {
    const t = this._series?.t;
    if (!this._plot || !t || t.length === 0) {
      return;
    }
    const max = t[t.length - 1];
    this._plot.setScale('x', { min: max - this._window, max });
  }

  private _options(width: number): uPlot.Options {
    const host = this._host;
    const util = cssVar(host, '--jp-success-color1', '#388e3c');
    const mem = cssVar(host, '--jp-brand-color1', '#1976d2');
    const grid = cssVar(host, '--jp-border-color2', '#e0e0e0');
    const text = cssVar(host, '--jp-ui-font-color2', '#616161');
    const font = `10px ${cssVar(host, '--jp-ui-font-family', 'sans-serif')}`;
    return {
      width,
      height: this._height,
      legend: { show: false },
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: true },
        y: { range: [0, 100] }
      },
      axes: [
        { show: false },
        {
          show: this._axis,
          size: 34,
          font,
          stroke: text,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          splits: () => [0, 50, 100],
          values: (_u, splits) => splits.map(v => `${v}%`)
        }
      ],
      series: [
        {},
        { label: 'Utilization', stroke: util, width: 1.5, fill: `${util}33` },
        { label: 'Memory', stroke: mem, width: 1.5 }
      ],
      hooks: {
        ready: [() => this._setWindow()]
      }
    };
  }

  private _axis: boolean;
  private _height: number;
  private _host: HTMLElement;
  private _plot: uPlot | null = null;
  private _series: ISeries | null = null;
  private _width = 0;
  private _window = 300;
}

export namespace HistoryChart {
  /** Options of a history chart. */
  export interface IOptions {
    /** Height in CSS pixels (default 64). */
    height?: number;
    /** Draw the 0–100 % axis (default true; compact cards leave it out). */
    axis?: boolean;
  }
}

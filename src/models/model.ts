import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  fetchHistory,
  fetchProcesses,
  HISTORY_WINDOW_SECONDS,
  IBackendStatus,
  IDeviceInfo,
  IGpuSample,
  IHistoryReply,
  IProcessRow,
  shutdownProcessKernel
} from '../api/gpu';
import { StreamMessage } from '../api/stream';
import { percentOf } from '../format';
import { GpuStream } from './stream';
import { DisposableModel } from './disposable';

/** A chart window within the bounds the API says (HISTORY_WINDOW_SECONDS). */
function clampWindow(seconds: number): number {
  const { min, max } = HISTORY_WINDOW_SECONDS;
  return Math.max(min, Math.min(max, seconds));
}

/** What the GPU views should show. */
export type GpuViewState =
  'loading' | 'ok' | 'unavailable' | 'error' | 'disconnected';

/** Bounds on intervals from settings: faster is wasteful, slower is not "live". */
export const MIN_REFRESH_MS = 250;
export const MAX_REFRESH_MS = 60_000;

/** Clamps a refresh interval from settings to something sane. */
export function clampRefresh(ms: number): number {
  if (!Number.isFinite(ms)) {
    return 2000;
  }
  return Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, Math.round(ms)));
}

/** One GPU's history, as parallel arrays (the layout uPlot draws from). */
export interface ISeries {
  /** Seconds since the epoch. */
  t: number[];
  /** GPU utilization, %. */
  util: (number | null)[];
  /** Memory used, % of total. */
  mem: (number | null)[];
}

/**
 * The GPUs as the server streams them, shared by every view on the page.
 *
 * One websocket for the page, open only while some view is visible (and the
 * browser tab is); the first paint and every reconnect fill the charts from
 * the history endpoint. Views listen to `changed` and read from here.
 */
export class GpuModel extends DisposableModel {
  constructor(options: GpuModel.IOptions = {}) {
    super();
    this._serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this._historySeconds = clampWindow(options.historySeconds ?? 300);
    this._stream =
      options.stream ?? new GpuStream({ serverSettings: this._serverSettings });
    this._stream.message.connect(this._onMessage, this);
    this._stream.stateChanged.connect(this._onStreamState, this);
    this._processPoll = new Poll({
      auto: false,
      factory: () => this._fetchProcesses(),
      frequency: {
        interval: clampRefresh(options.processesInterval ?? 2000),
        backoff: true,
        max: MAX_REFRESH_MS
      },
      name: 'jupyterlab-kerasgpu:processes',
      // The stream is wanted only while a view and the browser tab are visible.
      standby: () => !this._stream.wanted
    });
    this._onVisibility = () => this._updateWanted();
    document.addEventListener('visibilitychange', this._onVisibility);
  }

  /** Emitted with what changed: new samples, status/devices, or processes. */
  get changed(): ISignal<this, GpuModel.Change> {
    return this._changed;
  }

  /** What views should show. */
  get state(): GpuViewState {
    return this._state;
  }

  /** Whether the stream was ever open (a later drop is a disconnection, not a missing service). */
  get everConnected(): boolean {
    return this._everConnected;
  }

  /** The server's last word on the GPUs, or null before it spoke. */
  get status(): IBackendStatus | null {
    return this._status;
  }

  /** The GPUs, in index order. */
  get devices(): readonly IDeviceInfo[] {
    return this._devices;
  }

  /** The newest reading of the GPU with this index. */
  latest(index: number): IGpuSample | undefined {
    return this._latest.get(index);
  }

  /** The history of the GPU with this index (oldest first). */
  series(index: number): ISeries {
    let series = this._series.get(index);
    if (!series) {
      series = { t: [], util: [], mem: [] };
      this._series.set(index, series);
    }
    return series;
  }

  /** GPU compute processes, with this server's kernels and notebooks. */
  get processes(): readonly IProcessRow[] {
    return this._processes;
  }

  /** Seconds of history kept for charts. */
  get historySeconds(): number {
    return this._historySeconds;
  }
  set historySeconds(value: number) {
    const seconds = clampWindow(value);
    if (seconds === this._historySeconds) {
      return;
    }
    const grew = seconds > this._historySeconds;
    this._historySeconds = seconds;
    if (grew && this._stream.state === 'open') {
      void this._fetchHistory();
    } else {
      this._trim();
      this._changed.emit('samples');
    }
  }

  /** Milliseconds between refreshes of the process list. */
  get processesInterval(): number {
    return this._processPoll.frequency.interval;
  }
  set processesInterval(ms: number) {
    const interval = clampRefresh(ms);
    if (interval !== this._processPoll.frequency.interval) {
      this._processPoll.frequency = {
        ...this._processPoll.frequency,
        interval
      };
    }
  }

  /** The page's stream (one per page, shared by every view). */
  get stream(): GpuStream {
    return this._stream;
  }

  /**
   * Says whether a view (by a name of its choosing) is visible. The stream is
   * open while at least one is, and the browser tab is visible.
   */
  setViewVisible(view: string, visible: boolean): void {
    if (visible) {
      this._visibleViews.add(view);
    } else {
      this._visibleViews.delete(view);
    }
    this._updateWanted();
  }

  /** Asks for the process list now. */
  refreshProcesses(): Promise<void> {
    return this._processPoll.refresh();
  }

  /** Shuts down the kernel (of this server) that holds GPU process `pid`. */
  async shutdownKernelOf(pid: number): Promise<void> {
    await shutdownProcessKernel(pid, this._serverSettings);
    await this.refreshProcesses();
  }

  protected onDispose(): void {
    document.removeEventListener('visibilitychange', this._onVisibility);
    this._processPoll.dispose();
    this._stream.dispose();
    Signal.clearData(this);
  }

  private _updateWanted(): void {
    if (this.isDisposed) {
      return;
    }
    const wanted =
      this._visibleViews.size > 0 && document.visibilityState !== 'hidden';
    const was = this._stream.wanted;
    this._stream.wanted = wanted;
    if (wanted) {
      void this._processPoll.start();
      if (!was) {
        // Show who holds memory right away, not one interval later.
        void this._processPoll.refresh();
      }
    } else {
      void this._processPoll.stop();
    }
  }

  private _onStreamState(): void {
    const state = this._stream.state;
    if (state === 'open') {
      this._everConnected = true;
    } else if (state === 'reconnecting') {
      this._setState('disconnected');
    }
  }

  private _onMessage(_: GpuStream, message: StreamMessage): void {
    switch (message.type) {
      case 'hello':
        this._serverHistorySeconds = message.history_seconds;
        this._applyStatus(message.status, message.devices);
        this._append(message.samples);
        void this._fetchHistory();
        break;
      case 'status':
        this._applyStatus(message.status, message.devices);
        break;
      case 'samples':
        this._append(message.samples);
        if (this._state !== 'ok' && this._status?.state === 'ok') {
          this._setState('ok');
        }
        this._changed.emit('samples');
        break;
    }
  }

  private _applyStatus(status: IBackendStatus, devices: IDeviceInfo[]): void {
    this._status = status;
    if (status.state === 'ok' || devices.length > 0) {
      this._devices = [...devices].sort((a, b) => a.index - b.index);
    } else if (status.state !== 'starting') {
      this._devices = [];
      this._latest.clear();
    }
    if (status.state === 'starting') {
      // The sampler's first reading is on its way: keep what we show.
      this._setState(this._state === 'disconnected' ? 'loading' : this._state);
    } else {
      this._setState(status.state);
    }
    this._changed.emit('status');
  }

  private _append(samples: IGpuSample[]): void {
    for (const sample of samples) {
      this._latest.set(sample.index, sample);
      const series = this.series(sample.index);
      const last = series.t[series.t.length - 1];
      if (last !== undefined && sample.timestamp <= last) {
        continue;
      }
      series.t.push(sample.timestamp);
      series.util.push(sample.utilization_gpu);
      series.mem.push(
        percentOf(sample.memory_used_mib, sample.memory_total_mib)
      );
    }
    this._trim();
  }

  private _trim(): void {
    for (const series of this._series.values()) {
      const newest = series.t[series.t.length - 1];
      if (newest === undefined) {
        continue;
      }
      const cutoff = newest - this._historySeconds;
      let drop = 0;
      while (drop < series.t.length && series.t[drop] < cutoff) {
        drop++;
      }
      if (drop > 0) {
        series.t.splice(0, drop);
        series.util.splice(0, drop);
        series.mem.splice(0, drop);
      }
    }
  }

  private async _fetchHistory(): Promise<void> {
    const seconds = Math.min(
      this._historySeconds,
      this._serverHistorySeconds ?? this._historySeconds
    );
    let reply: IHistoryReply;
    try {
      reply = await fetchHistory(seconds, this._serverSettings);
    } catch (error) {
      console.warn('jupyterlab-kerasgpu: history unavailable', error);
      return;
    }
    if (this.isDisposed) {
      return;
    }
    // Merge: history first, then what streamed in meanwhile (deduplicated by time).
    const byIndex = new Map<number, IGpuSample[]>();
    for (const sample of reply.samples) {
      const list = byIndex.get(sample.index) ?? [];
      list.push(sample);
      byIndex.set(sample.index, list);
    }
    for (const [index, samples] of byIndex) {
      const old = this.series(index);
      const merged: ISeries = { t: [], util: [], mem: [] };
      const points = samples.map(
        s =>
          [
            s.timestamp,
            s.utilization_gpu,
            percentOf(s.memory_used_mib, s.memory_total_mib)
          ] as const
      );
      for (let i = 0; i < old.t.length; i++) {
        points.push([old.t[i], old.util[i], old.mem[i]] as const);
      }
      points.sort((a, b) => a[0] - b[0]);
      for (const [t, util, mem] of points) {
        if (merged.t.length && merged.t[merged.t.length - 1] === t) {
          continue;
        }
        merged.t.push(t);
        merged.util.push(util);
        merged.mem.push(mem);
      }
      this._series.set(index, merged);
    }
    this._trim();
    this._changed.emit('samples');
  }

  private async _fetchProcesses(): Promise<void> {
    const reply = await fetchProcesses(this._serverSettings);
    if (this.isDisposed) {
      return;
    }
    this._processes = reply.processes;
    this._changed.emit('processes');
  }

  private _setState(state: GpuViewState): void {
    if (state !== this._state) {
      this._state = state;
      this._changed.emit('status');
    }
  }

  private _changed = new Signal<this, GpuModel.Change>(this);
  private _devices: IDeviceInfo[] = [];
  private _everConnected = false;
  private _historySeconds: number;
  private _latest = new Map<number, IGpuSample>();
  private _onVisibility: () => void;
  private _processes: IProcessRow[] = [];
  private _processPoll: Poll;
  private _series = new Map<number, ISeries>();
  private _serverHistorySeconds: number | null = null;
  private _serverSettings: ServerConnection.ISettings;
  private _state: GpuViewState = 'loading';
  private _status: IBackendStatus | null = null;
  private _stream: GpuStream;
  private _visibleViews = new Set<string>();
}

export namespace GpuModel {
  /** What changed. */
  export type Change = 'samples' | 'status' | 'processes';

  /** Options of a GPU model. */
  export interface IOptions {
    /** Server to ask; default the page's. */
    serverSettings?: ServerConnection.ISettings;
    /** Seconds of history for charts (default 300). */
    historySeconds?: number;
    /** Milliseconds between process-list refreshes (default 2000). */
    processesInterval?: number;
    /** The stream to read (default: a new one for these server settings). */
    stream?: GpuStream;
  }
}

import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IDevicesReply } from './api';
import { requestAPI } from './request';

/** What the GPU views should show. */
export type GpuViewState =
  'loading' | 'ok' | 'unavailable' | 'error' | 'disconnected';

/** Bounds on the refresh interval: faster is wasteful, slower is not "live". */
export const MIN_REFRESH_MS = 250;
export const MAX_REFRESH_MS = 60_000;

/** Clamps a refresh interval from settings to something sane. */
export function clampRefresh(ms: number): number {
  if (!Number.isFinite(ms)) {
    return 1000;
  }
  return Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, Math.round(ms)));
}

/**
 * The GPUs as the server sees them, shared by every view on the page.
 *
 * Views listen to `changed` and re-render from `reply` / `state`; they never
 * talk to the server themselves.
 */
export class GpuModel implements IDisposable {
  constructor(options: GpuModel.IOptions = {}) {
    this._serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    const interval = clampRefresh(options.refreshInterval ?? 1000);
    this._poll = new Poll({
      auto: options.autoStart ?? true,
      factory: () => this._refresh(),
      frequency: { interval, backoff: true, max: MAX_REFRESH_MS * 5 },
      name: 'jupyterlab-kerasgpu:devices',
      standby: 'when-hidden'
    });
  }

  /** Emitted after every change of `state` or `reply`. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last answer of the server, or null before the first. */
  get reply(): IDevicesReply | null {
    return this._reply;
  }

  /** What views should show. */
  get state(): GpuViewState {
    return this._state;
  }

  /** Why the last request failed, when `state` is 'error' or 'disconnected'. */
  get errorMessage(): string | null {
    return this._errorMessage;
  }

  /** Milliseconds between refreshes (clamped to a sane range). */
  get refreshInterval(): number {
    return this._poll.frequency.interval;
  }
  set refreshInterval(ms: number) {
    const interval = clampRefresh(ms);
    if (interval !== this._poll.frequency.interval) {
      this._poll.frequency = { ...this._poll.frequency, interval };
    }
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /** Asks the server now instead of at the next tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  /** Starts polling when created with `autoStart: false`. */
  start(): Promise<void> {
    return this._poll.start();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _refresh(): Promise<void> {
    try {
      const reply = await requestAPI<IDevicesReply>(
        'devices',
        {},
        this._serverSettings
      );
      this._reply = reply;
      this._errorMessage = null;
      this._state = reply.status.state === 'ok' ? 'ok' : reply.status.state;
    } catch (error) {
      if (error instanceof ServerConnection.ResponseError) {
        this._state = 'error';
        this._errorMessage = error.message;
      } else {
        this._state = 'disconnected';
        this._errorMessage = (error as Error).message ?? String(error);
      }
      if (!this.isDisposed) {
        this._changed.emit();
      }
      // Rethrow so the poll backs off while the server is unreachable.
      throw error;
    }
    if (!this.isDisposed) {
      this._changed.emit();
    }
  }

  private _changed = new Signal<this, void>(this);
  private _errorMessage: string | null = null;
  private _poll: Poll;
  private _reply: IDevicesReply | null = null;
  private _serverSettings: ServerConnection.ISettings;
  private _state: GpuViewState = 'loading';
}

export namespace GpuModel {
  /** Options of a GPU model. */
  export interface IOptions {
    /** Milliseconds between refreshes; default 1000. */
    refreshInterval?: number;
    /** Server to ask; default the page's. */
    serverSettings?: ServerConnection.ISettings;
    /** Start polling at once (default true). */
    autoStart?: boolean;
  }
}

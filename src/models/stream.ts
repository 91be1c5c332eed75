import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { StreamMessage } from '../api/stream';
import { API_PREFIX } from '../api/request';
import { DisposableModel } from './disposable';

/** The connection's state, as views describe it. */
export type StreamState = 'closed' | 'connecting' | 'open' | 'reconnecting';

/**
 * The one websocket to /kerasgpu/api/v1/stream of a page.
 *
 * Reconnects with exponential backoff (with jitter) while `wanted`; closes at
 * once when not. Messages are parsed here; malformed ones are dropped and logged.
 */
export class GpuStream extends DisposableModel {
  constructor(options: GpuStream.IOptions) {
    super();
    this._settings = options.serverSettings;
    this._minDelay = options.minDelay ?? 500;
    this._maxDelay = options.maxDelay ?? 30_000;
  }

  /** Every message the server sends. */
  get message(): ISignal<this, StreamMessage> {
    return this._message;
  }

  /** Emitted when `state` changes. */
  get stateChanged(): ISignal<this, StreamState> {
    return this._stateChanged;
  }

  get state(): StreamState {
    return this._state;
  }

  /** How many sockets this stream has opened (for tests and diagnostics). */
  get connections(): number {
    return this._connections;
  }

  /** Whether the stream should be connected; setting it connects or closes. */
  get wanted(): boolean {
    return this._wanted;
  }
  set wanted(value: boolean) {
    if (value === this._wanted || this.isDisposed) {
      return;
    }
    this._wanted = value;
    if (value) {
      this._attempt = 0;
      this._open();
    } else {
      this._close();
    }
  }

  protected onDispose(): void {
    this._wanted = false;
    this._close();
    Signal.clearData(this);
  }

  private _url(): string {
    let url = URLExt.join(this._settings.wsUrl, API_PREFIX, 'stream');
    const token = this._settings.token;
    if (this._settings.appendToken && token !== '') {
      url += `?token=${encodeURIComponent(token)}`;
    }
    return url;
  }

  private _open(): void {
    this._clearTimer();
    if (!this._wanted || this._socket) {
      return;
    }
    this._setState(this._attempt === 0 ? 'connecting' : 'reconnecting');
    const socket = new this._settings.WebSocket(this._url());
    this._socket = socket;
    this._connections++;
    socket.onmessage = (event: MessageEvent) => {
      let message: StreamMessage;
      try {
        message = JSON.parse(event.data as string);
      } catch {
        console.warn('jupyterlab-kerasgpu: dropped a malformed stream message');
        return;
      }
      if (message.type === 'hello') {
        this._attempt = 0;
        this._setState('open');
      }
      this._message.emit(message);
    };
    // An error is always followed by a close, which reconnects.
    socket.onerror = () => undefined;
    socket.onclose = () => {
      if (this._socket !== socket) {
        return;
      }
      this._socket = null;
      if (!this._wanted) {
        this._setState('closed');
        return;
      }
      this._setState('reconnecting');
      const delay = Math.min(
        this._maxDelay,
        this._minDelay * 2 ** Math.min(this._attempt, 16)
      );
      this._attempt++;
      // Jitter spreads reconnecting pages after a server restart.
      this._timer = setTimeout(
        () => this._open(),
        delay * (0.75 + Math.random() * 0.5)
      );
    };
  }

  private _close(): void {
    this._clearTimer();
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      socket.close();
    }
    this._setState('closed');
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _setState(state: StreamState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _attempt = 0;
  private _connections = 0;
  private _maxDelay: number;
  private _message = new Signal<this, StreamMessage>(this);
  private _minDelay: number;
  private _settings: ServerConnection.ISettings;
  private _socket: WebSocket | null = null;
  private _state: StreamState = 'closed';
  private _stateChanged = new Signal<this, StreamState>(this);
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _wanted = false;
}

export namespace GpuStream {
  /** Options of a GPU stream. */
  export interface IOptions {
    serverSettings: ServerConnection.ISettings;
    /** First reconnect delay in ms (default 500). */
    minDelay?: number;
    /** Longest reconnect delay in ms (default 30 000). */
    maxDelay?: number;
  }
}

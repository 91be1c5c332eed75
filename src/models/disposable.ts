import { IDisposable } from '@lumino/disposable';

/**
 * The `IDisposable` part every model shares: `dispose()` runs the model's
 * `onDispose` once (with `isDisposed` already true); later calls do nothing.
 */
export abstract class DisposableModel implements IDisposable {
  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.onDispose();
  }

  /** Releases what the model holds (signals, polls, sockets). */
  protected abstract onDispose(): void;

  private _isDisposed = false;
}

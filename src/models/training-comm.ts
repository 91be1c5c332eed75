import { ISessionContext } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { COMM_TARGET, TrainingModel } from './training';
import { DisposableModel } from './disposable';

/**
 * Feeds a `TrainingModel` from one notebook's kernel: registers the `kerasgpu`
 * comm target on each kernel the notebook connects to, passes the kernel's
 * messages to the model, and removes the notebook's card when its kernel stops,
 * restarts or changes, or the notebook closes.
 */
export class TrainingConnector extends DisposableModel {
  constructor(options: TrainingConnector.IOptions) {
    super();
    this._model = options.model;
    this._context = options.sessionContext;
    this._context.kernelChanged.connect(this._onKernelChanged, this);
    this._context.statusChanged.connect(this._onStatus, this);
    this._context.disposed.connect(this.dispose, this);
    this._attach(this._context.session?.kernel ?? null);
  }

  /** The notebook's path: the model's key. */
  get key(): string {
    return this._context.path;
  }

  protected onDispose(): void {
    this._detach();
    this._model.remove(this._lastKey);
    this._context.kernelChanged.disconnect(this._onKernelChanged, this);
    this._context.statusChanged.disconnect(this._onStatus, this);
    this._context.disposed.disconnect(this.dispose, this);
  }

  private _onKernelChanged(
    _: ISessionContext,
    change: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._model.remove(this._lastKey);
    this._detach();
    this._attach(change.newValue);
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (
      status === 'restarting' ||
      status === 'autorestarting' ||
      status === 'dead' ||
      status === 'terminating'
    ) {
      this._model.remove(this._lastKey);
    }
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    if (!kernel || this.isDisposed) {
      return;
    }
    this._kernel = kernel;
    kernel.registerCommTarget(COMM_TARGET, this._onCommOpen);
    // A comm the kernel opened before this page loaded (a reload during a long fit):
    // ask for it by target and listen under its id, as widget managers do.
    kernel
      .requestCommInfo({ target_name: COMM_TARGET })
      .then(reply => {
        const content = reply.content;
        if (content.status !== 'ok' || this._kernel !== kernel) {
          return;
        }
        for (const id of Object.keys(content.comms)) {
          if (!kernel.hasComm(id)) {
            this._listen(kernel.createComm(COMM_TARGET, id));
          }
        }
      })
      .catch(() => undefined);
  }

  private _detach(): void {
    const kernel = this._kernel;
    this._kernel = null;
    if (kernel && !kernel.isDisposed) {
      kernel.removeCommTarget(COMM_TARGET, this._onCommOpen);
    }
  }

  private _onCommOpen = (
    comm: Kernel.IComm,
    _msg: KernelMessage.ICommOpenMsg
  ): void => {
    this._listen(comm);
  };

  private _listen(comm: Kernel.IComm): void {
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const key = this.key;
      if (key !== this._lastKey) {
        this._model.remove(this._lastKey); // the notebook was renamed
        this._lastKey = key;
      }
      this._model.receive(key, labelOf(key), msg.content.data);
    };
    comm.onClose = () => {
      this._model.remove(this._lastKey);
    };
  }

  private _model: TrainingModel;
  private _context: ISessionContext;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _lastKey = '';
}

/** The notebook's file name from its path. */
export function labelOf(path: string): string {
  const name = path.split('/').pop() ?? path;
  return name || path;
}

export namespace TrainingConnector {
  export interface IOptions {
    model: TrainingModel;
    sessionContext: ISessionContext;
  }
}

/**
 * Feeds `model` from every notebook's kernel, the notebooks open now and
 * those opened later (a connector each).
 */
export function connectKernels(
  notebooks: INotebookTracker | null,
  model: TrainingModel
): void {
  const add = (nb: NotebookPanel) => {
    new TrainingConnector({ model, sessionContext: nb.sessionContext });
  };
  notebooks?.forEach(add);
  notebooks?.widgetAdded.connect((_, nb) => add(nb));
}

import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import {
  IBackendStatus,
  IDeviceInfo,
  IGpuProcess,
  IGpuSample
} from '../api/gpu';
import { formatGiB } from '../format';
import { DisposableModel } from './disposable';

/**
 * The GPUs of the host a notebook's kernel runs on (Enterprise Gateway, Kubernetes kernel
 * pods: not always the server's), read by the kernel itself (kerasgpu.kernel.hostgpus) and sent over
 * the kernel's `kerasgpu` comm as `{type: 'gpus', event: 'status' | 'samples', ...}`.
 */

/** The user expression that starts the kernel's stream (no %load_ext needed). */
export const START_EXPRESSION =
  '__import__("kerasgpu.kernel.hostgpus", fromlist=["start"]).start()';
/** The user expression that stops it. */
export const STOP_EXPRESSION =
  '__import__("kerasgpu.kernel.hostgpus", fromlist=["stop"]).stop()';

/** What to say when the kernel's environment lacks the package. */
export const MISSING_HINT =
  "Install jupyterlab-kerasgpu in the kernel's environment to see its GPUs " +
  '(%pip install jupyterlab-kerasgpu in the notebook, then restart the kernel).';

/** A process on the kernel's host; `this_kernel` when it is the kernel or its child. */
export interface IHostGpuProcess extends IGpuProcess {
  this_kernel: boolean;
}

/** A `gpus` message of the kernel's comm. */
export interface IHostGpusMessage {
  type: 'gpus';
  event: 'status' | 'samples';
  host: string;
  status?: IBackendStatus;
  devices?: IDeviceInfo[];
  samples?: IGpuSample[];
  processes?: IHostGpuProcess[];
}

/** What is known of the kernel's host. */
export interface IHostGpusState {
  /** watching: the kernel streams; missing: kerasgpu is not importable there. */
  phase: 'idle' | 'starting' | 'watching' | 'missing' | 'failed';
  host: string | null;
  status: IBackendStatus | null;
  devices: IDeviceInfo[];
  samples: IGpuSample[];
  processes: IHostGpuProcess[];
  /** Why starting failed (the kernel's error), when phase is failed. */
  error: string | null;
}

/** True for the kernel's `gpus` comm messages. */
export function isHostGpusMessage(data: unknown): data is IHostGpusMessage {
  const d = data as IHostGpusMessage | null;
  return (
    !!d &&
    typeof d === 'object' &&
    d.type === 'gpus' &&
    (d.event === 'status' || d.event === 'samples') &&
    typeof d.host === 'string'
  );
}

/** The state after one message. */
export function applyMessage(
  state: IHostGpusState,
  msg: IHostGpusMessage
): IHostGpusState {
  if (msg.event === 'status') {
    return {
      ...state,
      host: msg.host,
      status: msg.status ?? state.status,
      devices: msg.devices ?? []
    };
  }
  return {
    ...state,
    host: msg.host,
    samples: msg.samples ?? state.samples,
    processes: msg.processes ?? state.processes
  };
}

/** The result of the start expression: watching, missing package, or an error. */
export function startOutcome(
  reply: KernelMessage.IExecuteReplyMsg['content'] | null
): Pick<IHostGpusState, 'phase' | 'error'> {
  const result = (reply as any)?.user_expressions?.kerasgpu;
  if (!result) {
    return {
      phase: 'failed',
      error: 'The kernel did not evaluate the request.'
    };
  }
  if (result.status === 'ok') {
    const text = String(result.data?.['text/plain'] ?? '');
    return text.includes('watching')
      ? { phase: 'watching', error: null }
      : { phase: 'failed', error: text };
  }
  if (
    result.ename === 'ModuleNotFoundError' ||
    result.ename === 'ImportError'
  ) {
    return { phase: 'missing', error: null };
  }
  return {
    phase: 'failed',
    error: `${result.ename ?? 'Error'}: ${result.evalue ?? ''}`.trim()
  };
}

/** Which GPUs the panel shows for a notebook, and how it labels them. */
export interface IHostChoice {
  show: 'kernel' | 'server';
  title: string;
  /** Why the server's own GPUs are not shown (the kernel runs elsewhere). */
  note: string | null;
  /** Something to tell the user (the package is missing in the kernel's environment). */
  hint: string | null;
}

/**
 * The kernel's host when it has GPUs the server does not see (another machine), the server's
 * otherwise; a hint when the kernel cannot tell (kerasgpu missing in its environment) and the
 * server has no GPUs of its own. While the stream pauses or restarts (panel hidden, shown
 * again) the last known GPUs stand, so the server's cards do not flash in between.
 */
export function chooseHost(
  serverUuids: string[],
  state: IHostGpusState,
  serverReason: string | null = null
): IHostChoice {
  const server = new Set(serverUuids.map(u => u.toLowerCase()));
  const kernelUuids = state.devices.map(d => d.uuid.toLowerCase());
  const live =
    state.phase === 'watching' ||
    state.phase === 'starting' ||
    state.phase === 'idle';
  const elsewhere =
    live &&
    state.status?.state === 'ok' &&
    kernelUuids.length > 0 &&
    kernelUuids.some(u => !server.has(u));
  if (elsewhere) {
    const host = state.host ?? 'another host';
    return {
      show: 'kernel',
      title: `GPUs of ${host}, where this notebook's kernel runs`,
      note:
        server.size > 0
          ? `The Jupyter server's own ${server.size === 1 ? 'GPU is' : `${server.size} GPUs are`} not shown: this notebook's kernel runs on ${host}.`
          : `The Jupyter server itself reads no GPU${serverReason ? ` (${serverReason.replace(/\.$/, '')})` : ''}, and needs none: this notebook's kernel runs on ${host}.`,
      hint: null
    };
  }
  return {
    show: 'server',
    title: 'GPUs of the Jupyter server',
    note: null,
    hint: state.phase === 'missing' && server.size === 0 ? MISSING_HINT : null
  };
}

/** A process on the kernel's host, for people: one row per pid, its GPUs and memory summed. */
export interface IHostProcessRow {
  pid: number;
  gpus: number[];
  usedMib: number | null;
  thisKernel: boolean;
  /** The notebook for this kernel's processes, else the process name or pid. */
  label: string;
  detail: string;
}

/**
 * The kernel host's GPU processes, this notebook's kernel (and its children) first, named
 * after `notebook`; the rest are other processes on that host, never the server's.
 */
export function hostProcessRows(
  processes: readonly IHostGpuProcess[],
  notebook: string | null
): IHostProcessRow[] {
  const byPid = new Map<number, IHostProcessRow>();
  for (const p of processes) {
    let row = byPid.get(p.pid);
    if (!row) {
      row = {
        pid: p.pid,
        gpus: [],
        usedMib: null,
        thisKernel: p.this_kernel,
        label: p.this_kernel
          ? (notebook ?? "This notebook's kernel")
          : (p.name ?? `pid ${p.pid}`),
        detail: ''
      };
      byPid.set(p.pid, row);
    }
    if (p.gpu_index !== null && !row.gpus.includes(p.gpu_index)) {
      row.gpus.push(p.gpu_index);
    }
    if (p.used_memory_mib !== null) {
      row.usedMib = (row.usedMib ?? 0) + p.used_memory_mib;
    }
  }
  const rows = [...byPid.values()];
  for (const row of rows) {
    row.gpus.sort((a, b) => a - b);
    const gpus = row.gpus.length ? `GPU ${row.gpus.join(',')} · ` : '';
    const who = row.thisKernel
      ? `this notebook's kernel, pid ${row.pid}`
      : `pid ${row.pid} · not this notebook's`;
    row.detail = `${gpus}${formatGiB(row.usedMib)} · ${who}`;
  }
  return rows.sort(
    (a, b) =>
      Number(b.thisKernel) - Number(a.thisKernel) ||
      (b.usedMib ?? 0) - (a.usedMib ?? 0)
  );
}

const IDLE: IHostGpusState = {
  phase: 'idle',
  host: null,
  status: null,
  devices: [],
  samples: [],
  processes: [],
  error: null
};

/**
 * One kernel's host GPUs: `watch()` asks the kernel to stream (a silent user expression, so
 * any kernel with kerasgpu installed answers, no %load_ext needed), `unwatch()` stops it; the
 * readings arrive on the kernel's iopub as comm messages of the `kerasgpu` comm.
 */
export class KernelHostGpus extends DisposableModel {
  constructor(kernel: Kernel.IKernelConnection) {
    super();
    this._kernel = kernel;
    kernel.iopubMessage.connect(this._onIOPub, this);
  }

  /** Emitted when the state changes. */
  get changed(): ISignal<this, IHostGpusState> {
    return this._changed;
  }

  get state(): IHostGpusState {
    return this._state;
  }

  /** Asks the kernel to stream its host's GPUs. */
  async watch(): Promise<void> {
    if (this.isDisposed || this._state.phase === 'watching') {
      return;
    }
    this._set({ ...this._state, phase: 'starting' });
    let reply: KernelMessage.IExecuteReplyMsg['content'] | null = null;
    try {
      const future = this._kernel.requestExecute({
        code: '',
        silent: true,
        store_history: false,
        user_expressions: { kerasgpu: START_EXPRESSION }
      });
      reply = (await future.done).content;
    } catch {
      reply = null;
    }
    if (!this.isDisposed) {
      this._set({ ...this._state, ...startOutcome(reply) });
    }
  }

  /** Asks the kernel to stop (its sampler stops unless a fit still watches). */
  async unwatch(): Promise<void> {
    if (this.isDisposed || this._state.phase !== 'watching') {
      return;
    }
    this._set({ ...this._state, phase: 'idle' });
    try {
      await this._kernel.requestExecute({
        code: '',
        silent: true,
        store_history: false,
        user_expressions: { kerasgpu: STOP_EXPRESSION }
      }).done;
    } catch {
      // a kernel that went away stops by itself
    }
  }

  protected onDispose(): void {
    if (!this._kernel.isDisposed) {
      this._kernel.iopubMessage.disconnect(this._onIOPub, this);
    }
    Signal.clearData(this);
  }

  private _onIOPub(
    _: Kernel.IKernelConnection,
    msg: KernelMessage.IIOPubMessage
  ): void {
    if (msg.header.msg_type !== 'comm_msg') {
      return;
    }
    const data = (msg as KernelMessage.ICommMsgMsg).content.data;
    if (isHostGpusMessage(data)) {
      this._set(applyMessage(this._state, data));
    }
  }

  private _set(state: IHostGpusState): void {
    this._state = state;
    this._changed.emit(state);
  }

  private _kernel: Kernel.IKernelConnection;
  private _state: IHostGpusState = IDLE;
  private _changed = new Signal<this, IHostGpusState>(this);
}

/** The GPUs of the host where the current notebook's kernel runs, for the status bar. */
export interface IRemoteGpus {
  host: string;
  /** Readings are streaming now (the panel watches the kernel). */
  live: boolean;
  devices: IDeviceInfo[];
  samples: IGpuSample[];
  processes: IHostGpuProcess[];
}

/** `state` as the status bar needs it, when the panel shows the kernel's host; else null. */
export function remoteGpus(
  serverUuids: string[],
  state: IHostGpusState | null
): IRemoteGpus | null {
  if (!state || chooseHost(serverUuids, state).show !== 'kernel') {
    return null;
  }
  return {
    host: state.host ?? 'another host',
    live: state.phase === 'watching',
    devices: state.devices,
    samples: state.samples,
    processes: state.processes
  };
}

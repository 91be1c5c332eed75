import { Widget } from '@lumino/widgets';

import { formatGiB, formatPercent } from '../format';
import { IRemoteGpus } from '../models/host-gpus';
import { GpuModel } from '../models/model';
import { ITensorFlowReply } from '../api/tensorflow';
import { describeTensorFlow } from './tfcheck';

/** What TensorFlow in the current notebook's kernel sees (from the server's probe). */
export interface IKernelTensorFlow {
  /** GPUs TensorFlow sees there; null when it could not be checked. */
  tfGpus: number | null;
  /** The server's verdict text (headline and fixes in order) when it is not all right. */
  why: string | null;
}

/** The probe's answer as the status item needs it: the server's own words, none composed here. */
export function kernelTensorFlow(reply: ITensorFlowReply): IKernelTensorFlow {
  const view = describeTensorFlow(reply);
  const why = view.ok ? null : view.text || `${view.headline}.`;
  if (reply.status !== 'ok' || !reply.tensorflow) {
    return { tfGpus: reply.tensorflow ? null : 0, why };
  }
  return { tfGpus: reply.verdict.tf_gpus, why };
}

/** The GPUs `processes` hold memory on (sorted), the memory summed, and whether any was given. */
function heldMemory(
  processes: readonly {
    gpu_index: number | null;
    used_memory_mib: number | null;
  }[]
): { indexes: number[]; mem: number; memoryKnown: boolean } {
  const indexes = new Set<number>();
  let mem = 0;
  let memoryKnown = false;
  for (const p of processes) {
    if (p.gpu_index !== null) {
      indexes.add(p.gpu_index);
      mem += p.used_memory_mib ?? 0;
      memoryKnown ||= p.used_memory_mib !== null;
    }
  }
  return { indexes: [...indexes].sort((a, b) => a - b), mem, memoryKnown };
}

/** Short words for the states in which no GPU can be read (the panel says more). */
const STATE_WORDS: Record<string, string> = {
  smi_not_found: 'no NVIDIA driver',
  nvml_not_found: 'no NVIDIA driver',
  driver_not_loaded: 'driver not loaded',
  driver_mismatch: 'driver/library mismatch',
  no_devices: 'none found',
  gpu_lost: 'GPU lost',
  timeout: 'nvidia-smi not answering',
  malformed_output: 'unreadable readings',
  backend_error: 'error',
  disabled: 'monitoring off'
};

/**
 * The status bar item: what the current notebook's kernel uses. The GPU(s) it
 * holds memory on, that memory and the GPUs' utilization; "CPU only" and why
 * when its TensorFlow sees no GPU or it holds no GPU memory; the real state
 * words when GPUs can't be read. A click opens the panel.
 */
export class GpuStatusItem extends Widget {
  constructor(options: GpuStatusItem.IOptions) {
    super({ node: document.createElement('button') });
    this.addClass('jp-kerasgpu-status');
    this.node.setAttribute('type', 'button');
    this._model = options.model;
    this._currentKernel = options.currentKernel;
    this._probe = options.probe ?? null;
    this._remote = options.remote ?? null;
    this.node.addEventListener('click', () => options.onClick());
    this._model.changed.connect(this.update, this);
    this.update();
  }

  /** The text and tooltip shown, for tests and screen readers. */
  static describe(
    model: GpuModel,
    kernelId: string | null,
    tf: IKernelTensorFlow | null = null,
    remote: IRemoteGpus | null = null
  ): { text: string; title: string } {
    if (kernelId && remote) {
      return GpuStatusItem.describeRemote(remote);
    }
    const devices = model.devices;
    if (model.state === 'loading') {
      return { text: 'GPU: …', title: 'Reading the GPUs…' };
    }
    if (model.state === 'disconnected') {
      return {
        text: 'GPU: disconnected',
        title: 'The connection to the Jupyter server is lost; reconnecting.'
      };
    }
    if (model.state !== 'ok' || devices.length === 0) {
      const code = model.status?.code ?? '';
      const words =
        STATE_WORDS[code] ?? (devices.length ? 'error' : 'none found');
      if (kernelId && tf?.tfGpus === 0 && tf.why) {
        // The kernel said so: its verdict, word for word as the panel shows it.
        return { text: `CPU only · ${words}`, title: tf.why };
      }
      return {
        text: `GPU: ${words}`,
        title: model.status?.reason ?? 'No GPU can be read.'
      };
    }
    if (!kernelId) {
      // No notebook in front: the machine, said as such.
      return describeMachine(model);
    }
    const { indexes, mem } = heldMemory(
      model.processes.filter(p => p.kernel?.id === kernelId)
    );
    if (indexes.length > 0) {
      const busy = formatPercent(meanUtilization(model, indexes));
      return {
        text: `GPU ${indexes.join(',')}: ${formatGiB(mem)} held · ${busy} busy`,
        title: `This notebook's kernel holds ${formatGiB(mem)} on GPU ${indexes.join(', ')}; the GPU${indexes.length > 1 ? 's are' : ' is'} ${busy} busy (all processes on it).`
      };
    }
    if (tf && tf.tfGpus === 0) {
      return {
        text: 'CPU only · TensorFlow sees no GPU',
        title:
          tf.why ??
          "This notebook's TensorFlow sees no GPU, so it runs on the CPU."
      };
    }
    if (!tf || tf.tfGpus === null) {
      // Nothing said yet (or not checkable): never "CPU only" before the kernel says so.
      return {
        text: 'GPU: none held yet',
        title:
          "This notebook's kernel holds no GPU memory yet; what its TensorFlow sees is being checked."
      };
    }
    const n = `${tf.tfGpus} GPU${tf.tfGpus > 1 ? 's' : ''}`;
    return {
      text: `${n} ready · none held yet`,
      title:
        `This notebook's TensorFlow sees ${n}; its kernel holds no GPU memory yet (nothing of it has run on a GPU).` +
        (tf.why ? `\n${tf.why}` : '')
    };
  }

  /** The notebook's kernel runs on another host (a gateway): that host's GPUs, not the server's. */
  static describeRemote(remote: IRemoteGpus): { text: string; title: string } {
    const host = remote.host;
    if (!remote.live) {
      return {
        text: `GPU: kernel on ${host}`,
        title: `This notebook's kernel runs on ${host}, not on the Jupyter server: open the GPU panel to read that host's GPUs.`
      };
    }
    const { indexes, mem, memoryKnown } = heldMemory(
      remote.processes.filter(p => p.this_kernel)
    );
    if (indexes.length === 0) {
      return {
        text: `CPU only · no GPU memory held on ${host}`,
        title: `This notebook's kernel runs on ${host} and holds no memory on its GPUs: nothing of it runs on a GPU now.`
      };
    }
    const utils = remote.samples
      .filter(s => indexes.includes(s.index))
      .map(s => s.utilization_gpu)
      .filter((u): u is number => u !== null && u !== undefined);
    const busy = formatPercent(
      utils.length ? utils.reduce((a, b) => a + b, 0) / utils.length : null
    );
    // The driver may not say how much (per-process memory under MIG): never "0.0 GiB held".
    const amount = memoryKnown ? formatGiB(mem) : 'memory';
    return {
      text: `GPU ${indexes.join(',')} on ${host}: ${amount} held · ${busy} busy`,
      title: `This notebook's kernel runs on ${host} and holds ${memoryKnown ? formatGiB(mem) : 'memory (the driver does not say how much)'} on its GPU ${indexes.join(', ')}; busy ${busy} (all processes on it).`
    };
  }

  /** Whether the item shows (and keeps the stream open). */
  setEnabled(enabled: boolean): void {
    this._enabled = enabled;
    this._model.setViewVisible('statusbar', enabled);
    this.setHidden(!enabled);
    this.update();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.setViewVisible('statusbar', false);
    this._model.changed.disconnect(this.update, this);
    super.dispose();
  }

  /** Forgets what TensorFlow saw in a kernel (after a restart) and asks again. */
  refreshKernel(kernelId: string | null): void {
    if (kernelId) {
      this._tf.delete(kernelId);
    }
    this.update();
  }

  update(): void {
    if (!this._enabled || this.isDisposed) {
      return;
    }
    const kernelId = this._currentKernel();
    const code = this._model.status?.code ?? null;
    if (code !== this._statusCode) {
      // The driver's state changed: the verdict (worded with it) is asked again.
      this._statusCode = code;
      this._tf.clear();
    }
    this._askTensorFlow(kernelId);
    const { text, title } = GpuStatusItem.describe(
      this._model,
      kernelId,
      kernelId ? (this._tf.get(kernelId) ?? null) : null,
      this._remote?.() ?? null
    );
    if (this.node.textContent !== text) {
      this.node.textContent = text;
      this.node.setAttribute('aria-label', `${text}. Open the GPU panel`);
    }
    const tooltip = `${title}\nClick to open the GPU panel.`;
    if (this.node.title !== tooltip) {
      this.node.title = tooltip; // readings arrive every second: write the DOM only on change
    }
  }

  private _askTensorFlow(kernelId: string | null): void {
    if (!kernelId || !this._probe || this._asked.has(kernelId)) {
      return;
    }
    if (this._tf.has(kernelId)) {
      return;
    }
    this._asked.add(kernelId);
    this._probe(kernelId)
      .then(reply => {
        this._tf.set(kernelId, kernelTensorFlow(reply));
      })
      .catch(() => {
        // Not checkable (no permission, a dead kernel): say only what the readings show.
        this._tf.set(kernelId, { tfGpus: null, why: null });
      })
      .finally(() => {
        this._asked.delete(kernelId);
        this.update();
      });
  }

  private _asked = new Set<string>();
  private _currentKernel: () => string | null;
  private _enabled = true;
  private _model: GpuModel;
  private _probe: ((kernelId: string) => Promise<ITensorFlowReply>) | null;
  private _remote: (() => IRemoteGpus | null) | null;
  private _statusCode: string | null | undefined = undefined;
  private _tf = new Map<string, IKernelTensorFlow>();
}

export namespace GpuStatusItem {
  /** Options of the status item. */
  export interface IOptions {
    model: GpuModel;
    /** The current notebook's kernel id, if any. */
    currentKernel: () => string | null;
    onClick: () => void;
    /** Asks the server what TensorFlow sees in a kernel (GET tensorflow?kernel_id=). */
    probe?: (kernelId: string) => Promise<ITensorFlowReply>;
    /** The GPUs of the kernel's host when it is not the server (a gateway's kernel). */
    remote?: () => IRemoteGpus | null;
  }
}

/** The status of every GPU of the machine (no notebook in front). */
function describeMachine(model: GpuModel): { text: string; title: string } {
  const devices = model.devices;
  const indexes = devices.map(d => d.index);
  let mem = 0;
  let total = 0;
  for (const d of devices) {
    const s = model.latest(d.index);
    mem += s?.memory_used_mib ?? 0;
    total += s?.memory_total_mib ?? d.memory_total_mib ?? 0;
  }
  const label = devices.length > 1 ? `${devices.length} GPUs` : 'GPU';
  return {
    text: `${label}: ${formatGiB(mem)} / ${formatGiB(total)} · ${formatPercent(meanUtilization(model, indexes))}`,
    title: 'All GPUs of this machine (no notebook is open in front).'
  };
}

/** The mean utilization of these GPUs, null when none reports one. */
function meanUtilization(model: GpuModel, indexes: number[]): number | null {
  let util = 0;
  let n = 0;
  for (const index of indexes) {
    const u = model.latest(index)?.utilization_gpu;
    if (u !== null && u !== undefined) {
      util += u;
      n++;
    }
  }
  return n ? util / n : null;
}

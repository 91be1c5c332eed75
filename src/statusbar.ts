import { Widget } from '@lumino/widgets';

import { formatGiB, formatPercent } from './format';
import { GpuModel } from './model';

/**
 * The status bar item: memory and utilization of the GPU(s) the current
 * notebook's kernel uses (all GPUs when it uses none); a click opens the panel.
 */
export class GpuStatusItem extends Widget {
  constructor(options: GpuStatusItem.IOptions) {
    super({ node: document.createElement('button') });
    this.addClass('jp-kerasgpu-status');
    this.node.setAttribute('type', 'button');
    this.node.title = 'GPU memory and utilization: click to open the GPU panel';
    this._model = options.model;
    this._currentKernel = options.currentKernel;
    this.node.addEventListener('click', () => options.onClick());
    this._model.changed.connect(this.update, this);
    this.update();
  }

  /** The text shown, for tests and screen readers. */
  static describe(model: GpuModel, kernelId: string | null): string {
    const devices = model.devices;
    if (model.state !== 'ok' || devices.length === 0) {
      return model.state === 'loading' || model.state === 'disconnected'
        ? 'GPU: …'
        : 'GPU: none';
    }
    let indexes = devices.map(d => d.index);
    if (kernelId) {
      const used = model.processes
        .filter(p => p.kernel?.id === kernelId && p.gpu_index !== null)
        .map(p => p.gpu_index as number);
      if (used.length > 0) {
        indexes = [...new Set(used)].sort((a, b) => a - b);
      }
    }
    let used = 0;
    let total = 0;
    let util = 0;
    let n = 0;
    for (const index of indexes) {
      const sample = model.latest(index);
      used += sample?.memory_used_mib ?? 0;
      total +=
        sample?.memory_total_mib ??
        devices.find(d => d.index === index)?.memory_total_mib ??
        0;
      if (
        sample?.utilization_gpu !== null &&
        sample?.utilization_gpu !== undefined
      ) {
        util += sample.utilization_gpu;
        n++;
      }
    }
    const label =
      indexes.length === devices.length && devices.length > 1
        ? `${devices.length} GPUs`
        : `GPU ${indexes.join(',')}`;
    return `${label}: ${formatGiB(used)} / ${formatGiB(total)} · ${formatPercent(n ? util / n : null)}`;
  }

  /** Whether the item shows (and keeps the stream open). */
  setEnabled(enabled: boolean): void {
    this._enabled = enabled;
    this._model.setViewVisible('statusbar', enabled);
    this.setHidden(!enabled);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.setViewVisible('statusbar', false);
    this._model.changed.disconnect(this.update, this);
    super.dispose();
  }

  update(): void {
    if (!this._enabled) {
      return;
    }
    const text = GpuStatusItem.describe(this._model, this._currentKernel());
    if (this.node.textContent !== text) {
      this.node.textContent = text;
      this.node.setAttribute('aria-label', `${text}. Open the GPU panel`);
    }
  }

  private _currentKernel: () => string | null;
  private _enabled = true;
  private _model: GpuModel;
}

export namespace GpuStatusItem {
  /** Options of the status item. */
  export interface IOptions {
    model: GpuModel;
    /** The current notebook's kernel id, if any. */
    currentKernel: () => string | null;
    onClick: () => void;
  }
}

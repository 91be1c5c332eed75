import { Widget } from '@lumino/widgets';

import { IDeviceInfo, IGpuSample } from './api';
import {
  formatClock,
  formatGiB,
  formatPercent,
  formatPower,
  formatTemperature,
  percentOf
} from './format';
import { GpuModel } from './model';

/** The sidebar panel's id (for `app.shell.activateById`). */
export const PANEL_ID = 'jp-kerasgpu-panel';

/**
 * The "GPUs" sidebar panel: one card per GPU, or a clear message saying why
 * there is nothing to show.
 */
export class GpuPanel extends Widget {
  constructor(options: GpuPanel.IOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-kerasgpu-panel');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'GPU monitor');
    this._model = options.model;

    const header = document.createElement('header');
    header.className = 'jp-kerasgpu-header';
    const title = document.createElement('h2');
    title.textContent = 'GPUs';
    header.appendChild(title);
    this._body = document.createElement('div');
    this._body.className = 'jp-kerasgpu-body';
    this._body.setAttribute('aria-live', 'polite');
    this.node.append(header, this._body);

    this._model.changed.connect(this._render, this);
    this._render();
  }

  /** The model this panel shows. */
  get model(): GpuModel {
    return this._model;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const model = this._model;
    const body = this._body;
    body.replaceChildren();
    this.node.dataset.state = model.state;
    switch (model.state) {
      case 'loading':
        body.appendChild(message('Looking for GPUs…', null, 'loading'));
        return;
      case 'disconnected':
        body.appendChild(
          message(
            'Cannot reach the Jupyter server.',
            'Retrying… Check that the server is still running.',
            'disconnected'
          )
        );
        return;
      case 'error':
        if (!model.reply || model.reply.status.state !== 'error') {
          body.appendChild(
            message(
              'The GPU service answered with an error.',
              model.errorMessage,
              'error'
            )
          );
          return;
        }
        break;
      default:
        break;
    }
    const reply = model.reply;
    if (!reply) {
      return;
    }
    const status = reply.status;
    if (status.state !== 'ok') {
      body.appendChild(
        message(
          status.reason ??
            (status.state === 'unavailable'
              ? 'No NVIDIA GPU is available.'
              : 'The GPUs cannot be read right now.'),
          status.hint,
          status.state
        )
      );
      if (reply.devices.length === 0) {
        return;
      }
    }
    const samples = new Map<number, IGpuSample>();
    for (const sample of reply.samples) {
      samples.set(sample.index, sample);
    }
    const list = document.createElement('ul');
    list.className = 'jp-kerasgpu-cards';
    list.setAttribute('aria-label', 'GPUs');
    for (const device of reply.devices) {
      list.appendChild(card(device, samples.get(device.index)));
    }
    body.appendChild(list);
  }

  private _body: HTMLElement;
  private _model: GpuModel;
}

export namespace GpuPanel {
  /** Options of the GPU panel. */
  export interface IOptions {
    model: GpuModel;
  }
}

/** A state message: a sentence, and what to do about it. */
function message(
  text: string,
  hint: string | null | undefined,
  kind: string
): HTMLElement {
  const box = document.createElement('div');
  box.className = `jp-kerasgpu-message jp-kerasgpu-message-${kind}`;
  box.setAttribute('role', kind === 'loading' ? 'status' : 'alert');
  const p = document.createElement('p');
  p.className = 'jp-kerasgpu-reason';
  p.textContent = text;
  box.appendChild(p);
  if (hint) {
    const h = document.createElement('p');
    h.className = 'jp-kerasgpu-hint';
    h.textContent = hint;
    box.appendChild(h);
  }
  return box;
}

/** One GPU's card. */
function card(
  device: IDeviceInfo,
  sample: IGpuSample | undefined
): HTMLElement {
  const item = document.createElement('li');
  item.className = 'jp-kerasgpu-card';
  item.dataset.uuid = device.uuid;
  item.setAttribute('aria-label', `GPU ${device.index}: ${device.name}`);

  const title = document.createElement('div');
  title.className = 'jp-kerasgpu-card-title';
  const index = document.createElement('span');
  index.className = 'jp-kerasgpu-index';
  index.textContent = `${device.index}`;
  const name = document.createElement('span');
  name.className = 'jp-kerasgpu-name';
  name.textContent = device.name;
  name.title = [
    device.uuid,
    device.pci_bus_id,
    device.driver_version ? `driver ${device.driver_version}` : null
  ]
    .filter(Boolean)
    .join('\n');
  title.append(index, name);
  item.appendChild(title);

  const total = sample?.memory_total_mib ?? device.memory_total_mib;
  const used = sample?.memory_used_mib ?? null;
  const memPct = percentOf(used, total);
  item.appendChild(
    meter(
      'Memory',
      used === null
        ? `${formatGiB(total)} total`
        : `${formatGiB(used)} / ${formatGiB(total)} (${formatPercent(memPct)})`,
      memPct,
      'memory'
    )
  );
  if (sample) {
    item.appendChild(
      meter(
        'Utilization',
        formatPercent(sample.utilization_gpu),
        sample.utilization_gpu,
        'util'
      )
    );
    const facts = document.createElement('dl');
    facts.className = 'jp-kerasgpu-facts';
    addFact(facts, 'Temp', formatTemperature(sample.temperature_c));
    addFact(
      facts,
      'Power',
      formatPower(sample.power_draw_w, sample.power_limit_w)
    );
    addFact(facts, 'SM clock', formatClock(sample.clock_sm_mhz));
    item.appendChild(facts);
  }
  return item;
}

/** A labelled bar, exposed to screen readers as a meter. */
function meter(
  label: string,
  text: string,
  percent: number | null,
  kind: string
): HTMLElement {
  const row = document.createElement('div');
  row.className = `jp-kerasgpu-meter jp-kerasgpu-meter-${kind}`;
  const head = document.createElement('div');
  head.className = 'jp-kerasgpu-meter-head';
  const l = document.createElement('span');
  l.textContent = label;
  const v = document.createElement('span');
  v.className = 'jp-kerasgpu-meter-value';
  v.textContent = text;
  head.append(l, v);
  const bar = document.createElement('div');
  bar.className = 'jp-kerasgpu-bar';
  bar.setAttribute('role', 'meter');
  bar.setAttribute('aria-label', label);
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  if (percent !== null) {
    bar.setAttribute('aria-valuenow', `${Math.round(percent)}`);
  }
  bar.setAttribute('aria-valuetext', text);
  const fill = document.createElement('div');
  fill.className = 'jp-kerasgpu-bar-fill';
  fill.style.width = `${percent ?? 0}%`;
  bar.appendChild(fill);
  row.append(head, bar);
  return row;
}

function addFact(list: HTMLElement, term: string, value: string): void {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = value;
  list.append(dt, dd);
}

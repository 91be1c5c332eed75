import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  FleetModel,
  fleetMessage,
  fleetSummary,
  gpuSummary,
  hostSummary
} from '../models/fleet';
import { IFleetGpu, IFleetHost } from '../api/fleet';
import { el } from './dom';

/**
 * The "GPU Fleet" view: every GPU host Prometheus scrapes, best place for a job first, each
 * GPU free or busy with its free memory and who holds it. Renders from a `FleetModel` only;
 * the model polls while this view is visible.
 */
export class FleetView extends Widget {
  constructor(options: FleetView.IOptions) {
    super();
    this.addClass('jp-kerasgpu-fleet');
    this._model = options.model;
    const header = el('header', 'jp-kerasgpu-fleet-header');
    header.appendChild(el('h2', '', 'GPU Fleet'));
    this._summary = el('span', 'jp-kerasgpu-fleet-summary');
    header.appendChild(this._summary);
    const refresh = el('button', 'jp-mod-styled jp-kerasgpu-fleet-refresh');
    refresh.textContent = 'Refresh';
    refresh.title =
      'Ask the server again (it asks Prometheus once per interval)';
    refresh.addEventListener('click', () => void this._model.refresh());
    header.appendChild(refresh);
    this._message = el('div', 'jp-kerasgpu-fleet-message');
    this._list = el('div', 'jp-kerasgpu-fleet-hosts');
    this.node.append(header, this._message, this._list);
    this._model.changed.connect(this._render, this);
    this._render();
  }

  get model(): FleetModel {
    return this._model;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.changed.disconnect(this._render, this);
    this._model.watched = false;
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    this._model.watched = true;
  }

  protected onAfterAttach(msg: Message): void {
    this._model.watched = this.isVisible;
  }

  protected onBeforeHide(msg: Message): void {
    this._model.watched = false;
  }

  protected onBeforeDetach(msg: Message): void {
    this._model.watched = false;
  }

  private _render(): void {
    const fleet = this._model.fleet;
    const message = fleetMessage(fleet, this._model.requestError);
    this.node.dataset.status = message?.kind ?? 'ok';
    this._message.replaceChildren();
    this._message.hidden = message === null;
    if (message) {
      this._message.dataset.kind = message.kind;
      this._message.appendChild(el('strong', '', message.title));
      this._message.appendChild(el('p', '', message.text));
      if (message.code) {
        this._message.appendChild(
          el('pre', 'jp-kerasgpu-fleet-code', message.code)
        );
      }
    }
    const hosts = fleet?.status === 'ok' ? fleet.hosts : [];
    this._list.replaceChildren(...hosts.map(hostSection));
    const parts: string[] = [];
    if (fleet?.status === 'ok') {
      parts.push(fleetSummary(fleet));
    }
    if (fleet?.prometheus) {
      parts.push(`from ${fleet.prometheus}`);
    }
    if (fleet?.checked_at) {
      parts.push(
        `checked ${new Date(fleet.checked_at * 1000).toLocaleTimeString()}`
      );
    }
    this._summary.textContent = parts.join(' · ');
  }

  private _model: FleetModel;
  private _summary: HTMLElement;
  private _message: HTMLElement;
  private _list: HTMLElement;
}

/** FleetView's options. */
export namespace FleetView {
  export interface IOptions {
    model: FleetModel;
  }
}

function hostSection(host: IFleetHost): HTMLElement {
  const section = el('section', 'jp-kerasgpu-fleet-host');
  section.dataset.host = host.host;
  section.dataset.free = String(host.free_gpus > 0);
  const head = el('h3', 'jp-kerasgpu-fleet-host-name');
  head.appendChild(el('span', '', host.host));
  head.appendChild(
    el('span', 'jp-kerasgpu-fleet-host-summary', hostSummary(host))
  );
  head.appendChild(el('span', 'jp-kerasgpu-fleet-source', host.source));
  section.appendChild(head);
  const list = el('ul', 'jp-kerasgpu-fleet-gpus');
  for (const gpu of host.gpus) {
    list.appendChild(gpuRow(gpu));
  }
  section.appendChild(list);
  return section;
}

function gpuRow(gpu: IFleetGpu): HTMLElement {
  const s = gpuSummary(gpu);
  const row = el('li', 'jp-kerasgpu-fleet-gpu');
  row.dataset.state = s.state;
  row.title = gpu.uuid;
  row.appendChild(
    el(
      'span',
      'jp-kerasgpu-index',
      gpu.index === null ? '?' : String(gpu.index)
    )
  );
  row.appendChild(el('span', 'jp-kerasgpu-fleet-gpu-name', gpu.name || 'GPU'));
  row.appendChild(el('span', 'jp-kerasgpu-fleet-badge', s.label));
  row.appendChild(el('span', 'jp-kerasgpu-fleet-util', s.util));
  const memory = el('span', 'jp-kerasgpu-fleet-memory');
  memory.appendChild(el('span', '', s.memory));
  const bar = el('span', 'jp-kerasgpu-bar');
  const fill = el('span', 'jp-kerasgpu-bar-fill');
  fill.style.width = `${(s.usedPercent ?? 0).toFixed(1)}%`;
  bar.appendChild(fill);
  memory.appendChild(bar);
  row.appendChild(memory);
  if (gpu.holders?.length) {
    row.appendChild(
      el(
        'span',
        'jp-kerasgpu-fleet-holders',
        `held by ${gpu.holders.join(', ')}`
      )
    );
  }
  return row;
}

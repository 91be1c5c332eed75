import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { formatGiB, formatPercent } from '../format';
import { fetchFleet, IFleet, IFleetGpu, IFleetHost } from '../api/fleet';
import { DisposableModel } from './disposable';

/** A message in place of (or above) the fleet list. */
export interface IFleetMessage {
  kind: 'loading' | 'off' | 'unreachable' | 'error' | 'empty';
  title: string;
  text: string;
  /** Configuration to copy, for the `off` state. */
  code?: string;
}

/** How to turn the fleet view on: shown when no Prometheus is configured. */
export const SETUP_SNIPPET = `# jupyter_server_config.py
c.KerasGPU.prometheus_url = "http://prometheus:9090"
c.KerasGPU.fleet_interval = 15  # seconds
# c.KerasGPU.prometheus_token = "..."  (or prometheus_username / prometheus_password)`;

/**
 * What to say instead of a list: loading, off (how to configure), Prometheus unreachable or
 * in error, our own server unreachable, or a Prometheus with no GPU metrics. Null when the
 * fleet has hosts to show.
 */
export function fleetMessage(
  fleet: IFleet | null,
  requestError: string | null = null
): IFleetMessage | null {
  if (requestError) {
    return {
      kind: 'error',
      title: 'The Jupyter server did not answer',
      text: requestError
    };
  }
  if (fleet === null) {
    return {
      kind: 'loading',
      title: 'Asking Prometheus…',
      text: 'The fleet appears once the server has queried Prometheus.'
    };
  }
  switch (fleet.status) {
    case 'off':
      return {
        kind: 'off',
        title: 'No Prometheus configured',
        text:
          'The fleet view lists the GPU hosts an existing Prometheus scrapes (kerasgpu, ' +
          "NVIDIA's DCGM exporter or the nvidia-smi exporter). Point the Jupyter server at " +
          'it and restart the server:',
        code: SETUP_SNIPPET
      };
    case 'unreachable':
      return {
        kind: 'unreachable',
        title: 'Prometheus is unreachable',
        text: fleet.reason ?? 'Prometheus did not answer.'
      };
    case 'error':
      return {
        kind: 'error',
        title: 'Prometheus answered with an error',
        text: fleet.reason ?? 'Prometheus did not give a query result.'
      };
    default:
      if (fleet.hosts.length === 0) {
        return {
          kind: 'empty',
          title: 'No GPU hosts in Prometheus',
          text:
            'Prometheus answered, but it scrapes no GPU metrics: add a scrape job for ' +
            "kerasgpu's /kerasgpu/metrics, NVIDIA's DCGM exporter (:9400) or the " +
            'nvidia-smi exporter (:9835) on each GPU host.'
        };
      }
      return null;
  }
}

/** A GPU's line in the fleet: busy / free / unknown, utilization and free memory. */
export interface IGpuSummary {
  state: 'free' | 'busy' | 'unknown';
  label: string;
  util: string;
  memory: string;
  /** Memory used, % of total (for a bar), or null. */
  usedPercent: number | null;
}

/** How one fleet GPU reads: "free", "12 % busy", "117.4 GiB free of 140.4 GiB". */
export function gpuSummary(gpu: IFleetGpu): IGpuSummary {
  const known = gpu.util !== null && gpu.mem_free_mib !== null;
  const state = gpu.free ? 'free' : known ? 'busy' : 'unknown';
  const memory =
    gpu.mem_free_mib === null
      ? 'free memory unknown'
      : gpu.mem_total_mib === null
        ? `${formatGiB(gpu.mem_free_mib)} free`
        : `${formatGiB(gpu.mem_free_mib)} free of ${formatGiB(gpu.mem_total_mib)}`;
  const usedPercent =
    gpu.mem_used_mib !== null && gpu.mem_total_mib
      ? Math.min(100, Math.max(0, (gpu.mem_used_mib / gpu.mem_total_mib) * 100))
      : null;
  return {
    state,
    label: state,
    util: gpu.util === null ? '– busy' : `${formatPercent(gpu.util)} busy`,
    memory,
    usedPercent
  };
}

/** "2 of 8 GPUs free" for a host's heading. */
export function hostSummary(host: IFleetHost): string {
  const n = host.gpus.length;
  if (n === 0) {
    return host.reason ?? 'no GPUs reported';
  }
  return `${host.free_gpus} of ${n} GPU${n === 1 ? '' : 's'} free`;
}

/** "3 hosts · 5 free GPUs" for the view's header. */
export function fleetSummary(fleet: IFleet): string {
  const hosts = fleet.hosts.length;
  const free = fleet.hosts.reduce((sum, h) => sum + h.free_gpus, 0);
  const gpus = fleet.hosts.reduce((sum, h) => sum + h.gpus.length, 0);
  return (
    `${hosts} host${hosts === 1 ? '' : 's'} · ${free} of ${gpus} ` +
    `GPU${gpus === 1 ? '' : 's'} free`
  );
}

/** Milliseconds between polls: the server's interval (it queries Prometheus no faster), at least 2 s. */
export function pollInterval(fleet: IFleet | null, fallbackMs = 15000): number {
  const seconds = fleet?.interval;
  return typeof seconds === 'number' && seconds > 0
    ? Math.max(2000, Math.round(seconds * 1000))
    : fallbackMs;
}

/**
 * The fleet as the server reports it: polls GET fleet with `@lumino/polling` while a view
 * watches and the browser tab is visible, at the server's own query interval.
 */
export class FleetModel extends DisposableModel {
  constructor(options: FleetModel.IOptions = {}) {
    super();
    this._serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this._poll = new Poll({
      auto: false,
      factory: () => this._fetch(),
      frequency: { interval: pollInterval(null), backoff: true, max: 300000 },
      name: 'jupyterlab-kerasgpu:fleet',
      standby: 'when-hidden'
    });
  }

  /** Emitted after each answer (or failure). */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The latest answer, or null before the first. */
  get fleet(): IFleet | null {
    return this._fleet;
  }

  /** Why the Jupyter server itself could not be asked, or null. */
  get requestError(): string | null {
    return this._requestError;
  }

  /** Poll while true (a view is visible); stop when false. */
  get watched(): boolean {
    return this._watched;
  }
  set watched(value: boolean) {
    if (value === this._watched || this.isDisposed) {
      return;
    }
    this._watched = value;
    if (value) {
      void this._poll.start();
      void this._poll.refresh();
    } else {
      void this._poll.stop();
    }
  }

  /** Asks now (the server still answers from its cache within its interval). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  protected onDispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _fetch(): Promise<void> {
    try {
      const fleet = await fetchFleet(this._serverSettings);
      this._fleet = fleet;
      this._requestError = null;
      const interval = pollInterval(fleet);
      if (interval !== this._poll.frequency.interval) {
        this._poll.frequency = { ...this._poll.frequency, interval };
      }
    } catch (error) {
      this._requestError = (error as Error).message || String(error);
      throw error; // the poll backs off
    } finally {
      if (!this.isDisposed) {
        this._changed.emit();
      }
    }
  }

  private _serverSettings: ServerConnection.ISettings;
  private _poll: Poll;
  private _fleet: IFleet | null = null;
  private _requestError: string | null = null;
  private _watched = false;
  private _changed = new Signal<this, void>(this);
}

/** FleetModel's options. */
export namespace FleetModel {
  export interface IOptions {
    serverSettings?: ServerConnection.ISettings;
  }
}

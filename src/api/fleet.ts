/** The fleet endpoint (python_ext/kerasgpu/server/fleet.py): the GPUs of every host Prometheus scrapes. */
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';

/** One GPU of a fleet host, as GET kerasgpu/api/v1/fleet gives it (memory in MiB, util in %). */
export interface IFleetGpu {
  index: number | null;
  name: string;
  uuid: string;
  util: number | null;
  mem_used_mib: number | null;
  mem_total_mib: number | null;
  mem_free_mib: number | null;
  /** Nothing runs on it (under 10 % busy, under 10 % of memory used). */
  free: boolean;
  /** Which exporters reported it: kerasgpu, dcgm, nvidia_smi. */
  source: string;
  /** Who holds it, where the metrics say (Kubernetes pod, HPC job). */
  holders?: string[];
}

/** One host Prometheus scrapes, its GPUs best place for a job first. */
export interface IFleetHost {
  host: string;
  source: string;
  gpus: IFleetGpu[];
  free_gpus: number;
  /** Why a host shows no GPUs (its exporter cannot read them). */
  reason?: string;
}

/** The fleet endpoint's answer. */
export interface IFleet {
  status: 'ok' | 'off' | 'unreachable' | 'error';
  reason?: string;
  prometheus?: string;
  /** Seconds between the server's queries to Prometheus. */
  interval?: number;
  /** When the server asked Prometheus (seconds since the epoch). */
  checked_at?: number;
  hosts: IFleetHost[];
}

/** GET fleet: every host's GPUs, best place for a job first. */
export function fetchFleet(
  settings?: ServerConnection.ISettings
): Promise<IFleet> {
  return requestAPI<IFleet>('fleet', {}, settings);
}

/**
 * The GPU endpoints (python_ext/kerasgpu/server/gpu.py): devices, history and
 * processes, their JSON typed (the readings' shapes are telemetry/types.py's).
 */
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';

/** Why GPUs can or cannot be read. `code` is stable; `reason` is for people. */
export interface IBackendStatus {
  state: 'ok' | 'unavailable' | 'error' | 'starting';
  backend: string;
  code: string;
  reason: string | null;
  hint: string | null;
}

/** A GPU's fixed facts. */
export interface IDeviceInfo {
  index: number;
  uuid: string;
  name: string;
  memory_total_mib: number | null;
  driver_version: string | null;
  pci_bus_id: string | null;
  cuda_driver_version: string | null;
  compute_capability: string | null;
  mig_mode: string | null;
  /** Why PCIe / NVLink throughput is not measured (absent or null: it is). */
  pcie_throughput_reason?: string | null;
  nvlink_throughput_reason?: string | null;
}

/** One reading of one GPU; a value the GPU does not report is null. */
export interface IGpuSample {
  index: number;
  uuid: string;
  timestamp: number;
  utilization_gpu: number | null;
  utilization_memory: number | null;
  memory_used_mib: number | null;
  memory_total_mib: number | null;
  memory_reserved_mib: number | null;
  temperature_c: number | null;
  power_draw_w: number | null;
  power_limit_w: number | null;
  clock_sm_mhz: number | null;
  clock_mem_mhz: number | null;
  pstate: string | null;
  /** PCIe / NVLink traffic, MiB/s (NVML counters only). */
  pcie_tx_mib_s?: number | null;
  pcie_rx_mib_s?: number | null;
  nvlink_tx_mib_s?: number | null;
  nvlink_rx_mib_s?: number | null;
}

/** A compute process holding GPU memory. */
export interface IGpuProcess {
  pid: number;
  gpu_uuid: string;
  gpu_index: number | null;
  used_memory_mib: number | null;
  name: string | null;
}

/** GET /kerasgpu/api/v1/devices. */
export interface IDevicesReply {
  status: IBackendStatus;
  devices: IDeviceInfo[];
  samples: IGpuSample[];
  processes: IGpuProcess[];
}

/** GET /kerasgpu/api/v1/history?seconds=N. */
export interface IHistoryReply {
  status: IBackendStatus;
  interval_ms: number;
  seconds: number;
  samples: IGpuSample[];
}

/** A GPU process as GET /kerasgpu/api/v1/processes lists it. */
export interface IProcessRow extends IGpuProcess {
  /** This server's kernel holding it, or null (another user's, another server's). */
  kernel: {
    id: string;
    name: string | null;
    execution_state: string | null;
  } | null;
  /** The notebooks / consoles using that kernel. */
  sessions: { path: string; name: string; type: string }[];
  /** Whether this server may shut the holding kernel down. */
  can_shutdown: boolean;
  /** Who runs it, since when (epoch seconds), with what command; null where this host can't see. */
  user?: string | null;
  started?: number | null;
  cmdline?: string | null;
}

/** GET /kerasgpu/api/v1/processes. */
export interface IProcessesReply {
  processes: IProcessRow[];
}

/**
 * The chart window's bounds, in seconds (10 s to a day): the one place the
 * frontend says them; the server caps `history?seconds=` at what it keeps
 * (the stream's hello says how much: `history_seconds`).
 */
export const HISTORY_WINDOW_SECONDS = { min: 10, max: 86_400 } as const;

/** GET devices: the GPUs, their latest readings and processes. */
export function fetchDevices(
  settings?: ServerConnection.ISettings
): Promise<IDevicesReply> {
  return requestAPI<IDevicesReply>('devices', {}, settings);
}

/** GET history?seconds=N: every reading of the last N seconds, oldest first. */
export function fetchHistory(
  seconds: number,
  settings?: ServerConnection.ISettings
): Promise<IHistoryReply> {
  return requestAPI<IHistoryReply>(`history?seconds=${seconds}`, {}, settings);
}

/** GET processes: the processes holding GPU memory, with their kernels and notebooks. */
export function fetchProcesses(
  settings?: ServerConnection.ISettings
): Promise<IProcessesReply> {
  return requestAPI<IProcessesReply>('processes', {}, settings);
}

/** POST processes/<pid>/shutdown: shuts down this server's kernel holding GPU process `pid`. */
export async function shutdownProcessKernel(
  pid: number,
  settings?: ServerConnection.ISettings
): Promise<void> {
  await requestAPI(
    `processes/${pid}/shutdown`,
    { method: 'POST', body: '' },
    settings
  );
}

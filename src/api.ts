/**
 * The server's JSON, typed: the one contract between the Python server
 * extension (python_ext/kerasgpu/telemetry/types.py) and the frontend.
 */

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

/** Messages of the websocket /kerasgpu/api/v1/stream. */
export type StreamMessage =
  | {
      type: 'hello';
      interval_ms: number;
      history_seconds: number;
      status: IBackendStatus;
      devices: IDeviceInfo[];
      samples: IGpuSample[];
    }
  | { type: 'status'; status: IBackendStatus; devices: IDeviceInfo[] }
  | { type: 'samples'; samples: IGpuSample[] };

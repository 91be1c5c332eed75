"""The data every telemetry backend returns: the contract between backends,
the server's API, the CLI and the kernel magics.

Units are fixed by the field names (MiB, %, degrees C, W, MHz). A value the
GPU does not report (`[N/A]`, `[Not Supported]`, NVML "not supported") is
``None``: never 0, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Status codes, stable for API clients; `reason` is the human sentence.
OK = "ok"
SMI_NOT_FOUND = "smi_not_found"
NVML_NOT_FOUND = "nvml_not_found"
DRIVER_NOT_LOADED = "driver_not_loaded"
DRIVER_MISMATCH = "driver_mismatch"
NO_DEVICES = "no_devices"
GPU_LOST = "gpu_lost"
TIMEOUT = "timeout"
MALFORMED = "malformed_output"
BACKEND_ERROR = "backend_error"
DISABLED = "disabled"  # backend "none" chosen on purpose (KERASGPU_BACKEND=none)


def finite(value: Any) -> float | None:
    """A reading as a finite float, else None: nan, inf and numbers beyond a float's range aren't readings."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, so `json.dumps` never writes NaN/Infinity
    (which browsers' JSON.parse rejects)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class TelemetryError(Exception):
    """A backend could not answer; `code` is one of the codes above."""

    def __init__(self, code: str, reason: str, hint: str | None = None):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.hint = hint


@dataclass
class BackendStatus:
    """Whether GPUs can be read, and if not, why and what to do."""

    state: str  # "ok" | "unavailable" (no GPU / no driver) | "error" (was working, failing now)
    backend: str  # "nvml" | "smi" | "none"
    code: str = OK
    reason: str | None = None
    hint: str | None = None

    @classmethod
    def from_error(cls, err: TelemetryError, backend: str, state: str = "unavailable") -> BackendStatus:
        return cls(state=state, backend=backend, code=err.code, reason=err.reason, hint=err.hint)

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass
class DeviceInfo:
    """What does not change while the server runs."""

    index: int
    uuid: str
    name: str
    memory_total_mib: float | None
    driver_version: str | None
    pci_bus_id: str | None = None
    cuda_driver_version: str | None = None
    compute_capability: str | None = None
    mig_mode: str | None = None
    # Why PCIe / NVLink throughput is not measured for this GPU (None: it is).
    pcie_throughput_reason: str | None = None
    nvlink_throughput_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass
class GpuSample:
    """One reading of one GPU."""

    index: int
    uuid: str
    timestamp: float  # seconds since the epoch
    utilization_gpu: float | None = None
    utilization_memory: float | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    memory_reserved_mib: float | None = None
    temperature_c: float | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    clock_sm_mhz: float | None = None
    clock_mem_mhz: float | None = None
    pstate: str | None = None
    # PCIe / NVLink traffic since the previous reading (NVML counters only; NVLink summed over links).
    pcie_tx_mib_s: float | None = None
    pcie_rx_mib_s: float | None = None
    nvlink_tx_mib_s: float | None = None
    nvlink_rx_mib_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass
class GpuProcess:
    """A compute process holding GPU memory."""

    pid: int
    gpu_uuid: str
    used_memory_mib: float | None
    name: str | None = None
    gpu_index: int | None = None
    # MIG instance the process runs in; None when the GPU is not split (NVML's 0xFFFFFFFF).
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass
class Snapshot:
    """Everything one look at the GPUs gives: used by the CLI, the API and %gpu_check."""

    status: BackendStatus
    devices: list[DeviceInfo] = field(default_factory=list)
    samples: list[GpuSample] = field(default_factory=list)
    processes: list[GpuProcess] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.to_json(),
            "devices": [d.to_json() for d in self.devices],
            "samples": [s.to_json() for s in self.samples],
            "processes": [p.to_json() for p in self.processes],
        }

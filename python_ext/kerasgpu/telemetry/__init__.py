"""GPU telemetry: NVML first, nvidia-smi as the fallback, never a crash.

`probe()` takes one look at the GPUs (devices, one sample, processes) and
always returns a `Snapshot`; when no GPU can be read its `status` says why, in
a sentence, and what to do. `Sampler` (one per server) reads at a fixed rate on
its own thread and keeps a ring buffer of history.

The backend is chosen by the `backend` argument, else the KERASGPU_BACKEND
environment variable, else "auto": NVML, then nvidia-smi, then none with the
reason.
"""

from __future__ import annotations

from .backend import BACKENDS, open_backend, resolve_backend
from .probing import probe
from .sampler import Sampler
from .types import (
    BackendStatus,
    DeviceInfo,
    GpuProcess,
    GpuSample,
    Snapshot,
    TelemetryError,
)

__all__ = [
    "BACKENDS",
    "BackendStatus",
    "DeviceInfo",
    "GpuProcess",
    "GpuSample",
    "Sampler",
    "Snapshot",
    "TelemetryError",
    "open_backend",
    "probe",
    "resolve_backend",
]

"""The NVML backend, through the `pynvml` module of nvidia-ml-py.

A full reading of one GPU costs ~0.015 ms. Nothing slow runs here: PCIe
throughput comes from NVML's byte counters (one `nvmlDeviceGetFieldValues`
call per GPU, see counters.py), never from `nvmlDeviceGetPcieThroughput`,
which blocks ~20 ms per call. Memory comes from the
v2 call where the driver has it, so "used" agrees with nvidia-smi.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from . import counters, errors
from .types import DeviceInfo, GpuProcess, GpuSample, TelemetryError, finite

MIB = 1024 * 1024
MAX_GPUS = 4096
# NVML's "no MIG instance" value for gpuInstanceId / computeInstanceId.
NO_INSTANCE = 0xFFFFFFFF


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlBackend:
    """Reads GPUs through NVML; `open()` raises TelemetryError when NVML cannot start."""

    name = "nvml"
    paced = False  # the sampler decides when to read

    def __init__(self, module: Any = None) -> None:
        """`module`: the pynvml module to use (default: import it at `open()`)."""
        self._module = module
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._devices: list[DeviceInfo] = []
        self._memory_v2: bool | None = None  # None: not tried yet
        self._lock = threading.Lock()
        self._rates: list[counters.Rates] = []
        self._counters: list[bool] = []  # per GPU: has PCIe or NVLink counters worth asking for

    # ------------------------------------------------------------ errors

    def _error(self, err: Exception) -> TelemetryError:
        """Maps an NVMLError to a TelemetryError with a human reason."""
        n = self._nvml
        code = getattr(err, "value", None)
        if n is None or code is None:
            return errors.backend_error(str(err))
        table = {
            n.NVML_ERROR_LIBRARY_NOT_FOUND: lambda: errors.nvml_not_found("libnvidia-ml.so not found"),
            n.NVML_ERROR_DRIVER_NOT_LOADED: errors.driver_not_loaded,
            n.NVML_ERROR_LIB_RM_VERSION_MISMATCH: errors.driver_mismatch,
            n.NVML_ERROR_GPU_IS_LOST: errors.gpu_lost,
            n.NVML_ERROR_TIMEOUT: lambda: errors.timeout("NVML", 0),
        }
        for name in ("NVML_ERROR_GPU_NOT_FOUND", "NVML_ERROR_RESET_REQUIRED"):
            if hasattr(n, name):
                table[getattr(n, name)] = errors.gpu_lost
        make = table.get(code)
        return make() if make else errors.backend_error(f"NVML: {err}")

    def _optional(self, fn, *args, **kwargs) -> Any:
        """Calls an NVML getter; a value the GPU lacks is None, a lost GPU raises."""
        n = self._nvml
        try:
            return fn(*args, **kwargs)
        except n.NVMLError as err:
            absent = {
                n.NVML_ERROR_NOT_SUPPORTED,
                n.NVML_ERROR_NO_PERMISSION,
                n.NVML_ERROR_FUNCTION_NOT_FOUND,
                n.NVML_ERROR_UNKNOWN,
                n.NVML_ERROR_INVALID_ARGUMENT,
                getattr(n, "NVML_ERROR_NO_DATA", -1),
                getattr(n, "NVML_ERROR_NOT_FOUND", -1),
                getattr(n, "NVML_ERROR_DEPRECATED", -1),
            }
            if err.value in absent:
                return None
            raise self._error(err) from None

    # ------------------------------------------------------------ lifecycle

    def open(self) -> list[DeviceInfo]:
        """Starts NVML and reads every GPU's static details."""
        if self._module is None:
            try:
                import pynvml
            except ImportError:
                raise errors.nvml_not_found("the nvidia-ml-py package is not installed") from None
            self._module = pynvml
        self._nvml = n = self._module
        try:
            n.nvmlInit()
        except n.NVMLError as err:
            raise self._error(err) from None
        try:
            count = _int(n.nvmlDeviceGetCount())
            if count is None or count < 1:
                raise errors.no_devices()
            if count > MAX_GPUS:
                raise errors.backend_error(f"NVML reports {count} GPUs, which no machine has")
            driver = self._optional(n.nvmlSystemGetDriverVersion)
            cuda = self._optional(n.nvmlSystemGetCudaDriverVersion_v2) or self._optional(
                n.nvmlSystemGetCudaDriverVersion
            )
            cuda = _int(cuda)
            cuda_text = f"{cuda // 1000}.{(cuda % 1000) // 10}" if cuda and cuda > 0 else None
            handles, devices = [], []
            for i in range(count):
                try:
                    h = n.nvmlDeviceGetHandleByIndex(i)
                except n.NVMLError as err:
                    raise self._error(err) from None
                handles.append(h)
                devices.append(self._device(i, h, driver, cuda_text))
        except n.NVMLError as err:
            self._shutdown()
            raise self._error(err) from None
        except Exception:  # TelemetryError, or a binding that answers what no GPU would
            self._shutdown()
            raise
        self._handles, self._devices = handles, devices
        self._rates = [counters.Rates() for _ in handles]
        self._counters = [
            d.pcie_throughput_reason is None or d.nvlink_throughput_reason is None for d in devices
        ]
        return list(devices)

    def _device(self, index: int, h: Any, driver: Any, cuda: str | None) -> DeviceInfo:
        n = self._nvml
        pci = self._optional(n.nvmlDeviceGetPciInfo, h)
        cc = self._optional(n.nvmlDeviceGetCudaComputeCapability, h)
        mig = self._optional(n.nvmlDeviceGetMigMode, h)
        total, _, _ = self._memory(h)
        bus = getattr(pci, "busId", None) if pci is not None else None
        cc = tuple(_int(v) for v in cc[:2]) if isinstance(cc, (tuple, list)) and len(cc) >= 2 else None
        current_mig = mig[0] if isinstance(mig, (tuple, list)) and mig else None
        pcie_reason, nvlink_reason = counters.reasons(self._counter_readings(h))
        return DeviceInfo(
            index=index,
            uuid=_text(self._optional(n.nvmlDeviceGetUUID, h) or ""),
            name=_text(self._optional(n.nvmlDeviceGetName, h) or "NVIDIA GPU"),
            memory_total_mib=total,
            driver_version=_text(driver) if driver else None,
            pci_bus_id=_text(bus) if bus else None,
            cuda_driver_version=cuda,
            compute_capability=f"{cc[0]}.{cc[1]}" if cc and None not in cc else None,
            mig_mode=("Enabled" if current_mig else "Disabled") if current_mig is not None else None,
            pcie_throughput_reason=pcie_reason,
            nvlink_throughput_reason=nvlink_reason,
        )

    def _counter_readings(self, h: Any) -> dict[str, counters.Reading | None] | None:
        """PCIe / NVLink byte counters of one GPU (None: the driver has no field values at all)."""
        n = self._nvml
        fn = getattr(n, "nvmlDeviceGetFieldValues", None)
        if fn is None:
            return None
        values = self._optional(fn, h, counters.request(n))
        return None if values is None else counters.parse(n, values)

    def _shutdown(self) -> None:
        with contextlib.suppress(Exception):  # already gone: nothing to release
            self._nvml.nvmlShutdown()

    def close(self) -> None:
        """Releases NVML."""
        if self._handles:
            self._handles = []
            self._shutdown()

    # ------------------------------------------------------------ readings

    def devices(self) -> list[DeviceInfo]:
        """Static details read at `open()`."""
        return list(self._devices)

    def _memory(self, h: Any) -> tuple[float | None, float | None, float | None]:
        """(total, used, reserved) in MiB: v2 call where the driver has it, else v1 (reserved None)."""
        n = self._nvml
        if self._memory_v2 is not False:
            try:
                m = n.nvmlDeviceGetMemoryInfo(h, version=n.nvmlMemory_v2)
                self._memory_v2 = True
                return _mib(m.total), _mib(m.used), _mib(m.reserved)
            except (TypeError, AttributeError):
                self._memory_v2 = False
            except n.NVMLError as err:
                if err.value in (n.NVML_ERROR_GPU_IS_LOST, n.NVML_ERROR_DRIVER_NOT_LOADED):
                    raise self._error(err) from None
                self._memory_v2 = False
        m = self._optional(n.nvmlDeviceGetMemoryInfo, h)
        if m is None:
            return None, None, None
        return _mib(getattr(m, "total", None)), _mib(getattr(m, "used", None)), None

    def sample(self) -> list[GpuSample]:
        """One reading of every GPU (~0.015 ms each)."""
        n = self._nvml
        if not self._handles:
            raise errors.backend_error("NVML is not open")
        now = time.time()
        out = []
        with self._lock:
            for i, (dev, h) in enumerate(zip(self._devices, self._handles, strict=False)):
                util = self._optional(n.nvmlDeviceGetUtilizationRates, h)
                total, used, reserved = self._memory(h)
                power = self._optional(n.nvmlDeviceGetPowerUsage, h)
                # The enforced limit costs ~0.002 ms; nvmlDeviceGetPowerManagementLimit ~0.18 ms (H200).
                limit = self._optional(n.nvmlDeviceGetEnforcedPowerLimit, h)
                if limit is None:
                    limit = self._optional(n.nvmlDeviceGetPowerManagementLimit, h)
                pstate = self._optional(n.nvmlDeviceGetPerformanceState, h)
                rates: dict[str, float | None] = {}
                if i < len(self._counters) and self._counters[i]:
                    readings = self._counter_readings(h)
                    rates = self._rates[i].update(readings or {})
                out.append(
                    GpuSample(
                        index=dev.index,
                        uuid=dev.uuid,
                        timestamp=now,
                        utilization_gpu=_num(getattr(util, "gpu", None)),
                        utilization_memory=_num(getattr(util, "memory", None)),
                        memory_used_mib=used,
                        memory_total_mib=total,
                        memory_reserved_mib=reserved,
                        temperature_c=_num(
                            self._optional(n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU)
                        ),
                        power_draw_w=_scaled(power, 1000),
                        power_limit_w=_scaled(limit, 1000),
                        clock_sm_mhz=_num(self._optional(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM)),
                        clock_mem_mhz=_num(self._optional(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM)),
                        pstate=f"P{pstate}" if isinstance(pstate, int) and 0 <= pstate < 32 else None,
                        pcie_tx_mib_s=rates.get("pcie_tx"),
                        pcie_rx_mib_s=rates.get("pcie_rx"),
                        nvlink_tx_mib_s=rates.get("nvlink_tx"),
                        nvlink_rx_mib_s=rates.get("nvlink_rx"),
                    )
                )
        return out

    def _running(self, h: Any) -> list[Any]:
        n = self._nvml
        for name in (
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetComputeRunningProcesses_v2",
            "nvmlDeviceGetComputeRunningProcesses",
        ):
            fn = getattr(n, name, None)
            if fn is None:
                continue
            try:
                running = fn(h)
                return list(running) if isinstance(running, (list, tuple)) else []
            except n.NVMLError as err:
                if err.value == n.NVML_ERROR_FUNCTION_NOT_FOUND:
                    continue
                if err.value in (n.NVML_ERROR_NOT_SUPPORTED, n.NVML_ERROR_NO_PERMISSION):
                    return []
                raise self._error(err) from None
        return []

    def processes(self) -> list[GpuProcess]:
        """Compute processes on every GPU (pid, used memory, name; MIG instance when in one)."""
        n = self._nvml
        if not self._handles:
            raise errors.backend_error("NVML is not open")
        procs = []
        for dev, h in zip(self._devices, self._handles, strict=False):
            for p in self._running(h) or []:
                name = self._optional(n.nvmlSystemGetProcessName, getattr(p, "pid", None))
                used = getattr(p, "usedGpuMemory", None)
                gi = getattr(p, "gpuInstanceId", None)
                ci = getattr(p, "computeInstanceId", None)
                pid = _int(getattr(p, "pid", None))
                if pid is None or not 0 < pid < 2**31:
                    continue  # not a process this machine could have
                gi, ci = _int(gi), _int(ci)
                procs.append(
                    GpuProcess(
                        pid=pid,
                        gpu_uuid=dev.uuid,
                        used_memory_mib=_mib(used),
                        name=_text(name) if name else None,
                        gpu_index=dev.index,
                        gpu_instance_id=None if gi in (None, NO_INSTANCE) else gi,
                        compute_instance_id=None if ci in (None, NO_INSTANCE) else ci,
                    )
                )
        return procs


def _num(value: Any) -> float | None:
    """An NVML number as a finite float (None when absent, not a number, or not finite)."""
    return finite(value)


def _scaled(value: Any, divisor: float) -> float | None:
    number = _num(value)
    return finite(number / divisor) if number is not None else None


def _mib(value: Any) -> float | None:
    """Bytes as MiB; None for NVML's "not available" and for what no GPU could hold."""
    return _scaled(value, MIB)


def _int(value: Any) -> int | None:
    """An NVML integer, None when it is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None

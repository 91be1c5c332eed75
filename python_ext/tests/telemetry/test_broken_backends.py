"""A backend that fails in a way nobody planned for (a broken NVML binding, a parser bug) is a status
with its reason: `auto` still falls back to nvidia-smi, and the sampler outlives it."""

from __future__ import annotations

import time

import pynvml
from kerasgpu.telemetry import Sampler, probe
from kerasgpu.telemetry import types as t


def broken_binding(*args, **kwargs):
    raise TypeError("an nvidia-ml-py that does not match the driver")


def test_auto_falls_back_to_nvidia_smi_when_the_nvml_binding_is_broken(fake_smi, monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlInit", broken_binding)
    monkeypatch.setenv("KERASGPU_BACKEND", "auto")
    snap = probe()
    assert snap.status.state == "ok" and snap.status.backend == "smi"
    assert snap.devices[0].name == "NVIDIA H200"


def test_a_broken_nvml_binding_is_a_status_with_its_reason(fake_smi, monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlInit", broken_binding)
    snap = probe(backend="nvml")
    assert (snap.status.state, snap.status.code) == ("error", t.BACKEND_ERROR)
    assert "TypeError: an nvidia-ml-py that does not match the driver" in snap.status.reason


def test_the_sampler_reports_a_bug_and_recovers_by_itself(fake_smi, monkeypatch):
    from kerasgpu.telemetry import smi

    real = smi.readings
    monkeypatch.setattr(smi, "readings", lambda *a: 1 / 0)  # a bug in the one-shot conversion
    sampler = Sampler(backend="smi", interval_ms=100, retry_seconds=0.2, timeout=5.0)
    statuses: list[t.BackendStatus] = []
    readings: list = []
    sampler.subscribe(readings.append, statuses.append)
    try:
        deadline = time.monotonic() + 30
        while not any(s.code == t.BACKEND_ERROR for s in statuses):
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)
        assert "ZeroDivisionError" in sampler.status().reason
        assert sampler.running
        monkeypatch.setattr(smi, "readings", real)
        while not (statuses[-1].state == "ok" and readings):
            assert time.monotonic() < deadline + 30, statuses
            time.sleep(0.05)
    finally:
        sampler.stop()


def test_a_process_list_that_is_not_a_list_reads_as_none_running():
    """Found by the NVML fuzz test: the newest call missing, the older one answering a number."""
    from types import SimpleNamespace

    from kerasgpu.telemetry.nvml import NvmlBackend

    def missing(*args):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    module = SimpleNamespace(**{n: getattr(pynvml, n) for n in dir(pynvml) if n.isupper()})
    module.NVMLError = pynvml.NVMLError
    module.nvmlDeviceGetComputeRunningProcesses_v3 = missing
    module.nvmlDeviceGetComputeRunningProcesses_v2 = lambda h: 1
    backend = NvmlBackend(module=module)
    backend._nvml = module
    backend._handles = ["h"]
    backend._devices = [t.DeviceInfo(0, "GPU-0", "NVIDIA H200", 143771.0, "580")]
    assert backend.processes() == []

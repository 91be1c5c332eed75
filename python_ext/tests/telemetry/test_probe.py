"""probe(): one look at the GPUs through the fake nvidia-smi, and every way it can fail."""

from __future__ import annotations

import pytest
from kerasgpu.telemetry import probe
from kerasgpu.telemetry import types as t

H200_UUID = "GPU-2cc6da62-3a1f-977c-8ec3-06eda63b09f3"


def nvml_works() -> bool:
    from gpu_env import real_gpu_reason

    return real_gpu_reason() is None


def test_idle_h200(fake_smi):
    snap = probe()
    assert snap.status.state == "ok" and snap.status.backend == "smi"
    (dev,) = snap.devices
    assert (dev.index, dev.uuid, dev.name) == (0, H200_UUID, "NVIDIA H200")
    assert dev.memory_total_mib == 143771
    assert (dev.driver_version, dev.cuda_driver_version) == ("580.159.04", "13.0")
    assert (dev.pci_bus_id, dev.compute_capability, dev.mig_mode) == ("00000000:00:06.0", "9.0", "Disabled")
    (s,) = snap.samples
    assert (s.memory_used_mib, s.memory_reserved_mib, s.utilization_gpu) == (0, 616, 0)
    assert (s.power_draw_w, s.power_limit_w, s.pstate) == (80.72, 700, "P0")
    assert snap.processes == []


def test_loaded_h200_shows_the_training_process(fake_smi):
    fake_smi.set(state="load")
    snap = probe()
    (s,) = snap.samples
    assert (s.utilization_gpu, s.memory_used_mib, s.temperature_c) == (100, 25715, 57)
    assert (s.clock_sm_mhz, s.clock_mem_mhz, s.power_draw_w) == (1470, 3201, 690.6)
    (p,) = snap.processes
    assert (p.pid, p.name, p.used_memory_mib, p.gpu_uuid) == (542, "python3", 25706, H200_UUID)
    assert p.gpu_index == 0
    assert p.gpu_instance_id is None and p.compute_instance_id is None


def test_four_gpus(fake_smi):
    fake_smi.set(state="load", gpus=4)
    snap = probe()
    assert [d.index for d in snap.devices] == [0, 1, 2, 3]
    assert len({d.uuid for d in snap.devices}) == 4 and len({d.pci_bus_id for d in snap.devices}) == 4
    assert [s.uuid for s in snap.samples] == [d.uuid for d in snap.devices]
    assert sorted(p.gpu_index for p in snap.processes) == [0, 1, 2, 3]


def test_several_processes_one_a_path(fake_smi):
    fake_smi.set(state="multi")
    procs = {p.pid: p for p in probe().processes}
    assert sorted(procs) == [417, 418, 419, 476]
    assert procs[476].name == "/srv/venvs/train/bin/python3" and procs[418].used_memory_mib == 31558


@pytest.mark.parametrize(
    "variant, missing",
    [
        ("geforce", ["power_limit_w", "utilization_memory", "memory_reserved_mib"]),
        ("mig", ["utilization_gpu", "utilization_memory"]),
        ("quirky", ["temperature_c", "power_draw_w", "clock_sm_mhz", "clock_mem_mhz", "pstate"]),
        ("old_driver", ["memory_reserved_mib"]),
    ],
)
def test_values_a_gpu_lacks_are_none_never_zero(fake_smi, variant, missing):
    fake_smi.set(state="load", variant=variant)
    snap = probe()
    assert snap.status.state == "ok", snap.status
    (s,) = snap.samples
    for field in missing:
        assert getattr(s, field) is None, field
    assert s.memory_used_mib == (20470 if variant == "geforce" else 25715)  # the rest still reads
    if variant == "geforce":
        assert snap.devices[0].name == "NVIDIA GeForce RTX 4090" and s.power_draw_w == 690.6
    if variant == "mig":
        assert snap.devices[0].mig_mode == "Enabled"
    if variant == "old_driver":
        assert snap.devices[0].compute_capability is None and snap.devices[0].name == "NVIDIA H200"


@pytest.mark.parametrize(
    "fail, code, state, reason, hint",
    [
        ("no_driver", t.DRIVER_NOT_LOADED, "unavailable", "NVIDIA driver is not running", "modprobe nvidia"),
        ("mismatch", t.DRIVER_MISMATCH, "unavailable", "does not match", "reload the nvidia kernel module"),
        ("no_devices", t.NO_DEVICES, "unavailable", "found no GPU", "was given a GPU"),
        ("gpu_lost", t.GPU_LOST, "error", "00000000:00:06.0 stopped responding", "reboot"),
        ("malformed", t.MALFORMED, "error", "could not be read", "nvidia-smi --version"),
    ],
)
def test_failures_become_a_status_with_reason_and_hint(fake_smi, fail, code, state, reason, hint):
    fake_smi.set(state="load", fail=fail)
    snap = probe()
    assert (snap.status.code, snap.status.state, snap.status.backend) == (code, state, "smi")
    assert reason in snap.status.reason
    assert hint in snap.status.hint
    assert snap.samples == []


def test_hang_times_out(fake_smi):
    fake_smi.set(fail="hang")
    snap = probe(timeout=1)
    assert snap.status.code == t.TIMEOUT and snap.status.state == "error"
    assert "did not answer within 1 s" in snap.status.reason


def test_no_nvidia_smi_on_path(no_smi):
    snap = probe()
    assert snap.status.code == t.SMI_NOT_FOUND and snap.status.state == "unavailable"
    assert "nvidia-smi was not found" in snap.status.reason
    assert "--gpus all" in snap.status.hint


def test_explicit_smi_path_that_does_not_exist(fake_smi, tmp_path):
    snap = probe(backend="smi", smi_path=str(tmp_path / "nvidia-smi"))
    assert snap.status.code == t.SMI_NOT_FOUND and str(tmp_path) in snap.status.reason


def test_explicit_smi_path(fake_smi, no_smi):
    snap = probe(backend="smi", smi_path=str(fake_smi.exe))
    assert snap.status.state == "ok" and snap.devices[0].name == "NVIDIA H200"


def test_backend_none_and_bad_names(fake_smi, monkeypatch):
    snap = probe(backend="none")
    assert snap.status.code == t.DISABLED and snap.status.backend == "none"
    with pytest.raises(ValueError, match="not a GPU telemetry backend"):
        probe(backend="cuda")
    monkeypatch.setenv("KERASGPU_BACKEND", "none")
    assert probe().status.code == t.DISABLED
    assert probe(backend="smi").status.state == "ok"  # an explicit choice wins over the variable


def test_auto_falls_back_to_nvidia_smi_without_nvml(fake_smi, monkeypatch):
    if nvml_works():
        pytest.skip("NVML works here, so auto picks it")
    monkeypatch.setenv("KERASGPU_BACKEND", "auto")
    snap = probe()
    assert snap.status.backend == "smi" and snap.devices[0].name == "NVIDIA H200"


def test_auto_with_nothing_reports_nvidia_smi_missing(no_smi, monkeypatch):
    if nvml_works():
        pytest.skip("NVML works here")
    monkeypatch.setenv("KERASGPU_BACKEND", "auto")
    snap = probe()
    assert (snap.status.backend, snap.status.code) == ("none", t.SMI_NOT_FOUND)


def test_nvml_backend_without_nvml_says_so(no_smi):
    if nvml_works():
        pytest.skip("NVML works here")
    snap = probe(backend="nvml")
    assert snap.status.code == t.NVML_NOT_FOUND and snap.status.backend == "nvml"
    assert "NVIDIA Management Library" in snap.status.reason

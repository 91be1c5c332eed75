"""NVML backend on a real NVIDIA GPU (skipped without one).

Runs on a GPU machine with nvidia-ml-py and pytest only (no Jupyter):
`PYTHONPATH=python_ext pytest python_ext/tests/telemetry/test_nvml_gpu.py -m gpu`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading

import pytest
from kerasgpu.telemetry import Sampler, probe
from kerasgpu.telemetry.nvml import NvmlBackend
from kerasgpu.telemetry.smi import query_gpus

pytestmark = pytest.mark.gpu

# A child that holds a CUDA context and 256 MiB through the driver API (libcuda ships with the driver).
CUDA_CHILD = r"""
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
assert cuda.cuInit(0) == 0, "cuInit failed"
dev = ctypes.c_int()
assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
ctx = ctypes.c_void_p()
assert cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev) == 0, "cuCtxCreate failed"
ptr = ctypes.c_void_p()
assert cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(256 << 20)) == 0, "cuMemAlloc failed"
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def nvml():
    b = NvmlBackend()
    b.open()
    yield b
    b.close()


def test_devices_are_real_and_complete(nvml):
    import pynvml

    devices = nvml.devices()
    assert len(devices) == pynvml.nvmlDeviceGetCount() >= 1
    for i, d in enumerate(devices):
        assert d.index == i
        assert d.uuid.startswith(("GPU-", "MIG-")) and "NVIDIA" in d.name
        assert d.memory_total_mib and d.memory_total_mib > 1024
        assert d.driver_version and d.cuda_driver_version and d.pci_bus_id
        major, minor = d.compute_capability.split(".")
        assert int(major) >= 3 and int(minor) >= 0
        assert d.mig_mode in (None, "Enabled", "Disabled")


def test_a_sample_is_plausible(nvml):
    for s in nvml.sample():
        assert 0 <= s.utilization_gpu <= 100 or s.utilization_gpu is None
        assert 0 <= s.memory_used_mib <= s.memory_total_mib
        if s.memory_reserved_mib is not None:  # v2 memory call: used excludes the driver's reservation
            assert s.memory_used_mib + s.memory_reserved_mib <= s.memory_total_mib + 1
        assert s.temperature_c is None or 0 < s.temperature_c < 120
        assert s.power_draw_w is None or 0 < s.power_draw_w < 2000
        assert s.power_limit_w is None or s.power_limit_w > 0
        assert s.clock_sm_mhz is None or s.clock_sm_mhz > 0
        assert s.pstate is None or s.pstate.startswith("P")


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="nvidia-smi is not installed")
def test_nvml_and_nvidia_smi_agree(nvml):
    devices, samples = query_gpus(shutil.which("nvidia-smi"))
    ours = nvml.devices()
    assert [(d.index, d.uuid, d.name, d.pci_bus_id) for d in ours] == [
        (d.index, d.uuid, d.name, d.pci_bus_id) for d in devices
    ]
    assert [d.memory_total_mib for d in ours] == pytest.approx([d.memory_total_mib for d in devices], abs=1)
    assert [d.compute_capability for d in ours] == [d.compute_capability for d in devices]
    # The v2 memory call makes "used" agree with nvidia-smi (v1 adds ~615 MiB of reservation on an H200).
    ours_used = [s.memory_used_mib for s in nvml.sample()]
    assert ours_used == pytest.approx([s.memory_used_mib for s in samples], abs=64)


def test_a_process_holding_gpu_memory_is_listed(nvml):
    child = subprocess.Popen(
        [sys.executable, "-c", CUDA_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        procs = [p for p in nvml.processes() if p.pid == child.pid]
        assert procs, f"pid {child.pid} not among {nvml.processes()}"
        p = procs[0]
        assert p.used_memory_mib is None or p.used_memory_mib >= 256
        assert p.gpu_uuid in {d.uuid for d in nvml.devices()}
        if nvml.devices()[p.gpu_index].mig_mode != "Enabled":
            assert p.gpu_instance_id is None and p.compute_instance_id is None  # not 0xFFFFFFFF
    finally:
        child.kill()
        child.wait()


def test_probe_and_auto_choose_nvml():
    snap = probe(backend="auto")
    assert snap.status.state == "ok" and snap.status.backend == "nvml"
    assert len(snap.samples) == len(snap.devices) >= 1


def test_sampler_on_nvml():
    sampler = Sampler(backend="nvml", interval_ms=100)
    got: list = []
    done = threading.Event()

    def on_sample(samples):
        got.append(samples)
        if len(got) >= 5:
            done.set()

    unsubscribe = sampler.subscribe(on_sample)
    try:
        assert done.wait(30), "five readings"
    finally:
        unsubscribe()
    assert sampler.status().backend == "nvml" and not sampler.running
    stamps = [r[0].timestamp for r in got]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


# A child that copies 1 GiB to the GPU 8 times over PCIe (host to device), then waits.
CUDA_COPY_CHILD = r"""
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
assert cuda.cuInit(0) == 0
dev = ctypes.c_int(); assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
ctx = ctypes.c_void_p(); assert cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev) == 0
n = 1 << 30
ptr = ctypes.c_void_p(); assert cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(n)) == 0
host = ctypes.create_string_buffer(n)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(8):
    assert cuda.cuMemcpyHtoD_v2(ptr, host, ctypes.c_size_t(n)) == 0
print("copied", flush=True)
sys.stdin.read()
"""


def test_pcie_throughput_comes_from_the_counters_and_sees_a_copy(nvml):
    """NVML's PCIe byte counters (field values, no 20 ms throughput call) show an 8 GiB upload."""
    dev = nvml.devices()[0]
    if dev.pcie_throughput_reason is not None:
        pytest.skip(f"GPU 0: {dev.pcie_throughput_reason}")
    child = subprocess.Popen(
        [sys.executable, "-c", CUDA_COPY_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        import time

        nvml.sample()  # first reading: no rate yet
        t0 = time.monotonic()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "copied"
        s = nvml.sample()[0]
        elapsed = time.monotonic() - t0
        # 8 GiB went to the GPU since the previous reading: received by the GPU (rx), at least 80 %
        # of 8 GiB over the interval, and no faster than any PCIe link (a unit off by 1024 fails).
        assert s.pcie_rx_mib_s is not None, s
        assert 0.8 * 8192 / elapsed <= s.pcie_rx_mib_s <= 70_000, (s, elapsed)
        assert s.pcie_tx_mib_s is not None and s.pcie_tx_mib_s >= 0
    finally:
        child.kill()
        child.wait()

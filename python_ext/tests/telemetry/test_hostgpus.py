"""The kernel's own host GPUs as comm messages (kerasgpu.kernel.hostgpus), with a real sampler on the H200
replay: nothing is read until the frontend watches, readings flow while it does, the kernel's own
GPU process is marked as its own, and unwatching stops the sampler thread."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from kerasgpu.kernel.hostgpus import HostGpus
from kerasgpu.telemetry import Sampler


class Frontend:
    """Collects what the kernel would send over the comm (JSON round trip, as the comm does)."""

    def __init__(self):
        self.messages: list[dict] = []
        self.cond = threading.Condition()

    def publish(self, data: dict) -> None:
        with self.cond:
            self.messages.append(json.loads(json.dumps(data, allow_nan=False)))
            self.cond.notify_all()

    def wait_for(self, predicate, what: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} in {self.messages[-5:]}")
                self.cond.wait(left)


@pytest.fixture
def sampler(fake_smi):
    s = Sampler(backend="smi", interval_ms=200, history_seconds=10)
    yield s
    s.stop()


def test_the_kernel_streams_its_hosts_gpus_only_while_watched(fake_smi, sampler):
    # The kernel's own pid holds the GPU memory in this replay.
    fake_smi.set(state="load", procs=[{"pid": os.getpid(), "used_mib": 25706, "name": "python3", "gpu": 0}])
    frontend = Frontend()
    gpus = HostGpus(frontend.publish, sampler=sampler, host="gpu-node-7")
    assert gpus.handle({"type": "training"}) is False  # not ours: left to the training code
    time.sleep(0.5)
    assert frontend.messages == [] and not sampler.running

    assert gpus.handle({"type": "gpus_watch", "watch": True}) is True
    status = frontend.wait_for(lambda m: m["event"] == "status" and m["status"]["state"] == "ok", "ok status")
    assert status["host"] == "gpu-node-7" and status["devices"][0]["name"] == "NVIDIA H200"
    assert "state" not in status  # nbclient would read it as widget state
    reading = frontend.wait_for(lambda m: m["event"] == "samples" and "processes" in m, "samples")
    [sample] = reading["samples"]
    assert (sample["utilization_gpu"], sample["memory_used_mib"]) == (100, 25715)
    [proc] = reading["processes"]
    assert proc["pid"] == os.getpid() and proc["this_kernel"] is True

    gpus.handle({"type": "gpus_watch", "watch": False})
    assert not sampler.running
    count = len(frontend.messages)
    time.sleep(0.6)
    assert len(frontend.messages) == count


def test_no_driver_on_the_kernels_host_is_a_status_not_an_error(no_smi):
    sampler = Sampler(backend="smi", interval_ms=200, history_seconds=10)
    frontend = Frontend()
    gpus = HostGpus(frontend.publish, sampler=sampler, host="cpu-node")
    try:
        gpus.watch()
        status = frontend.wait_for(lambda m: m["event"] == "status" and m["status"]["reason"], "a reason")
        assert status["status"]["state"] != "ok" and status["devices"] == []
        assert "nvidia-smi was not found" in status["status"]["reason"]
    finally:
        gpus.close()
        sampler.stop()

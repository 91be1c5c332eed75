"""The Sampler against the fake nvidia-smi: one long-lived stream, history, failures and recovery."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from kerasgpu.telemetry import Sampler
from kerasgpu.telemetry import types as t


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stream_pids() -> list[int]:
    """Our child nvidia-smi processes that stream (-lms)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"-lms" in cmd and any(c.endswith(b"nvidia-smi") for c in cmd):
            pids.append(int(d.name))
    return pids


class Recorder:
    """Collects what a subscriber sees."""

    def __init__(self):
        self.readings: list[list] = []
        self.statuses: list[t.BackendStatus] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def on_sample(self, samples):
        with self.lock:
            self.readings.append(samples)
            self.threads.add(threading.current_thread().name)

    def on_status(self, status):
        with self.lock:
            self.statuses.append(status)

    def count(self) -> int:
        with self.lock:
            return len(self.readings)

    def codes(self) -> list[str]:
        with self.lock:
            return [s.code for s in self.statuses]


@pytest.fixture
def sampler_factory():
    made: list[Sampler] = []

    def make(**kw) -> Sampler:
        kw.setdefault("interval_ms", 100)
        kw.setdefault("retry_seconds", 0.2)
        kw.setdefault("timeout", 5.0)
        s = Sampler(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.mark.parametrize("bad", [0, 50, 99, -1000, "fast", None, True, float("nan"), float("inf")])
def test_bad_intervals_are_refused_with_a_clear_message(bad):
    with pytest.raises(ValueError, match="interval_ms must"):
        Sampler(backend="none", interval_ms=bad)


@pytest.mark.parametrize("bad", [0, -5, "long", None, float("inf")])
def test_bad_history_is_refused(bad):
    with pytest.raises(ValueError, match="history_seconds must"):
        Sampler(backend="none", history_seconds=bad)


def test_bad_backend_name_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="not a GPU telemetry backend"):
        Sampler(backend="opencl")
    monkeypatch.setenv("KERASGPU_BACKEND", "rocm")
    with pytest.raises(ValueError, match="KERASGPU_BACKEND='rocm'"):
        Sampler()


def test_one_stream_process_serves_all_readings_and_stops_with_the_last_subscriber(fake_smi, sampler_factory):
    fake_smi.set(state="load", gpus=4)
    sampler = sampler_factory()
    a, b = Recorder(), Recorder()
    assert not sampler.running
    unsub_a = sampler.subscribe(a.on_sample, a.on_status)
    unsub_b = sampler.subscribe(b.on_sample)
    wait_for(lambda: a.count() >= 3, what="first readings")
    first = stream_pids()
    assert len(first) == 1, "one long-lived nvidia-smi -lms process"
    wait_for(lambda: a.count() >= 8, what="more readings")
    assert stream_pids() == first, "not a spawn per sample"
    reading = a.readings[-1]
    assert [s.index for s in reading] == [0, 1, 2, 3]
    assert all(s.memory_used_mib == 25715 and s.utilization_gpu == 100 for s in reading)
    assert a.threads == {"kerasgpu-sampler"}
    assert b.count() > 0 and a.codes()[0] == t.OK
    assert sampler.status().state == "ok" and len(sampler.devices()) == 4
    assert [s.index for s in sampler.latest()] == [0, 1, 2, 3]
    unsub_a()
    assert sampler.running, "one subscriber is left"
    unsub_b()
    unsub_b()  # twice is harmless
    assert not sampler.running
    wait_for(lambda: not stream_pids(), what="the stream process to end")


def test_history_is_a_bounded_ring_buffer_in_time_order(fake_smi, sampler_factory):
    fake_smi.set(state="load", gpus=2)
    sampler = sampler_factory(history_seconds=1)  # 10 readings at 100 ms
    rec = Recorder()
    unsub = sampler.subscribe(rec.on_sample)
    wait_for(lambda: rec.count() >= 15, what="15 readings")
    unsub()
    history = sampler.history()
    assert len(history) == 10 * 2
    stamps = [s.timestamp for s in history]
    assert stamps == sorted(stamps)
    assert history[-2:] == rec.readings[-1]
    assert len(sampler.history(0)) <= 2
    with pytest.raises(ValueError):
        sampler.history(-1)


def test_gpu_lost_mid_run_then_recovered(fake_smi, sampler_factory):
    fake_smi.set(state="load")
    fake_smi.reset_counter()
    fake_smi.set(fail="lost_after=6")
    sampler = sampler_factory()
    rec = Recorder()
    sampler.subscribe(rec.on_sample, rec.on_status)
    wait_for(lambda: t.GPU_LOST in rec.codes(), what="the GPU lost status")
    status = sampler.status()
    assert status.state == "error" and "stopped responding" in status.reason and "reboot" in status.hint
    assert sampler.latest() == [] and sampler.processes() == []
    assert sampler.running, "the sampler keeps running"
    before = rec.count()
    fake_smi.set(fail="")
    wait_for(lambda: rec.codes()[-1] == t.OK and rec.count() > before + 2, what="recovery")
    assert sampler.latest()[0].memory_used_mib == 25715


def test_hang_times_out_into_an_error_then_recovers(fake_smi, sampler_factory):
    fake_smi.set(state="idle")
    sampler = sampler_factory(timeout=1.0, stall_timeout=1.0)
    rec = Recorder()
    sampler.subscribe(rec.on_sample, rec.on_status)
    wait_for(lambda: rec.count() >= 2, what="readings")
    fake_smi.set(fail="hang")  # the running stream goes silent
    wait_for(lambda: t.TIMEOUT in rec.codes(), what="the timeout status")
    status = sampler.status()
    assert status.state == "error" and "did not answer" in status.reason
    assert sampler.running
    fake_smi.set(fail="", state="load")
    wait_for(lambda: rec.codes()[-1] == t.OK, what="recovery")
    wait_for(lambda: sampler.latest() and sampler.latest()[0].memory_used_mib == 25715, what="load readings")


def test_a_killed_stream_is_restarted(fake_smi, sampler_factory):
    sampler = sampler_factory()
    rec = Recorder()
    sampler.subscribe(rec.on_sample, rec.on_status)
    wait_for(lambda: rec.count() >= 2, what="readings")
    (pid,) = stream_pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: stream_pids() and stream_pids() != [pid], what="a new stream process")
    n = rec.count()
    wait_for(lambda: rec.count() > n + 2 and sampler.status().state == "ok", what="readings again")


@pytest.mark.parametrize(
    "fail, code",
    [("no_driver", t.DRIVER_NOT_LOADED), ("mismatch", t.DRIVER_MISMATCH), ("malformed", t.MALFORMED)],
)
def test_failing_from_the_start_keeps_trying(fake_smi, sampler_factory, fail, code):
    fake_smi.set(fail=fail)
    sampler = sampler_factory()
    rec = Recorder()
    sampler.subscribe(rec.on_sample, rec.on_status)
    wait_for(lambda: code in rec.codes(), what=f"status {code}")
    assert sampler.status().reason and sampler.status().hint
    assert sampler.devices() == [] and sampler.latest() == []
    fake_smi.set(fail="", state="load")
    wait_for(lambda: rec.codes()[-1] == t.OK and rec.count() > 0, what="recovery")
    assert sampler.devices()[0].name == "NVIDIA H200"


def test_idle_sampler_answers_with_one_look(fake_smi, sampler_factory):
    fake_smi.set(state="load")
    sampler = sampler_factory()
    assert sampler.status().state == "ok"
    assert sampler.devices()[0].memory_total_mib == 143771
    assert sampler.latest()[0].utilization_gpu == 100
    assert [p.pid for p in sampler.processes()] == [542]
    assert not sampler.running and sampler.history() == []
    snap = sampler.snapshot()
    assert snap.to_json()["processes"][0]["used_memory_mib"] == 25706


def test_no_nvidia_smi(no_smi, sampler_factory):
    sampler = sampler_factory()
    status = sampler.status()
    assert (status.state, status.code) == ("unavailable", t.SMI_NOT_FOUND)
    assert sampler.devices() == [] and sampler.latest() == [] and sampler.processes() == []
    rec = Recorder()
    sampler.subscribe(rec.on_sample, rec.on_status)
    wait_for(lambda: rec.codes() == [t.SMI_NOT_FOUND], what="the not-found status")
    assert sampler.running


def test_backend_none_is_a_status(fake_smi, sampler_factory, monkeypatch):
    monkeypatch.setenv("KERASGPU_BACKEND", "none")
    sampler = sampler_factory()
    assert sampler.status().code == t.DISABLED and sampler.devices() == []


def test_a_failing_subscriber_does_not_stop_the_others(fake_smi, sampler_factory):
    sampler = sampler_factory()
    rec = Recorder()

    def broken(samples):
        raise RuntimeError("subscriber bug")

    sampler.subscribe(broken)
    sampler.subscribe(rec.on_sample)
    wait_for(lambda: rec.count() >= 3, what="readings despite a broken subscriber")


def test_processes_are_cached(fake_smi, sampler_factory):
    fake_smi.set(state="load")
    sampler = sampler_factory(processes_ttl=3600)
    sampler.subscribe(lambda s: None)
    wait_for(lambda: sampler.status().state == "ok", what="ok")
    assert [p.pid for p in sampler.processes()] == [542]
    fake_smi.set(procs=[{"pid": 4242, "used_mib": 1000, "name": "python", "gpu": 0}])
    assert [p.pid for p in sampler.processes()] == [542], "cached"
    fresh = sampler_factory(processes_ttl=0)
    fresh.subscribe(lambda s: None)
    wait_for(lambda: fresh.status().state == "ok", what="ok")
    assert [(p.pid, p.used_memory_mib) for p in fresh.processes()] == [(4242, 1000)]


def test_trace_replay_moves(fake_smi, sampler_factory):
    fake_smi.set(state="trace")
    fake_smi.reset_counter()
    sampler = sampler_factory()
    rec = Recorder()
    sampler.subscribe(rec.on_sample)
    wait_for(lambda: rec.count() >= 5, what="readings")
    fake_smi.set(state="trace")
    # Jump the replay to the healthy training phase.
    fake_smi.counter_file.write_text("200")
    wait_for(
        lambda: any(r[0].utilization_gpu and r[0].utilization_gpu > 80 for r in rec.readings),
        what="a busy reading from the training phase",
    )

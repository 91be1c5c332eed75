"""The GPUs this kernel trains on, read about once a second on the telemetry sampler's thread.

One `Sampler` per kernel process (NVML, else one long-lived `nvidia-smi -lms`
process): nothing is spawned per training step. A `GpuWatch` subscribes while a
`fit` runs and keeps per-GPU sums of utilization and the peak memory since the
last `take()`, so the monitor asks for an epoch's numbers in O(1).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

INTERVAL_ENV = "KERASGPU_WATCH_INTERVAL_MS"
PROCESS_REFRESH_S = 5.0

_lock = threading.Lock()
_sampler = None


def shared_sampler():
    """The kernel's one telemetry sampler (created on first use; its thread runs only while watched)."""
    global _sampler
    with _lock:
        if _sampler is None:
            from ...telemetry import Sampler

            interval = int(os.environ.get(INTERVAL_ENV, "1000") or 1000)
            _sampler = Sampler(interval_ms=max(100, interval), history_seconds=120)
        return _sampler


def own_pids() -> set[int]:
    """This process and its children (a GPU process may be a child, e.g. a data loader)."""
    pids = {os.getpid()}
    try:
        import psutil

        pids.update(p.pid for p in psutil.Process().children(recursive=True))
    except Exception:  # psutil is optional
        pass
    return pids


@dataclass
class _Acc:
    util_sum: float = 0.0
    util_n: int = 0
    mem_peak: float | None = None

    def add(self, util: float | None, mem: float | None) -> None:
        if util is not None:
            self.util_sum += util
            self.util_n += 1
        if mem is not None and (self.mem_peak is None or mem > self.mem_peak):
            self.mem_peak = mem


@dataclass
class GpuReading:
    """One GPU over a window: mean utilization, readings, peak memory (driver view), static details."""

    index: int
    name: str | None
    util_mean_pct: float | None
    samples: int
    memory_used_mib: float | None
    memory_total_mib: float | None
    compute_capability: str | None
    util_now_pct: float | None = None


@dataclass
class WatchWindow:
    """What the watch saw since the last `take()`."""

    gpus: dict[int, GpuReading] = field(default_factory=dict)
    used: list[int] = field(default_factory=list)  # indexes that list one of our pids (may be empty)
    driver_gpus: int = 0
    status: str = "starting"  # the sampler's state: ok | unavailable | error | starting
    reason: str | None = None


class GpuWatch:
    """Subscribes to the kernel's sampler while a `fit` runs; `take()` returns and restarts a window."""

    def __init__(self, sampler=None):
        self._sampler = sampler
        self._unsubscribe = None
        self._lock = threading.Lock()
        self._acc: dict[int, _Acc] = {}
        self._latest: dict[int, tuple[float | None, float | None]] = {}
        self._used: list[int] = []
        self._procs_at = -1e18
        self._fresh = True
        self._count = 0
        self.recording = False  # False during warm-up steps: their readings are dropped

    def start(self) -> None:
        # A new fit: which GPUs this process uses is read afresh, not carried over from the last one.
        with self._lock:
            self._used = []
            self._procs_at = -1e18
            self._fresh = True
            self._acc = {}  # the last fit's readings are not this one's
        if self._unsubscribe is not None:
            return
        sampler = self._sampler or shared_sampler()
        self._sampler = sampler
        self._unsubscribe = sampler.subscribe(self._on_samples)

    def stop(self) -> None:
        unsub, self._unsubscribe = self._unsubscribe, None
        if unsub is not None:
            unsub()

    def _on_samples(self, samples) -> None:  # on the sampler thread
        now = time.monotonic()
        if now - self._procs_at >= PROCESS_REFRESH_S:
            self._procs_at = now
            self._refresh_processes()
        with self._lock:
            self._count = len(samples)
            for s in samples:
                self._latest[s.index] = (s.utilization_gpu, s.memory_used_mib)
                if self.recording:
                    self._acc.setdefault(s.index, _Acc()).add(s.utilization_gpu, s.memory_used_mib)

    def _refresh_processes(self) -> None:
        fresh, self._fresh = self._fresh, False
        try:
            # The first look of a fit asks the GPUs now: the sampler's cached list may predate it.
            procs = self._sampler.processes(max_age=0.0) if fresh else self._sampler.processes()
        except Exception:
            return
        pids = own_pids()
        used = sorted({p.gpu_index for p in procs if p.pid in pids and p.gpu_index is not None})
        with self._lock:
            self._used = used

    def latest_util(self, indexes: list[int]) -> float | None:
        """The newest utilization (mean over `indexes`), for the live card."""
        with self._lock:
            vals = [
                self._latest[i][0] for i in indexes if i in self._latest and self._latest[i][0] is not None
            ]
        return sum(vals) / len(vals) if vals else None

    def take(self, reset: bool = True) -> WatchWindow:
        """The window since the last take (per-GPU means and peaks); starts a new one when `reset`."""
        sampler = self._sampler or shared_sampler()
        status = sampler.status() if sampler.running else None
        devices = (
            {d.index: d for d in sampler.devices()} if status is not None and status.state == "ok" else {}
        )
        with self._lock:
            acc, latest, used, count = self._acc, dict(self._latest), list(self._used), self._count
            if reset:
                self._acc = {}
        win = WatchWindow(used=used, driver_gpus=count or len(devices))
        if status is not None:
            win.status, win.reason = status.state, status.reason
        for index in sorted(set(latest) | set(devices)):
            a = acc.get(index, _Acc())
            d = devices.get(index)
            win.gpus[index] = GpuReading(
                index=index,
                name=d.name if d else None,
                util_mean_pct=a.util_sum / a.util_n if a.util_n else None,
                samples=a.util_n,
                memory_used_mib=a.mem_peak,
                memory_total_mib=d.memory_total_mib if d else None,
                compute_capability=d.compute_capability if d else None,
                util_now_pct=latest.get(index, (None, None))[0],
            )
        return win

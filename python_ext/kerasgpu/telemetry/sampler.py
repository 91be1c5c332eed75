"""The one sampler per server: reads the GPUs on its own thread at a fixed rate.

Callbacks passed to `subscribe()` run ON THE SAMPLER THREAD with each new
reading (a list of GpuSample, one per GPU). They must return quickly and must
not touch an asyncio event loop directly: hop with
`loop.call_soon_threadsafe(handler, samples)`. The thread starts with the
first subscriber and stops when the last one leaves.

`latest()`, `history()`, `status()`, `devices()` answer from memory while the
sampler runs. When it does not run, `latest()`, `status()` and `devices()` take
one look at the GPUs (`probe()`, a few nvidia-smi calls), and `processes()` may
run one nvidia-smi call (cached for `processes_ttl`): call those from an executor,
never on the event loop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from . import errors
from .backend import open_backend, resolve_backend
from .smi import DEFAULT_TIMEOUT
from .types import BackendStatus, DeviceInfo, GpuProcess, GpuSample, Snapshot, TelemetryError

log = logging.getLogger("kerasgpu.telemetry")

MIN_INTERVAL_MS = 100
SampleCallback = Callable[[list[GpuSample]], None]
StatusCallback = Callable[[BackendStatus], None]


def _close(backend) -> None:
    """Closes a backend; a failure to close must not stop the sampler."""
    try:
        backend.close()
    except Exception:
        log.warning("closing the GPU backend failed", exc_info=True)


def _check_interval(interval_ms: object) -> int:
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)) or math.isnan(interval_ms):
        raise ValueError(f"interval_ms must be a number of milliseconds (at least 100), not {interval_ms!r}")
    if interval_ms < MIN_INTERVAL_MS:
        raise ValueError(
            f"interval_ms must be at least {MIN_INTERVAL_MS} ms (got {interval_ms}): reading GPUs faster "
            "than 10 times a second costs more than it shows"
        )
    if math.isinf(interval_ms):
        raise ValueError("interval_ms must be a finite number of milliseconds")
    return int(interval_ms)


def _check_history(history_seconds: object) -> float:
    bad = isinstance(history_seconds, bool) or not isinstance(history_seconds, (int, float))
    if bad or not (0 < history_seconds < math.inf):
        raise ValueError(f"history_seconds must be a positive number of seconds, not {history_seconds!r}")
    return float(history_seconds)


class Sampler:
    """Reads every GPU at a fixed rate on one thread and keeps a ring buffer of history.

    `backend`: "auto" | "nvml" | "smi" | "none" or None (KERASGPU_BACKEND, else auto).
    `interval_ms`: at least 100 (ValueError otherwise). `history_seconds`: ring buffer span.
    When the backend fails the thread keeps running: the status says why, and it re-opens the
    backend every `retry_seconds` until the GPUs answer again.
    """

    def __init__(
        self,
        backend: str | None = None,
        interval_ms: int = 1000,
        history_seconds: float = 600,
        smi_path: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        processes_ttl: float = 2.0,
        retry_seconds: float = 2.0,
        stall_timeout: float | None = None,
    ):
        self.backend_name = resolve_backend(backend)
        self.interval_ms = _check_interval(interval_ms)
        self.history_seconds = _check_history(history_seconds)
        self.smi_path = smi_path
        self.timeout = timeout
        self.processes_ttl = processes_ttl
        self.retry_seconds = retry_seconds
        self.stall_timeout = stall_timeout
        self._lock = threading.RLock()
        self._history: deque[list[GpuSample]] = deque(
            maxlen=max(1, math.ceil(self.history_seconds * 1000 / self.interval_ms))
        )
        self._latest: list[GpuSample] = []
        self._devices: list[DeviceInfo] = []
        self._status = BackendStatus(state="starting", backend=self.backend_name)
        self._status_at = 0.0  # when status/devices/latest were last refreshed while idle
        self._processes: list[GpuProcess] = []
        self._processes_at = -math.inf
        self._processes_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._subscribers: list[tuple[SampleCallback, StatusCallback | None]] = []
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._backend = None  # the open backend, owned by the sampler thread
        self._force_status = False

    # ------------------------------------------------------------ subscribers

    def subscribe(
        self, callback: SampleCallback, on_status: StatusCallback | None = None
    ) -> Callable[[], None]:
        """Calls `callback(samples)` on the sampler thread for each new reading; returns `unsubscribe`.

        `on_status(status)` (optional) runs on the same thread when the backend's status changes
        (and once when the thread starts); a later subscriber should read `status()` first.
        The first subscriber starts the sampler thread; the last unsubscribe stops it.
        """
        entry = (callback, on_status)
        with self._lock:
            self._subscribers.append(entry)
            # Under the same lock as the last unsubscribe's stop signal: a subscriber
            # arriving while the thread stops gets a new thread, never a stopping one.
            if len(self._subscribers) == 1:
                self.start()

        def unsubscribe() -> None:
            with self._lock:
                if entry not in self._subscribers:
                    return
                self._subscribers.remove(entry)
                stopping = self._signal_stop() if not self._subscribers else None
            if stopping:
                self._finish_stop(*stopping)

        return unsubscribe

    @property
    def subscriber_count(self) -> int:
        """How many callbacks are subscribed."""
        with self._lock:
            return len(self._subscribers)

    # ------------------------------------------------------------ thread

    @property
    def running(self) -> bool:
        """Whether the sampler thread is reading."""
        with self._lock:
            return self._stop is not None and not self._stop.is_set()

    def start(self) -> None:
        """Starts the sampler thread (no-op when running). `subscribe()` calls it for you."""
        with self._lock:
            if self.running:
                return
            stop = threading.Event()
            self._stop = stop
            self._force_status = True
            self._thread = threading.Thread(
                target=self._run, args=(stop,), name="kerasgpu-sampler", daemon=True
            )
            self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        """Stops the sampler thread and its backend (the nvidia-smi process, NVML)."""
        with self._lock:
            stopping = self._signal_stop()
        if stopping:
            self._finish_stop(*stopping, wait=wait)

    def _signal_stop(self):
        """Sets the stop event (caller holds the lock); returns what is left to close and join."""
        stop, thread, backend = self._stop, self._thread, self._backend
        if stop is None:
            return None
        stop.set()
        return thread, backend

    def _finish_stop(self, thread, backend, wait: float = 2.0) -> None:
        if backend is not None and backend.paced:
            _close(backend)  # wakes the thread waiting for nvidia-smi's next line
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    close = stop

    def _run(self, stop: threading.Event) -> None:
        """The sampler thread. Nothing a backend or parser raises ends it: every failure is a status
        with its reason, the backend is re-opened every `retry_seconds`, and readings resume by
        themselves when the GPUs answer again."""
        backend = None
        next_at = time.monotonic()
        interval = self.interval_ms / 1000.0
        try:
            while not stop.is_set():
                if backend is None:
                    backend = self._open(stop)
                    if backend is None:
                        continue
                    next_at = time.monotonic()
                if not self._read(backend, stop):
                    backend = None
                    continue
                if not backend.paced:
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay < -interval:  # fell behind (suspended machine): don't burst to catch up
                        next_at = time.monotonic()
                        delay = 0
                    stop.wait(max(0.0, delay))
        except Exception:  # a bug in the sampler itself: say so in the status
            log.exception("GPU sampler stopped by an unexpected error")
            self._set_status(
                BackendStatus(
                    state="error",
                    backend=self.backend_name,
                    code=errors.BACKEND_ERROR,
                    reason="The GPU sampler stopped because of an internal error (see the server log).",
                    hint="Restart the Jupyter server; report the error from its log.",
                ),
                stop,
            )
        finally:
            with self._lock:
                if self._backend is backend:
                    self._backend = None
            if backend is not None:
                _close(backend)

    def _open(self, stop: threading.Event):
        """Opens the backend and makes it current; None (after waiting `retry_seconds`) when it fails
        or when the sampler was stopped meanwhile."""
        try:
            backend, devices = open_backend(
                self.backend_name,
                smi_path=self.smi_path,
                timeout=self.timeout,
                stream=True,
                interval_ms=self.interval_ms,
                stall_timeout=self.stall_timeout,
            )
        except Exception as err:
            self._failed(err, getattr(err, "backend", self.backend_name), stop)
            stop.wait(self.retry_seconds)
            return None
        with self._lock:
            if stop.is_set():
                _close(backend)
                return None
            self._backend = backend
            self._devices = devices
        return backend

    def _read(self, backend, stop: threading.Event) -> bool:
        """One reading recorded; False when it failed (the backend is closed, to be re-opened after
        `retry_seconds`) or the sampler was stopped while it read."""
        try:
            samples = backend.sample()
        except Exception as err:
            if stop.is_set():
                return True
            self._failed(err, backend.name, stop)
            with self._lock:
                self._backend = None
            _close(backend)
            stop.wait(self.retry_seconds)
            return False
        self._set_status(BackendStatus(state="ok", backend=backend.name), stop)
        self._record(samples, stop)
        return True

    def _failed(self, err: Exception, backend: str, stop: threading.Event) -> None:
        """Reports a failed open or reading as the status; an unexpected exception is logged too."""
        if not isinstance(err, TelemetryError):
            log.warning("reading the GPUs failed unexpectedly (%s backend)", backend, exc_info=err)
        err = errors.unexpected(err, backend)
        self._set_status(self._error_status(err, backend), stop)

    @staticmethod
    def _error_status(err: TelemetryError, backend: str) -> BackendStatus:
        return BackendStatus.from_error(err, backend=backend, state=errors.state_for(err.code))

    def _set_status(self, status: BackendStatus, stop: threading.Event | None = None) -> None:
        with self._lock:
            if stop is not None and stop is not self._stop:  # a thread that was replaced
                return
            old = self._status
            if self._force_status:  # the thread's first status is always announced
                self._force_status = False
                old = BackendStatus(state="starting", backend=self.backend_name)
            self._status = status
            self._status_at = time.monotonic()
            if status.state != "ok":
                self._latest = []
            changed = (old.state, old.code, old.reason, old.backend) != (
                status.state,
                status.code,
                status.reason,
                status.backend,
            )
            listeners = [s for _, s in self._subscribers if s is not None] if changed else []
        for listener in listeners:
            try:
                listener(status)
            except Exception:
                log.exception("GPU status subscriber failed")

    def _record(self, samples: list[GpuSample], stop: threading.Event) -> None:
        with self._lock:
            if stop is not self._stop or stop.is_set():
                return
            self._latest = samples
            self._history.append(samples)
            callbacks = [c for c, _ in self._subscribers]
        for callback in callbacks:
            try:
                callback(samples)
            except Exception:
                log.exception("GPU sample subscriber failed")

    # ------------------------------------------------------------ answers

    def _refresh_if_idle(self) -> None:
        """While the thread does not run, one `probe()` refreshes status, devices and the latest reading."""
        if self.running:
            return
        with self._probe_lock:  # concurrent callers share one look
            with self._lock:
                fresh = time.monotonic() - self._status_at < max(1.0, self.interval_ms / 1000.0)
                if fresh and self._status.state != "starting":
                    return
            self._probe_into_cache()

    def _probe_into_cache(self) -> None:
        from .probing import probe

        snap = probe(self.backend_name, smi_path=self.smi_path, timeout=self.timeout)
        with self._lock:
            if self.running:
                return
            self._status = snap.status
            self._status_at = time.monotonic()
            self._latest = snap.samples
            if snap.devices:
                self._devices = snap.devices
            self._processes = snap.processes
            self._processes_at = time.monotonic()

    def latest(self) -> list[GpuSample]:
        """The newest reading of every GPU ([] while the GPUs cannot be read)."""
        self._refresh_if_idle()
        with self._lock:
            return list(self._latest)

    def history(self, seconds: float | None = None) -> list[GpuSample]:
        """Readings of the last `seconds` (default: the whole ring buffer), oldest first, every GPU."""
        if seconds is not None and (isinstance(seconds, bool) or not seconds >= 0):
            raise ValueError(f"seconds must be a number of seconds >= 0, not {seconds!r}")
        with self._lock:
            ticks = list(self._history)
        if seconds is None:
            return [s for tick in ticks for s in tick]
        since = time.time() - seconds
        return [s for tick in ticks for s in tick if s.timestamp >= since]

    def status(self) -> BackendStatus:
        """Whether the GPUs can be read, and if not, why (reason) and what to do (hint)."""
        self._refresh_if_idle()
        with self._lock:
            return self._status

    def devices(self) -> list[DeviceInfo]:
        """Static details of every GPU ([] when none can be read)."""
        with self._lock:
            if self._devices and self._status.state == "ok":
                return list(self._devices)
        self._refresh_if_idle()
        with self._lock:
            return list(self._devices) if self._status.state == "ok" else []

    def processes(self, max_age: float | None = None) -> list[GpuProcess]:
        """Compute processes on the GPUs (pid, gpu_uuid, used_memory_mib, name); cached `processes_ttl` s
        (or `max_age` s: 0 asks the GPUs now)."""
        ttl = self.processes_ttl if max_age is None else max_age
        with self._processes_lock:
            with self._lock:
                if time.monotonic() - self._processes_at < ttl:
                    return list(self._processes)
                backend = self._backend
            if backend is None:
                if self.running:  # the backend is failing: no process can be read now
                    return []
                self._refresh_if_idle()
                with self._lock:
                    return list(self._processes)
            try:
                procs = backend.processes()
            except TelemetryError:
                procs = []
            except Exception:  # the thread closed this backend meanwhile
                log.debug("process list failed", exc_info=True)
                procs = []
            with self._lock:
                self._processes = procs
                self._processes_at = time.monotonic()
            return list(procs)

    def snapshot(self) -> Snapshot:
        """Status, devices, latest reading and processes together."""
        status = self.status()
        return Snapshot(
            status=status, devices=self.devices(), samples=self.latest(), processes=self.processes()
        )

"""The GPUs of the host a kernel runs on, as messages for the kernel's `kerasgpu` comm.

A kernel may run on another machine than the Jupyter server (Enterprise Gateway, Kubernetes
kernel pods); only the kernel sees its own GPUs. `HostGpus` turns the kernel's one telemetry
sampler (NVML, else one long-lived `nvidia-smi -lms`; `kernel/train/gpuwatch.shared_sampler`)
into comm messages, only while the frontend watches:

  frontend -> kernel  {"type": "gpus_watch", "watch": true | false}
  kernel -> frontend  {"type": "gpus", "event": "status", "host", "status", "devices"}
                      {"type": "gpus", "event": "samples", "host", "samples", "processes"?}

`processes` (every PROCESS_REFRESH_S) lists the GPU compute processes with `this_kernel` true
for this kernel's process and its children. No message has a top-level "state" key (notebook
runners read that as widget state). Wiring, for the comm's owner: pass `publish` (the comm's
send) and call `handle(msg_data)` from the comm's on_msg; `close()` when the kernel stops.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

WATCH = "gpus_watch"
MESSAGE = "gpus"
PROCESS_REFRESH_S = 5.0


def own_pids() -> set[int]:
    """This process and its children (a GPU process may be a child, e.g. a data loader)."""
    pids = {os.getpid()}
    try:
        import psutil

        pids.update(p.pid for p in psutil.Process().children(recursive=True))
    except Exception:  # psutil is optional in a kernel's environment
        pass
    return pids


class HostGpus:
    """Streams this host's GPU readings through `publish` while the frontend watches."""

    def __init__(
        self,
        publish: Callable[[dict], Any],
        sampler=None,
        host: str | None = None,
        min_interval_s: float = 0.0,
    ):
        self._publish = publish
        self._sampler = sampler
        self.host = host or socket.gethostname()
        self._min_interval = min_interval_s
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._sent_at = -1e18
        self._procs_at = -1e18
        self.readings = 0  # readings published since the first watch

    @property
    def watching(self) -> bool:
        with self._lock:
            return self._unsubscribe is not None

    def handle(self, data: Any) -> bool:
        """A message from the frontend; True when it was a `gpus_watch` (and acted on)."""
        if not isinstance(data, dict) or data.get("type") != WATCH:
            return False
        if data.get("watch"):
            self.watch()
        else:
            self.unwatch()
        return True

    def watch(self) -> None:
        """Starts streaming (the sampler thread starts with its first subscriber)."""
        with self._lock:
            if self._unsubscribe is not None:
                return
            if self._sampler is None:
                from .train.gpuwatch import shared_sampler

                self._sampler = shared_sampler()
            sampler = self._sampler
            self._procs_at = -1e18
        # Outside the lock: the sampler calls back on its thread right away.
        unsubscribe = sampler.subscribe(self._on_samples, self._on_status)
        with self._lock:
            self._unsubscribe = unsubscribe
        self._send_status(sampler.status())

    def unwatch(self) -> None:
        """Stops streaming (the sampler thread stops with its last subscriber)."""
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    close = unwatch

    # On the sampler's thread.
    def _on_status(self, status) -> None:
        self._send_status(status)

    def _send_status(self, status) -> None:
        devices = self._sampler.devices() if status.state == "ok" else []
        self._send(
            {
                "type": MESSAGE,
                "event": "status",
                "host": self.host,
                "status": status.to_json(),
                "devices": [d.to_json() for d in devices],
            }
        )

    def _on_samples(self, samples) -> None:
        now = time.monotonic()
        if now - self._sent_at < self._min_interval:
            return
        self._sent_at = now
        message: dict[str, Any] = {
            "type": MESSAGE,
            "event": "samples",
            "host": self.host,
            "samples": [s.to_json() for s in samples],
        }
        if now - self._procs_at >= PROCESS_REFRESH_S:
            self._procs_at = now
            try:
                procs = self._sampler.processes()
            except Exception:
                procs = None
            if procs is not None:
                mine = own_pids()
                message["processes"] = [{**p.to_json(), "this_kernel": p.pid in mine} for p in procs]
        self.readings += 1
        self._send(message)

    def _send(self, message: dict) -> None:
        if not self.watching:
            return
        with contextlib.suppress(Exception):  # telemetry must never break the kernel
            self._publish(message)


# The kernel's one HostGpus, started and stopped by the frontend with a silent execute of
# `user_expressions` (works in any kernel where kerasgpu is importable, no %load_ext needed;
# an ImportError tells the frontend that the package is missing from the kernel's environment).
_instance: HostGpus | None = None
_instance_lock = threading.Lock()


def start(min_interval_s: float = 0.0) -> str:
    """Streams this host's GPUs over the kernel's `kerasgpu` comm; returns "watching" or why not."""
    global _instance
    from . import comm

    comm.retry()  # a comm the frontend closed earlier may open again
    if comm.get_comm() is None:
        return "not in a Jupyter kernel"
    with _instance_lock:
        if _instance is None:
            import atexit

            _instance = HostGpus(comm.publish, min_interval_s=min_interval_s)
            atexit.register(_instance.close)
        instance = _instance
    instance.watch()
    return "watching"


def stop() -> str:
    """Stops streaming (the sampler thread stops when nothing else, such as a fit, watches)."""
    with _instance_lock:
        instance = _instance
    if instance is not None:
        instance.unwatch()
    return "stopped"

"""Training progress to the frontend: one Jupyter comm (target `kerasgpu`) per kernel.

The kernel opens it on the first message; the frontend registers the target on
every kernel it connects to, so it works whether the kernel runs on the server's
host or elsewhere. Outside a Jupyter kernel (a terminal IPython, a script)
`publish` does nothing. When the frontend closes the comm (no target registered:
an old frontend, or none), the next `fit` tries again.

Messages (`data` of comm_msg): {"type": "training", "status": "running" | "done" |
"stopped", "fit_id", "epoch", "epochs", "step", "steps", "progress" (0..1),
"step_time_s", "samples_per_s", "remaining_s", "eta" (epoch seconds), "deadline",
"device", "gpus", "gpu_util_pct", "finding" ({code, level, title, evidence, fix} or
null), "time"}. Never a "state" key: notebook runners (nbclient) read a comm
message's "state" as ipywidgets state.
"""

from __future__ import annotations

import threading

TARGET = "kerasgpu"
PROTOCOL = 1

_lock = threading.Lock()
_comm = None
_refused = False


def _in_kernel() -> bool:
    try:
        from ipykernel.kernelbase import Kernel

        return Kernel.initialized()
    except Exception:
        return False


def _on_close(msg) -> None:
    global _comm, _refused
    with _lock:
        _comm = None
        _refused = True


def _version() -> str:
    """kerasgpu's version (read here, not from the package, which loads this side lazily)."""
    try:
        from .._version import __version__
    except ImportError:  # a source tree that was never built, as in kerasgpu/__init__.py
        return "0.0.0.dev0"
    return __version__


def get_comm():
    """The kernel's comm to the frontend, opened on first use; None outside a Jupyter kernel."""
    global _comm
    with _lock:
        if _comm is not None:
            return _comm
        if not _in_kernel():
            return None
        from comm import create_comm

        c = create_comm(
            target_name=TARGET, data={"type": "hello", "protocol": PROTOCOL, "version": _version()}
        )
        c.on_close(_on_close)
        _comm = c
        return c


def retry() -> None:
    """Lets the next message try to open the comm again (a new `fit` starts)."""
    global _refused
    with _lock:
        _refused = False


def publish(data: dict) -> bool:
    """Sends `data` to the frontend; False when there is no frontend to send to."""
    if _refused:
        return False
    try:
        c = get_comm()
        if c is None:
            return False
        c.send(data)
        return True
    except Exception:  # progress reporting must never break training
        return False

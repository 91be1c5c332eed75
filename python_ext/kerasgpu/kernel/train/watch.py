"""`%gpu_watch on|off`: a TrainingMonitor on every Keras `fit` in this kernel, without code changes.

`on` wraps `keras.Model.fit` (every model class inherits it) with a function that
adds a monitor to the call's callbacks, unless the call already has one; `off`
puts the original back. A `fit` that raises ends its monitor as "stopped". The tools' own
fits (the estimate's, the batch-size finder's) run `internal()`: no monitor, no card, nothing
to the panel, no findings.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Any

_state: dict[str, Any] = {"on": False, "original": None, "had_own": False, "options": {}, "last": None}

_FIT_POSITIONAL = ("x", "y", "batch_size", "epochs", "verbose", "callbacks")
_internal = threading.local()


@contextmanager
def internal():
    """The fits inside are the tools' own, not the user's: %gpu_watch leaves them alone."""
    depth = getattr(_internal, "depth", 0)
    _internal.depth = depth + 1
    try:
        yield
    finally:
        _internal.depth = depth


def in_internal() -> bool:
    """Whether this thread runs one of the tools' own fits."""
    return getattr(_internal, "depth", 0) > 0


def infer_batch_size(x: Any, batch_size: int | None) -> int | None:
    """Samples per step of a `fit(x, batch_size=...)` call (Keras' default 32 for arrays)."""
    if batch_size:
        return int(batch_size)
    if x is None:
        return None
    if hasattr(x, "element_spec"):  # tf.data.Dataset: the batch is the first dimension
        try:
            import tensorflow as tf

            spec = tf.nest.flatten(x.element_spec)[0]
            dim = spec.shape[0] if spec.shape.rank else None
            if dim is not None:
                return int(dim)
            ds = x
            for _ in range(8):  # walk back to the BatchDataset (prefetch/map/cache sit on top)
                size = getattr(ds, "_batch_size", None)
                if size is not None:
                    return int(size.numpy() if hasattr(size, "numpy") else size)
                ds = getattr(ds, "_input_dataset", None)
                if ds is None:
                    break
        except Exception:
            return None
        return None
    if hasattr(x, "__len__") and hasattr(x, "shape") or isinstance(x, (list, tuple, dict)):
        return 32
    size = getattr(x, "batch_size", None)  # a PyDataset / Sequence that keeps its batch size
    return int(size) if isinstance(size, int) and size > 0 else None


def _wrap(original):
    import keras

    from . import guard, receipts
    from .monitor import TrainingMonitor

    @functools.wraps(original)
    def fit(self, *args, **kwargs):
        args = list(args)
        cb_pos = _FIT_POSITIONAL.index("callbacks")
        callbacks = args[cb_pos] if len(args) > cb_pos else kwargs.get("callbacks")
        callbacks = list(callbacks or [])
        if in_internal() or any(isinstance(c, TrainingMonitor) for c in callbacks):
            return original(self, *args, **kwargs)
        x = args[0] if args else kwargs.get("x")
        bs = args[2] if len(args) > 2 else kwargs.get("batch_size")
        opts = dict(_state["options"])
        backup_dir = opts.pop("backup", None)
        backup = None
        if backup_dir and not any(isinstance(c, keras.callbacks.BackupAndRestore) for c in callbacks):
            backup = guard.make_backup(backup_dir, receipts.model_key(self))
            callbacks.append(backup)
        monitor = TrainingMonitor(batch_size=infer_batch_size(x, bs), inputs=x, backup=backup, **opts)
        callbacks.append(monitor)
        if len(args) > cb_pos:
            args[cb_pos] = callbacks
        else:
            kwargs["callbacks"] = callbacks
        _state["last"] = monitor
        try:
            return original(self, *args, **kwargs)
        finally:
            monitor.stop()  # no-op after a normal end; "stopped" after an exception

    fit._kerasgpu_watch = True
    return fit


def watch_on(**options: Any) -> dict[str, Any]:
    """Attaches a TrainingMonitor to every `fit`; `options` go to each monitor (deadline=..., ...)."""
    import keras

    _state["options"] = options
    if _state["on"]:
        return status()
    model = keras.Model
    _state["had_own"] = "fit" in model.__dict__
    _state["original"] = model.fit
    model.fit = _wrap(model.fit)
    _state["on"] = True
    return status()


def watch_off() -> dict[str, Any]:
    """Puts Keras' own `fit` back."""
    if not _state["on"]:
        return status()
    import keras

    if _state["had_own"]:
        keras.Model.fit = _state["original"]
    else:
        del keras.Model.fit
    _state.update(on=False, original=None, had_own=False)
    return status()


def status() -> dict[str, Any]:
    opts = dict(_state["options"])
    return {"on": _state["on"], "options": opts}


def last_monitor():
    """The monitor of the latest watched `fit` (None before one ran)."""
    return _state["last"]


def watch_card(
    state: str = "status",
    deadline: str | None = None,
    display: bool = True,
    warmup_steps=None,
    backup: str | None = None,
    max_loss: str | None = None,
):
    """What `%gpu_watch` shows: turns the monitor on or off and says what it will do."""
    from ..render import Card, Section
    from . import guard
    from .timeutil import format_clock, format_duration, parse_deadline, parse_duration

    if state == "on":
        opts: dict[str, Any] = {"display": display}
        if deadline:
            opts["deadline"] = parse_deadline(deadline)
        if warmup_steps:
            opts["warmup_steps"] = int(warmup_steps)
        if backup:
            opts["backup"] = backup
        if max_loss:
            opts["max_loss_s"] = parse_duration(max_loss)
        watch_on(**opts)
    elif state == "off":
        watch_off()
    st = status()
    st["options"] = {k: v for k, v in st["options"].items()}
    sec = Section("Training monitor")
    sec.add("every fit", "monitored" if st["on"] else "not monitored")
    dl = st["options"].get("deadline")
    if st["on"]:
        sec.add("live card", "yes" if st["options"].get("display", True) else "no (panel only)")
        sec.add("deadline", format_clock(dl) if dl else "none")
        if st["options"].get("backup"):
            loss = st["options"].get("max_loss_s") or guard.MAX_LOSS_S
            sec.add(
                "checkpoints",
                f"keras.callbacks.BackupAndRestore in {st['options']['backup']}/<model>, paced so that an "
                f"interruption loses at most {format_duration(loss)}; the next fit resumes",
            )
        summary = "Every Keras fit in this kernel shows its progress, ETA and GPU use, and what slows it."
        if dl:
            summary += f" Warns early if training will end after {format_clock(dl)}."
    else:
        summary = "Keras fit runs unmonitored (%gpu_watch on to watch every fit)."
    data = {"kind": "gpu_watch", **st}
    return Card("GPU watch", "ok" if st["on"] else "info", summary, [sec], data=data)

"""Where TensorFlow stands in this process, read without changing it.

TensorFlow's runtime (its eager context) starts on the first op, the first
`list_logical_devices`, `get_memory_info`, strategy, or Keras layer call.
From then on memory growth, memory limits and visible devices are frozen.
Listing *physical* devices and reading build info do not start it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

# The exact way out, shared by every command that hits a frozen setting.
RESTART_FIX = (
    "Restart the kernel (Kernel > Restart Kernel), then run this command in the first cell, "
    "before any cell that uses TensorFlow or builds a Keras model."
)
GROWTH_ENV_FIX = (
    "Or set TF_FORCE_GPU_ALLOW_GROWTH=true in the kernel's environment before TensorFlow starts "
    "(first cell after a restart: %env TF_FORCE_GPU_ALLOW_GROWTH=true)."
)


class KerasGPUError(RuntimeError):
    """An explained failure: `problem` says what happened, `fix` what to do."""

    def __init__(self, code: str, problem: str, fix: str, commands: list[str] | None = None, link=None):
        super().__init__(f"{problem} {fix}")
        self.code = code
        self.problem = problem
        self.fix = fix
        self.commands = commands or []
        self.link = link

    def card(self, title: str):
        from .render import Card, Fix

        fix = Fix(self.code, "error", self.problem, self.fix, self.commands, self.link)
        return Card(title, "error", self.problem, fixes=[fix], data={"ok": False, "error": fix.to_json()})


def runtime_initialized() -> bool:
    """Whether TensorFlow's runtime has started in this process; never starts it.

    Reads the same field TensorFlow itself checks before refusing
    `set_memory_growth` ("cannot be modified after being initialized").
    """
    if "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.eager import context
    except Exception:  # a broken install is reported elsewhere
        return False
    ctx = context.context_safe()
    if ctx is None:
        return False
    return getattr(ctx, "_context_handle", None) is not None


def import_tensorflow():
    """Imports TensorFlow or raises an explained `KerasGPUError`."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise KerasGPUError(
            "no_tensorflow",
            f"TensorFlow can't be imported in this kernel ({exc}).",
            'Install it into this kernel\'s environment: %pip install "tensorflow[and-cuda]" '
            "(Linux with an NVIDIA GPU) or %pip install tensorflow, then restart the kernel.",
        ) from exc
    return tf


def physical_gpus(tf) -> list[Any]:
    """The GPUs TensorFlow found (does not start the runtime)."""
    return tf.config.list_physical_devices("GPU")


def frozen_error(what: str, fix: str | None = None, commands: list[str] | None = None) -> KerasGPUError:
    """The explained error for changing `what` after the runtime started."""
    return KerasGPUError(
        "runtime_initialized",
        f"TensorFlow's runtime is already initialised in this kernel, so {what} can no longer change "
        "(TensorFlow would raise 'cannot be modified after being initialized').",
        fix or RESTART_FIX,
        commands or [],
        "https://www.tensorflow.org/guide/gpu#limiting_gpu_memory_growth",
    )


def parse_gpu_list(spec: str | None, available: int) -> list[int] | None:
    """'0,2' -> [0, 2]; None/'all' -> None (all). Raises ValueError on a bad index."""
    if spec is None or spec.strip().lower() in ("", "all"):
        return None
    if spec.strip().lower() in ("none", "-1"):
        return []
    out: list[int] = []
    for part in spec.replace(" ", "").split(","):
        if not part.isdigit():
            raise ValueError(f"'{part}' is not a GPU index; use numbers like 0,1 or 'all' or 'none'")
        i = int(part)
        if i >= available:
            seen = f"GPUs 0-{available - 1}" if available else "no GPU"
            raise ValueError(f"GPU {i} does not exist: TensorFlow sees {seen}")
        if i not in out:
            out.append(i)
    return out


def gpu_indexes(spec: str | list[int] | None, available: int, hint: str) -> list[int] | None:
    """`parse_gpu_list` of what the user gave (a list of indexes too); a bad one raises the
    explained `KerasGPUError` 'bad_gpu' with `hint` as its fix."""
    text = ",".join(str(g) for g in spec) if isinstance(spec, list) else spec
    try:
        return parse_gpu_list(text, available)
    except ValueError as exc:
        raise KerasGPUError("bad_gpu", str(exc), hint) from exc


class quiet_startup:
    """Keeps TensorFlow's start-up chatter (C++ log lines written to file descriptor 2 while it is
    first imported) out of the notebook, so the card is the first thing the user sees. Only the
    first import is quiet: the user's own later logs are untouched. The captured lines are kept in
    `lines` (warnings and errors among them are evidence a check may show)."""

    def __init__(self):
        self.lines: list[str] = []
        self._saved = None
        self._tmp = None

    def __enter__(self):
        if "tensorflow" in sys.modules:
            return self
        import os
        import tempfile

        try:
            sys.stderr.flush()
            self._tmp = tempfile.TemporaryFile(mode="w+b")
            self._saved = os.dup(2)
            os.dup2(self._tmp.fileno(), 2)
        except (OSError, ValueError, AttributeError):
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        import os

        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()
        self.lines = [line for line in text.splitlines() if line.strip()]
        return False

    @property
    def notable(self) -> list[str]:
        """The captured warning and error lines (absl W/E/F levels), not the informational ones."""
        return [
            line
            for line in self.lines
            if line[:1] in ("W", "E", "F") and not line.startswith("WARNING: All log")
        ]

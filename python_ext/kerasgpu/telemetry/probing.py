"""One look at the GPUs (`probe`): devices, one sample and processes, or why there are none."""

from __future__ import annotations

import contextlib

from . import errors
from .backend import open_backend, resolve_backend
from .smi import DEFAULT_TIMEOUT
from .types import BackendStatus, Snapshot, TelemetryError


def probe(
    backend: str | None = "auto", smi_path: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Snapshot:
    """One look at the GPUs: devices, one sample, compute processes. Never raises for GPU problems.

    `backend`: "auto" | "nvml" | "smi" | "none", or None to follow KERASGPU_BACKEND ("auto" also
    follows it when set). Blocks for up to a few nvidia-smi calls: call it from a thread or
    executor, not on an event loop. Raises ValueError only for an unknown backend name.
    """
    name = resolve_backend(backend)
    try:
        b, devices = open_backend(name, smi_path=smi_path, timeout=timeout, stream=False)
    except Exception as err:
        which = getattr(err, "backend", name)
        err = errors.unexpected(err, which)
        return Snapshot(status=BackendStatus.from_error(err, backend=which, state=_state(err)))
    try:
        samples = b.sample()
        try:
            processes = b.processes()
        except Exception:
            processes = []  # readings without the process list are still worth showing
        return Snapshot(
            status=BackendStatus(state="ok", backend=b.name),
            devices=devices,
            samples=samples,
            processes=processes,
        )
    except Exception as err:
        err = errors.unexpected(err, b.name)
        return Snapshot(
            status=BackendStatus.from_error(err, backend=b.name, state=_state(err)), devices=devices
        )
    finally:
        with contextlib.suppress(Exception):
            b.close()


def _state(err: TelemetryError) -> str:
    return errors.state_for(err.code)

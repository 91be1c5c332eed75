"""Choosing a backend: an explicit name, else KERASGPU_BACKEND, else auto (NVML, nvidia-smi, none).

Every backend has the same shape: `name`, `paced`, `open() -> list[DeviceInfo]`,
`devices()`, `sample() -> list[GpuSample]`, `processes() -> list[GpuProcess]`,
`close()`. `open()` and `sample()` raise TelemetryError; nothing else does.
"""

from __future__ import annotations

import contextlib
import os

from . import errors
from .nvml import NvmlBackend
from .smi import DEFAULT_TIMEOUT, SmiBackend
from .types import DISABLED, NVML_NOT_FOUND, SMI_NOT_FOUND, TelemetryError

BACKENDS = ("auto", "nvml", "smi", "none")
ENV_VAR = "KERASGPU_BACKEND"


def resolve_backend(backend: str | None = None) -> str:
    """The backend name to use: `backend` if given (and not "auto"), else KERASGPU_BACKEND, else "auto".

    Raises ValueError for a name that is not one of BACKENDS.
    """
    env = os.environ.get(ENV_VAR, "").strip().lower()
    name = (backend or "").strip().lower()
    if not name or name == "auto":
        if env and env not in BACKENDS:
            raise ValueError(
                f"{ENV_VAR}={env!r} is not a GPU telemetry backend; use one of {', '.join(BACKENDS)}"
            )
        name = env or "auto"
    if name not in BACKENDS:
        raise ValueError(f"{backend!r} is not a GPU telemetry backend; use one of {', '.join(BACKENDS)}")
    return name


def _disabled() -> TelemetryError:
    err = TelemetryError(
        DISABLED,
        "GPU telemetry is turned off (backend 'none').",
        f"Set {ENV_VAR}=auto (or c.KerasGPU.backend = 'auto') to read the GPUs.",
    )
    err.backend = "none"
    return err


def open_backend(
    backend: str | None = "auto",
    smi_path: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    stream: bool = True,
    interval_ms: int = 1000,
    stall_timeout: float | None = None,
):
    """Opens the chosen backend; returns (backend, devices) or raises TelemetryError.

    The error carries `.backend`, the backend it is about ("none" when auto found nothing).
    `stream`/`interval_ms`/`stall_timeout` configure nvidia-smi's long-lived `-lms` process.
    """
    name = resolve_backend(backend)
    if name == "none":
        raise _disabled()

    def opened(b):
        """(b, devices); any failure (a bug in the bindings too) closes `b` and is a TelemetryError,
        so "auto" still falls back to the next backend."""
        try:
            return b, b.open()
        except Exception as err:
            with contextlib.suppress(Exception):
                b.close()
            raise errors.unexpected(err, b.name) from (None if isinstance(err, TelemetryError) else err)

    def try_nvml():
        return opened(NvmlBackend())

    def try_smi():
        return opened(
            SmiBackend(
                smi_path=smi_path,
                timeout=timeout,
                stream=stream,
                interval_ms=interval_ms,
                stall_timeout=stall_timeout,
            )
        )

    if name in ("nvml", "smi"):
        try:
            return try_nvml() if name == "nvml" else try_smi()
        except TelemetryError as err:
            err.backend = name
            raise
    try:
        return try_nvml()
    except TelemetryError as nvml_err:
        try:
            return try_smi()
        except TelemetryError as smi_err:
            err = _best(nvml_err, smi_err)
            err.backend = "none"
            raise err from None


def _best(nvml_err: TelemetryError, smi_err: TelemetryError) -> TelemetryError:
    """The more telling of two failures (a "not installed" says least)."""
    if smi_err.code == SMI_NOT_FOUND and nvml_err.code != NVML_NOT_FOUND:
        return nvml_err
    return smi_err


__all__ = ["BACKENDS", "ENV_VAR", "errors", "open_backend", "resolve_backend"]

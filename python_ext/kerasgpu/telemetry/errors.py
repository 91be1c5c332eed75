"""Human reasons and hints for every way reading the GPUs can fail.

nvidia-smi's and NVML's failures are turned into a `TelemetryError` whose
`reason` a researcher understands and whose `hint` says what to do next.
"""

from __future__ import annotations

import csv
import re

from .types import (
    BACKEND_ERROR,
    DRIVER_MISMATCH,
    DRIVER_NOT_LOADED,
    GPU_LOST,
    MALFORMED,
    NO_DEVICES,
    NVML_NOT_FOUND,
    SMI_NOT_FOUND,
    TIMEOUT,
    TelemetryError,
)

# Codes that mean "there is no usable GPU here" rather than "a GPU is failing".
UNAVAILABLE_CODES = {SMI_NOT_FOUND, NVML_NOT_FOUND, DRIVER_NOT_LOADED, DRIVER_MISMATCH, NO_DEVICES}

_CONTAINER_HINT = "in a container, start it with the NVIDIA runtime (for example `docker run --gpus all ...`)"


def state_for(code: str) -> str:
    """'unavailable' when no GPU can be used here at all, 'error' when a GPU is failing."""
    return "unavailable" if code in UNAVAILABLE_CODES else "error"


def smi_not_found(path: str | None = None) -> TelemetryError:
    """nvidia-smi is not installed (or not at the configured path)."""
    where = f"at {path}" if path else "on PATH"
    return TelemetryError(
        SMI_NOT_FOUND,
        f"nvidia-smi was not found {where}, so no NVIDIA driver seems to be installed on this machine.",
        f"Install the NVIDIA driver (it provides nvidia-smi); {_CONTAINER_HINT}.",
    )


def nvml_not_found(detail: str = "") -> TelemetryError:
    """The NVML library (libnvidia-ml.so, part of the driver) or its Python bindings are missing."""
    extra = f" ({detail})" if detail else ""
    return TelemetryError(
        NVML_NOT_FOUND,
        f"The NVIDIA Management Library (NVML) could not be loaded{extra}, so no NVIDIA driver seems "
        "to be installed on this machine.",
        "Install the NVIDIA driver (it provides libnvidia-ml.so) and `pip install nvidia-ml-py`; "
        f"{_CONTAINER_HINT}.",
    )


def driver_not_loaded() -> TelemetryError:
    """The driver is installed but its kernel module is not running."""
    return TelemetryError(
        DRIVER_NOT_LOADED,
        "The NVIDIA driver is not running, so the GPUs cannot be used.",
        "Load it with `sudo modprobe nvidia` (or reinstall the driver and reboot), then check with "
        f"`nvidia-smi`; {_CONTAINER_HINT}.",
    )


def driver_mismatch() -> TelemetryError:
    """The kernel module and the user-space driver libraries have different versions."""
    return TelemetryError(
        DRIVER_MISMATCH,
        "The running NVIDIA driver does not match the installed NVIDIA libraries (driver/library version "
        "mismatch), which usually happens after a driver upgrade.",
        "Reboot, or reload the nvidia kernel module, after a driver upgrade.",
    )


def no_devices() -> TelemetryError:
    """The driver runs but sees no GPU."""
    return TelemetryError(
        NO_DEVICES,
        "The NVIDIA driver is running but found no GPU.",
        "Check that this machine (or container) was given a GPU: `lspci | grep -i nvidia` on the host; "
        f"{_CONTAINER_HINT}.",
    )


def gpu_lost(which: str = "") -> TelemetryError:
    """A GPU fell off the bus or stopped answering; `which` names it (index, PCI bus id)."""
    subject = f"GPU {which}" if which else "A GPU"
    return TelemetryError(
        GPU_LOST,
        f'{subject} stopped responding ("GPU is lost"): it fell off the bus or hit an unrecoverable error.',
        "Save your work: programs using that GPU will fail. Check `dmesg` for Xid errors; recovering it "
        "usually needs a GPU reset or a reboot.",
    )


def timeout(what: str, seconds: float) -> TelemetryError:
    """The driver did not answer in time (a hung GPU or driver)."""
    return TelemetryError(
        TIMEOUT,
        f"{what} did not answer within {seconds:g} s; the NVIDIA driver or a GPU may be hung.",
        "Run `nvidia-smi` in a terminal: if it hangs too, check `dmesg` for Xid errors; the GPU may need "
        "a reset or a reboot. Readings resume by themselves when the GPU answers again.",
    )


def malformed(detail: str) -> TelemetryError:
    """nvidia-smi printed something that could not be read."""
    return TelemetryError(
        MALFORMED,
        f"nvidia-smi printed output that could not be read: {detail}",
        "Run `nvidia-smi` in a terminal to see what it says; if it looks normal, report this together "
        "with the output of `nvidia-smi --version`.",
    )


def backend_error(detail: str) -> TelemetryError:
    """Anything else, with the tool's own words."""
    return TelemetryError(
        BACKEND_ERROR,
        f"Reading the GPUs failed: {detail}",
        "Run `nvidia-smi` in a terminal to see whether the driver answers.",
    )


# What a parser raises on output it cannot read (a 200 KB field trips csv's field limit).
PARSE_ERRORS = (csv.Error, ValueError, UnicodeError, IndexError, KeyError, OverflowError, TypeError)


def short(text: object, limit: int = 160) -> str:
    """`text` cut to `limit` characters: reasons must stay readable whatever a tool printed."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def unexpected(err: BaseException, backend: str) -> TelemetryError:
    """Any exception a backend or its parser raised, as a status: reading the GPUs keeps going."""
    if isinstance(err, TelemetryError):
        return err
    detail = short(f"{type(err).__name__}: {err}")
    if backend == "smi" and isinstance(err, PARSE_ERRORS):
        return malformed(detail)
    return backend_error(detail)


def from_smi_output(text: str, returncode: int) -> TelemetryError:
    """Classifies what a failing nvidia-smi printed (its message first, then its exit status)."""
    lower = text.lower()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if "version mismatch" in lower:
        return driver_mismatch()
    if "couldn't communicate with the nvidia driver" in lower or "driver not loaded" in lower:
        return driver_not_loaded()
    if "no devices were found" in lower:
        return no_devices()
    if "gpu is lost" in lower or "unable to determine the device handle" in lower:
        bus = re.search(r"for GPU ?([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f.]+)", text)
        return gpu_lost(f"at PCI {bus.group(1)}" if bus else "")
    # nvidia-smi's documented exit codes, for messages worded differently in other releases.
    by_code = {9: driver_not_loaded, 18: driver_mismatch, 6: no_devices}
    if returncode in by_code:
        return by_code[returncode]()
    if returncode == 15:
        return gpu_lost()
    return backend_error(f"nvidia-smi exited with status {returncode}: {first or 'no output'}")

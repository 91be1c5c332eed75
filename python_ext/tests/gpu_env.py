"""Whether a real NVIDIA GPU answers here (stdlib + nvidia-ml-py only; no Jupyter)."""

from __future__ import annotations

import contextlib


def real_gpu_reason() -> str | None:
    """None when a real NVIDIA GPU answers through NVML, else why not."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as err:  # any NVML failure means: no usable GPU here
        return f"NVML did not start: {err}"
    try:
        if pynvml.nvmlDeviceGetCount() < 1:
            return "NVML sees no GPU"
    except Exception as err:
        return f"NVML did not list GPUs: {err}"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return None

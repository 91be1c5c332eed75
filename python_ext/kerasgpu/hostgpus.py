"""The earlier address of the kernel's host GPUs (now `kerasgpu.kernel.hostgpus`).

The frontend starts and stops them with the silent user expression
`__import__("kerasgpu.hostgpus", fromlist=["start"]).start()`; this keeps that expression working.
"""

from __future__ import annotations

from .kernel.hostgpus import HostGpus, start, stop

__all__ = ["HostGpus", "start", "stop"]

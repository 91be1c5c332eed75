"""TensorFlow's build and device descriptions as plain data: what %gpu_check and the server's probe read.

Pure: strings and dicts in, plain values out (no TensorFlow import).
"""

from __future__ import annotations

import re
from typing import Any


def plain(value: Any) -> Any:
    """`value` as JSON-able data: scalars as they are, sequences item by item, anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(x) for x in value]
    return str(value)


def build_capabilities(build_info: dict[str, Any]) -> list[str]:
    """The compute capabilities a TensorFlow build has kernels for ("sm_90,compute_90" or a list)."""
    ccs = build_info.get("cuda_compute_capabilities") or []
    if isinstance(ccs, str):
        ccs = [c for c in re.split(r"[,\s]+", ccs) if c]
    return [str(c) for c in ccs]


def parse_device_desc(desc: str) -> dict[str, Any]:
    """'device: 0, name: NVIDIA H200, pci bus id: 0000:..., compute capability: 9.0' -> fields."""
    out: dict[str, Any] = {}
    for key, field in (
        ("name", "gpu_name"),
        ("pci bus id", "pci_bus_id"),
        ("compute capability", "compute_capability"),
    ):
        m = re.search(rf"{key}: ([^,]+)", desc or "")
        if m:
            out[field] = m.group(1).strip()
    return out

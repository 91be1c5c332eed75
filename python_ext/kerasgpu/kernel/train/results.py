"""What this kernel's training tools measured last, for the others to read: the latest
%gpu_estimate's result (the deadline guard reads its measured steps). Imports nothing of ours, so
any tool may write or read it."""

from __future__ import annotations

from typing import Any

_last: dict[str, Any] = {}


def remember_estimate(res: dict[str, Any]) -> None:
    """Keeps the latest %gpu_estimate's result in this kernel."""
    _last["estimate"] = res


def last_estimate() -> dict[str, Any] | None:
    """The latest %gpu_estimate's result in this kernel (None before the first)."""
    return _last.get("estimate")

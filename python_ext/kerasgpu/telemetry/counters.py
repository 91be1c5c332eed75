"""PCIe and NVLink throughput from NVML's cumulative byte counters.

NVML keeps running totals per GPU (`nvmlDeviceGetFieldValues`): PCIe bytes sent
and received (`NVML_FI_DEV_PCIE_COUNT_TX_BYTES` / `_RX_BYTES`, bytes) and NVLink
data sent and received summed over every link (`NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX`
/ `_RX` with scope UINT_MAX, KiB). One call reads all four for a GPU, without the
~20 ms wait of `nvmlDeviceGetPcieThroughput`, which is never called here. A rate is
the difference of two readings over the difference of their own timestamps: the
first reading gives none, and a counter that went backwards (wrapped, or reset by
a driver reload) gives none for that interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
ALL_LINKS = 0xFFFFFFFF  # NVML scope id: the sum over every NVLink

# (name, NVML field id, NVML's unit in bytes)
FIELDS = (
    ("pcie_tx", 197, 1),  # NVML_FI_DEV_PCIE_COUNT_TX_BYTES
    ("pcie_rx", 198, 1),  # NVML_FI_DEV_PCIE_COUNT_RX_BYTES
    ("nvlink_tx", 138, 1024),  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX (KiB)
    ("nvlink_rx", 139, 1024),  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX (KiB)
)
NVLINK_SCOPED = {"nvlink_tx", "nvlink_rx"}

SMI_REASON = (
    "nvidia-smi does not report PCIe or NVLink throughput; the NVML backend "
    "(`pip install nvidia-ml-py`) reads it from the GPU's counters"
)
PCIE_UNSUPPORTED = "this GPU or driver has no PCIe byte counters in NVML (needs a recent driver)"
NVLINK_UNSUPPORTED = "this GPU has no NVLink, or its driver does not count NVLink traffic"


@dataclass
class Reading:
    """One counter value and NVML's timestamp of it (microseconds)."""

    value: int
    timestamp_us: int


def request(nvml: Any) -> list[Any]:
    """The field ids to ask NVML for, in FIELDS' order (NVLink ones summed over all links)."""
    return [(fid, ALL_LINKS) if name in NVLINK_SCOPED else fid for name, fid, _ in FIELDS]


def parse(nvml: Any, values: Any) -> dict[str, Reading | None]:
    """NVML's answer (an array of nvmlFieldValue_t) as readings; a field the GPU lacks is None."""
    out: dict[str, Reading | None] = dict.fromkeys(name for name, _, _ in FIELDS)
    success = getattr(nvml, "NVML_SUCCESS", 0)
    try:
        answers = list(values)[: len(FIELDS)]
    except TypeError:  # not an array: a binding answering what no driver would
        return out
    for (name, _, _), v in zip(FIELDS, answers, strict=False):
        ret = getattr(v, "nvmlReturn", None)
        if ret != success:
            out[name] = None
            continue
        raw = getattr(getattr(v, "value", None), "ullVal", None)
        ts = getattr(v, "timestamp", None)
        ok = (
            isinstance(raw, int)
            and isinstance(ts, int)
            and not isinstance(raw, bool)
            and 0 <= raw < 2**64
            and ts > 0
        )
        out[name] = Reading(raw, ts) if ok else None
    return out


class Rates:
    """Turns successive counter readings of one GPU into MiB/s."""

    def __init__(self) -> None:
        self._last: dict[str, Reading] = {}

    def update(self, readings: dict[str, Reading | None]) -> dict[str, float | None]:
        """MiB/s per counter since the previous reading (None: first reading, absent, or wrapped)."""
        rates: dict[str, float | None] = {}
        for name, _, unit in FIELDS:
            now = readings.get(name)
            before = self._last.get(name)
            rates[name] = None
            if now is None:
                self._last.pop(name, None)
                continue
            self._last[name] = now
            if before is None:
                continue
            dt = (now.timestamp_us - before.timestamp_us) / 1e6
            dv = now.value - before.value
            if dt <= 0 or dv < 0:
                continue  # the same reading again, or the counter wrapped / was reset
            rates[name] = dv * unit / MIB / dt
        return rates


def reasons(readings: dict[str, Reading | None] | None) -> tuple[str | None, str | None]:
    """Why PCIe / NVLink throughput is not shown for a GPU (None where it is measured)."""
    if readings is None:
        return PCIE_UNSUPPORTED, NVLINK_UNSUPPORTED
    pcie = None if readings.get("pcie_tx") or readings.get("pcie_rx") else PCIE_UNSUPPORTED
    nvlink = None if readings.get("nvlink_tx") or readings.get("nvlink_rx") else NVLINK_UNSUPPORTED
    return pcie, nvlink

"""The GPU fleet from a Prometheus query: which metric names mean what, and hosts sorted by fit.

Pure functions, no I/O: `QUERY` is the one PromQL selector the server sends per round;
`parse_response` turns Prometheus's JSON answer into hosts and their GPUs. Three exporters
are understood, each by its own metric names and labels:

- kerasgpu's own /kerasgpu/metrics (`kerasgpu_*`; labels gpu, uuid, name),
- NVIDIA's DCGM exporter (`DCGM_FI_DEV_*`, memory in MiB; labels gpu, UUID, modelName,
  Hostname, and pod / namespace / container when it maps GPUs to Kubernetes pods),
- the nvidia-smi exporter (utkuozdemir/nvidia_gpu_exporter: `nvidia_smi_*`, utilization
  as a 0-1 ratio, memory in bytes; label uuid, name and index on `nvidia_smi_gpu_info`).

A host is named by the first label it has of `HOST_LABELS` (DCGM's Hostname, or a `host`
label added in Prometheus's scrape config), else by Prometheus's `instance` (host:port).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024

# metric name -> (source, field, factor to MiB or percent)
METRICS: dict[str, tuple[str, str, float]] = {
    "kerasgpu_up": ("kerasgpu", "up", 1.0),
    "kerasgpu_utilization_gpu_percent": ("kerasgpu", "util", 1.0),
    "kerasgpu_memory_used_bytes": ("kerasgpu", "used", 1 / MIB),
    "kerasgpu_memory_total_bytes": ("kerasgpu", "total", 1 / MIB),
    "DCGM_FI_DEV_GPU_UTIL": ("dcgm", "util", 1.0),
    "DCGM_FI_DEV_FB_USED": ("dcgm", "used", 1.0),
    "DCGM_FI_DEV_FB_FREE": ("dcgm", "free", 1.0),
    "DCGM_FI_DEV_FB_RESERVED": ("dcgm", "reserved", 1.0),
    "nvidia_smi_utilization_gpu_ratio": ("nvidia_smi", "util", 100.0),
    "nvidia_smi_memory_used_bytes": ("nvidia_smi", "used", 1 / MIB),
    "nvidia_smi_memory_total_bytes": ("nvidia_smi", "total", 1 / MIB),
    "nvidia_smi_memory_free_bytes": ("nvidia_smi", "free", 1 / MIB),
    "nvidia_smi_gpu_info": ("nvidia_smi", "info", 1.0),
}

HOST_LABELS = ("Hostname", "hostname", "host", "node", "nodename", "instance")
NAME_LABELS = ("name", "modelName")
UUID_LABELS = ("uuid", "UUID")
INDEX_LABELS = ("gpu", "index")
# Who holds a GPU, where the exporter says (DCGM's Kubernetes and HPC job mapping).
HOLDER_LABELS = (
    ("namespace", "pod", "container"),
    ("exported_namespace", "exported_pod", "exported_container"),
)
JOB_LABELS = ("hpc_job",)

# One query for every name: one HTTP request per round, whatever the fleet's size. `max by`
# keeps only the labels read here (exporters add many more: pci_bus_id, driver versions, job),
# which halves the answer Prometheus sends and the server parses.
KEPT_LABELS = (
    ("__name__",)
    + HOST_LABELS
    + NAME_LABELS
    + UUID_LABELS
    + INDEX_LABELS
    + tuple(name for names in HOLDER_LABELS for name in names)
    + JOB_LABELS
)
QUERY = f'max by ({", ".join(KEPT_LABELS)}) ({{__name__=~"{"|".join(sorted(METRICS))}"}})'

# A GPU is free when it computes less than this (%) and holds less than this share of memory.
FREE_UTIL = 10.0
FREE_MEMORY_SHARE = 0.10


class FleetError(ValueError):
    """Prometheus answered, but not with a query result (the message says what it said)."""


@dataclass
class _Gpu:
    key: str
    index: int | None = None
    name: str = ""
    uuid: str = ""
    sources: set[str] = field(default_factory=set)
    values: dict[str, float] = field(default_factory=dict)
    holders: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        v = self.values
        used, total, free = v.get("used"), v.get("total"), v.get("free")
        if total is None and used is not None and free is not None:
            total = used + free + v.get("reserved", 0.0)  # DCGM: used + free + reserved
        if free is None and used is not None and total is not None:
            free = max(total - used, 0.0)
        util = v.get("util")
        data = {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "util": _round(util),
            "mem_used_mib": _round(used),
            "mem_total_mib": _round(total),
            "mem_free_mib": _round(free),
            "free": is_free(util, used, total),
            "source": ",".join(sorted(self.sources)),
        }
        if self.holders:
            data["holders"] = sorted(self.holders)
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def is_free(util: float | None, used: float | None, total: float | None) -> bool:
    """Nothing runs on it: under `FREE_UTIL` % busy and under `FREE_MEMORY_SHARE` of memory used."""
    if util is None or used is None or not total:
        return False
    return util < FREE_UTIL and used < FREE_MEMORY_SHARE * total


def fit_key(gpu: dict[str, Any]) -> tuple:
    """Where a job fits now: free GPUs first, then most free memory, then least busy."""
    free_mib = gpu.get("mem_free_mib")
    util = gpu.get("util")
    return (
        not gpu.get("free"),
        -(free_mib if free_mib is not None else -1.0),
        util if util is not None else 101.0,
        gpu.get("index") if gpu.get("index") is not None else 1 << 30,
        gpu.get("uuid") or "",
    )


def _first(labels: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return ""


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _index(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else None


def _uuid_key(uuid: str) -> str:
    """DCGM says GPU-xxxx, the nvidia-smi exporter may drop the prefix: one key for both."""
    key = uuid.strip().lower()
    return key[4:] if key.startswith("gpu-") else key


def _add_series(
    item: Any, hosts: dict[str, dict[str, _Gpu]], down: dict[str, str], sources: dict[str, set[str]]
) -> None:
    """One series of the vector result into `hosts` (what a malformed or unknown series lacks, skipped)."""
    if not isinstance(item, dict):
        return
    labels = item.get("metric")
    value = item.get("value")
    if not isinstance(labels, dict) or not isinstance(value, list) or len(value) != 2:
        return
    known = METRICS.get(str(labels.get("__name__", "")))
    if known is None:
        return
    source, what, factor = known
    host = _first(labels, HOST_LABELS) or "(unnamed)"
    number = _number(value[1])
    sources.setdefault(host, set()).add(source)
    if what == "up":
        if number is not None and number < 1:
            down[host] = "kerasgpu on this host cannot read its GPUs (kerasgpu_up is 0)"
        hosts.setdefault(host, {})
        return
    uuid = _first(labels, UUID_LABELS)
    index = _index(_first(labels, INDEX_LABELS))
    key = _uuid_key(uuid) if uuid else f"#{index}"
    gpu = hosts.setdefault(host, {}).setdefault(key, _Gpu(key=key))
    _label_gpu(gpu, labels, source, uuid, index)
    if what != "info" and number is not None:
        gpu.values.setdefault(what, number * factor)


def _label_gpu(gpu: _Gpu, labels: dict[str, Any], source: str, uuid: str, index: int | None) -> None:
    """What a series' labels say of its GPU: source, UUID, index, name and who holds it."""
    gpu.sources.add(source)
    if uuid and not gpu.uuid:
        gpu.uuid = uuid if uuid.upper().startswith("GPU-") or source != "nvidia_smi" else f"GPU-{uuid}"
    if gpu.index is None and index is not None:
        gpu.index = index
    name = _first(labels, NAME_LABELS)
    if name and not gpu.name:
        gpu.name = name
    for names in HOLDER_LABELS:
        namespace, pod, container = (labels.get(n, "") for n in names)
        if pod:
            gpu.holders.add(
                "/".join(p for p in (namespace, pod) if p) + (f" ({container})" if container else "")
            )
    for name in JOB_LABELS:
        if labels.get(name):
            gpu.holders.add(f"job {labels[name]}")


def hosts_from_series(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prometheus's vector result (`[{metric: {...labels}, value: [t, "v"]}]`) as sorted hosts."""
    hosts: dict[str, dict[str, _Gpu]] = {}
    down: dict[str, str] = {}
    sources: dict[str, set[str]] = {}
    for item in series:
        _add_series(item, hosts, down, sources)
    result = []
    for host, gpus in hosts.items():
        rows = sorted((g.to_json() for g in gpus.values()), key=fit_key)
        entry: dict[str, Any] = {
            "host": host,
            "source": ",".join(sorted(sources.get(host, ()))),
            "gpus": rows,
            "free_gpus": sum(1 for g in rows if g["free"]),
        }
        if host in down and not rows:
            entry["reason"] = down[host]
        result.append(entry)
    result.sort(key=lambda h: (fit_key(h["gpus"][0]) if h["gpus"] else (True, math.inf), h["host"]))
    return result


def parse_response(body: bytes | str) -> list[dict[str, Any]]:
    """Prometheus's /api/v1/query JSON as sorted hosts; FleetError when it is not a vector result."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise FleetError(f"Prometheus's answer is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise FleetError("Prometheus's answer is not a JSON object")
    if data.get("status") != "success":
        raise FleetError(
            f"Prometheus refused the query: {data.get('errorType', '')} {data.get('error', '')}".strip()
        )
    result = data.get("data")
    if not isinstance(result, dict) or result.get("resultType") != "vector":
        raise FleetError("Prometheus's answer has no vector result")
    series = result.get("result")
    return hosts_from_series(series if isinstance(series, list) else [])

"""`%%distribute`: build a tf.distribute strategy, check TF_CONFIG, scale the batch size."""

from __future__ import annotations

import json
import os
from typing import Any

from .render import Card, Section
from .runtime import KerasGPUError, import_tensorflow

STRATEGIES = ("mirrored", "multiworker", "onedevice")
_TF_CONFIG_LINK = "https://www.tensorflow.org/guide/distributed_training#TF_CONFIG"


def validate_tf_config(raw: str | None = None) -> dict[str, Any]:
    """Parses and checks TF_CONFIG (default: the environment's) for MultiWorkerMirroredStrategy.

    Returns the parsed dict or raises `KerasGPUError` naming what is wrong.
    """
    raw = os.environ.get("TF_CONFIG") if raw is None else raw
    example = (
        '%env TF_CONFIG={"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )

    def bad(problem: str) -> KerasGPUError:
        return KerasGPUError(
            "bad_tf_config",
            f"TF_CONFIG {problem}",
            "Set TF_CONFIG on every worker before the first TensorFlow op: the same cluster everywhere, "
            "and each worker's own task index.",
            [example],
            _TF_CONFIG_LINK,
        )

    if not raw or not raw.strip():
        raise bad(
            "is not set: MultiWorkerMirroredStrategy needs it to know the cluster and this worker's place."
        )
    try:
        conf = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad(f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from exc
    if not isinstance(conf, dict):
        raise bad("must be a JSON object with 'cluster' and 'task'.")
    cluster = conf.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise bad("has no 'cluster' object (a map of job name to a list of 'host:port').")
    for job, addrs in cluster.items():
        if not isinstance(addrs, list) or not addrs:
            raise bad(f"cluster job '{job}' must be a non-empty list of 'host:port' strings.")
        for a in addrs:
            if not isinstance(a, str) or ":" not in a or not a.rsplit(":", 1)[1].isdigit():
                raise bad(f"cluster job '{job}' has {a!r}, which is not 'host:port'.")
    workers = cluster.get("worker", []) + cluster.get("chief", [])
    if not workers:
        raise bad("cluster has no 'worker' (or 'chief') job.")
    if len(set(workers)) != len(workers):
        raise bad("lists the same address twice in the cluster.")
    task = conf.get("task")
    if not isinstance(task, dict):
        raise bad("has no 'task' object ({'type': 'worker', 'index': N}).")
    ttype, index = task.get("type"), task.get("index")
    if ttype not in cluster:
        raise bad(f"task type {ttype!r} is not a job in the cluster ({', '.join(cluster)}).")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[ttype]):
        raise bad(
            f"task index {index!r} is out of range for job '{ttype}' with {len(cluster[ttype])} address(es)."
        )
    return conf


def make_strategy(kind: str = "mirrored", device: str | None = None):
    """Creates the strategy named `kind` (mirrored, multiworker, onedevice); starts TensorFlow's runtime."""
    if kind not in STRATEGIES:
        raise KerasGPUError(
            "bad_strategy", f"Unknown strategy '{kind}'.", f"Use one of: {', '.join(STRATEGIES)}."
        )
    tf = import_tensorflow()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multiworker":
        validate_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if device is None:
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def strategy_card(strategy, kind: str, per_replica_batch: int | None) -> Card:
    """Describes a strategy: replicas, devices, batch sizes."""
    replicas = int(strategy.num_replicas_in_sync)
    devices = list(getattr(strategy.extended, "worker_devices", ()) or ())
    global_batch = per_replica_batch * replicas if per_replica_batch else None
    on_gpu = any("GPU" in d.upper() for d in devices)
    sec = Section("Strategy")
    sec.add("strategy", type(strategy).__name__)
    sec.add("replicas", replicas)
    sec.add("devices", devices, None if on_gpu else "warning")
    if per_replica_batch:
        sec.add("per-replica batch", per_replica_batch)
        sec.add("GLOBAL_BATCH_SIZE", global_batch)
    summary = f"{type(strategy).__name__} with {replicas} replica(s) on {', '.join(devices) or 'n/a'}" + (
        f"; GLOBAL_BATCH_SIZE = {per_replica_batch} x {replicas} = {global_batch}" if global_batch else ""
    )
    data = {
        "kind": "distribute",
        "strategy": kind,
        "class": type(strategy).__name__,
        "replicas": replicas,
        "devices": devices,
        "on_gpu": on_gpu,
        "per_replica_batch": per_replica_batch,
        "global_batch_size": global_batch,
    }
    return Card("distribute", "ok" if on_gpu else "info", summary, [sec], data=data)

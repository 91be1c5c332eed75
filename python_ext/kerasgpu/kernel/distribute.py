"""`%%distribute`: build a tf.distribute strategy, check TF_CONFIG, scale the batch size."""

from __future__ import annotations

import json
import os
from typing import Any

from . import strategy_guard
from .render import Card, Fix, Section
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


def strategy_devices(strategy) -> list[str]:
    """The devices a strategy's replicas run on (the default strategy has no list: its one device)."""
    try:
        return list(strategy.extended.worker_devices or ())
    except (RuntimeError, AttributeError, NotImplementedError):
        return []


def strategy_card(strategy, kind: str, per_replica_batch: int | None) -> Card:
    """Describes a strategy: replicas, devices, batch sizes."""
    replicas = int(strategy.num_replicas_in_sync)
    devices = strategy_devices(strategy)
    default = type(strategy).__name__ == "_DefaultDistributionStrategy"
    name = "default strategy (no distribution)" if default else type(strategy).__name__
    global_batch = per_replica_batch * replicas if per_replica_batch else None
    on_gpu = any("GPU" in d.upper() for d in devices)
    sec = Section("Strategy")
    sec.add("strategy", name)
    sec.add("replicas", replicas)
    if devices:
        sec.add("devices", devices, None if on_gpu else "warning")
    else:
        sec.add("devices", "TensorFlow's default device (GPU:0 when it sees one, else the CPU)")
    if per_replica_batch:
        sec.add("per-replica batch", per_replica_batch)
        sec.add("GLOBAL_BATCH_SIZE", global_batch)
    where = f" on {', '.join(devices)}" if devices else ""
    summary = f"{name[0].upper()}{name[1:]} with {replicas} replica(s){where}" + (
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


# ------------------------------------------------------------------------------ one per kernel

# The kernel's one strategy: set by %gpu_distribute, reused by the cell wrap and %%distribute.
_NOTEBOOK: dict[str, Any] = {"strategy": None, "kind": None}
DISTRIBUTE_KINDS = ("auto", "mirrored", "multiworker", "onedevice", "off")


def _logical(tf, kind: str) -> list[str]:
    return [d.name for d in tf.config.list_logical_devices(kind)]


def _choose(tf, kind: str):
    """The strategy for `kind` and why it was chosen (starts TensorFlow's runtime)."""
    gpus = _logical(tf, "GPU")
    if kind == "multiworker":
        validate_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy(), "MultiWorkerMirroredStrategy from TF_CONFIG"
    if kind == "onedevice":
        dev = gpus[0] if gpus else _logical(tf, "CPU")[0]
        return tf.distribute.OneDeviceStrategy(dev), f"one device ({dev})"
    if kind == "mirrored":
        devs = gpus if gpus else _logical(tf, "CPU")
        return tf.distribute.MirroredStrategy(devs), f"mirrored over {len(devs)} device(s)"
    # auto
    if os.environ.get("TF_CONFIG", "").strip():
        validate_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy(), "TF_CONFIG is set: MultiWorkerMirroredStrategy"
    if len(gpus) >= 2:
        return tf.distribute.MirroredStrategy(gpus), f"{len(gpus)} GPUs: MirroredStrategy"
    if len(gpus) == 1:
        return None, "one GPU: TensorFlow's default strategy already trains on it"
    cpus = _logical(tf, "CPU")
    if len(cpus) >= 2:
        # Logical CPU devices exist only when someone configured them (TensorFlow's documented way
        # to test distribution without GPUs): mirror over them.
        return tf.distribute.MirroredStrategy(
            cpus
        ), f"no GPU; {len(cpus)} logical CPU devices: MirroredStrategy"
    return None, "TensorFlow sees no GPU: the default strategy (the CPU)"


def _built_models(user_ns: dict[str, Any] | None) -> list[str]:
    """Names in the user's namespace bound to Keras models that already have variables."""
    if not user_ns or "keras" not in __import__("sys").modules:
        return []
    import keras

    out = []
    for name, value in list(user_ns.items()):
        if name.startswith("_"):
            continue
        if isinstance(value, keras.Model) and getattr(value, "built", False) and value.variables:
            out.append(name)
    return sorted(out)


def notebook_strategy(kind: str = "auto"):
    """The kernel's one tf.distribute strategy: the one %gpu_distribute set, else one made now
    (MirroredStrategy over the GPUs, or the default strategy) and kept for every later call."""
    if _NOTEBOOK["strategy"] is not None:
        return _NOTEBOOK["strategy"]
    tf = import_tensorflow()
    if tf.distribute.has_strategy():  # set by the user (experimental_set_strategy or a scope)
        current = tf.distribute.get_strategy()
        _NOTEBOOK.update(strategy=current, kind="current")
        return current
    strategy, _why = _choose(tf, kind)
    if strategy is not None:
        strategy_guard.keep(strategy, current=False)  # the wrap's fits: batches, models without call()
    strategy = strategy or tf.distribute.get_strategy()
    _NOTEBOOK.update(strategy=strategy, kind=kind)
    return strategy


def distribute_notebook(kind: str = "auto", batch: int | None = None, user_ns: dict | None = None) -> Card:
    """`%gpu_distribute`: one strategy for the whole kernel, made current with
    tf.distribute.experimental_set_strategy so build, compile and fit cells run unchanged; Keras 3
    on JAX gets keras.distribution.DataParallel. Run again, it reuses the kernel's strategy."""
    if kind not in DISTRIBUTE_KINDS:
        raise KerasGPUError(
            "bad_strategy", f"Unknown strategy '{kind}'.", f"Use one of: {', '.join(DISTRIBUTE_KINDS)}."
        )
    backend = _keras_backend()
    if backend == "jax":
        return _distribute_jax(kind)
    if backend == "torch":
        raise KerasGPUError(
            "unsupported_backend",
            "Keras 3 on the torch backend has no notebook-wide distribution: keras.distribution supports "
            "only JAX, and tf.distribute only TensorFlow.",
            "Train on one GPU here, or switch this notebook to KERAS_BACKEND=jax or tensorflow (set before "
            "keras is imported, then restart).",
            ["%env KERAS_BACKEND=jax  # first cell, then restart the kernel"],
            "https://keras.io/guides/distribution/",
        )
    tf = import_tensorflow()
    if kind == "off":
        return _distribution_off(tf)
    fixes: list[Fix] = []
    strategy, why, reused = _notebook_strategy_for(tf, kind, fixes)
    is_default = type(strategy).__name__ in ("_DefaultDistributionStrategy",)
    if not is_default:
        if tf.distribute.get_strategy() is not strategy:
            tf.distribute.experimental_set_strategy(strategy)
        strategy_guard.keep(strategy)  # current again after clear_session(); checked at every fit
    replicas = int(strategy.num_replicas_in_sync)
    devices = strategy_devices(strategy)
    built = _built_models(user_ns)
    if built and not reused and not is_default:
        fixes.append(
            Fix(
                "model_built_before",
                "warning",
                f"{', '.join(built)} was built before this strategy, so its variables are not distributed "
                "and "
                "fit would fail ('Mixing different tf.distribute.Strategy objects').",
                "Keep this cell above the cell that builds the model: restart the kernel and run all, or "
                "re-run the cells that build and compile the model now.",
            )
        )
    name = "default (no distribution)" if is_default else type(strategy).__name__
    sec, global_batch = _strategy_section(name, why, replicas, devices, batch)
    if is_default:
        summary = f"No distribution: {why}."
    else:
        summary = (
            f"{name} with {replicas} replica(s) on {', '.join(devices) or 'n/a'} is this notebook's "
            "strategy: "
            "build, compile and fit in any cell below run on it."
        )
    level = "warning" if any(f.level == "warning" for f in fixes) else ("ok" if not is_default else "info")
    data = {
        "kind": "distribute",
        "strategy": "default" if is_default else kind,
        "class": type(strategy).__name__,
        "replicas": replicas,
        "devices": devices,
        "reused": reused,
        "batch": batch,
        "global_batch_size": global_batch,
        "models_built_before": built,
    }
    return Card("Distribution", level, summary, [sec], fixes, data)


def _distribution_off(tf) -> Card:
    tf.distribute.experimental_set_strategy(None)
    _NOTEBOOK.update(strategy=None, kind=None)
    strategy_guard.keep(None)
    return Card(
        "Distribution",
        "info",
        "Distribution off: new models build on TensorFlow's default strategy (models built under the "
        "old one keep it).",
        data={"kind": "distribute", "strategy": "off", "replicas": 1},
    )


def _notebook_strategy_for(tf, kind: str, fixes: list[Fix]):
    """(strategy, why, reused): the kernel's strategy when `kind` allows it, else a new one (kept)."""
    reused = False
    strategy = _NOTEBOOK["strategy"]
    if strategy is not None and kind in ("auto", _NOTEBOOK["kind"]):
        reused, why = True, "the strategy this kernel already has (reused)"
    else:
        if strategy is not None:
            fixes.append(
                Fix(
                    "strategy_changed",
                    "warning",
                    f"This kernel already had a {type(strategy).__name__}; models built under it keep it.",
                    "Restart the kernel and run all, so every model builds under the new strategy.",
                )
            )
        strategy, why = _choose(tf, kind)
        if strategy is None:
            strategy = tf.distribute.get_strategy()
    _NOTEBOOK.update(strategy=strategy, kind=_NOTEBOOK["kind"] if reused else kind)
    return strategy, why, reused


def _strategy_section(name: str, why: str, replicas: int, devices: list[str], batch: int | None):
    """The card's Strategy section, and the global batch that keeps `batch` per replica."""
    sec = Section("Strategy")
    sec.add("strategy", name)
    sec.add("why", why)
    sec.add("replicas", replicas)
    if devices:
        sec.add("devices", devices)
    global_batch = None
    if batch:
        global_batch = batch * replicas
        sec.add("your batch size", batch)
        if replicas > 1:
            sec.add("per replica now", f"{batch / replicas:g} ({batch} split over {replicas} replicas)")
            sec.add(
                "to keep", f"{batch} per replica: a global batch of {global_batch} ({batch} x {replicas})"
            )
    return sec, global_batch


def _keras_backend() -> str:
    import importlib.util
    import sys

    if "keras" in sys.modules or importlib.util.find_spec("keras") is not None:
        try:
            import keras

            return keras.config.backend()
        except Exception:
            return os.environ.get("KERAS_BACKEND", "tensorflow")
    return "tensorflow"


def _distribute_jax(kind: str) -> Card:
    import keras

    if kind == "off":
        keras.distribution.set_distribution(None)
        return Card(
            "Distribution", "info", "Distribution off.", data={"kind": "distribute", "strategy": "off"}
        )
    if kind not in ("auto", "mirrored"):
        raise KerasGPUError(
            "unsupported_backend",
            f"'{kind}' is a tf.distribute strategy; Keras 3 on JAX distributes with keras.distribution.",
            "Use %gpu_distribute (auto) or mirrored: both give DataParallel over the JAX devices.",
        )
    devices = keras.distribution.list_devices()
    dist = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(dist)
    return Card(
        "Distribution",
        "ok",
        f"keras.distribution.DataParallel over {len(devices)} JAX device(s) is this notebook's distribution.",
        [Section("Distribution").add("devices", devices)],
        data={"kind": "distribute", "strategy": "DataParallel", "replicas": len(devices), "devices": devices},
    )

"""Where a model trains, as its framework sees it: the facts the monitor's card and findings, the
run receipts and %gpu_estimate read (the backend, the precision the model trains in, the GPUs and
replicas its strategy uses). Reads only: never starts anything new."""

from __future__ import annotations

import os
import sys
from typing import Any

import keras


def tf_facts(model) -> dict[str, Any]:
    """Where this model trains, as TensorFlow sees it (never starts anything new: fit already did)."""
    facts: dict[str, Any] = {
        "backend": keras.backend.backend(),
        "dtype_policy": model_policy(model) or keras.config.dtype_policy().name,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "tf_gpus": None,
        "tf_built_with_cuda": None,
        "replicas": 1,
        "tf_gpu_indexes": [],
        "placed_on_cpu": False,
        "steps_per_execution": int(getattr(model, "steps_per_execution", 1) or 1),
    }
    if facts["backend"] == "tensorflow" and "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        try:
            facts["tf_built_with_cuda"] = bool(tf.test.is_built_with_cuda())
            gpus = tf.config.list_logical_devices("GPU")
            facts["tf_gpus"] = len(gpus)
            strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
            facts["replicas"] = int(strategy.num_replicas_in_sync)
            devs = list(getattr(strategy.extended, "worker_devices", ()) or ())
            used = sorted({int(d.rsplit(":", 1)[1]) for d in devs if "GPU:" in d.upper()})
            weights = getattr(model, "weights", None) or []
            var_dev = ""
            if weights:
                var_dev = str(getattr(getattr(weights[0], "value", weights[0]), "device", "") or "")
            if gpus and "CPU" in var_dev.upper() and not used:
                facts["placed_on_cpu"] = True
            elif gpus and not used:
                used = [0]
            facts["tf_gpu_indexes"] = used
        except Exception:  # a fact we can't read stays unknown
            pass
    elif facts["backend"] == "jax" and "jax" in sys.modules:
        try:
            jax = sys.modules["jax"]
            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            facts["tf_gpus"] = len(gpus)
            facts["tf_gpu_indexes"] = [0] if gpus else []
        except Exception:
            pass
    return facts


def model_policy(model) -> str | None:
    """The precision the model trains in: a mixed policy any of its layers has, else its own (the global
    policy may have changed since the model was built, either way)."""
    try:
        names = [layer.dtype_policy.name for layer in getattr(model, "layers", None) or []]
        return next((n for n in names if n.startswith("mixed")), None) or model.dtype_policy.name
    except Exception:
        return None

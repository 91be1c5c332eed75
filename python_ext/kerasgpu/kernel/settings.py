"""`%gpu_visible`, `%tf_placement`, `%mixed_precision`, `%tf_log`: one-line TensorFlow/Keras settings."""

from __future__ import annotations

import logging
import os

from .render import Card, Fix, Section
from .runtime import KerasGPUError, frozen_error, import_tensorflow, parse_gpu_list, runtime_initialized

POLICIES = ("mixed_float16", "mixed_bfloat16", "float32", "float16", "bfloat16")
LOG_LEVELS = {
    # name: (Python logging level, TF_CPP_MIN_LOG_LEVEL)
    "DEBUG": (logging.DEBUG, "0"),
    "INFO": (logging.INFO, "0"),
    "WARNING": (logging.WARNING, "1"),
    "ERROR": (logging.ERROR, "2"),
    "FATAL": (logging.FATAL, "3"),
}


def set_visible_gpus(spec: str | list[int] | None) -> Card:
    """Shows TensorFlow only the listed GPUs ('0,1', 'all', 'none') before it starts; None shows them."""
    tf = import_tensorflow()
    devs = tf.config.list_physical_devices("GPU")
    if spec is not None:
        text = ",".join(str(g) for g in spec) if isinstance(spec, list) else spec
        try:
            idx = parse_gpu_list(text, len(devs))
        except ValueError as exc:
            raise KerasGPUError(
                "bad_gpu", str(exc), "Run %gpu_check to see which GPUs TensorFlow found."
            ) from exc
        want = devs if idx is None else [devs[i] for i in idx]
        if want != tf.config.get_visible_devices("GPU") and runtime_initialized():
            raise frozen_error(
                "the visible GPUs",
                "Restart the kernel and run %gpu_visible first, or set CUDA_VISIBLE_DEVICES in the kernel's "
                "environment before TensorFlow starts.",
                [
                    f"%gpu_visible {text}  # first cell, after the restart",
                    f"%env CUDA_VISIBLE_DEVICES={text}",
                ],
            )
        try:
            tf.config.set_visible_devices(want, "GPU")
        except RuntimeError as exc:
            if "initialized" in str(exc):
                raise frozen_error("the visible GPUs") from exc
            raise
    visible = tf.config.get_visible_devices("GPU")
    shown = [i for i, d in enumerate(devs) if d in visible]
    sec = Section("GPUs")
    for i, d in enumerate(devs):
        sec.add(f"GPU {i}", "visible" if d in visible else "hidden")
    summary = (
        f"TensorFlow uses GPU {', '.join(map(str, shown))} of {len(devs)}."
        if shown
        else f"TensorFlow uses no GPU ({len(devs)} found)."
    )
    data = {"ok": True, "physical": len(devs), "visible": shown, "runtime_initialized": runtime_initialized()}
    return Card("Visible GPUs", "info", summary, [sec], data=data)


def set_placement_logging(on: bool) -> Card:
    """Turns TensorFlow's op placement log on or off (it prints the device each op runs on)."""
    tf = import_tensorflow()
    tf.debugging.set_log_device_placement(bool(on))
    summary = (
        "Placement logging on: each op prints 'Executing op ... in device ...' (turn off with "
        "%tf_placement off)."
        if on
        else "Placement logging off."
    )
    return Card("Placement", "info", summary, data={"ok": True, "log_device_placement": bool(on)})


def _gpu_ccs(tf) -> list[tuple[str, tuple[int, int] | None]]:
    out = []
    for d in tf.config.list_physical_devices("GPU"):
        try:
            det = tf.config.experimental.get_device_details(d)
            out.append((det.get("device_name") or d.name, det.get("compute_capability")))
        except Exception:
            out.append((d.name, None))
    return out


def set_mixed_precision(policy: str | None = None) -> Card:
    """Sets Keras' global dtype policy warning where GPUs gain nothing; None shows it."""
    import keras

    set_policy = getattr(keras.mixed_precision, "set_global_policy", None) or keras.config.set_dtype_policy
    get_policy = getattr(keras.mixed_precision, "global_policy", None) or keras.config.dtype_policy
    if policy is not None:
        if policy not in POLICIES:
            raise KerasGPUError(
                "bad_policy", f"Unknown dtype policy '{policy}'.", f"Use one of: {', '.join(POLICIES)}."
            )
        set_policy(policy)
    name = get_policy().name
    fixes = []
    gpus = []
    if "tensorflow" in __import__("sys").modules or keras.config.backend() == "tensorflow":
        try:
            gpus = _gpu_ccs(import_tensorflow())
        except KerasGPUError:
            gpus = []
    if name.endswith("float16") and "bfloat16" not in name:
        slow = [f"{n} ({cc[0]}.{cc[1]})" for n, cc in gpus if cc and cc < (7, 0)]
        if slow:
            fixes.append(
                Fix(
                    "old_gpu",
                    "warning",
                    f"float16 needs Tensor Cores (compute capability 7.0+) to run faster; these GPUs have "
                    "none: "
                    f"{', '.join(slow)}.",
                    "Stay with float32 on these GPUs.",
                    ["%mixed_precision float32"],
                    "https://www.tensorflow.org/guide/mixed_precision#supported_hardware",
                )
            )
    if name == "mixed_bfloat16":
        slow = [f"{n} ({cc[0]}.{cc[1]})" for n, cc in gpus if cc and cc < (8, 0)]
        if slow:
            fixes.append(
                Fix(
                    "old_gpu",
                    "warning",
                    "bfloat16 needs compute capability 8.0+ (Ampere); these GPUs have less: "
                    f"{', '.join(slow)}.",
                    "Use mixed_float16 on 7.x GPUs, float32 below.",
                    ["%mixed_precision mixed_float16"],
                )
            )
    if name.startswith("mixed") and not gpus:
        fixes.append(
            Fix(
                "no_gpu",
                "warning",
                "No GPU visible to TensorFlow: mixed precision on a CPU is usually slower, not faster.",
                "Use float32 unless this runs on a GPU.",
                ["%mixed_precision float32"],
            )
        )
    if name.startswith("mixed"):
        fixes.append(
            Fix(
                "float32_output",
                "info",
                "Keep the model's output layer in float32 so the softmax / loss stay numerically stable.",
                "Give the last layer dtype='float32' (or add a float32 Activation after it).",
                ['layers.Dense(num_classes, activation="softmax", dtype="float32")'],
                "https://keras.io/api/mixed_precision/",
            )
        )
    level = "warning" if any(f.level == "warning" for f in fixes) else "ok"
    sec = Section("Keras")
    sec.add("global dtype policy", name)
    for n, cc in gpus:
        sec.add(n, f"compute capability {cc[0]}.{cc[1]}" if cc else "compute capability n/a")
    return Card(
        "Mixed precision",
        level,
        f"Keras dtype policy: {name}.",
        [sec],
        fixes,
        {
            "ok": True,
            "policy": name,
            "gpus": [{"name": n, "compute_capability": cc and f"{cc[0]}.{cc[1]}"} for n, cc in gpus],
        },
    )


def set_tf_log(level: str | None = None) -> Card:
    """Sets TensorFlow's Python log level and TF_CPP_MIN_LOG_LEVEL (read by C++ at import)."""
    import sys

    if level is not None:
        key = level.upper()
        if key.isdigit() and int(key) <= 3:
            key = ("INFO", "WARNING", "ERROR", "FATAL")[int(key)]
        if key not in LOG_LEVELS:
            raise KerasGPUError(
                "bad_level", f"Unknown log level '{level}'.", f"Use one of: {', '.join(LOG_LEVELS)} (or 0-3)."
            )
        py_level, cpp = LOG_LEVELS[key]
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = cpp
        logging.getLogger("tensorflow").setLevel(py_level)
    tf_loaded = "tensorflow" in sys.modules
    py_name = logging.getLevelName(logging.getLogger("tensorflow").getEffectiveLevel())
    cpp = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    fixes = []
    if level is not None and tf_loaded:
        fixes.append(
            Fix(
                "cpp_level_frozen",
                "info",
                "TensorFlow was already imported: its C++ log level (TF_CPP_MIN_LOG_LEVEL) was read at "
                "import.",
                "The Python log level changed now; the C++ level applies after a kernel restart if this "
                "runs first.",
            )
        )
    sec = Section("Logging")
    sec.add("tensorflow Python logger", py_name)
    sec.add("TF_CPP_MIN_LOG_LEVEL", cpp)
    return Card(
        "TensorFlow log",
        "info",
        f"TensorFlow log level: Python {py_name}, C++ {cpp}.",
        [sec],
        fixes,
        {"ok": True, "python_level": py_name, "tf_cpp_min_log_level": cpp, "tensorflow_imported": tf_loaded},
    )

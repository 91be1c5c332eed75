"""`%gpu_visible`, `%tf_placement`, `%mixed_precision`, `%tf_log`: one-line TensorFlow/Keras settings."""

from __future__ import annotations

import logging
import os

from .render import Card, Fix, Section
from .runtime import KerasGPUError, frozen_error, gpu_indexes, import_tensorflow, runtime_initialized

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
        idx = gpu_indexes(text, len(devs), "Run %gpu_check to see which GPUs TensorFlow found.")
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


def _import_keras():
    try:
        import keras
    except ImportError as exc:
        raise KerasGPUError(
            "no_keras",
            f"Keras can't be imported in this kernel ({exc}).",
            "Install it into this kernel's environment, then restart the kernel: %pip install keras "
            '(TensorFlow 2.16+ brings Keras 3; %pip install "tensorflow[and-cuda]" installs both).',
        ) from exc
    return keras


def _kernel_gpus(keras) -> list[tuple[str, tuple[int, int] | None]]:
    """The GPUs this kernel's Keras backend sees, with compute capability; never starts TensorFlow's
    runtime (physical devices and device details only)."""
    if keras.config.backend() == "tensorflow":
        try:
            return _gpu_ccs(import_tensorflow())
        except KerasGPUError:
            return []
    # JAX / torch: the driver's view (NVML or nvidia-smi), the same the panel shows.
    try:
        from ..telemetry import probe

        devs = probe().devices
    except Exception:
        return []
    out = []
    for d in devs:
        cc = getattr(d, "compute_capability", None)
        parsed = None
        if isinstance(cc, str) and "." in cc:
            major, minor = cc.split(".", 1)
            if major.isdigit() and minor.isdigit():
                parsed = (int(major), int(minor))
        out.append((getattr(d, "name", "GPU"), parsed))
    return out


def auto_policy(gpus: list[tuple[str, tuple[int, int] | None]]) -> tuple[str | None, str]:
    """The mixed policy for these GPUs and why: bfloat16 on 8.0+, float16 on 7.x, none below."""
    if not gpus:
        return None, (
            "TensorFlow sees no GPU in this kernel, and 16-bit compute on a CPU is slower, not faster: the "
            "policy stays float32. The GPU verification cell (%gpu_check) says why no GPU is seen."
        )
    ccs = [cc for _, cc in gpus if cc]
    if not ccs:
        return None, "The GPUs' compute capability is unknown: the policy stays float32 (set one by name)."
    low = min(ccs)
    cc = f"{low[0]}.{low[1]}"
    if low >= (8, 0):
        return "mixed_bfloat16", (
            f"compute capability {cc}: bfloat16 runs on the Tensor Cores and keeps float32's range, so "
            "no loss scaling is needed (mixed_float16 would work too, with loss scaling)."
        )
    if low >= (7, 0):
        return "mixed_float16", (
            f"compute capability {cc}: float16 Tensor Cores, no fast bfloat16; compile() adds loss "
            "scaling by itself."
        )
    return None, (
        f"compute capability {cc} has no Tensor Cores (7.0+ needed): 16-bit compute would be slower, so "
        "the policy stays float32."
    )


def set_mixed_precision(policy: str | None = None) -> Card:
    """Sets Keras' global dtype policy, and nothing else; 'auto' picks it from the GPUs' compute
    capability (and refuses, with the reason, below 7.0 or without a GPU); None shows it."""
    keras = _import_keras()
    set_policy = getattr(keras.mixed_precision, "set_global_policy", None) or keras.config.set_dtype_policy
    get_policy = getattr(keras.mixed_precision, "global_policy", None) or keras.config.dtype_policy
    gpus = _kernel_gpus(keras)
    why = None
    if policy == "auto":
        chosen, why = auto_policy(gpus)
        if chosen is None:
            return _policy_refused(get_policy().name, why, gpus)
        policy = chosen
    if policy is not None:
        if policy not in POLICIES:
            raise KerasGPUError(
                "bad_policy",
                f"Unknown dtype policy '{policy}'.",
                f"Use auto or one of: {', '.join(POLICIES)}.",
            )
        set_policy(policy)
    name = get_policy().name
    fixes = _policy_fixes(name, gpus, auto=why is not None)
    level = "warning" if any(f.level == "warning" for f in fixes) else "ok"
    return Card(
        "Mixed precision",
        level,
        f"Keras dtype policy: {name}."
        + (" Models built from now on compute in 16 bits." if name.startswith("mixed") else ""),
        [_policy_section(name, gpus, why)],
        fixes,
        {"ok": True, "policy": name, "reason": why, "gpus": _gpu_json(gpus)},
    )


def _policy_section(name: str, gpus, why: str | None = None) -> Section:
    sec = Section("Keras")
    sec.add("global dtype policy", name)
    if why:
        sec.add("why", why)
    for n, cc in gpus:
        sec.add(n, f"compute capability {cc[0]}.{cc[1]}" if cc else "compute capability n/a")
    return sec


def _policy_refused(name: str, why: str, gpus) -> Card:
    """'auto' found no GPU that 16-bit compute would speed up: the policy stays, and why."""
    return Card(
        "Mixed precision",
        "warning",
        f"Mixed precision not set: {why}",
        [_policy_section(name, gpus)],
        data={"ok": False, "policy": name, "reason": why, "gpus": _gpu_json(gpus)},
    )


def _policy_fixes(name: str, gpus, auto: bool) -> list[Fix]:
    """What to know about policy `name` on these GPUs (`auto`: the policy was chosen for them)."""
    fixes = []
    if name.endswith("float16") and "bfloat16" not in name:
        fixes += _float16_fixes(gpus, auto)
    if name == "mixed_bfloat16":
        slow = _gpus_below(gpus, (8, 0))
        if slow:
            fixes.append(
                Fix(
                    "old_gpu",
                    "warning",
                    f"bfloat16 needs compute capability 8.0+ (Ampere); these GPUs have less: {slow}.",
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
                "Keep the model's output layer in float32 so the softmax / loss stay numerically stable; "
                "after building the model, %mixed_precision check lists what else needs a look.",
                "Give the last layer dtype='float32' (or add a float32 Activation after it).",
                [
                    'layers.Dense(num_classes, activation="softmax", dtype="float32")',
                    "%mixed_precision check",
                ],
                "https://keras.io/api/mixed_precision/",
            )
        )
    return fixes


def _gpus_below(gpus, cc_min: tuple[int, int]) -> str:
    """'name (cc), ...' of the GPUs whose compute capability is below `cc_min` ('' when none)."""
    return ", ".join(f"{n} ({cc[0]}.{cc[1]})" for n, cc in gpus if cc and cc < cc_min)


def _float16_fixes(gpus, auto: bool) -> list[Fix]:
    fixes = []
    slow = _gpus_below(gpus, (7, 0))
    if slow:
        fixes.append(
            Fix(
                "old_gpu",
                "warning",
                "float16 needs Tensor Cores (compute capability 7.0+) to run faster; these GPUs have "
                f"none: {slow}.",
                "Stay with float32 on these GPUs.",
                ["%mixed_precision float32"],
                "https://www.tensorflow.org/guide/mixed_precision#supported_hardware",
            )
        )
    fast_bf16 = [f"{n} ({cc[0]}.{cc[1]})" for n, cc in gpus if cc and cc >= (8, 0)]
    if fast_bf16 and not auto:
        fixes.append(
            Fix(
                "prefer_bfloat16",
                "info",
                f"These GPUs run bfloat16 as fast as float16: {', '.join(fast_bf16)}.",
                "mixed_bfloat16 needs no loss scaling and has float32's range.",
                ["%mixed_precision mixed_bfloat16"],
            )
        )
    return fixes


def _gpu_json(gpus):
    return [{"name": n, "compute_capability": cc and f"{cc[0]}.{cc[1]}"} for n, cc in gpus]


def check_mixed_precision(user_ns: dict | None, model_name: str | None = None) -> Card:
    """`%mixed_precision check`: the traps of 16-bit compute in the user's built models: a float
    Input feeding an Embedding, custom layers making float32 tensors in call(), a 16-bit output."""
    keras = _import_keras()
    models = _user_models(keras, user_ns or {}, model_name)
    policy = (getattr(keras.mixed_precision, "global_policy", None) or keras.config.dtype_policy)().name
    fixes: list[Fix] = []
    sec = Section("Models")
    seen_classes: set[type] = set()
    for name, model in sorted(models.items()):
        layers = (
            list(model._flatten_layers(include_self=False))
            if hasattr(model, "_flatten_layers")
            else model.layers
        )
        sec.add(name, f"{type(model).__name__}, {len(layers)} layers, compute dtype {model.compute_dtype}")
        fixes += _embedding_input_fixes(keras, name, model, layers)
        for layer in layers:
            cls = type(layer)
            if cls in seen_classes or cls.__module__.startswith(("keras", "tensorflow", "tf_keras")):
                continue
            seen_classes.add(cls)
            fixes += _custom_layer_fixes(name, cls)
        if layers:
            last = layers[-1]
            out_dtype = getattr(last, "compute_dtype", "float32")
            if out_dtype != "float32":
                fixes.append(
                    Fix(
                        "output_not_float32",
                        "info",
                        f"{name}: the output layer {last.name} computes in {out_dtype}.",
                        'Give the last layer dtype="float32" (or add a float32 Activation after it).',
                    )
                )
    if not models:
        summary = "No Keras model in this kernel yet: build the model, then run %mixed_precision check."
        level = "info"
    elif fixes:
        summary = f"{len(fixes)} thing(s) to change before training with a 16-bit policy (now {policy})."
        level = "warning" if any(f.level == "warning" for f in fixes) else "info"
    else:
        summary = f"No mixed-precision traps found in {', '.join(sorted(models))} (policy {policy})."
        level = "ok"
    data = {"ok": True, "policy": policy, "models": sorted(models), "traps": [f.to_json() for f in fixes]}
    return Card("Mixed precision", level, summary, [sec], fixes, data)


def _user_models(keras, ns: dict, model_name: str | None) -> dict:
    """The Keras models of the user's namespace (or the one named), by name."""
    if model_name is not None:
        if not isinstance(ns.get(model_name), keras.Model):
            raise KerasGPUError(
                "no_model", f"'{model_name}' is not a Keras model in this kernel.", "Name a built model."
            )
        return {model_name: ns[model_name]}
    return {k: v for k, v in ns.items() if not k.startswith("_") and isinstance(v, keras.Model)}


def _embedding_input_fixes(keras, name: str, model, layers) -> list[Fix]:
    inputs = getattr(model, "inputs", None) or []
    has_embedding = any(isinstance(layer, keras.layers.Embedding) for layer in layers)
    float_inputs = [t for t in inputs if "float" in str(getattr(t, "dtype", ""))]
    if not (has_embedding and float_inputs):
        return []
    return [
        Fix(
            "float_input_embedding",
            "warning",
            f"{name}: an Embedding reads a float Input ({float_inputs[0].dtype}); under a 16-bit "
            'policy ids above 2048 get rounded ("indices[..] = 20000 is not in [0, 20000)").',
            'Give the Input dtype="int32" and rebuild the model.',
            ['keras.Input(shape=(maxlen,), dtype="int32")'],
        )
    ]


def _custom_layer_fixes(name: str, cls: type) -> list[Fix]:
    """The planner's float32-in-call() trap, read from a custom layer class's own `call` source."""
    import ast
    import inspect
    import textwrap

    from ..core.planner.cells import Cell, Notebook
    from ..core.planner.traps import mixed_precision_traps

    try:
        src = textwrap.dedent(inspect.getsource(cls.call))
    except (OSError, TypeError):
        return []
    body = f"class {cls.__name__}(Layer):\n" + textwrap.indent(src, "    ")
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return []
    nb = Notebook.of([Cell(0, body, tree=tree)])
    return [
        Fix(trap["code"], "warning", f"{name}: {trap['text']}", trap["fix"], [trap["evidence"]])
        for trap in mixed_precision_traps(nb)
        if trap["code"] == "float32_in_custom_layer"
    ]


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

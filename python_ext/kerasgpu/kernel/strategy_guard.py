"""Keeps `%gpu_distribute`'s claim true while the notebook trains.

- **Resets**: `keras.backend.clear_session()` (and `keras.utils.clear_session()`,
  `tf.keras.backend.clear_session()`) calls `tf.compat.v1.reset_default_graph()`, which drops the
  strategy that `tf.distribute.experimental_set_strategy` made current. The guard wraps that one
  function (Keras looks it up at call time, however the user imported `clear_session`) and makes
  the notebook's strategy current again right after it, in the same cell.
- **At every fit, evaluate and predict** (watched or not; kerasgpu's own internal fits are left
  alone) under a notebook strategy, before Keras starts: the model must have been built under it
  (one built outside runs on one device, and the cell says so); a model with its own `train_step`
  and no `call()` is marked built when that is exactly right (`build_without_call`); a custom
  `train_step`'s own optimizers are built before the distributed step; a model on strings builds
  on one replica's batch; every batch of NumPy input splits over the replicas (`_fix_batches`).
  After fit the model's variables must be distributed. Whatever the guard did or found is shown in
  the cell at once, and kept for `%gpu_doctor`.

Measured with Keras 3.15 / TensorFlow 2.21 on 2 and 3 logical CPU replicas (MirroredStrategy): a
*first* batch whose size is not a multiple of the replicas fails every model in fit, evaluate and
validation; a batch that leaves a replica empty fails many, depending on their ops (a Conv2D model
in fit, an LSTM predicting one sample, Conv2D + BatchNormalization in evaluate and predict); a
Dense-only model never did.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

from .render import Card, Fix, Section
from .runtime import import_tensorflow

_STATE: dict[str, Any] = {
    "outside": 0,  # > 0 while a model built outside the strategy runs with none current
    "current": False,  # the strategy is the notebook's current one (not only a scope's)
    "trim_outputs": None,  # predict: how many outputs are the user's (the rest pad the last batch)
    "strategy": None,  # the notebook's strategy the guard keeps (None: the guard is idle)
    "notes": [],  # what the guard did or found, newest last (for %gpu_doctor)
    "quiet": False,  # tests and scripts: record notes without displaying them
    "shown": {},  # (code, id(model)) -> the cell run whose output already shows that card
}
_MAX_NOTES = 20


# ------------------------------------------------------------------------------ public


def keep(strategy, current: bool = True) -> None:
    """Makes the guard keep `strategy` (None: stop guarding; the wraps stay, idle). `current`: the
    notebook made it current for every cell (%gpu_distribute); else only the cells that enter its
    scope use it (the cell wrap, %%distribute): the guard then fixes the fits of models built in
    it and leaves every other model, and the current strategy, alone."""
    _STATE["strategy"] = strategy
    _STATE["current"] = bool(current and strategy is not None)
    if strategy is None:
        return
    tf = import_tensorflow()
    _wrap_reset(tf)
    _wrap_trainer()


def notes() -> list[dict[str, Any]]:
    """What the guard did or found in this kernel (newest last)."""
    return list(_STATE["notes"])


def add_to_card(card: Card) -> Card:
    """`%gpu_doctor`'s card with what the guard found wrong in this kernel's distribution (a claim
    that did not hold at fit), as fixes; the card's level rises to the worst of them."""
    found = [n for n in _STATE["notes"] if n["level"] in ("warning", "error")]
    seen = set()
    for note in reversed(found):
        if note["code"] in seen:
            continue
        seen.add(note["code"])
        card.fixes.append(Fix(note["code"], note["level"], note["text"], "See the message above."))
    if found and card.level in ("ok", "info"):
        card.level = "error" if any(n["level"] == "error" for n in found) else "warning"
        card.summary = f"{found[-1]['text']} {card.summary}"
    card.data["distribution"] = [{"code": n["code"], "level": n["level"]} for n in found]
    return card


def model_distribution(model) -> dict[str, Any]:
    """How `model` is distributed: its strategy, replicas, and how many variables are distributed."""
    tf = import_tensorflow()
    own = getattr(model, "_distribute_strategy", None)
    variables = list(getattr(model, "variables", []) or [])
    distributed = sum(isinstance(getattr(v, "value", v), tf.distribute.DistributedValues) for v in variables)
    return {
        "strategy": type(own).__name__ if own is not None else None,
        "replicas": int(own.num_replicas_in_sync) if own is not None else 1,
        "variables": len(variables),
        "distributed_variables": distributed,
    }


def build_without_call(model) -> str | None:
    """Whether `model` (no `call()`, its own `train_step`) can be marked built so that fit runs under
    a strategy; None when it can, else why not.

    Keras' `_symbolic_build` (trainers/trainer.py) calls the model on a symbolic batch when any layer
    of it is unbuilt, or when `compile()` was given a loss or metrics; a model without `call()` fails
    there ("Unable to automatically build the model"). Marking it built is exactly right when every
    sub-layer already has its variables and compile has no loss or metrics of its own: the model then
    has nothing left to build, and its `train_step` calls the sub-models itself."""
    unbuilt = [layer.name for layer in model._flatten_layers(include_self=False) if not layer.built]
    if unbuilt:
        return f"its sub-layer(s) {', '.join(unbuilt[:3])} are not built yet"
    if getattr(model, "_compile_loss", None) is not None:
        return "compile() was given a loss, which Keras builds by calling the model"
    if getattr(model, "_compile_metrics", None) is not None:
        return "compile() was given metrics, which Keras builds by calling the model"
    return None


# ------------------------------------------------------------------------------ resets


def _wrap_reset(tf) -> None:
    v1 = tf.compat.v1
    current = v1.reset_default_graph
    if getattr(current, "_kerasgpu", False):
        return

    @functools.wraps(current)
    def reset_default_graph():
        current()
        strategy = _STATE["strategy"]
        if strategy is not None and _STATE["current"] and not tf.distribute.has_strategy():
            tf.distribute.experimental_set_strategy(strategy)
            _note(
                "info",
                "reset_kept",
                f"The notebook's {type(strategy).__name__} is current again after clear_session() "
                "(it resets TensorFlow's default graph, and with it the strategy): models built below "
                f"train on {strategy.num_replicas_in_sync} replicas.",
                show=False,
            )

    reset_default_graph._kerasgpu = True
    v1.reset_default_graph = reset_default_graph


# ------------------------------------------------------------------------------ fit / evaluate


def _trainer_class():
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    return TensorFlowTrainer


def _wrap_trainer() -> None:
    try:
        trainer = _trainer_class()
    except ImportError:  # another backend: tf.distribute does not train it
        return
    for name in ("fit", "evaluate", "predict"):
        current = trainer.__dict__.get(name)
        if current is None or getattr(current, "_kerasgpu", False):
            continue
        setattr(trainer, name, _guarded(name, current))
    current = trainer.__dict__.get("_maybe_symbolic_build")
    if current is not None and not getattr(current, "_kerasgpu", False):
        trainer._maybe_symbolic_build = _build_on_any_dtype(current)


def _build_on_any_dtype(original):
    """Keras 3.15 builds a model under a strategy on the replicas' first batches averaged
    (`strategy.reduce("MEAN", ...)`, backend/tensorflow/trainer.py `_maybe_symbolic_build`): a
    batch of strings (a model that starts with TextVectorization) cannot be averaged, and evaluate
    or fit fails ('Value for attr 'T' of string is not in the list of allowed values ... AddN').
    Only shapes and dtypes are read from it, so the first replica's batch serves as well."""

    @functools.wraps(original)
    def method(self, iterator=None, data_batch=None):
        if iterator is None or self._distribute_strategy is None or _STATE["strategy"] is None:
            return original(self, iterator=iterator, data_batch=data_batch)
        tf = import_tensorflow()
        batch = None
        for _, _, it in iterator:
            batch = next(it)
            break
        strategy = self.distribute_strategy
        flat = tf.nest.flatten(batch)
        if flat and all(isinstance(v, tf.distribute.DistributedValues) for v in flat):
            local = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], batch)
            if any(v.dtype == tf.string for v in tf.nest.flatten(local)):
                batch = local
            else:
                batch = strategy.reduce("MEAN", batch, axis=None)
        return original(self, data_batch=batch)

    method._kerasgpu = True
    return method


def _internal_fit() -> bool:
    """kerasgpu's own fits (the estimate's, the batch-size finder's copies) are not the user's claim."""
    from .train.watch import in_internal

    return in_internal()


def _guarded(name: str, original):
    signature = inspect.signature(original)

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        if _STATE["strategy"] is None or _internal_fit():
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        _STATE["trim_outputs"] = None
        try:
            if _before(self, name, bound.arguments) == "one_device":
                return _on_one_device(original, bound)
            result = original(*bound.args, **bound.kwargs)
            if name == "fit":
                _after_fit(self)
            if name == "predict" and _STATE["trim_outputs"] is not None:
                result = _cut(result, 0, _STATE["trim_outputs"])
            return result
        finally:
            _STATE["trim_outputs"] = None  # a failed predict leaves nothing for the next call

    method._kerasgpu = True
    return method


def _on_one_device(original, bound):
    """Runs a model built outside every strategy as Keras can: with no strategy current (Keras
    refuses to mix one in: 'Mixing different tf.distribute.Strategy objects'); puts it back after."""
    tf = import_tensorflow()
    _STATE["outside"] += 1  # fit's own validation calls evaluate: only the outermost puts it back
    try:
        if tf.distribute.has_strategy():
            tf.distribute.experimental_set_strategy(None)
        return original(*bound.args, **bound.kwargs)
    finally:
        _STATE["outside"] -= 1
        strategy = _STATE["strategy"]
        if not _STATE["outside"] and strategy is not None and not tf.distribute.has_strategy():
            tf.distribute.experimental_set_strategy(strategy)


def _model_name(model) -> str:
    return (
        type(model).__name__ if not getattr(model, "name", None) else f"{model.name} ({type(model).__name__})"
    )


def _before(model, name: str, args: dict[str, Any]) -> str | None:
    """Checks (and where exactly right, fixes) one fit / evaluate; "one_device" when the model can
    only run outside the strategy."""
    tf = import_tensorflow()
    strategy = _STATE["strategy"]
    replicas = int(strategy.num_replicas_in_sync)
    own = getattr(model, "_distribute_strategy", None)
    if not _STATE["current"]:  # a scope's strategy: only its own models are ours to fix
        if own is strategy:
            _fix(model, name, args, replicas)
        return None
    if own is None:
        _note(
            "error",
            "model_not_distributed",
            f"{_model_name(model)} was built outside the notebook's {type(strategy).__name__}, so this "
            f"{name} runs on one device, not {replicas} replicas. Re-run the cell that builds the model "
            "(below the %gpu_distribute cell), then compile and fit again.",
            model=model,
        )
        return "one_device"
    if not tf.distribute.has_strategy():
        tf.distribute.experimental_set_strategy(strategy)
        _note(
            "warning",
            "strategy_reset",
            f"The notebook's {type(strategy).__name__} was no longer current (something reset it, e.g. "
            "tf.distribute.experimental_set_strategy(None)); kerasgpu made it current again. Models "
            "built while it was not train on one device: re-run the cells that build and compile them.",
        )
    if own is not strategy:
        _note(
            "warning",
            "model_other_strategy",
            f"{_model_name(model)} was built under another strategy ({type(own).__name__}, "
            f"{own.num_replicas_in_sync} replica(s)) than the notebook's {type(strategy).__name__}: it "
            "trains on that one. Restart the kernel and run all to build it under the notebook's.",
            model=model,
        )
        return None
    _fix(model, name, args, replicas)
    return None


def _fix(model, name: str, args: dict[str, Any], replicas: int) -> None:
    """What makes a model built under the strategy train on every replica (each said in the cell)."""
    _fix_model_without_call(model)
    _build_step_optimizers(model)
    if replicas > 1:
        _fix_batches(model, name, args, replicas)


def _fix_model_without_call(model) -> None:
    import keras

    cls = type(model)
    if model.built or cls.call is not keras.Model.call or cls.train_step is keras.Model.train_step:
        return
    why_not = build_without_call(model)
    if why_not is None:
        model.built = True
        _note(
            "info",
            "marked_built",
            f"{cls.__name__} has its own train_step and no call(), so Keras cannot build it under a "
            f"strategy by calling it; its sub-models are built, so kerasgpu marked {_model_name(model)} "
            "built (built = True) and fit runs on every replica.",
        )
    else:
        _note(
            "error",
            "model_without_call",
            f"{cls.__name__} has its own train_step and no call(), and {why_not}: Keras will fail to "
            "build it under the strategy ('Unable to automatically build the model'). Give it a "
            "call() that runs its sub-models, or build its sub-models before fit.",
        )


def step_optimizers(model) -> list[tuple[str, str]]:
    """(optimizer attribute, variables' attribute path) of each `self.<opt>.apply_gradients(
    zip(grads, self.<path>))` in the model's own train_step, read from its source (a notebook
    cell's source is in IPython's line cache); locals resolved (`trainable_vars = self.student...`)."""
    import ast
    import textwrap

    from ..core.planner.cells import assigned_values

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(model).train_step)))
    except (OSError, TypeError, SyntaxError):
        return []
    local = assigned_values(tree)
    out = []
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
            continue
        opt = n.func.value
        if n.func.attr != "apply_gradients" or not (
            isinstance(opt, ast.Attribute) and isinstance(opt.value, ast.Name) and opt.value.id == "self"
        ):
            continue
        arg = n.args[0] if n.args else None
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "zip" and arg.args:
            arg = arg.args[-1]
        else:
            continue
        if isinstance(arg, ast.Name) and arg.id in local:
            arg = local[arg.id]
        path = []
        while isinstance(arg, ast.Attribute):
            path.insert(0, arg.attr)
            arg = arg.value
        if isinstance(arg, ast.Name) and arg.id == "self" and path:  # self.generator.trainable_weights
            out.append((opt.attr, ".".join(path)))
    return out


def _build_step_optimizers(model) -> None:
    """Builds the optimizers a custom train_step applies itself (a GAN's d_optimizer, g_optimizer)
    before fit: built lazily inside the distributed step, TensorFlow fails ('You must feed a value
    for placeholder tensor ... cond/Placeholder'); built here, on the variables the step gives
    them, they train on every replica."""
    import keras

    cls = type(model)
    if cls.train_step is keras.Model.train_step:
        return
    built = []
    for attr, path in step_optimizers(model):
        opt = getattr(model, attr, None)
        if not isinstance(opt, keras.optimizers.Optimizer) or opt.built or opt is model.optimizer:
            continue
        try:
            variables = functools.reduce(getattr, path.split("."), model)
            opt.build(list(variables))
        except Exception:  # noqa: BLE001 - variables we cannot read here: Keras builds it as usual
            continue
        built.append(f"{attr} on {path}")
    if built:
        _note(
            "info",
            "optimizers_built",
            f"{cls.__name__}'s train_step applies its own optimizers; kerasgpu built them before fit "
            f"({'; '.join(built)}): built inside the distributed step, TensorFlow fails ('You must "
            "feed a value for placeholder tensor').",
        )


def _n_samples(x) -> int | None:
    """Samples in NumPy-like input (an array, or a list / dict of arrays); None for anything else."""
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    elif isinstance(x, list | tuple):
        x = x[0] if x else None
    shape = getattr(x, "shape", None)
    if shape is None or not hasattr(x, "__len__") or not len(shape):
        return None
    try:
        return int(shape[0])
    except (TypeError, ValueError):
        return None


def _cut(data, start: int, stop: int):
    """Samples [start:stop) of NumPy-like input (an array, or a list / tuple / dict of arrays)."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _cut(v, start, stop) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(_cut(v, start, stop) for v in data)
    return data[start:stop]


def _even_batches(n: int, batch: int, replicas: int) -> tuple[int, int]:
    """(samples, batch size) so that every batch splits over the replicas: the samples a multiple
    of them (the last n % replicas left out) and, when they make several batches, the batch too."""
    usable = n - n % replicas
    if usable <= batch:  # one batch of `usable` samples
        return usable, batch
    return usable, max(replicas, (batch // replicas) * replicas)


def _fix_batches(model, name: str, args: dict[str, Any], replicas: int) -> None:
    """Every batch of NumPy input splits over the replicas (TF 2.21, measured on 2 and 3 logical
    CPUs: a first batch that does not split fails every model in fit, evaluate and validation
    ('Inputs to operation AddN ... must have the same size'); a batch that leaves a replica empty
    fails many, depending on their ops: a Conv2D model in fit, an LSTM in predict on one sample,
    a Conv2D + BatchNormalization model in evaluate and predict ('Incompatible shapes: [128] vs.
    [0,64,64,3]')). Training and evaluation leave out the last n % replicas samples; predict keeps
    every sample: it pads the last batch and drops the padding's outputs."""
    x = args.get("x")
    n = _n_samples(x)
    if n is None:  # datasets, PyDatasets, generators: their batches are the user's
        return
    batch = int(args.get("batch_size") or 32)
    if name == "fit" and args.get("validation_split"):
        split = float(args["validation_split"])
        n_train = int(math.floor(n * (1.0 - split)))
        x, y, w = args.get("x"), args.get("y"), args.get("sample_weight")
        args["validation_data"] = (_cut(x, n_train, n), _cut(y, n_train, n)) + (
            (_cut(w, n_train, n),) if w is not None else ()
        )
        args["x"], args["y"], args["validation_split"] = _cut(x, 0, n_train), _cut(y, 0, n_train), 0.0
        args["sample_weight"] = _cut(w, 0, n_train)
        n = n_train
    what = {"fit": "training", "evaluate": "evaluation", "predict": "prediction"}[name]
    _even(args, ("x", "y", "sample_weight"), "batch_size", n, batch, replicas, what, name == "predict")
    val = args.get("validation_data") if name == "fit" else None
    if isinstance(val, tuple | list) and val and _n_samples(val[0]):
        keys = [f"v{i}" for i in range(len(val))]
        parts: dict[str, Any] = dict(zip(keys, val, strict=True))
        vbatch = int(args.get("validation_batch_size") or args.get("batch_size") or 32)
        if _even(parts, keys, "vb", _n_samples(val[0]), vbatch, replicas, "validation", False):
            args["validation_data"] = tuple(parts[k] for k in keys)
            if parts.get("vb"):
                args["validation_batch_size"] = parts["vb"]


def _even(parts, keys, batch_key, n, batch, replicas, what, pad) -> bool:
    """Makes the batches of `parts[keys]` split over the replicas; True when it changed them."""
    usable, size = _even_batches(n, batch, replicas)
    if usable == n and size == batch:
        return False
    if n < replicas and not pad:
        _note(
            "error",
            "uneven_batch",
            f"The {what} data has {n} sample(s), fewer than the {replicas} replicas: TensorFlow's "
            "MirroredStrategy fails on a batch that does not split over them. Give it a multiple of "
            f"{replicas} samples.",
        )
        return False
    changes = []
    if size != batch:
        parts[batch_key] = size
        changes.append(f"batches of {size} instead of {batch}")
    if usable != n:
        if pad:
            total = n + (replicas - n % replicas)
            parts["x"] = _pad(parts["x"], total)
            _STATE["trim_outputs"] = n
            changes.append(f"{total - n} copy of its last sample added and its output dropped")
        else:
            for k in keys:
                parts[k] = _cut(parts.get(k), 0, usable)
            changes.append(f"{usable} of its {n} samples (the last {n - usable} left out)")
    _note(
        "info",
        "uneven_batch_fixed",
        f"So that every {what} batch splits over the {replicas} replicas, kerasgpu ran it with "
        f"{' and '.join(changes)}. (With TensorFlow 2.21's MirroredStrategy a first batch that does not "
        "split fails every model, and a batch that leaves a replica empty fails many: convolutions in "
        "fit, LSTMs in predict.)",
    )
    return True


def _pad(data, total: int):
    """NumPy-like input padded to `total` samples with copies of its last sample."""
    import numpy as np

    if isinstance(data, dict):
        return {k: _pad(v, total) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(_pad(v, total) for v in data)
    arr = np.asarray(data)
    extra = np.repeat(arr[-1:], total - len(arr), axis=0)
    return np.concatenate([arr, extra], axis=0)


def _after_fit(model) -> None:
    strategy = _STATE["strategy"]
    if strategy is None or getattr(model, "_distribute_strategy", None) is not strategy:
        return
    info = model_distribution(model)
    if info["variables"] and info["distributed_variables"] < info["variables"]:
        _note(
            "error",
            "variables_not_distributed",
            f"{_model_name(model)} trained with {info['variables'] - info['distributed_variables']} of its "
            f"{info['variables']} variables outside the notebook's {type(strategy).__name__}: those were "
            "not mirrored over the replicas. Re-run the cells that build and compile the model.",
        )


# ------------------------------------------------------------------------------ output


def _note(level: str, code: str, text: str, show: bool = True, model=None) -> None:
    """Records what the guard found and shows it as a card; a card about a model shows once per cell
    run (a loop of predicts on it says it once, not at every call)."""
    note = {"level": level, "code": code, "text": text}
    _STATE["notes"] = [*_STATE["notes"], note][-_MAX_NOTES:]
    if not show or _STATE["quiet"] or _shown_in_this_cell(code, model):
        return
    card = Card(
        "Distribution",
        level,
        text,
        [Section("Strategy").add("notebook's strategy", _strategy_line())],
        data={"kind": "distribute_guard", "code": code},
    )
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(card)
            return
    except ImportError:
        pass
    print(card.to_text())


def _shown_in_this_cell(code: str, model) -> bool:
    """Whether this cell run's output already has this card about this model (and marks it so)."""
    if model is None:
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        run = ip.execution_count if ip is not None else None
    except ImportError:
        run = None
    key = (code, id(model))
    if key in _STATE["shown"] and _STATE["shown"][key] == run:
        return True
    _STATE["shown"] = {**_STATE["shown"], key: run}
    return False


def _strategy_line() -> str:
    strategy = _STATE["strategy"]
    if strategy is None:
        return "none"
    return f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)"

"""A model `%gpu_estimate` and `%gpu_batch_size` may train, leaving the user's as it was.

Most models are copied: `keras.models.clone_model` (new weights) and the same compile config
(a new optimizer), placed on the device being measured. A subclassed `keras.Model` without
`get_config()` (keras-io's VAE and DCGAN, with their own `train_step`) cannot be copied,
neither by `clone_model` nor by `copy.deepcopy`. Such a model trains *in place*, on the device
its weights live on:

- every variable of the model and of its metrics is saved to host memory first and assigned
  back afterwards, also after an out-of-memory;
- each optimizer the model holds (`model.optimizer`, and attributes such as a GAN's
  `d_optimizer` / `g_optimizer`) is swapped for a new one of the same config while it trains,
  so the user's optimizers are never stepped nor built;
- the model's compiled train function is set aside and put back (the one built for the run
  captured the swapped optimizers), as are `model.history` and `model.stop_training`.

With `reuse=True` (the estimate), a model that has trained already (each optimizer built, its
train function made) trains with its own optimizers and train function instead, as the user's
next `fit` would: no new trace (a GAN's traced step can take longer than the budget), and every
optimizer variable is saved and put back with the model's.

A model with no weights yet (built by its first call) can only be measured in place after it
is built: that case gets a clear error rather than weights the user never had.
"""

from __future__ import annotations

import re
import traceback
from contextlib import contextmanager, nullcontext
from typing import Any

from ..runtime import KerasGPUError
from .placement import Placement, is_oom


def clone(model):
    """A copy of `model` with new weights and a new optimizer of the same config, compiled the same way."""
    import keras

    copy = keras.models.clone_model(model)
    try:
        copy.compile_from_config(model.get_compile_config())
    except Exception:
        copy.compile(optimizer=_fresh_optimizer(model.optimizer), loss=model.loss)
    # a model that overrides compile() (a GAN's compile(d_optimizer, g_optimizer, ...)): Keras only
    # warns and leaves the copy uncompiled, or compiled without the optimizers its train_step uses
    missing = [n for n, v in _optimizers(model).items() if not isinstance(getattr(copy, n, None), type(v))]
    if not getattr(copy, "compiled", False) or missing:
        raise NotCompiledAlike(", ".join(missing) or "compile")
    return copy


class NotCompiledAlike(RuntimeError):
    """The copy could not be compiled as the model is (it overrides compile())."""


def _optimizers(model) -> dict[str, Any]:
    """Every optimizer the model holds as an attribute (model.optimizer, a GAN's d_/g_optimizer)."""
    import keras

    found = {n: v for n, v in vars(model).items() if isinstance(v, keras.optimizers.Optimizer)}
    if getattr(model, "optimizer", None) is not None:
        found.setdefault("optimizer", model.optimizer)
    return found


def _why_not(model, err: BaseException) -> str:
    if isinstance(err, NotCompiledAlike):
        return f"{type(model).__name__} overrides compile(), so a copy cannot be compiled as it is"
    if isinstance(err, NotImplementedError) and not getattr(model, "_is_graph_network", False):
        return f"{type(model).__name__} is a subclassed keras.Model without get_config()"
    first = (str(err).strip().splitlines() or [""])[0][:160]
    return f"keras.models.clone_model cannot copy {type(model).__name__} ({type(err).__name__}: {first})"


def _fresh_optimizer(opt):
    import keras

    return keras.optimizers.deserialize(keras.optimizers.serialize(opt))


def home_device(model, place: Placement) -> str | None:
    """The device ("/GPU:0", "/CPU:0") the model's first weight lives on; None before it has any."""
    weights = model.variables
    if not weights:
        return None
    v = weights[0]
    if place.backend == "jax":
        import jax

        arr = v.value
        dev = next(iter(arr.devices()))
        same = jax.devices(dev.platform)
        kind = "GPU" if dev.platform == "gpu" else "CPU"
        return f"/{kind}:{same.index(dev) if dev in same else 0}"
    m = re.search(r"device:(CPU|GPU):(\d+)", str(getattr(v.value, "device", "") or ""), re.IGNORECASE)
    return f"/{m.group(1).upper()}:{m.group(2)}" if m else "/CPU:0"


def _unique(variables) -> list:
    seen: set[int] = set()
    out = []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


@contextmanager
def in_place(model, reuse: bool = False):
    """Lends the user's own model for training and puts it back exactly (see the module's text)."""
    import numpy as np

    if not model.variables:
        raise KerasGPUError(
            "not_built",
            f"{type(model).__name__} has no weights yet and cannot be copied, so it would be measured in "
            "place, and its weights would be made by the measurement.",
            "Build it first (call it on a batch, or train one step), then measure.",
        )
    optimizers = _optimizers(model)
    reuse = reuse and getattr(model, "train_function", None) is not None
    # an optimizer its train step never used (a GAN's unused model.optimizer) is still unbuilt
    unbuilt = {n: o for n, o in optimizers.items() if not getattr(o, "built", False)}
    variables = list(model.variables) + list(getattr(model, "metrics_variables", []))
    if reuse:
        variables += [v for n, opt in optimizers.items() if n not in unbuilt for v in opt.variables]
    variables = _unique(variables)
    saved = [np.array(v.numpy()) for v in variables]
    kept: dict[str, Any] = {
        name: getattr(model, name, None) for name in ("train_function", "history", "stop_training")
    }
    try:
        if not reuse:
            for name, opt in optimizers.items():
                setattr(model, name, _fresh_optimizer(opt))
            model.train_function = None
        yield model
    finally:
        # the user's objects first (nothing can fail there), then each value
        for name, opt in optimizers.items():
            setattr(model, name, opt)
        for name, value in kept.items():
            setattr(model, name, value)
        if reuse:
            _unbuild(model, unbuilt)
        failed = 0
        for v, value in zip(variables, saved, strict=True):
            try:
                v.assign(value)
            except Exception:
                failed += 1
        if failed:
            raise KerasGPUError(
                "not_restored",
                f"{failed} of {len(variables)} of the model's variables could not be put back after "
                "the measurement.",
                "Re-run the cells that build and train the model.",
            )


def _unbuild(model, unbuilt: dict[str, Any]) -> None:
    """After a reused train function ran: an optimizer that was unbuilt and is built now (the step
    was traced anew, with it) is put back unbuilt, as a new one of its config, and the train
    function dropped (the user's next fit traces it again, with their optimizers)."""
    grown = [name for name, opt in unbuilt.items() if getattr(opt, "built", False)]
    for name in grown:
        setattr(model, name, _fresh_optimizer(unbuilt[name]))
    if grown:
        model.train_function = None


@contextmanager
def trainable(model, place: Placement, device: str, reuse: bool = False):
    """A model to train on `device`: a placed copy, or (when none can be made) the user's own model
    lent in place, which must then live on `device` (`reuse`: see `in_place`)."""
    with place.on(device):
        try:
            copy = clone(model)
        except Exception as err:
            if is_oom(err):
                raise
            why = _why_not(model, err)
            fix = (
                "Build and compile it on the device to measure (under tf.device / jax.default_device)."
                if isinstance(err, NotCompiledAlike)
                else "Give the model get_config() (and from_config()) to measure it on every device."
            )
        else:
            try:
                yield copy
            except BaseException as err:
                # an interrupt or an error re-raised to the notebook: its traceback (kept by IPython)
                # must not hold the copy and its optimizer state on the device
                del copy
                traceback.clear_frames(err.__traceback__)
                raise
            return
    home = home_device(model, place)
    if home is not None and home.upper() != device.upper():
        raise KerasGPUError(
            "cannot_copy",
            f"{why}: it cannot be copied to {device}, and is measured only on {home}, where its weights are.",
            fix,
        )
    # the device context outside: the variables are put back on the device they are on (JAX); none
    # where the user's own train function is reused on TensorFlow's default device, as their fit runs
    # it (a tf.device scope is part of a tf.function's key: it would trace the step again)
    default = (place.gpus() or ["/CPU:0"])[0]
    same = reuse and place.backend == "tensorflow" and device.upper() == default.upper()
    with nullcontext() if same else place.on(device), in_place(model, reuse) as own:
        yield own

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

A model with no weights yet (built by its first call) can only be measured in place after it
is built: that case gets a clear error rather than weights the user never had.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
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
    return copy


def _why_not(model, err: BaseException) -> str:
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
        same = [d for d in jax.devices(dev.platform)]
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
def in_place(model):
    """Lends the user's own model for training and puts it back exactly (see the module's text)."""
    import keras
    import numpy as np

    if not model.variables:
        raise KerasGPUError(
            "not_built",
            f"{type(model).__name__} has no weights yet and cannot be copied, so it would be measured in "
            "place, and its weights would be made by the measurement.",
            "Build it first (call it on a batch, or train one step), then measure.",
        )
    variables = _unique(list(model.variables) + list(getattr(model, "metrics_variables", [])))
    saved = [np.array(v.numpy()) for v in variables]
    optimizers = {
        name: value for name, value in vars(model).items() if isinstance(value, keras.optimizers.Optimizer)
    }
    if getattr(model, "optimizer", None) is not None:
        optimizers.setdefault("optimizer", model.optimizer)
    kept: dict[str, Any] = {
        name: getattr(model, name, None) for name in ("train_function", "history", "stop_training")
    }
    try:
        for name, opt in optimizers.items():
            setattr(model, name, _fresh_optimizer(opt))
        model.train_function = None
        yield model
    finally:
        for v, value in zip(variables, saved, strict=True):
            v.assign(value)
        for name, opt in optimizers.items():
            setattr(model, name, opt)
        for name, value in kept.items():
            setattr(model, name, value)


@contextmanager
def trainable(model, place: Placement, device: str):
    """A model to train on `device`: a placed copy, or (when none can be made) the user's own model
    lent in place, which must then live on `device`."""
    with place.on(device):
        try:
            copy = clone(model)
        except Exception as err:
            if is_oom(err):
                raise
            why = _why_not(model, err)
        else:
            yield copy
            return
    home = home_device(model, place)
    if home is not None and home.upper() != device.upper():
        raise KerasGPUError(
            "cannot_copy",
            f"{why}: it cannot be copied to {device}, and is measured only on {home}, where its weights are.",
            "Give the model get_config() (and from_config()) to measure it on every device.",
        )
    with in_place(model) as own, place.on(device):
        yield own

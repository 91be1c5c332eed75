"""`%gpu_estimate` / `kerasgpu.estimate(...)`: will training finish before the deadline, on which device?

Times warm training steps of the user's model on each device this kernel can use
(the CPU, each GPU that TensorFlow or JAX sees: `placement`) on a copy: `keras.models.clone_model`
plus the same compile config (a fresh optimizer), so the user's weights and optimizer state
are untouched. A model that cannot be copied (a subclassed Model without get_config()) trains
itself, on the device its weights are on only, and is put back exactly (`copies`).
Two short `fit`s of the copy, through the same input path as the user's `fit` (arrays
stay arrays): the first traces and warms up, the second runs
2-5 short epochs (about `TIMED_SECONDS` in all) and is timed step by step. The full
run is projected as

    total = startup (tracing: the first fit's first step less the timed fit's)
            + fit overhead (once per fit: set-up, the first iterator, the end)
            + (epochs - 1) x epoch overhead + epochs x steps x warm step time

(a short last batch traces once more). The epoch overhead is what each further epoch
costs besides its steps: the epoch's end (metrics, callbacks), the input iterator's
teardown and a new one (Keras makes one per epoch), the new iterator's first batch:
10-50 ms on a CPU. With TensorFlow 2.21 the teardown now and then blocks the main thread
for 0.1-1.4 s (it sleeps, using no CPU, until a tf.data thread's timed wait runs out;
with tf.data's autotuning off none did), more often on a loaded machine. The estimate
takes the median over 1-4 timed boundaries and counts a fit's end as at most one
boundary: the typical cost, not the occasional block. Leaving the term out made the
estimate 2-5 % lower in the median, up to 15 % in single runs, of 5 epochs of about a
second (bench/estimate_error.py); over epochs of minutes it is noise.
`verdict()` (pure) turns the per-device totals into one line.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..runtime import KerasGPUError
from .copies import trainable
from .placement import Placement, for_backend
from .timeutil import format_clock, format_duration, parse_deadline

INFINITE_CARDINALITY = -1  # tf.data.INFINITE_CARDINALITY (no TensorFlow import on other backends)

WARM_STEPS = 3  # steps of the first short fit besides the traced one (a slow model's steps are long)
MIN_TIMED = 3  # steps of each timed epoch, at least (one step-to-step gap after the iterator's first)
MAX_TIMED = 2000  # ... at most: the arrays are sliced, copied only where the data has fewer batches
TIMED_SECONDS = 3.0  # the timed fit runs about this long
VAL_SECONDS = 1.0  # the timed validation pass runs about this long
TIMED_EPOCHS = 4  # the timed fit's epochs, where the user's are long enough: 3 boundaries to time
MIN_TIMED_EPOCHS = 2  # at least one boundary, where the user's epochs are short ...
MAX_TIMED_EPOCHS = 5  # ... and at most this many


@dataclass
class DeviceTime:
    """One device's measured pace and the projected full run."""

    device: str  # /CPU:0, /GPU:0 (on every backend: placement.parse_device)
    label: str  # CPU, GPU 0 (NVIDIA H200)
    step_time_s: float
    fit_overhead_s: float  # once per fit: data adapter, callbacks, the first iterator, the end
    startup_s: float
    steps_per_epoch: int
    epochs: int
    batch_size: int | None
    total_s: float = 0.0
    samples_per_s: float | None = None
    timed_steps: int = 0
    error: str | None = None
    in_place: bool = False  # the user's own model trained and was put back (it cannot be copied)
    epoch_overhead_s: float = 0.0  # each further epoch besides its steps: epoch end, a new iterator
    timed_epochs: int = 0
    epoch_boundaries_s: list[float] = field(default_factory=list)  # each timed one (median: the above)
    val_steps: int = 0  # validation steps each epoch (validation_data / validation_split)
    val_step_s: float = 0.0  # a warm validation step
    val_epoch_s: float = 0.0  # each epoch's validation pass: its steps and its set-up
    val_startup_s: float = 0.0  # tracing the validation step, once

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def project(
    step_time_s: float,
    steps_per_epoch: int,
    epochs: int,
    fit_overhead_s=0.0,
    startup_s=0.0,
    epoch_overhead_s=0.0,
) -> float:
    """Seconds the whole run takes at the measured pace (the first epoch's overhead is the fit's)."""
    return (
        startup_s
        + fit_overhead_s
        + max(epochs - 1, 0) * epoch_overhead_s
        + epochs * steps_per_epoch * step_time_s
    )


def pace(epochs: list[list[float]]) -> tuple[float, float, int]:
    """(warm step, epoch overhead, gaps used) from the batch-begin times of each timed epoch (pure).

    The step is the mean step-to-step gap inside the epochs, each epoch's first gap left out (it
    pulls the new iterator's first batch): the mean, not the median, because the full run pays its
    slow steps too. The epoch overhead is the median of `boundaries()`: one boundary in a few
    blocks for a long while (see the module's note), and a mean of 2-4 of them would swing by
    more than the run's own."""
    gaps = [b - a for times in epochs for a, b in zip(times[1:-1], times[2:], strict=True)]
    if not gaps:
        raise ValueError("each timed epoch needs 3 steps")
    step = sum(gaps) / len(gaps)
    bounds = boundaries(epochs, step)
    over = max(0.0, statistics.median(bounds)) if bounds else 0.0
    return step, over, len(gaps)


def boundaries(epochs: list[list[float]], step: float) -> list[float]:
    """What each epoch after the first cost besides its steps (pure): from one epoch's second batch
    to the next's, less that epoch's steps at the warm pace."""
    return [nxt[1] - cur[1] - len(cur) * step for cur, nxt in zip(epochs[:-1], epochs[1:], strict=True)]


@dataclass
class Verdict:
    """The one-line answer and what would change it."""

    line: str
    meets: list[str] = field(default_factory=list)  # labels of the devices that meet the deadline
    fastest: str | None = None
    needed_speedup: float | None = None  # how much faster the fastest must be to meet the deadline


def verdict(
    results: list[DeviceTime], deadline: float | None, now: float, deadline_label: str | None = None
) -> Verdict:
    """'CPU ~50 h, GPU 0 (H200) ~2 h: only GPU 0 (H200) meets the 36 h deadline' (pure)."""
    ok = [r for r in results if r.error is None]
    parts = [f"{r.label} ~{format_duration(r.total_s)}" for r in ok]
    parts += [f"{r.label}: {r.error}" for r in results if r.error is not None]
    if not ok:
        return Verdict("; ".join(parts) or "No device could train a step.")
    best = min(ok, key=lambda r: r.total_s)
    head = ", ".join(parts)
    if deadline is None:
        if len(ok) > 1:
            slow = max(ok, key=lambda r: r.total_s)
            tail = f"{best.label} is {slow.total_s / best.total_s:.1f}x faster than {slow.label}"
        else:
            tail = f"ends about {format_clock(now + best.total_s, now)}"
        return Verdict(f"{head}: {tail}", fastest=best.label)
    label = deadline_label or f"deadline ({format_clock(deadline, now)})"
    meets = [r.label for r in ok if now + r.total_s <= deadline]
    if not meets:
        left = max(deadline - now, 1.0)
        need = best.total_s / left
        tail = f"none meets the {label}; {best.label} needs to be {need:.1f}x faster"
        return Verdict(f"{head}: {tail}", [], best.label, need)
    if len(meets) == len(ok):
        if len(ok) == 1:
            tail = f"{best.label} meets the {label}"
        else:
            tail = f"{'both' if len(ok) == 2 else 'all'} meet the {label}"
    elif len(meets) == 1:
        tail = f"only {meets[0]} meets the {label}"
    else:
        tail = f"{', '.join(meets[:-1])} and {meets[-1]} meet the {label}"
    return Verdict(f"{head}: {tail}", meets, best.label)


def what_would_change(results: list[DeviceTime], facts: dict[str, Any]) -> list[str]:
    """The levers for this model on these devices, most effective first."""
    out = []
    gpus = [r for r in results if r.device.upper().startswith("/GPU") and r.error is None]
    policy = facts.get("dtype_policy") or "float32"
    if gpus and not policy.startswith("mixed"):
        out.append(
            "Mixed precision (%mixed_precision mixed_float16, or mixed_bfloat16 on compute capability 8.0+): "
            "matmuls and convolutions often run 2-3x faster on Tensor Cores, with half the activation memory."
        )
    jax = facts.get("backend") == "jax"
    if len(gpus) > 1:
        how = (
            "keras.distribution.DataParallel (set before the model is built)"
            if jax
            else "MirroredStrategy (%%distribute)"
        )
        out.append(
            f"All {len(gpus)} GPUs with {how}: up to ~{len(gpus)}x fewer seconds "
            "per epoch with the batch scaled by the GPU count."
        )
    bs = results[0].batch_size if results else None
    if gpus:
        out.append(
            f"A larger batch{f' than {bs}' if bs else ''} (%gpu_batch_size finds the largest that fits): "
            "fewer, fuller steps; keep accuracy by scaling the learning rate."
        )
    if not gpus and facts.get("driver_gpus"):
        out.append(
            "A GPU: the driver shows one, but JAX can't use it here "
            '(a CPU-only jaxlib? pip install -U "jax[cuda12]").'
            if jax
            else "A GPU: the driver shows one, but TensorFlow can't use it here (run %gpu_check --deep)."
        )
    out.append(
        "A fed input pipeline (tf.data cache / prefetch(AUTOTUNE)) if %gpu_watch finds the GPU waiting."
    )
    return out


# ------------------------------------------------------------------ measuring


def _fit_args(x, y, batch_size: int | None, n_steps: int) -> tuple[dict[str, Any], int | None]:
    """`fit` arguments for epochs of `n_steps` batches of the user's data, through the same input
    path as the user's own `fit`: arrays stay arrays (Keras' array adapter shuffles and batches
    them, with a new iterator each epoch), sliced where they hold enough batches and repeated
    only where they don't; a finite dataset is cut to `n_steps` batches (a new iterator each
    epoch, as in the user's `fit`), an infinite one runs `steps_per_epoch` (one iterator, as
    there)."""
    import keras

    if hasattr(x, "element_spec"):
        n = int(x.cardinality().numpy())
        if n == INFINITE_CARDINALITY:
            return {"x": x, "steps_per_epoch": n_steps}, batch_size
        return {"x": (x if n >= n_steps else x.repeat()).take(n_steps)}, batch_size
    bs = int(batch_size or 32)
    need = bs * n_steps
    have = _n_samples(x)
    reps = math.ceil(need / have)

    def cut(a):
        import numpy as np

        a = np.asarray(a)
        return (np.concatenate([a] * reps) if reps > 1 else a)[:need]

    xs = keras.tree.map_structure(cut, x)
    ys = None if y is None else keras.tree.map_structure(cut, y)
    return {"x": xs, "y": ys, "batch_size": bs}, bs


def _batches_available(x, batch_size: int | None) -> int | None:
    """Full batches the user's data holds (None: an infinite or unknown dataset)."""
    if hasattr(x, "element_spec"):
        n = int(x.cardinality().numpy())
        return n if n >= 0 else None
    return _n_samples(x) // int(batch_size or 32)


def _steps_per_epoch(x, batch_size: int | None, steps_per_epoch: int | None) -> int:
    if steps_per_epoch:
        return int(steps_per_epoch)
    if hasattr(x, "element_spec"):
        n = int(x.cardinality().numpy())
        if n < 0:
            raise KerasGPUError(
                "unknown_steps",
                "The dataset's length is unknown (infinite or filtered), so the steps per epoch are too.",
                "Pass --steps-per-epoch N (the value you give fit).",
            )
        return n
    return math.ceil(_n_samples(x) / int(batch_size or 32))


def _n_samples(x) -> int:
    import keras

    return len(keras.tree.flatten(x)[0])


def _device_label(device: str, place: Placement | None = None) -> str:
    if device.upper().startswith("/CPU"):
        return "CPU"
    idx = int(device.rsplit(":", 1)[1])
    name = (place or Placement()).gpu_name(device)
    if name:
        name = name.replace("NVIDIA ", "")
    return f"GPU {idx}" + (f" ({name})" if name else "")


class _Clock:
    """Times of each training batch begin, epoch by epoch (the same measure as the monitor), and of
    each validation batch begin (`tests`, for an `evaluate`)."""

    def __init__(self):
        import keras

        class Cb(keras.callbacks.Callback):
            def __init__(cb):
                super().__init__()
                cb.epochs = []
                cb.tests = []

            def on_epoch_begin(cb, epoch, logs=None):
                cb.epochs.append([])

            def on_train_batch_begin(cb, batch, logs=None):
                cb.epochs[-1].append(time.perf_counter())

            def on_test_batch_begin(cb, batch, logs=None):
                cb.tests.append(time.perf_counter())

            def on_train_batch_end(cb, batch, logs=None):
                """Defined so that Keras calls batch ends in step (on JAX it otherwise runs them on a
                thread, and the next step starts before this one has run: the clock would time
                dispatch, not steps). TensorFlow always calls them in step."""

            def on_test_batch_end(cb, batch, logs=None):
                """In step, as on_train_batch_end."""

        self.cb = Cb()


def _time_validation(clone, val: tuple, batch_size: int | None, n: int) -> tuple[float, float, float]:
    """(warm step, set-up per pass, tracing once) of `evaluate` on `n` batches of the validation
    data, as `fit` runs it after each epoch: two passes, the first traces."""
    xv, yv = val
    walls, clocks = [], []
    for _ in range(2):
        kw, _ = _fit_args(xv, yv, batch_size, n)
        kw.pop("steps_per_epoch", None)
        if hasattr(xv, "element_spec") and "x" in kw and _batches_available(kw["x"], None) is None:
            kw["steps"] = n  # an infinite dataset: as many steps as timed
        c = _Clock().cb
        t0 = time.perf_counter()
        clone.evaluate(verbose=0, callbacks=[c], **kw)
        walls.append(time.perf_counter() - t0)
        clocks.append(c.tests)
    times = clocks[1]
    gaps = [b - a for a, b in zip(times[1:-1], times[2:], strict=True)]
    step = sum(gaps) / len(gaps) if gaps else walls[1] / max(1, len(times))
    set_up = max(0.0, walls[1] - len(times) * step)
    tracing = max(0.0, walls[0] - walls[1])
    return step, set_up, tracing


def time_device(
    model,
    device: str,
    x,
    y,
    batch_size,
    steps_per_epoch,
    epochs,
    steps=None,
    partial_last_batch=False,
    place: Placement | None = None,
    validation: tuple | None = None,
    val_steps: int = 0,
) -> DeviceTime:
    """Measures warm steps and epoch boundaries of a fresh copy of `model` on `device` and projects
    the full run. `steps`: steps of each timed epoch (default: about TIMED_SECONDS in all).
    `validation`: (x_val, y_val) run after each epoch for `val_steps` steps, timed the same way."""
    place = place or Placement()
    label = _device_label(device, place)
    dt = DeviceTime(device, label, 0.0, 0.0, 0.0, steps_per_epoch, epochs, batch_size)
    val_set_up = 0.0
    try:
        with trainable(model, place, device) as clone:
            dt.in_place = clone is model
            n1 = 1 + WARM_STEPS
            kw, bs = _fit_args(x, y, batch_size, n1)
            dt.batch_size = bs
            c1 = _Clock().cb
            clone.fit(epochs=1, verbose=0, callbacks=[c1], **kw)
            # the warm steps of the first fit (step 0 traced): a rough pace to size the timed fit
            first = c1.epochs[0]
            rough = max((first[-1] - first[1]) / (len(first) - 2), 1e-6)
            n2 = steps or int(min(MAX_TIMED, TIMED_SECONDS / TIMED_EPOCHS / rough))
            have = _batches_available(x, batch_size)
            if not steps and have is not None and have >= MIN_TIMED:
                n2 = min(n2, have)  # the user's own epochs are no longer; no copy of the arrays
            n2 = max(MIN_TIMED, n2)
            e2 = round(min(MAX_TIMED_EPOCHS, max(MIN_TIMED_EPOCHS, TIMED_SECONDS / (n2 * rough))))
            kw2, _ = _fit_args(x, y, batch_size, n2)
            c2 = _Clock().cb
            t0 = time.perf_counter()
            clone.fit(epochs=e2, verbose=0, callbacks=[c2], **kw2)
            wall2 = time.perf_counter() - t0
            if validation is not None and val_steps:
                # evaluation steps cost about a third of training ones: about VAL_SECONDS of them
                nv = max(MIN_TIMED, int(VAL_SECONDS / max(rough / 3, 1e-6)))
                nv = min(nv, MAX_TIMED, max(val_steps, MIN_TIMED))  # no longer than the user's pass
                dt.val_step_s, val_set_up, dt.val_startup_s = _time_validation(
                    clone, validation, batch_size, nv
                )
                dt.val_steps = val_steps
        timed = c2.epochs
        step, dt.epoch_overhead_s, dt.timed_steps = pace(timed)
        dt.step_time_s = step
        dt.timed_epochs = len(timed)
        dt.epoch_boundaries_s = boundaries(timed, step)
        set_up = timed[0][1] - t0 - step  # to the second batch: adapter, callbacks, the first iterator
        end = t0 + wall2 - timed[-1][-1] - step  # the last epoch's end and the iterator's teardown
        # the teardown at a fit's end can block as at a boundary: count what a typical boundary costs
        dt.fit_overhead_s = max(0.0, set_up + min(end, dt.epoch_overhead_s))
        # tracing: the first fit's first step less the timed fit's (both pull a new iterator's first batch)
        dt.startup_s = max(0.0, (first[1] - first[0]) - (timed[0][1] - timed[0][0]))
        startup = dt.startup_s * (2 if partial_last_batch else 1)  # a short last batch traces again
        dt.total_s = project(step, steps_per_epoch, epochs, dt.fit_overhead_s, startup, dt.epoch_overhead_s)
        if dt.val_steps:
            # fit keeps its validation data adapter from epoch to epoch; a lone `evaluate` builds one
            # (for arrays, a copy into a dataset): a pass's set-up costs at most what a training
            # epoch's boundary does (a new iterator, the epoch's end)
            dt.val_epoch_s = dt.val_steps * dt.val_step_s + min(val_set_up, dt.epoch_overhead_s)
        dt.total_s += dt.val_startup_s + epochs * dt.val_epoch_s
        if bs:
            dt.samples_per_s = bs / step
    except KerasGPUError as err:  # e.g. a model that cannot be copied to this device
        dt.error = err.problem
    except Exception as err:  # e.g. out of memory on a small GPU: say so for this device
        dt.error = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
    return dt


def _split_validation(x, y, validation_data, validation_split):
    """(x, y, (x_val, y_val) or None) as `fit` splits them: `validation_split` holds out the last
    share of the arrays (Keras: the first floor(n x (1 - split)) samples train)."""
    import keras

    if validation_data is not None:
        if hasattr(validation_data, "element_spec"):
            return x, y, (validation_data, None)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise KerasGPUError(
                "bad_argument",
                "validation_data must be (x_val, y_val) or a dataset, as for fit.",
                "Pass --validation-data x_val y_val (or a dataset's name).",
            )
        return x, y, (validation_data[0], validation_data[1])
    if not validation_split:
        return x, y, None
    if hasattr(x, "element_spec") or not 0 < float(validation_split) < 1:
        raise KerasGPUError(
            "bad_argument",
            "validation_split needs arrays (not a dataset) and a share between 0 and 1, as for fit.",
            "Pass --validation-split 0.2 with array data, or --validation-data for a dataset.",
        )
    n = _n_samples(x)
    at = int(math.floor(n * (1.0 - float(validation_split))))
    if at in (0, n):
        raise KerasGPUError(
            "bad_argument",
            f"validation_split={validation_split} of {n} samples leaves "
            + ("nothing to train on." if at == 0 else "no validation sample.")
            + " fit refuses it too.",
            "Use more data or another --validation-split.",
        )

    def head(a):
        return a[:at]

    def tail(a):
        return a[at:]

    cut = keras.tree.map_structure
    return (
        cut(head, x),
        None if y is None else cut(head, y),
        (cut(tail, x), None if y is None else cut(tail, y)),
    )


def devices(place: Placement | None = None) -> list[str]:
    """The devices this kernel can train on: the CPU and each GPU its Keras backend sees."""
    return ["/CPU:0"] + (place or Placement()).gpus()


def estimate(
    model,
    x,
    y=None,
    *,
    epochs: int = 1,
    batch_size: int | None = None,
    steps_per_epoch: int | None = None,
    deadline: str | float | None = None,
    steps: int | None = None,
    devices_: list[str] | None = None,
    validation_data=None,
    validation_split: float | None = None,
    validation_steps: int | None = None,
) -> dict[str, Any]:
    """Projects the full `fit` on each device and answers in one line (`result["line"]`).

    `x`, `y`: the training data as given to `fit` (arrays or a tf.data.Dataset of batches);
    `deadline`: "36h", "2026-12-01 18:00" or epoch seconds; `steps`: warm steps to time;
    `validation_data` / `validation_split` / `validation_steps`: as given to `fit` (each epoch
    then ends with a validation pass, timed too).
    The model must be compiled; it is not changed (a copy trains).
    """
    place = for_backend("%gpu_estimate")
    if not getattr(model, "compiled", False) and getattr(model, "optimizer", None) is None:
        raise KerasGPUError(
            "not_compiled", "The model is not compiled yet.", "Call model.compile(...) first."
        )
    now = time.time()
    deadline_at = parse_deadline(deadline, now)
    deadline_label = None
    if isinstance(deadline, str) and deadline.strip().strip("'\"")[:1].isdigit() and "-" not in deadline:
        deadline_label = f"{format_duration(deadline_at - now)} deadline"
    x, y, validation = _split_validation(x, y, validation_data, validation_split)
    val_steps = 0
    if validation is not None and validation_steps:
        val_steps = int(validation_steps)
    elif validation is not None:
        try:
            val_steps = _steps_per_epoch(validation[0], batch_size, None)
        except KerasGPUError as err:
            raise KerasGPUError(
                err.code,
                "The validation dataset's length is unknown (infinite or filtered), so its steps are too.",
                "Pass --validation-steps N (the value you give fit).",
            ) from None
    spe = _steps_per_epoch(x, batch_size, steps_per_epoch)
    partial = (
        not hasattr(x, "element_spec") and not steps_per_epoch and _n_samples(x) % int(batch_size or 32) > 0
    )
    results = [
        time_device(model, d, x, y, batch_size, spe, epochs, steps, partial, place, validation, val_steps)
        for d in (devices_ or devices(place))
    ]
    from .monitor import tf_facts

    facts = tf_facts(model)
    try:
        from ...telemetry import probe

        facts["driver_gpus"] = len(probe().devices)
    except Exception:
        facts["driver_gpus"] = 0
    v = verdict(results, deadline_at, now, deadline_label)
    return {
        "kind": "gpu_estimate",
        "line": v.line,
        "meets": v.meets,
        "fastest": v.fastest,
        "needed_speedup": v.needed_speedup,
        "deadline": deadline_at,
        "epochs": epochs,
        "steps_per_epoch": spe,
        "validation_steps": val_steps,
        "devices": [r.to_json() for r in results],
        "what_would_change": what_would_change(results, facts),
    }


def estimate_card(model, x, y=None, **kwargs):
    """What `%gpu_estimate` shows: the line, a row per device, and what would change the answer."""
    from ..render import Card, Section

    res = estimate(model, x, y, **kwargs)
    now = time.time()
    in_place = any(d.get("in_place") for d in res["devices"])
    sec = Section(
        "Per device (warm steps of your model itself, put back afterwards: it cannot be copied)"
        if in_place
        else "Per device (warm steps of a copy of the model)"
    )
    for d in res["devices"]:
        if d["error"]:
            sec.add(d["label"], d["error"], "warning")
            continue
        sps = f", {d['samples_per_s']:,.0f} samples/s" if d["samples_per_s"] else ""
        over = d["epoch_overhead_s"]
        per_epoch = ""
        if res["epochs"] > 1 and over >= 0.001:
            per_epoch = f"+ {over * 1000:.0f} ms an epoch " if over < 1 else f"+ {over:.1f} s an epoch "
        val = ""
        if d["val_steps"]:
            v = d["val_epoch_s"]
            took = f"{v * 1000:.0f} ms" if v < 1 else format_duration(v)
            val = f"+ validation {d['val_steps']} steps ({took}) an epoch "
        sec.add(
            d["label"],
            f"{d['step_time_s'] * 1000:.1f} ms/step{sps}; {res['epochs']} x {d['steps_per_epoch']} steps "
            f"{per_epoch}{val}"
            f"-> {format_duration(d['total_s'])}, ends {format_clock(now + d['total_s'], now)}",
        )
    change = Section("What would change it")
    for i, text in enumerate(res["what_would_change"], 1):
        change.add(str(i), text)
    level = "info" if res["deadline"] is None else "ok" if res["meets"] else "warning"
    return Card("GPU estimate", level, res["line"], [sec, change], data=res)

"""`%gpu_estimate` / `kerasgpu.estimate(...)`: will training finish before the deadline, on which device?

Times warm training steps of the user's model on each device this kernel can use
(the CPU, each GPU that TensorFlow or JAX sees: `placement`) on a copy: `keras.models.clone_model`
plus the same compile config (a fresh optimizer), so the user's weights and optimizer state
are untouched. A model that cannot be copied (a subclassed Model without get_config()) trains
itself, on the device its weights are on only, and is put back exactly (`copies`).
Two short `fit`s of the copy, through the same input path as the user's `fit` (arrays
stay arrays, a PyDataset is read by index, a generator's first batches are reused: `inputs`):
the first traces and warms up, the second runs 2-5 short epochs (about `TIMED_SECONDS` in
all) and is timed step by step. All of it within a budget (`--budget`, `DEFAULT_BUDGET`, and
never more than a tenth of a run longer than a few minutes: `budget_for`): a model whose steps
take seconds gets only the first fit, stopped after its first warm step where the budget says
so, and the card says what was measured. A first (traced) step that alone uses up the budget
cannot be cut short: the fit stops after it, each step is counted at its time (an upper bound,
"CPU ~5 min or less"), and the card says so and which --budget a full estimate needs. A model
measured in place that has trained already reuses its own train function (`copies.in_place`):
no trace, as the user's next fit. The full run is projected as

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
Where fit reads the data through one iterator for the whole fit (a generator, an infinite dataset),
the same teardown at the fit's end can block far longer: the tf.data autotuning thread's timed
wait doubles with the iterator's age up to 60 s, and the main thread, freeing the iterator, waits
it out (gdb: ~RootDataset::Iterator joining Model::OptimizeLoop's timed CondVar wait). Seen here
at the end of 3 of 16 generator-fed fits of 9-21 s: 9-55 s each; none in fits under 6 s, so the
estimate's own short fits cannot measure it. The answer says so (`not_counted`).
`deadline_answer()` (pure) turns the per-device totals into one line.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..runtime import KerasGPUError
from . import results
from .copies import trainable
from .inputs import GENERATOR, Feed, validation_feed
from .placement import Placement, for_backend
from .timeutil import format_clock, format_duration, parse_deadline
from .watch import internal

DEFAULT_BUDGET = 20.0  # seconds the whole estimate may take (--budget) ...
FEW_MINUTES = 180.0  # ... and never more than BUDGET_SHARE of a run longer than this
BUDGET_SHARE = 0.1

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
    measured: list[str] = field(default_factory=list)  # what was timed, in words
    wall_s: float = 0.0  # seconds measuring this device took
    stopped_early: bool = False  # the budget ended a timed fit before its planned steps
    first_step_s: float = 0.0  # the first fit's first step: tracing, set-up and one step
    fit_end_s: float = 0.0  # the longest of its fits' ends, past their last step (an iterator's teardown)
    upper_bound: bool = False  # the budget ran out within the first step: each step counted at its time

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
class DeadlineAnswer:
    """The one-line answer: each device's projected time, and which meet the deadline."""

    line: str
    meets: list[str] = field(default_factory=list)  # labels of the devices that meet the deadline
    fastest: str | None = None
    needed_speedup: float | None = None  # how much faster the fastest must be to meet the deadline


def deadline_answer(
    results: list[DeviceTime], deadline: float | None, now: float, deadline_label: str | None = None
) -> DeadlineAnswer:
    """'CPU ~50 h, GPU 0 (H200) ~2 h: only GPU 0 (H200) meets the 36 h deadline' (pure)."""
    ok = [r for r in results if r.error is None]
    parts = [f"{r.label} ~{format_duration(r.total_s)}{' or less' if r.upper_bound else ''}" for r in ok]
    parts += [f"{r.label}: {r.error}" for r in results if r.error is not None]
    if not ok:
        return DeadlineAnswer("; ".join(parts) or "No device could train a step.")
    best = min(ok, key=lambda r: r.total_s)
    head = ", ".join(parts)
    if deadline is None:
        if len(ok) > 1:
            slow = max(ok, key=lambda r: r.total_s)
            tail = f"{best.label} is {slow.total_s / best.total_s:.1f}x faster than {slow.label}"
        else:
            tail = f"ends about {format_clock(now + best.total_s, now)}"
        return DeadlineAnswer(f"{head}: {tail}", fastest=best.label)
    label = deadline_label or f"deadline ({format_clock(deadline, now)})"
    meets = [r.label for r in ok if now + r.total_s <= deadline]
    if not meets:
        left = max(deadline - now, 1.0)
        need = best.total_s / left
        tail = f"none meets the {label}; {best.label} needs to be {need:.1f}x faster"
        return DeadlineAnswer(f"{head}: {tail}", [], best.label, need)
    if len(meets) == len(ok):
        if len(ok) == 1:
            tail = f"{best.label} meets the {label}"
        else:
            tail = f"{'both' if len(ok) == 2 else 'all'} meet the {label}"
    elif len(meets) == 1:
        tail = f"only {meets[0]} meets the {label}"
    else:
        tail = f"{', '.join(meets[:-1])} and {meets[-1]} meet the {label}"
    return DeadlineAnswer(f"{head}: {tail}", meets, best.label)


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


def budget_for(budget: float, projected_s: float | None) -> float:
    """Seconds the estimate may spend (pure): the budget, and never more than a tenth of the run it
    projects when that run is longer than FEW_MINUTES (a tenth of FEW_MINUTES for shorter runs)."""
    if projected_s is None:
        return budget
    return min(budget, BUDGET_SHARE * max(projected_s, FEW_MINUTES))


class Budget:
    """The estimate's time, shared out over the devices it measures."""

    def __init__(self, seconds: float, devices: int = 1):
        self.seconds = self.limit = float(seconds)
        self.start = time.perf_counter()
        self.devices_left = max(1, devices)

    def cap(self, projected_s: float) -> None:
        """Lowers the limit to what a run this long allows (`budget_for`)."""
        self.limit = min(self.limit, budget_for(self.seconds, projected_s))

    def left(self) -> float:
        return self.limit - (time.perf_counter() - self.start)

    def device_until(self) -> float:
        """The perf_counter time by which the device being measured should be done."""
        return time.perf_counter() + max(0.0, self.left()) / self.devices_left


def _device_label(device: str, place: Placement | None = None) -> str:
    if device.upper().startswith("/CPU"):
        return "CPU"
    idx = int(device.rsplit(":", 1)[1])
    name = (place or Placement()).gpu_name(device)
    if name:
        name = name.replace("NVIDIA ", "")
    return f"GPU {idx}" + (f" ({name})" if name else "")


class _Clock:
    """Times of each training batch's begin and end, epoch by epoch (the same measure as the monitor),
    and of each validation batch (`tests`, `test_ends`, for an `evaluate`). With `until` (a
    perf_counter time) it stops the fit or evaluate once the next step would end past it, after
    `min_steps` steps; with `hard` (a later one), after any step that ends past it."""

    def __init__(self, until: float | None = None, min_steps: int = 0, hard: float | None = None):
        import keras

        class Cb(keras.callbacks.Callback):
            def __init__(cb):
                super().__init__()
                cb.epochs, cb.ends, cb.tests, cb.test_ends = [], [], [], []
                cb.until, cb.min_steps, cb.hard, cb.stopped = until, min_steps, hard, False

            def on_epoch_begin(cb, epoch, logs=None):
                cb.epochs.append([])
                cb.ends.append([])

            def on_train_batch_begin(cb, batch, logs=None):
                cb.epochs[-1].append(time.perf_counter())

            def on_test_batch_begin(cb, batch, logs=None):
                cb.tests.append(time.perf_counter())

            def on_train_batch_end(cb, batch, logs=None):
                """Defined so that Keras calls batch ends in step (on JAX it otherwise runs them on a
                thread, and the next step starts before this one has run: the clock would time
                dispatch, not steps). TensorFlow always calls them in step."""
                now = time.perf_counter()
                cb.ends[-1].append(now)
                done = sum(len(e) for e in cb.ends)
                if cb._over(now, now - cb.epochs[-1][-1], done):
                    cb.model.stop_training = True

            def on_test_batch_end(cb, batch, logs=None):
                """In step, as on_train_batch_end."""
                now = time.perf_counter()
                cb.test_ends.append(now)
                if cb._over(now, now - cb.tests[-1], len(cb.test_ends)):
                    cb.model.stop_evaluating = True

            def _over(cb, now, last, done) -> bool:
                spent = cb.hard is not None and now >= cb.hard
                if cb.until is None or not spent and (done < cb.min_steps or now + last <= cb.until):
                    return False
                cb.stopped = True
                return True

        self.cb = Cb()


def _warm_steps(begins: list[float], ends: list[float]) -> list[float]:
    """Each step after the first (traced) one, from begin to the next begin; the last to its end."""
    out = [b - a for a, b in zip(begins[1:-1], begins[2:], strict=True)]
    if len(begins) >= 2 and len(ends) == len(begins):
        out.append(ends[-1] - begins[-1])
    return out


def _time_validation(clone, val: Feed, n: int, until: float) -> tuple[float, float, float, int]:
    """(warm step, set-up per pass, tracing once, steps timed) of `evaluate` on `n` batches of the
    validation data, as `fit` runs it after each epoch: two passes, the first traces."""
    walls, clocks = [], []
    for _ in range(2):
        c = _Clock(until=until, min_steps=1).cb
        t0 = time.perf_counter()
        clone.evaluate(verbose=0, callbacks=[c], **val.eval_kwargs(n))
        walls.append(time.perf_counter() - t0)
        clocks.append(c)
    last = clocks[1]
    warm = _warm_steps([0.0, *last.tests], [0.0, *last.test_ends])  # every step of a warm pass
    warm = warm[1:] if len(warm) > 2 else warm  # its first pulls the new iterator's first batch
    step = sum(warm) / len(warm) if warm else walls[1] / max(1, len(last.tests))
    set_up = max(0.0, walls[1] - len(last.tests) * step)
    tracing = max(0.0, walls[0] - walls[1] * len(clocks[0].tests) / max(1, len(last.tests)))
    return step, set_up, tracing, len(last.tests)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def time_device(
    model,
    device: str,
    feed: Feed,
    steps_per_epoch: int,
    epochs: int,
    steps: int | None = None,
    place: Placement | None = None,
    validation: Feed | None = None,
    val_steps: int = 0,
    budget: Budget | None = None,
) -> DeviceTime:
    """Measures warm steps and epoch boundaries of a fresh copy of `model` on `device` and projects
    the full run, within this device's share of `budget`. `steps`: steps of each timed epoch
    (default: about TIMED_SECONDS in all). `validation`: run after each epoch for `val_steps`
    steps, timed the same way."""
    place = place or Placement()
    budget = budget or Budget(DEFAULT_BUDGET)
    start = time.perf_counter()
    until = budget.device_until()
    dt = DeviceTime(device, _device_label(device, place), 0.0, 0.0, 0.0, steps_per_epoch, epochs, None)
    if feed.kind == "arrays":
        dt.batch_size = feed.bs
    try:
        with internal(), trainable(model, place, device, reuse=True) as clone:
            dt.in_place = clone is model
            _measure(dt, clone, feed, steps, validation, val_steps, budget, start, until)
    except KerasGPUError as err:  # e.g. a model that cannot be copied to this device
        dt.error = err.problem
    except Exception as err:  # e.g. out of memory on a small GPU: say so for this device
        dt.error = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
    dt.wall_s = time.perf_counter() - start
    budget.devices_left = max(1, budget.devices_left - 1)
    return dt


def _measure(dt: DeviceTime, clone, feed, steps, validation, val_steps, budget, start, until) -> None:
    """The fits of `time_device` (on a copy, or the model lent in place) and the projection."""
    n1 = 1 + WARM_STEPS
    # the first fit traces; where the steps are slow it stops after its first warm step at half
    # of this device's share, so the rest can still be measured; after its first step where that
    # step alone used up the share (a trace cannot be cut short)
    c1 = _Clock(until=start + (until - start) / 2, min_steps=2, hard=until).cb
    t0 = time.perf_counter()
    clone.fit(epochs=1, verbose=0, callbacks=[c1], **feed.fit_kwargs(n1))
    wall1 = time.perf_counter() - t0
    if c1.ends and c1.ends[-1]:
        dt.fit_end_s = t0 + wall1 - c1.ends[-1][-1]
    first, ends1 = c1.epochs[0], c1.ends[0]
    dt.first_step_s = (ends1[0] if ends1 else t0 + wall1) - first[0]
    if len(first) < 2:
        _traced_step_only(dt, feed, wall1, val_steps, budget)
        return
    warm1 = _warm_steps(first, ends1)
    rough = max(sum(warm1) / len(warm1), 1e-6) if warm1 else max(wall1, 1e-6)
    if feed.kind == GENERATOR and feed.pull_s:
        rough = max(rough, feed.pull_s)
    budget.cap(project(rough, dt.steps_per_epoch, dt.epochs) + dt.epochs * val_steps * rough / 3)
    until = min(until, budget.device_until())
    dt.measured.append(f"fit of {_plural(len(first), 'step')} (the first traced)")
    timed = _timed_fit(dt, clone, feed, steps, rough, until, validation is not None and val_steps > 0)
    if timed is not None:
        step, dt.epoch_overhead_s, dt.timed_steps = pace(timed[0])
        dt.timed_epochs = len(timed[0])
        dt.epoch_boundaries_s = boundaries(timed[0], step)
        t2, wall2, last_end = timed[1:]
        set_up = timed[0][0][1] - t2 - step  # to the second batch: adapter, callbacks, the first iterator
        end = t2 + wall2 - last_end  # the last epoch's end and the iterator's teardown
        # the teardown at a fit's end can block as at a boundary: count what a typical boundary costs
        dt.fit_overhead_s = max(0.0, set_up + min(end, dt.epoch_overhead_s))
        # tracing: the first fit's first step less the timed fit's (both pull a new iterator's first batch)
        dt.startup_s = max(0.0, (first[1] - first[0]) - (timed[0][0][1] - timed[0][0][0]))
    else:
        # only the first fit: its warm steps are the pace; what else it took (tracing, set-up, its
        # end) is the fixed part; epoch boundaries are not timed (they cost milliseconds)
        step = rough
        dt.timed_steps = len(warm1)
        dt.startup_s = max(0.0, (first[1] - first[0]) - step) if len(first) > 1 else 0.0
        dt.fit_overhead_s = max(0.0, wall1 - len(first) * step - dt.startup_s)
        dt.measured.append(
            "no timed fit: the budget left no room for one, so epoch boundaries were not timed"
        )
    if feed.kind == GENERATOR and feed.pull_s:
        step = max(step, feed.pull_s)  # the user's generator, prefetched: the slower of the two
    _project(dt, feed, step, clone, validation, val_steps, rough, until)


def _project(dt: DeviceTime, feed, step, clone, validation, val_steps, rough, until) -> None:
    """The full run at the measured pace, with its validation passes (timed here where the budget
    allows)."""
    dt.step_time_s = step
    startup = dt.startup_s * (2 if feed.partial_last_batch() else 1)  # a short last batch traces again
    dt.total_s = project(step, dt.steps_per_epoch, dt.epochs, dt.fit_overhead_s, startup, dt.epoch_overhead_s)
    if validation is not None and val_steps:
        _validation(dt, clone, validation, val_steps, rough, until)
    dt.total_s += dt.val_startup_s + dt.epochs * dt.val_epoch_s
    if dt.batch_size:
        dt.samples_per_s = dt.batch_size / step


def _traced_step_only(dt: DeviceTime, feed, wall1: float, val_steps: int, budget: Budget) -> None:
    """The budget ran out within the first (traced) step: no warm step was timed. Each step is
    counted at that first step's time (tracing included), so the total is an upper bound, and the
    card says what a full estimate needs."""
    step = dt.first_step_s
    if feed.kind == GENERATOR and feed.pull_s:
        step = max(step, feed.pull_s)
    dt.upper_bound = True
    dt.step_time_s = step
    dt.fit_overhead_s = max(0.0, wall1 - dt.first_step_s)
    dt.total_s = project(step, dt.steps_per_epoch, dt.epochs, dt.fit_overhead_s)
    if val_steps:
        dt.val_steps, dt.val_step_s = val_steps, step / 3  # evaluation: about a third of a step
        dt.val_epoch_s = val_steps * dt.val_step_s
        dt.total_s += dt.epochs * dt.val_epoch_s
    if dt.batch_size:
        dt.samples_per_s = dt.batch_size / step
    need = 10 * math.ceil((3 * dt.first_step_s + TIMED_SECONDS + 5) / 10)
    dt.measured.append(
        f"only the first step ({dt.first_step_s:.1f} s, its tracing included): the {budget.limit:.0f} s "
        "budget ran out within it, so no warm step was timed, and every step is counted at that time "
        f"(an upper bound: warm steps are faster). For a full estimate: --budget {need}"
    )


def _timed_fit(dt, clone, feed, steps, rough, until, validating):
    """The second fit, timed epoch by epoch, sized to the budget: (epochs' batch begins, its start,
    its wall time, its last step's end), or None where the budget has no room for it."""
    left = until - time.perf_counter()
    target = min(TIMED_SECONDS, left * (0.5 if validating else 0.8))
    if not steps and target < MIN_TIMED_EPOCHS * MIN_TIMED * rough * 1.2:
        return None
    n2 = steps or int(min(MAX_TIMED, target / TIMED_EPOCHS / rough))
    have = feed.full_batches()
    if not steps and have is not None and have >= MIN_TIMED:
        # the user's own epochs are no longer (no copy of the arrays); where they are at most half
        # as long again, whole epochs of the user's data (what each epoch's end costs depends on it)
        n2 = have if n2 * 3 >= have * 2 else min(n2, have)
    if not steps:
        n2 = min(n2, dt.steps_per_epoch)
    n2 = max(MIN_TIMED, n2)
    e2 = round(min(MAX_TIMED_EPOCHS, max(MIN_TIMED_EPOCHS, target / (n2 * rough))))
    c2 = _Clock(until=until).cb
    t2 = time.perf_counter()
    clone.fit(epochs=e2, verbose=0, callbacks=[c2], **feed.fit_kwargs(n2))
    wall2 = time.perf_counter() - t2
    if c2.ends and c2.ends[-1]:
        dt.fit_end_s = max(dt.fit_end_s, t2 + wall2 - c2.ends[-1][-1])
    full = [e for e in c2.epochs if len(e) == n2]  # a stopped fit's last epoch is cut short
    if c2.stopped:
        dt.stopped_early = True
    if not full:
        dt.measured.append("a timed fit the budget stopped before it ended an epoch")
        return None
    last_end = c2.ends[len(full) - 1][-1]
    dt.measured.append(
        f"timed fit of {len(full)} x {_plural(n2, 'step')}"
        + (" (stopped by the budget)" if c2.stopped else "")
    )
    return full, t2, wall2 if not c2.stopped or len(full) == len(c2.epochs) else last_end - t2, last_end


def _validation(dt, clone, validation: Feed, val_steps: int, rough: float, until: float) -> None:
    """The validation pass after each epoch: timed where the budget allows, else a third of a step."""
    dt.val_steps = val_steps
    left = until - time.perf_counter()
    vrough = max(rough / 3, 1e-6)  # evaluation steps cost about a third of training ones
    nv = max(MIN_TIMED, int(min(VAL_SECONDS, left / 2) / vrough))
    nv = min(nv, MAX_TIMED, max(val_steps, MIN_TIMED))  # no longer than the user's pass
    if left < 2 * MIN_TIMED * vrough * 1.5:
        dt.val_step_s = vrough
        dt.val_epoch_s = val_steps * vrough
        dt.measured.append("validation not timed (no budget left): a third of a training step each")
        return
    dt.val_step_s, set_up, dt.val_startup_s, done = _time_validation(clone, validation, nv, until)
    # fit keeps its validation data adapter from epoch to epoch; a lone `evaluate` builds one
    # (for arrays, a copy into a dataset): a pass's set-up costs at most what a training epoch's
    # boundary does (a new iterator, the epoch's end)
    dt.val_epoch_s = val_steps * dt.val_step_s + min(set_up, dt.epoch_overhead_s)
    dt.measured.append(f"validation: 2 passes of {_plural(done, 'step')} (the first traced)")


def _split_validation(feed: Feed, validation_split):
    """(training Feed, validation Feed) as `fit` splits arrays: `validation_split` holds out the last
    share (Keras: the first floor(n x (1 - split)) samples train)."""
    import keras

    if feed.kind != "arrays" or not 0 < float(validation_split) < 1:
        raise KerasGPUError(
            "bad_argument",
            "validation_split needs arrays (not a dataset, PyDataset or generator) and a share between "
            "0 and 1, as for fit.",
            "Pass --validation-split 0.2 with array data, or --validation-data for the others.",
        )
    n = feed.samples
    at = int(math.floor(n * (1.0 - float(validation_split))))
    if at in (0, n):
        raise KerasGPUError(
            "bad_argument",
            f"validation_split={validation_split} of {n} samples leaves "
            + ("nothing to train on." if at == 0 else "no validation sample.")
            + " fit refuses it too.",
            "Use more data or another --validation-split.",
        )

    def part(v, sl):
        return None if v is None else keras.tree.map_structure(lambda a: a[sl], v)

    head, tail = slice(None, at), slice(at, None)
    train = Feed.of(part(feed.x, head), part(feed.y, head), feed.batch_size, label=feed.label)
    val = Feed.of(part(feed.x, tail), part(feed.y, tail), feed.batch_size, label="validation_split")
    return train, val


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
    budget: float | None = None,
    x_name: str | None = None,
    validation_name: str | None = None,
) -> dict[str, Any]:
    """Projects the full `fit` on each device and answers in one line (`result["line"]`).

    `x`, `y`: the training data as given to `fit`: arrays (or lists / dicts of them), a
    tf.data.Dataset, a keras.utils.PyDataset or a generator (with `steps_per_epoch` where its
    length is unknown); `deadline`: "36h", "2026-12-01 18:00" or epoch seconds; `steps`: warm
    steps to time; `validation_data` / `validation_split` / `validation_steps`: as given to
    `fit` (each epoch then ends with a validation pass, timed too); `budget`: seconds the
    estimate may take (default DEFAULT_BUDGET; see `budget_for`); `x_name` / `validation_name`: how
    the user wrote `x` / `validation_data` (the magic's expressions), for the messages.
    The model must be compiled; it is not changed (a copy trains).
    """
    place = for_backend("%gpu_estimate")
    if not getattr(model, "compiled", False) and getattr(model, "optimizer", None) is None:
        raise KerasGPUError(
            "not_compiled", "The model is not compiled yet.", "Call model.compile(...) first."
        )
    deadline_at, deadline_label = _deadline(deadline)
    if budget is not None and not float(budget) > 0:
        raise KerasGPUError("bad_argument", f"--budget {budget}: give seconds above 0.", "e.g. --budget 20")
    feed = Feed.of(x, y, batch_size, label=x_name or "x")
    feed, validation = _with_validation(
        feed, batch_size, validation_data, validation_split, validation_name or "validation_data"
    )
    spe = feed.steps(steps_per_epoch)
    val_steps = 0 if validation is None else validation.steps(validation_steps, "--validation-steps")
    todo = devices_ or devices(place)
    clock = Budget(DEFAULT_BUDGET if budget is None else float(budget), len(todo))
    results = [
        time_device(model, d, feed, spe, epochs, steps, place, validation, val_steps, clock) for d in todo
    ]
    from .modelfacts import tf_facts

    facts = tf_facts(model)
    try:
        from ...telemetry import probe

        facts["driver_gpus"] = len(probe().devices)
    except Exception:
        facts["driver_gpus"] = 0
    return {
        "kind": "gpu_estimate",
        "epochs": epochs,
        "steps_per_epoch": spe,
        "validation_steps": val_steps,
        "deadline": deadline_at,
        "deadline_label": deadline_label,
        "input": feed.describe(),
        "input_kind": feed.kind,
        "validation_input": validation.describe() if validation is not None else None,
        "budget_s": clock.seconds,
        "budget_limit_s": clock.limit,
        "wall_s": time.perf_counter() - clock.start,
        "devices": [r.to_json() for r in results],
        "not_counted": not_counted(feed, place.backend),
        "what_would_change": what_would_change(results, facts),
        **answer(results, deadline_at, deadline_label),
    }


def _deadline(deadline: str | float | None) -> tuple[float | None, str | None]:
    """(epoch seconds, "36 h deadline" where given as a duration); a duration counts from now."""
    asked = time.time()
    at = parse_deadline(deadline, asked)
    label = None
    if isinstance(deadline, str) and deadline.strip().strip("'\"")[:1].isdigit() and "-" not in deadline:
        label = f"{format_duration(at - asked)} deadline"
    return at, label


def not_counted(feed: Feed, backend: str) -> list[str]:
    """What the real run may pay that the estimate cannot measure within its budget, in words."""
    if backend == "tensorflow" and feed.one_iterator():
        return [
            f"a stall of up to a minute when the fit ends: {feed.label} is read through one input "
            "iterator for the whole fit, and TensorFlow (2.21) now and then frees it only once a tf.data "
            "autotuning thread's timed wait runs out; that wait grows with the iterator's age, to 60 s, "
            "so the estimate's own short fits cannot show it (seen here at the end of some "
            "generator-fed fits of 9-21 s, 6-55 s each)"
        ]
    return []


def answer(results: list[DeviceTime], deadline_at: float | None, deadline_label: str | None) -> dict:
    """The one-line answer with its clock times taken now (after measuring, when it is shown)."""
    now = time.time()
    v = deadline_answer(results, deadline_at, now, deadline_label)
    return {
        "line": v.line,
        "meets": v.meets,
        "fastest": v.fastest,
        "needed_speedup": v.needed_speedup,
        "answered_at": now,
    }


def _with_validation(feed: Feed, batch_size, validation_data, validation_split, name="validation_data"):
    """(training Feed, validation Feed or None), as fit reads them (validation_data wins)."""
    if validation_data is not None:
        return feed, validation_feed(validation_data, batch_size, name)
    if validation_split:
        return _split_validation(feed, validation_split)
    return feed, None


def estimate_card(model, x, y=None, **kwargs):
    """What `%gpu_estimate` shows: the line, a row per device, what was measured, and what would
    change the answer. Clock times are taken when the card is made, after measuring."""
    from ..render import Card, Section

    res = estimate(model, x, y, **kwargs)
    now = time.time()
    res.update(answer([DeviceTime(**d) for d in res["devices"]], res["deadline"], res["deadline_label"]))
    results.remember_estimate(res)
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
        sec.add(d["label"], _device_row(res, d, now))
    how = Section("Measured")
    how.add("data", res["input"])
    for text in res["not_counted"]:
        how.add("not counted", text, "warning")
    if res["validation_input"]:
        how.add("validation", res["validation_input"])
    for d in res["devices"]:
        if not d["error"]:
            how.add(d["label"], "; ".join(d["measured"]) + f" in {d['wall_s']:.1f} s")
    how.add("budget", *_budget_row(res))
    change = Section("What would change it")
    for i, text in enumerate(res["what_would_change"], 1):
        change.add(str(i), text)
    level = "info" if res["deadline"] is None else "ok" if res["meets"] else "warning"
    return Card("GPU estimate", level, res["line"], [sec, how, change], data=res)


def _budget_row(res: dict) -> tuple[str, str | None]:
    """The estimate's wall time against its budget, and why where it ran over."""
    text = (
        f"{res['wall_s']:.1f} s of {res['budget_limit_s']:.0f} s"
        + (" (a tenth of the run)" if res["budget_limit_s"] < res["budget_s"] else "")
        + " (--budget)"
    )
    if res["wall_s"] <= res["budget_limit_s"] * 1.25:
        return text, None
    ok = [d for d in res["devices"] if not d["error"]]
    first = max((d["first_step_s"] for d in ok), default=0.0)
    end = max((d["fit_end_s"] for d in ok), default=0.0)
    if first > res["budget_limit_s"] / 2:
        text += (
            f": over, because the first (traced) step alone took {first:.1f} s, and a trace cannot be "
            "stopped part-way"
        )
    elif end > res["budget_limit_s"] / 4:
        text += (
            f": over, because TensorFlow took {end:.1f} s to free a fit's input iterator after its last "
            "step (a tf.data autotuning thread's timed wait; nothing can cut it short)"
        )
    return text, "warning"


def _device_row(res: dict, d: dict, now: float) -> str:
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
    return (
        f"{d['step_time_s'] * 1000:.1f} ms/step{sps}; {res['epochs']} x {d['steps_per_epoch']} steps "
        f"{per_epoch}{val}-> {'at most ' if d['upper_bound'] else ''}{format_duration(d['total_s'])}, "
        f"ends {'by ' if d['upper_bound'] else ''}{format_clock(now + d['total_s'], now)}"
    )

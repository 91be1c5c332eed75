"""`%gpu_batch_size` / `kerasgpu.find_batch_size(model, x, y)`: the largest batch that trains a step.

Grows the batch (doubling from `start`) until a training step runs out of memory,
then bisects between the last size that fit and the first that did not. Every try
trains a fresh copy of the model (`clone_model` + the same compile config, so the
user's weights and optimizer are untouched; a model that cannot be copied trains in
place and is put back exactly: `copies`) on a batch made by repeating the
user's first samples, times a few warm steps (samples/s per size), then drops the
copy and checks that the device's memory went back to where it started (GPUs only).
An out-of-memory error (TensorFlow's ResourceExhaustedError, XLA's RESOURCE_EXHAUSTED
on JAX, a host MemoryError) ends one try, never the search.

Runs on the kernel's Keras backend, TensorFlow or JAX (`placement`): the copy is placed
with `tf.device` / `jax.default_device`, memory read with `get_memory_info` /
`Device.memory_stats()`. On JAX the most a batch can use is what XLA lets itself hold
(`bytes_limit`: 75 % of the GPU unless XLA_PYTHON_CLIENT_MEM_FRACTION says otherwise).

The search keeps to a budget (`--budget`, default 20 s as the estimate's): no try starts that the
last one's time says would end past it (the first always runs), and the card then says what was
tried and how to go on (`--start`, a larger `--budget`).

With no GPU visible it says so and does nothing, unless `device` names one (e.g.
"/CPU:0" under an address-space limit, which is how the tests prove the search
and the recovery without a GPU).
"""

from __future__ import annotations

import gc
import math
import time
from typing import Any

from ..runtime import KerasGPUError
from .copies import trainable
from .inputs import Feed
from .placement import Placement, for_backend, is_oom, parse_device
from .watch import internal

DEFAULT_START = 32
DEFAULT_MAX = 1 << 20
MAX_TRIES = 20
MEMORY_SLACK = 1 << 20  # "back to where it started": within 1 MiB (JAX caches a few scalars)
HOST_SHARE = 0.25  # a try's input arrays (its batches) may use at most this share of the free host memory
DEFAULT_BUDGET = 20.0  # seconds the search may take (--budget), as the estimate's
NO_GPU = "No GPU is visible to {framework}, so there is no GPU memory to fill: nothing was run."


def _first_samples(x, y):
    """The user's first samples as numpy arrays (structures kept): the arrays, or the first batch
    of a dataset, a PyDataset or a generator (one batch taken from it: it cannot be rewound)."""
    feed = Feed.of(x, y, take=1)
    return feed.first_batch()


def _batch_of(arrays, b: int):
    """A batch of `b` rows: the given rows repeated."""
    import keras
    import numpy as np

    def rows(a):
        return np.take(a, np.arange(b) % len(a), axis=0)

    return None if arrays is None else keras.tree.map_structure(rows, arrays)


def _bytes_per_sample(xs, ys) -> int:
    import keras

    total = 0
    for a in keras.tree.flatten(xs) + ([] if ys is None else keras.tree.flatten(ys)):
        total += a[:1].nbytes
    return max(1, total)


def suggested(largest: int) -> int:
    """The batch to use: 90 % of the largest that fit, a multiple of 8 (memory fragments over a long
    run; the largest is right at the edge)."""
    return max(1, int(largest * 0.9) // 8 * 8 or largest)


def _train(place: Placement, model, xb, yb, b: int, steps: int) -> float | None:
    """`steps` training steps of `model`, batch `b`, through `fit` with arrays of `steps` batches,
    so a custom `train_step` gets its batches exactly as from the user's own `fit` (`x` alone, or
    `(x, y)`; `train_on_batch` gives `(x, y, None)`, a generator `(x,)`). Returns the seconds from
    the second step's start until every step has finished (None for one step). Raises an
    out-of-memory of any step: the run is read back first (JAX dispatches asynchronously)."""
    from .estimate import _Clock

    clock = _Clock().cb
    hist = model.fit(xb, yb, batch_size=b, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    place.sync((hist.history, [v.value for v in model.trainable_variables[:1]]))
    end = time.perf_counter()
    begins = clock.epochs[0]
    return end - begins[1] if len(begins) > 1 else None


def _try(place: Placement, model, device: str, xs, ys, b: int, timing_steps: int) -> dict[str, Any]:
    """One batch size: does a training step of a fresh copy fit, and how fast is it."""
    before = place.memory_in_use(device)
    out: dict[str, Any] = {"batch_size": b, "fits": False, "samples_per_s": None, "error": None}
    out["in_place"] = False
    xb = yb = copy = None
    try:
        rows = b * (1 + timing_steps)  # the first step traces and allocates
        xb, yb = _batch_of(xs, rows), _batch_of(ys, rows)
        with internal(), trainable(model, place, device) as copy, place.quiet():
            out["in_place"] = copy is model
            dt = _train(place, copy, xb, yb, b, 1 + timing_steps)
        out["fits"] = True
        if dt:
            out["samples_per_s"] = b * timing_steps / dt
    except Exception as err:
        if not is_oom(err):
            raise
        host = isinstance(err, MemoryError)
        out["error"] = f"{type(err).__name__}: out of {'host ' if host else ''}memory"
    finally:
        del xb, yb, copy  # the copy, also after an out-of-memory
        gc.collect()
    after = place.memory_in_use(device)
    out["memory_before"] = before
    out["memory_after"] = after
    # a few bytes of scalars the backend caches on first use are not what a failed try leaves behind
    out["memory_back"] = None if before is None or after is None else after <= before + MEMORY_SLACK
    return out


def find_batch_size(
    model,
    x,
    y=None,
    *,
    start: int | None = None,
    max_batch: int | None = None,
    device: str | None = None,
    timing_steps: int = 2,
    budget: float | None = None,
) -> dict[str, Any]:
    """The largest batch size that trains one step of `model` on `device` without running out of memory.

    `x`, `y`: the training data as fit takes it (arrays or lists / dicts of them; or a tf.data.Dataset,
    a keras.utils.PyDataset or a generator: its first batch is used, repeated to each size).
    `device`: default the first GPU; with none visible the result says so and nothing runs.
    `budget`: seconds the search may take (default DEFAULT_BUDGET): no try starts that would end
    past it (each try costs at least what the last one did), and the result says where it stopped.
    Returns {"status": "ok" | "no_gpu", "largest", "first_failing", "tries": [...], ...}.
    """
    place = for_backend("%gpu_batch_size")
    if not getattr(model, "optimizer", None):
        raise KerasGPUError(
            "not_compiled", "The model is not compiled yet.", "Call model.compile(...) first."
        )
    if budget is not None and not float(budget) > 0:
        raise KerasGPUError("bad_argument", f"--budget {budget}: give seconds above 0.", "e.g. --budget 60")
    if device is None:
        gpus = place.gpus()
        if not gpus:
            return _no_gpu(place)
        device = gpus[0]
    else:
        parse_device(device)
    xs, ys = _first_samples(x, y)
    per_sample = _bytes_per_sample(xs, ys)
    cap = _host_cap(int(max_batch or DEFAULT_MAX), per_sample, timing_steps)
    search = _Search(place, model, device, xs, ys, timing_steps, float(budget or DEFAULT_BUDGET))
    search.grow(max(1, int(start or DEFAULT_START)), cap)
    search.bisect()
    back = [t["memory_back"] for t in search.tries if not t["fits"] and t["memory_back"] is not None]
    lo, hi = search.lo, search.hi
    return {
        "kind": "gpu_batch_size",
        "status": "ok",
        "backend": place.backend,
        "framework": place.framework,
        "device": device,
        "gpu_name": place.gpu_name(device) if device.upper().lstrip("/").startswith("GPU") else None,
        "memory_limit": place.memory_limit(device),
        "largest": lo or None,
        "suggested": suggested(lo) if lo else None,
        "first_failing": hi,
        "capped_at": None if hi is not None or search.out_of_budget else cap,
        "tries": search.tries,
        "memory_back_after_oom": all(back) if back else None,
        "bytes_per_sample": per_sample,
        "in_place": any(t.get("in_place") for t in search.tries),
        "budget_s": search.budget,
        "wall_s": time.perf_counter() - search.start,
        "out_of_budget": search.out_of_budget,  # the budget stopped the search before it ended
    }


def _no_gpu(place: Placement) -> dict[str, Any]:
    return {
        "kind": "gpu_batch_size",
        "status": "no_gpu",
        "backend": place.backend,
        "message": NO_GPU.format(framework=place.framework),
        "fix": place.no_gpu_fix(),
        "tries": [],
        "largest": None,
    }


def _host_cap(cap: int, per_sample: int, timing_steps: int) -> int:
    """The largest batch whose input arrays fit in HOST_SHARE of the free host memory."""
    try:
        import psutil

        free = psutil.virtual_memory().available * HOST_SHARE
        return min(cap, max(1, int(free / (per_sample * (1 + timing_steps)))))
    except Exception:
        return cap


class _Search:
    """Grow-then-bisect over batch sizes, one `_try` each, within a time budget."""

    def __init__(self, place, model, device, xs, ys, timing_steps: int, budget: float):
        self.place, self.model, self.device, self.xs, self.ys = place, model, device, xs, ys
        self.timing_steps, self.budget = timing_steps, budget
        self.start = time.perf_counter()
        self.tries: list[dict[str, Any]] = []
        self.lo, self.hi = 0, None  # largest that fit, smallest that did not
        self.out_of_budget = False
        self.last_s = 0.0  # seconds the last try took: the next, larger one takes at least as long

    def _room(self) -> bool:
        """Whether the next try can end within the budget (the first always runs)."""
        if len(self.tries) >= MAX_TRIES:
            return False
        if self.tries and time.perf_counter() - self.start + self.last_s > self.budget:
            self.out_of_budget = True
            return False
        return True

    def _try(self, b: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        r = _try(self.place, self.model, self.device, self.xs, self.ys, b, self.timing_steps)
        self.last_s = time.perf_counter() - t0
        self.tries.append(r)
        return r

    def grow(self, b: int, cap: int) -> None:
        """Doubles from `b` until a size runs out of memory (or the cap)."""
        while b <= cap and self._room():
            if not self._try(b)["fits"]:
                self.hi = b
                return
            self.lo = b
            if b == cap:
                return
            b = min(b * 2, cap)

    def bisect(self) -> None:
        """Narrows between the largest that fit and the first that did not, to within 1/16."""
        while self.hi is not None and self.hi - self.lo > max(1, self.lo // 16):
            mid = (self.lo + self.hi) // 2
            if mid >= 64:
                mid -= mid % 8  # multiples of 8 suit Tensor Cores
            if mid <= self.lo or not self._room():
                return
            if self._try(mid)["fits"]:
                self.lo = mid
            else:
                self.hi = mid


def batch_size_card(model, x, y=None, **kwargs):
    """What `%gpu_batch_size` shows."""
    from ..render import Card, Section

    res = find_batch_size(model, x, y, **kwargs)
    if res["status"] == "no_gpu":
        todo = Section("If this kernel should see one")
        todo.add("Fix", res["fix"])
        return Card("GPU batch size", "info", res["message"], [todo], data=res)
    where = res["device"] + (f" ({res['gpu_name']})" if res.get("gpu_name") else "")
    what = (
        "your model itself, put back after each try: it cannot be copied"
        if res.get("in_place")
        else "a copy of the model"
    )
    sec = Section(f"Tried on {where} ({what}; a few training steps each)")
    if res.get("memory_limit"):
        sec.add(
            "Memory",
            f"{res['framework']} may hold {res['memory_limit'] / 2**30:.1f} GiB of this GPU; "
            "the search fills that"
            + (" (XLA_PYTHON_CLIENT_MEM_FRACTION, 75 % by default)" if res["backend"] == "jax" else ""),
        )
    for t in res["tries"]:
        if t["fits"]:
            sps = f", {t['samples_per_s']:,.0f} samples/s" if t["samples_per_s"] else ""
            sec.add(str(t["batch_size"]), f"fits{sps}")
        else:
            back = ""
            if t["memory_back"] is not None:
                left = max(0, t["memory_after"] - t["memory_before"])
                back = (
                    "; memory back to start"
                    if t["memory_back"]
                    else f"; memory NOT back to start ({left / 2**20:,.0f} MiB more held)"
                )
            sec.add(str(t["batch_size"]), f"out of memory{back}", "warning")
    sec.add("Budget", f"{res['wall_s']:.1f} s of {res['budget_s']:g} s (--budget)")
    largest = res["largest"]
    if largest is None:
        return Card(
            "GPU batch size", "warning", "Even the first batch size ran out of memory.", [sec], data=res
        )
    return Card("GPU batch size", "ok", _summary(res), [sec], data=res)


def _summary(res: dict[str, Any]) -> str:
    """The card's one line: the largest batch that fits, and where the search stopped."""
    largest, failing = res["largest"], res["first_failing"]
    more = f"--budget {10 * math.ceil(2 * res['budget_s'] / 10)}"
    if res["out_of_budget"] and failing is None:
        return (
            f"Batch {largest} fits, the largest tried: the {res['budget_s']:g} s budget ran out after "
            f"{len(res['tries'])} {'try' if len(res['tries']) == 1 else 'tries'}, before any size ran out "
            "of memory. To search on: "
            f"--start {2 * largest}, or {more}."
        )
    if res["out_of_budget"]:
        return (
            f"Batch {largest} fits and {failing} runs out of memory; the {res['budget_s']:g} s budget "
            f"ran out before the search narrowed that down (the largest lies between them). "
            f"Use {res['suggested']}, or {more} to narrow it."
        )
    if failing is None:
        return f"Batch {largest} fits (the largest tried; the search stopped at the cap)."
    return (
        f"Batch {largest} is the largest that fits ({failing} runs out of memory); "
        f"leave some room for long runs, e.g. {res['suggested']}."
    )

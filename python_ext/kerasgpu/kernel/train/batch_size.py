"""`%gpu_batch_size` / `kerasgpu.find_batch_size(model, x, y)`: the largest batch that trains a step.

Grows the batch (doubling from `start`) until a training step runs out of memory,
then bisects between the last size that fit and the first that did not. Every try
trains a fresh copy of the model (`clone_model` + the same compile config, so the
user's weights and optimizer are untouched) on a batch made by repeating the
user's first samples, times a few warm steps (samples/s per size), then drops the
copy and checks that the device's memory went back to where it started
(`tf.config.experimental.get_memory_info`, GPUs only). An out-of-memory error
(TensorFlow's ResourceExhaustedError, a host MemoryError) ends one try, never the search.

With no GPU visible it says so and does nothing, unless `device` names one (e.g.
"/CPU:0" under an address-space limit, which is how the tests prove the search
and the recovery without a GPU).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from ..runtime import KerasGPUError

DEFAULT_START = 32
DEFAULT_MAX = 1 << 20
MAX_TRIES = 20
HOST_SHARE = 0.25  # a try's input batch may use at most this share of the free host memory
NO_GPU = "No GPU is visible to TensorFlow, so there is no GPU memory to fill: nothing was run."


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    name = type(err).__name__
    text = str(err)
    return (
        name == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
        or "out of memory" in text.lower()
        or "OOM when allocating" in text
    )


def _first_samples(x, y):
    """The user's first samples as numpy arrays (structures kept), from arrays or a dataset of batches."""
    import numpy as np
    import tensorflow as tf

    if hasattr(x, "element_spec"):
        first = next(iter(x.take(1)))
        if isinstance(first, tuple) and len(first) >= 2:
            xs, ys = first[0], first[1]
        else:
            xs, ys = first, None
        return tf.nest.map_structure(np.asarray, xs), (
            None if ys is None else tf.nest.map_structure(np.asarray, ys)
        )
    return tf.nest.map_structure(np.asarray, x), (None if y is None else tf.nest.map_structure(np.asarray, y))


def _batch_of(arrays, b: int):
    """A batch of `b` rows: the given rows repeated."""
    import numpy as np
    import tensorflow as tf

    def rows(a):
        return np.take(a, np.arange(b) % len(a), axis=0)

    return None if arrays is None else tf.nest.map_structure(rows, arrays)


def _bytes_per_sample(xs, ys) -> int:
    import tensorflow as tf

    total = 0
    for a in tf.nest.flatten(xs) + ([] if ys is None else tf.nest.flatten(ys)):
        total += a[:1].nbytes
    return max(1, total)


def _memory_now(device: str) -> int | None:
    """Bytes TensorFlow holds on a GPU now (None for the CPU: no such counter)."""
    if "GPU" not in device.upper():
        return None
    try:
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info(device.strip("/").upper())["current"])
    except Exception:
        return None


def _try(model, device: str, xs, ys, b: int, timing_steps: int) -> dict[str, Any]:
    """One batch size: does a training step of a fresh copy fit, and how fast is it."""
    import tensorflow as tf

    from .estimate import _fresh_copy

    before = _memory_now(device)
    out: dict[str, Any] = {"batch_size": b, "fits": False, "samples_per_s": None, "error": None}
    clone = xb = yb = None
    try:
        xb, yb = _batch_of(xs, b), _batch_of(ys, b)
        with tf.device(device):
            clone = _fresh_copy(model)
            clone.train_on_batch(xb, yb)  # traces, allocates
            t = time.perf_counter()
            for _ in range(timing_steps):
                clone.train_on_batch(xb, yb)
            dt = time.perf_counter() - t
        out["fits"] = True
        if timing_steps and dt > 0:
            out["samples_per_s"] = b * timing_steps / dt
    except Exception as err:
        if not _is_oom(err):
            raise
        out["error"] = f"{type(err).__name__}: out of memory"
    except MemoryError:
        out["error"] = "MemoryError: out of host memory"
    finally:
        del clone, xb, yb
        gc.collect()
    after = _memory_now(device)
    out["memory_before"] = before
    out["memory_after"] = after
    out["memory_back"] = None if before is None or after is None else after <= before
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
) -> dict[str, Any]:
    """The largest batch size that trains one step of `model` on `device` without running out of memory.

    `x`, `y`: the training data (arrays, or a tf.data.Dataset of batches: its first batch is used).
    `device`: default the first GPU; with none visible the result says so and nothing runs.
    Returns {"status": "ok" | "no_gpu", "largest", "first_failing", "tries": [...], ...}.
    """
    from .estimate import require_tensorflow_backend

    require_tensorflow_backend("%gpu_batch_size")
    import tensorflow as tf

    if not getattr(model, "optimizer", None):
        raise KerasGPUError(
            "not_compiled", "The model is not compiled yet.", "Call model.compile(...) first."
        )
    if device is None:
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            return {
                "kind": "gpu_batch_size",
                "status": "no_gpu",
                "message": NO_GPU,
                "tries": [],
                "largest": None,
            }
        device = "/GPU:0"
    xs, ys = _first_samples(x, y)
    per_sample = _bytes_per_sample(xs, ys)
    cap = int(max_batch or DEFAULT_MAX)
    try:
        import psutil

        cap = min(cap, max(1, int(psutil.virtual_memory().available * HOST_SHARE / per_sample)))
    except Exception:
        pass
    b = max(1, int(start or DEFAULT_START))
    tries: list[dict[str, Any]] = []
    lo, hi = 0, None  # largest that fit, smallest that did not
    while b <= cap and len(tries) < MAX_TRIES:
        r = _try(model, device, xs, ys, b, timing_steps)
        tries.append(r)
        if not r["fits"]:
            hi = b
            break
        lo = b
        if b == cap:
            break
        b = min(b * 2, cap)
    if hi is not None:
        while len(tries) < MAX_TRIES and hi - lo > max(1, lo // 16):
            mid = (lo + hi) // 2
            if mid >= 64:
                mid -= mid % 8  # multiples of 8 suit Tensor Cores
            if mid <= lo:
                break
            r = _try(model, device, xs, ys, mid, timing_steps)
            tries.append(r)
            if r["fits"]:
                lo = mid
            else:
                hi = mid
    back = [t["memory_back"] for t in tries if not t["fits"] and t["memory_back"] is not None]
    return {
        "kind": "gpu_batch_size",
        "status": "ok",
        "device": device,
        "largest": lo or None,
        "first_failing": hi,
        "capped_at": None if hi is not None else cap,
        "tries": tries,
        "memory_back_after_oom": all(back) if back else None,
        "bytes_per_sample": per_sample,
    }


def batch_size_card(model, x, y=None, **kwargs):
    """What `%gpu_batch_size` shows."""
    from ..render import Card, Section

    res = find_batch_size(model, x, y, **kwargs)
    if res["status"] == "no_gpu":
        return Card("GPU batch size", "info", res["message"], data=res)
    sec = Section(f"Tried on {res['device']} (a copy of the model, one training step each)")
    for t in res["tries"]:
        if t["fits"]:
            sps = f", {t['samples_per_s']:,.0f} samples/s" if t["samples_per_s"] else ""
            sec.add(str(t["batch_size"]), f"fits{sps}")
        else:
            back = {True: "; memory back to start", False: "; memory NOT back to start", None: ""}
            sec.add(str(t["batch_size"]), f"out of memory{back[t['memory_back']]}", "warning")
    largest = res["largest"]
    if largest is None:
        return Card(
            "GPU batch size", "warning", "Even the first batch size ran out of memory.", [sec], data=res
        )
    if res["first_failing"] is None:
        summary = f"Batch {largest} fits (the largest tried; the search stopped at the cap)."
    else:
        summary = (
            f"Batch {largest} is the largest that fits ({res['first_failing']} runs out of memory); "
            f"leave some room for long runs, e.g. {max(1, int(largest * 0.9) // 8 * 8 or largest)}."
        )
    return Card("GPU batch size", "ok", summary, [sec], data=res)

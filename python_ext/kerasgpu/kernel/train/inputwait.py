"""How long each training step waits for its input, measured during a watched `fit` (TensorFlow backend).

Where Keras 3.15 gets the next batch: `TFEpochIterator` hands the step function
(`model.train_function`, made by `TensorFlowTrainer._make_function`) the dataset's
iterator, and the traced `multi_step_on_iterator` calls `iterator.get_next()` *inside*
the `tf.function`, so from Python one call is input and compute together. The same
`train_function`, handed any other Python iterable, runs `one_step_on_data(batch)` on
each of `steps_per_execution` batches it yields (Keras' own path for non-tf.data
iterators; the step itself, jit_compile and the strategy's `run` are unchanged).

`InputTimer` uses that path: for the fit's duration it replaces `model.train_function`
with one that passes a `TimedBatches` over the same iterator, whose `next` calls the
iterator's `get_next()` eagerly and adds its wall time, less what a fetch of a ready batch
costs (`floor_s`: an eager op dispatch, ~0.1-0.3 ms on a CPU, calibrated at the fit's first
step on an in-memory dataset of the same structure), to `wait_s`. That is what a step
waits for its input: everything the pipeline has not finished before the step asks
(reading, `map`, batching; nothing when a `prefetch` buffer holds the next batch), the
same span the TensorBoard profiler counts as input (the host's `IteratorGetNext`).
Compute is the rest of the step. Per step it costs two clock reads and one eager op
dispatch, which replaces the `get_next` inside the graph; Keras' own path pays two eager ops
per step for its `Optional` (`has_value`, `get_value`) that this one skips. Measured directly
(bench/input_wait.py --part cost, 2-core CPU under load 4.8, 40 ABBA block pairs): the wrapper's
own Python work 0.44 us a step (95 % CI 0.43 .. 0.46), and the whole path 91 us a step *faster*
than Keras' (CI 62 .. 125 us faster): under 1 % of a 10 ms step either way. With
`steps_per_execution` > 1 Keras fuses the steps into one graph loop that a timed fetch would
break up (+0.59 ms a step at 32): the wait is not measured there (`install` says False).
On a GPU the host may run ahead of the device, so a wait can overlap device work still
queued: the share is what the host waited, read beside the GPU's busy %.

`pipeline_facts` reads a `tf.data.Dataset`'s stages (no iteration) to say which part
can dominate: the source, a sequential `map`, no `prefetch`, no `cache`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

_perf = time.perf_counter


class TimedBatches:
    """One `train_function` call's batches: `get_next()` of the iterator, timed."""

    __slots__ = ("_it", "_timer", "_first")

    def __init__(self, iterator, timer: InputTimer):
        self._it = iterator
        self._timer = timer
        self._first = True

    def __iter__(self):
        return self

    def __next__(self):
        timer = self._timer
        if timer.floor_s is None:
            timer.calibrate(self._it)
        t0 = _perf()
        try:
            batch = self._it.get_next()
        except timer.out_of_range:
            if self._first:  # the epoch ends: Keras catches OutOfRangeError around the step
                raise
            raise StopIteration from None  # a short last execution: run the batches it got
        waited = _perf() - t0 - timer.floor_s
        if waited > 0.0:
            timer.wait_s += waited
        timer.batches += 1
        self._first = False
        return batch


class InputTimer:
    """Times the input wait of every step of one `fit` (install at train begin, uninstall at its end)."""

    def __init__(self) -> None:
        self.wait_s = 0.0  # total seconds the steps waited for get_next
        self.batches = 0  # batches fetched
        self.installed = False
        self.floor_s: float | None = None  # what a get_next of a ready batch costs (dispatch, not waiting)
        self.out_of_range: type[BaseException] = Exception
        self._model = None
        self._original = None

    def install(self, model) -> bool:
        """Wraps `model.train_function` (made by fit just before on_train_begin); False when it can't."""
        if self.installed or "tensorflow" not in sys.modules:
            return False
        try:
            import keras

            if keras.backend.backend() != "tensorflow":
                return False
        except Exception:
            return False
        original = getattr(model, "train_function", None)
        if original is None or getattr(original, "_kerasgpu_input_timer", False):
            return False
        if int(getattr(model, "steps_per_execution", 1) or 1) > 1:
            # Keras runs those steps in one graph loop; timing each fetch would unfuse it (measured:
            # +0.59 ms a step at steps_per_execution=32, against 0.23 ms fused): not measured.
            return False
        tf = sys.modules["tensorflow"]
        self.out_of_range = tf.errors.OutOfRangeError
        iterator_types = (tf.data.Iterator, tf.distribute.DistributedIterator)
        timer = self

        def train_function(iterator):
            if isinstance(iterator, iterator_types):
                return original(TimedBatches(iterator, timer))
            return original(iterator)

        train_function._kerasgpu_input_timer = True
        self._model, self._original = model, original
        model.train_function = train_function
        self.installed = True
        return True

    def calibrate(self, iterator, calls: int = 15) -> float:
        """The cost of an eager get_next when the next batch is ready: the median over `calls` fetches from
        an in-memory dataset of the same structure (tiny tensors). Subtracted from every timed fetch."""
        self.floor_s = 0.0
        try:
            tf = sys.modules["tensorflow"]
            spec = iterator.element_spec

            def tiny(s):
                return tf.zeros([d if d is not None else 1 for d in s.shape], s.dtype)

            it = iter(tf.data.Dataset.from_tensors(tf.nest.map_structure(tiny, spec)).repeat())
            times = []
            for i in range(calls + 3):
                t0 = _perf()
                it.get_next()
                if i >= 3:
                    times.append(_perf() - t0)
            times.sort()
            self.floor_s = times[len(times) // 2]
        except Exception:  # a structure we can't copy (ragged, strings, per-replica): no floor
            self.floor_s = 0.0
        return self.floor_s

    def uninstall(self) -> None:
        """Puts Keras' own train function back (unless something replaced ours meanwhile)."""
        model, original = self._model, self._original
        if model is not None and getattr(model.train_function, "_kerasgpu_input_timer", False):
            model.train_function = original
        self._model = self._original = None
        self.installed = False


# ------------------------------------------------------------------ the pipeline's stages

_SOURCES = {
    "TensorSliceDataset": "arrays in memory (from_tensor_slices)",
    "TensorDataset": "a tensor in memory",
    "FlatMapDataset": "a Python generator (from_generator)",
    "GeneratorDataset": "a Python generator (from_generator)",
    "TFRecordDatasetV2": "TFRecord files",
    "TFRecordDataset": "TFRecord files",
    "TextLineDatasetV2": "text files",
    "FixedLengthRecordDatasetV2": "fixed-length record files",
    "ListFilesDataset": "files",
    "RangeDataset": "a range",
}


def _stage(ds) -> str:
    return type(ds).__name__.lstrip("_")


def pipeline_facts(x: Any) -> dict[str, Any] | None:
    """The stages of a tf.data pipeline given to fit, last first, and what they lack; None for other data."""
    if not hasattr(x, "element_spec") or not hasattr(x, "_variant_tensor_attr"):
        return None
    stages: list[str] = []
    facts: dict[str, Any] = {
        "kind": "tf.data",
        "stages": stages,
        "prefetch": False,
        "prefetch_last": False,
        "cache": False,
        "sequential_maps": 0,
        "parallel_maps": 0,
        "batch": False,
        "source": None,
    }
    ds = x
    for _ in range(64):
        name = _stage(ds)
        if name in ("OptionsDataset", "ModelDataset", "OptimizeDataset"):
            ds = getattr(ds, "_input_dataset", None)
            if ds is None:
                break
            continue
        stages.append(name)
        if name == "PrefetchDataset":
            facts["prefetch"] = True
            facts["prefetch_last"] = facts["prefetch_last"] or len(stages) == 1
        elif name == "CacheDataset":
            facts["cache"] = True
        elif name in ("MapDataset", "MapAndBatchDataset"):
            facts["sequential_maps"] += 1
        elif name == "ParallelMapDataset":
            facts["parallel_maps"] += 1
        elif name in ("BatchDataset", "PaddedBatchDataset", "ParallelBatchDataset"):
            facts["batch"] = True
        nxt = getattr(ds, "_input_dataset", None)
        if nxt is None:
            facts["source"] = _SOURCES.get(name, name)
            if name == "FlatMapDataset":  # from_generator: a flat_map over a tensor of ids
                facts["source"] = _SOURCES[name]
            break
        if name == "FlatMapDataset" and _stage(nxt) == "TensorDataset":
            facts["source"] = _SOURCES[name]
            break
        ds = nxt
    return facts

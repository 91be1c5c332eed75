"""What `fit` takes, as the estimate and the batch-size finder read it, without copying the user's data.

`Feed.of(x, y, batch_size)` reads one of fit's inputs (training or validation data):

- arrays, and lists / tuples / dicts of them (multi-input, multi-output): sliced, and repeated only
  where they hold too few batches;
- a `tf.data.Dataset` of batches: cut with `take` (a new iterator each epoch, as in the user's
  `fit`); an infinite one runs `steps_per_epoch`; one of unknown length (`filter`) is repeated
  and cut;
- a `keras.utils.PyDataset` (`keras.utils.Sequence`): wrapped in a PyDataset of the wanted
  length that reads the user's batches by index (`batch i % len`), with the same workers;
- a Python generator (any iterator): it cannot be rewound, so a few batches (`GEN_BATCHES`) are
  taken from it once, each `next()` timed, and the tools train on those in a cycle. The
  result says how many were taken (`taken`).

`fit_kwargs(n)` / `eval_kwargs(n)` are `fit` / `evaluate` arguments for epochs of `n` batches
of it, through the same Keras data adapter as the user's `fit`.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..runtime import KerasGPUError

ARRAYS, DATASET, PYDATASET, GENERATOR = "arrays", "dataset", "pydataset", "generator"
INFINITE_CARDINALITY = -1  # tf.data.INFINITE_CARDINALITY (no TensorFlow import on other backends)
GEN_BATCHES = 8  # batches taken from a generator (it cannot be rewound)

TAKES = (
    "arrays (or lists / dicts of them), a tf.data.Dataset, a keras.utils.PyDataset (Sequence) "
    "or a generator, as fit takes them"
)


def kind_of(x) -> str:
    """Which of fit's inputs `x` is (pure but for the PyDataset check)."""
    if hasattr(x, "element_spec"):
        return DATASET
    if _is_pydataset(x):
        return PYDATASET
    if hasattr(x, "__next__") and hasattr(x, "__iter__"):
        return GENERATOR
    return ARRAYS


def _is_pydataset(x) -> bool:
    try:
        import keras

        return isinstance(x, keras.utils.PyDataset)
    except Exception:
        return False


def _cardinality(ds) -> int:
    return int(ds.cardinality().numpy())


def _py_len(ds) -> int | None:
    """Batches a PyDataset holds (None: infinite, or no length)."""
    try:
        n = ds.num_batches
    except NotImplementedError:
        return None
    return None if n is None else int(n)


def _cycle(batches: list):
    """An endless generator over `batches` (a generator's batches, taken once)."""
    yield from itertools.cycle(batches)


_CUT: list[type] = []


def _cut(base, n: int):
    """A PyDataset of `n` batches, batch i being the user's batch i (mod its length)."""
    if not _CUT:
        import keras

        class Cut(keras.utils.PyDataset):
            """The user's PyDataset, read by index, `n` batches long."""

            def __init__(self, base, n):
                super().__init__(
                    workers=getattr(base, "workers", 1) or 1,
                    use_multiprocessing=bool(getattr(base, "use_multiprocessing", False)),
                    max_queue_size=getattr(base, "max_queue_size", 10) or 10,
                )
                self.base, self.n, self.have = base, n, _py_len(base)

            def __len__(self):
                return self.n

            def __getitem__(self, i):
                return self.base[i % self.have if self.have else i]

        _CUT.append(Cut)
    return _CUT[0](base, n)


@dataclass
class Feed:
    """One of fit's inputs, readable `n` batches at a time without copying it."""

    kind: str
    x: Any
    y: Any = None
    batch_size: int | None = None  # arrays: fit's batch_size (default 32)
    batches_taken: list = field(default_factory=list)  # a generator's batches, taken once
    pull_s: float | None = None  # a generator: mean seconds of one next()
    label: str = "x"

    @classmethod
    def of(cls, x, y=None, batch_size: int | None = None, label: str = "x", take: int = GEN_BATCHES) -> Feed:
        """Reads `x` (and `y`) as fit would; raises a KerasGPUError for what fit would refuse."""
        kind = kind_of(x)
        if kind != ARRAYS and y is not None:
            raise KerasGPUError(
                "bad_argument",
                f"{label} is a {_kind_words(kind)}, which holds its targets: fit takes no y with it.",
                "Leave y out.",
            )
        feed = cls(kind, x, y, batch_size, label=label)
        if kind == ARRAYS:
            feed._check_arrays()
        elif kind == GENERATOR:
            feed._take(take)
        return feed

    # ---------------------------------------------------------------- reading

    def _check_arrays(self) -> None:
        import keras

        if self.x is None:
            raise KerasGPUError("bad_argument", f"{self.label} is None.", f"Pass {TAKES}.")
        leaves = keras.tree.flatten(self.x) + ([] if self.y is None else keras.tree.flatten(self.y))
        bad = [leaf for leaf in leaves if not hasattr(leaf, "__len__") or isinstance(leaf, (str, bytes))]
        if not leaves or bad:
            what = type(bad[0] if bad else self.x).__name__
            raise KerasGPUError(
                "bad_argument",
                f"{self.label} holds a {what}, which is not one of fit's inputs here.",
                f"Pass {TAKES}.",
            )
        sizes = {len(leaf) for leaf in leaves}
        if len(sizes) > 1:
            raise KerasGPUError(
                "bad_argument",
                f"The arrays of {self.label} (and its targets) hold different numbers of samples: "
                f"{sorted(sizes)}. fit refuses them too.",
                "Give every input and target array the same first dimension.",
            )
        if 0 in sizes:
            raise KerasGPUError("bad_argument", f"{self.label} holds no samples.", "Pass some data.")

    def _take(self, k: int) -> None:
        """Takes up to `k` batches of a generator, timing each `next()`."""
        got, spent = [], 0.0
        for _ in range(max(1, k)):
            t0 = time.perf_counter()
            try:
                got.append(next(self.x))
            except StopIteration:
                break
            spent += time.perf_counter() - t0
        if not got:
            raise KerasGPUError(
                "empty_generator",
                f"The generator {self.label} yields nothing (already used up by an earlier fit?).",
                "Create the generator again and pass the new one.",
            )
        self.batches_taken = got
        self.pull_s = spent / len(got)

    @property
    def samples(self) -> int | None:
        """Samples of array data (None for the other kinds)."""
        if self.kind != ARRAYS:
            return None
        import keras

        return len(keras.tree.flatten(self.x)[0])

    @property
    def bs(self) -> int:
        """fit's batch for arrays: `batch_size` (default 32), or all the samples where they are fewer
        (fit then trains one batch of them, traced once)."""
        asked = int(self.batch_size or 32)
        n = self.samples
        return min(asked, n) if n else asked

    def batches(self) -> int | None:
        """Batches of one pass over the data (None: infinite or unknown)."""
        if self.kind == ARRAYS:
            return math.ceil(self.samples / self.bs)
        if self.kind == DATASET:
            n = _cardinality(self.x)
            return n if n >= 0 else None
        if self.kind == PYDATASET:
            return _py_len(self.x)
        return None

    def full_batches(self) -> int | None:
        """Full batches it holds, where known (a short last batch of arrays left out)."""
        if self.kind == ARRAYS:
            return self.samples // self.bs
        return self.batches()

    def one_iterator(self) -> bool:
        """Whether fit reads it through one iterator for the whole fit (a generator, an infinite
        dataset): Keras then keeps the iterator from epoch to epoch and frees it at the fit's end."""
        if self.kind == GENERATOR:
            return True
        return self.kind == DATASET and _cardinality(self.x) == INFINITE_CARDINALITY

    def partial_last_batch(self) -> bool:
        return self.kind == ARRAYS and self.samples % self.bs > 0

    def steps(self, steps_per_epoch: int | None, flag: str = "--steps-per-epoch") -> int:
        """fit's steps per epoch of this data; asks for `flag` where its length is unknown."""
        if steps_per_epoch:
            return int(steps_per_epoch)
        n = self.batches()
        if n is None:
            what = {
                DATASET: "a tf.data.Dataset of unknown length (infinite, or filtered)",
                PYDATASET: "a keras.utils.PyDataset without a length (num_batches is None)",
                GENERATOR: "a generator, whose length cannot be known before it ends",
            }[self.kind]
            steps = "validation steps" if flag == "--validation-steps" else "steps per epoch"
            raise KerasGPUError(
                "unknown_steps",
                f"{self.label} is {what}, so the {steps} are unknown too.",
                f"Pass {flag} N (the value you give fit).",
            )
        return n

    # ---------------------------------------------------------------- feeding

    def fit_kwargs(self, n: int) -> dict[str, Any]:
        """`fit` arguments for epochs of `n` batches of this data, through the user's input path."""
        if self.kind == ARRAYS:
            return self._arrays(n)
        if self.kind == DATASET:
            card = _cardinality(self.x)
            if card == INFINITE_CARDINALITY:
                return {"x": self.x, "steps_per_epoch": n}
            if card == n:
                return {"x": self.x}  # whole epochs of the user's own pipeline, as their fit runs them
            src = self.x if card >= n else self.x.repeat()
            return {"x": src.take(n)}
        if self.kind == PYDATASET:
            return {"x": _cut(self.x, n)}
        # shuffle=False: Keras ignores it for a generator, and warns when it is left True
        return {"x": _cycle(self.batches_taken), "steps_per_epoch": n, "shuffle": False}

    def eval_kwargs(self, n: int) -> dict[str, Any]:
        """`evaluate` arguments for `n` batches of this data."""
        kw = self.fit_kwargs(n)
        kw.pop("shuffle", None)
        if "steps_per_epoch" in kw:
            kw["steps"] = kw.pop("steps_per_epoch")
        return kw

    def _arrays(self, n: int) -> dict[str, Any]:
        import keras
        import numpy as np

        need = self.bs * n
        reps = math.ceil(need / self.samples)

        def cut(a):
            if reps == 1:
                return a[:need]  # a view of the user's array where it is one
            a = np.asarray(a)
            return np.concatenate([a] * reps)[:need]

        xs = keras.tree.map_structure(cut, self.x)
        ys = None if self.y is None else keras.tree.map_structure(cut, self.y)
        return {"x": xs, "y": ys, "batch_size": self.bs}

    def first_batch(self) -> tuple[Any, Any]:
        """(x, y) of the first batch as numpy arrays, structures kept (arrays: the whole arrays)."""
        import keras
        import numpy as np

        def arrays(v):
            return None if v is None else keras.tree.map_structure(np.asarray, v)

        if self.kind == ARRAYS:
            return arrays(self.x), arrays(self.y)
        if self.kind == DATASET:
            first = next(iter(self.x.take(1)))
        elif self.kind == PYDATASET:
            first = self.x[0]
        else:
            first = self.batches_taken[0]
        if isinstance(first, tuple):
            return arrays(first[0]), arrays(first[1]) if len(first) >= 2 else None
        return arrays(first), None

    def describe(self) -> str:
        """A few words on what this data is, for the card."""
        if self.kind == ARRAYS:
            fewer = self.batch_size and self.bs < self.batch_size
            return f"arrays of {self.samples:,} samples, batch {self.bs}" + (
                f" (fewer samples than batch_size={self.batch_size}: fit trains one batch of them)"
                if fewer
                else ""
            )
        if self.kind == GENERATOR:
            took = len(self.batches_taken)
            return (
                f"a generator: {took} batch{'es' if took != 1 else ''} taken from it and reused "
                f"(a generator cannot be rewound; it yields one in {self.pull_s * 1000:.1f} ms)"
            )
        n = self.batches()
        return f"{_article(self.kind)} {_kind_words(self.kind)} of " + (
            f"{n:,} batches" if n is not None else "unknown length"
        )


def _kind_words(kind: str) -> str:
    return {
        ARRAYS: "set of arrays",
        DATASET: "tf.data.Dataset",
        PYDATASET: "keras.utils.PyDataset",
        GENERATOR: "generator",
    }[kind]


def _article(kind: str) -> str:
    return "an" if kind == ARRAYS else "a"


def validation_feed(validation_data, batch_size: int | None, label: str = "validation_data") -> Feed:
    """fit's `validation_data` as a Feed: (x_val, y_val[, sample_weight]) or one object holding both.
    `label`: how the user wrote it (their expression), for the messages."""
    if isinstance(validation_data, (tuple, list)) and kind_of(validation_data) == ARRAYS:
        if len(validation_data) not in (2, 3):
            raise KerasGPUError(
                "bad_argument",
                "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight), a dataset, a "
                "PyDataset or a generator, as for fit.",
                "Pass --validation-data x_val y_val (or one expression that fit takes).",
            )
        return Feed.of(validation_data[0], validation_data[1], batch_size, label=label)
    return Feed.of(validation_data, None, batch_size, label=label)

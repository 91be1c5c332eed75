"""Error of kerasgpu.estimate against the measured full run, for several models on this CPU (a benchmark).

    python bench/estimate_error.py [--epochs 5] [--threads 1] [--repeat 3] [--validation-split 0.2]
                                   [--only PyDataset,generator]

For each model, `--repeat` times: `estimate(model, x, y, epochs=E)` (times warm steps and epoch
boundaries of a copy), then the same model trains for real (`fit`, E epochs, the same data and
batch) and the wall time is measured, then a second estimate. Prints the projection, the
measured time and the error per model (target: within 15 %), and splits the error into the
estimate's three terms, each against the same quantity measured on the full run with the same
arithmetic (`pace()` on the run's own batch clock): the warm step, the epoch overhead (what each
further epoch costs besides its steps) and the fixed part (tracing, set-up, the fit's end).

On a shared machine the other jobs' load moves a run by more than the target, so it also prints
how many CPUs this process used and how long its threads waited for one (Linux schedstat,
thread-seconds per second) during the estimate and during the run, and the error of the mean of
the estimates before and after the run (a load that rises or falls steadily cancels out). The
last columns are, from the same measurement, the estimate without the epoch-overhead term (the
formula before it was added) and with the mean of the timed boundaries instead of their median.
Three of the models are fed as keras-io examples often feed theirs: a CNN by a `tf.data.Dataset`,
the same CNN by a `keras.utils.PyDataset` and an MLP by a Python generator (with `steps_per_epoch`);
each row gives the estimate's wall time against its budget. A run whose end (past its last step)
takes over a second stalled in TensorFlow's input-iterator teardown, which the estimate says it
does not count (`not_counted`): the summary also gives the error without those stalls.
With `--validation-split`, both the estimate and the run of the array-fed models validate after
each epoch, as keras-io's examples do; the split of the error into terms then counts the
validation passes in the fixed part, and a last column gives the error without the estimate's
validation term.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERASGPU_BACKEND", "none")
STALL_S = (
    1.0  # a run's end past its last step longer than this is a teardown stall (see estimate.not_counted)
)


def models():
    import keras
    import numpy as np

    rng = np.random.default_rng(0)

    def mlp():
        x = rng.random((51200, 128), dtype="float32")
        y = rng.integers(0, 10, 51200)
        m = keras.Sequential(
            [
                keras.Input((128,)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        return "MLP 128-512-256-10", m, x, y, 64, None

    def cnn():
        x = rng.random((8192, 28, 28, 1), dtype="float32")
        y = rng.integers(0, 10, 8192)
        m = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(32, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(10),
            ]
        )
        m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        return "CNN (MNIST-sized)", m, x, y, 32, None

    def rnn():
        x = rng.integers(0, 2000, (8192, 40))
        y = rng.integers(0, 2, 8192)
        m = keras.Sequential(
            [
                keras.Input((40,), dtype="int32"),
                keras.layers.Embedding(2000, 32),
                keras.layers.LSTM(32),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        return "Embedding + LSTM", m, x, y, 32, None

    class Images(keras.utils.PyDataset):
        """keras-io's pattern: batches made on request from arrays (here in memory)."""

        def __init__(self, x, y, batch_size, **kw):
            super().__init__(**kw)
            self.x, self.y, self.batch_size = x, y, batch_size

        def __len__(self):
            return len(self.x) // self.batch_size

        def __getitem__(self, i):
            s = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return self.x[s], self.y[s]

    def cnn_pydataset():
        name, m, x, y, bs, _ = cnn()
        return "CNN fed by a PyDataset", m, Images(x, y, bs), None, None, None

    def cnn_dataset():
        import tensorflow as tf

        name, m, x, y, bs, _ = cnn()
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(bs).prefetch(tf.data.AUTOTUNE)
        return "CNN fed by a tf.data.Dataset", m, ds, None, None, None

    def mlp_generator():
        name, m, x, y, bs, _ = mlp()
        steps = len(x) // bs

        def batches():
            while True:
                for i in range(steps):
                    yield x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]

        return "MLP fed by a generator", m, batches(), None, None, steps

    return [mlp, cnn, rnn, cnn_dataset, cnn_pydataset, mlp_generator]


def _sched() -> dict[str, tuple[int, int]]:
    """Each thread's (ns on a CPU, ns waiting on a run queue) so far (Linux schedstat; {} elsewhere)."""
    out = {}
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                run, wait = f.read().split()[:2]
            out[tid] = (int(run), int(wait))
    except (OSError, ValueError):
        pass
    return out


def _contention(a: dict, b: dict, wall: float) -> str:
    """CPUs this process used and thread-seconds it waited for a CPU, per second, between two _sched()."""
    both = a.keys() & b.keys()  # threads alive at both ends (tf.data's come and go)
    if not both:
        return "n/a"
    run = sum(b[t][0] - a[t][0] for t in both) / 1e9 / wall
    wait = sum(b[t][1] - a[t][1] for t in both) / 1e9 / wall
    return f"{run:.2f} CPU, wait {wait:.2f}"


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="estimate and measure each model this often")
    ap.add_argument(
        "--threads", type=int, default=1, help="TensorFlow CPU threads (1: least disturbed by other load)"
    )
    ap.add_argument(
        "--validation-split", type=float, default=0.0, help="fit's validation_split (0: no validation)"
    )
    ap.add_argument("--only", default="", help="comma-separated parts of model names to run (default: all)")
    return ap.parse_args()


def _probe():
    """The full run's own batch clock, epoch by epoch (what the estimate records on its copy)."""
    import keras

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epochs = []
            self.begin = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append([])

        def on_train_batch_begin(self, batch, logs=None):
            self.epochs[-1].append(time.perf_counter())

    return Probe()


def _timed_estimate(m, x, y, bs, spe, E, split):
    from kerasgpu.kernel.train.estimate import estimate

    s0, t = _sched(), time.perf_counter()
    res = estimate(
        m,
        x,
        y,
        epochs=E,
        batch_size=bs,
        steps_per_epoch=spe,
        devices_=["/CPU:0"],
        validation_split=split if y is not None else None,
    )
    wall = time.perf_counter() - t
    return res, wall, _contention(s0, _sched(), wall)


def _measure(args, name, m, x, y, bs, spe):
    """One estimate and the real run it projects: the error terms, printed as a line."""
    from kerasgpu.kernel.train.estimate import pace

    E, split = args.epochs, args.validation_split or None
    res, est_wall, est_load = _timed_estimate(m, x, y, bs, spe, E, split)
    d = res["devices"][0]
    projected, S = d["total_s"], res["steps_per_epoch"]
    probe = _probe()
    s0, t = _sched(), time.perf_counter()
    m.fit(
        x,
        y,
        epochs=E,
        batch_size=bs,
        steps_per_epoch=spe,
        verbose=0,
        callbacks=[probe],
        validation_split=args.validation_split if y is not None else 0.0,
    )
    end = time.perf_counter()
    measured = end - t
    run_load = _contention(s0, _sched(), measured)
    after = _timed_estimate(m, x, y, bs, spe, E, split)[0]["devices"][0]["total_s"]
    step, over, _ = pace(probe.epochs)
    fixed = measured - E * S * step - (E - 1) * over
    # the run's fixed part: before the first step, the first (traced) step, the last step to the end
    parts = (
        probe.begin - t,
        probe.epochs[0][1] - probe.epochs[0][0] - step,
        end - probe.epochs[-1][-1] - step,
    )
    est_fixed = d["startup_s"] + d["fit_overhead_s"]
    err = (projected - measured) / measured
    aba = ((projected + after) / 2 - measured) / measured
    no_epoch = (projected - (E - 1) * d["epoch_overhead_s"] - measured) / measured
    b = d["epoch_boundaries_s"]
    bounds = ", ".join(f"{v * 1e3:.0f}" for v in b)
    mean_over = max(0.0, sum(b) / len(b)) if b else 0.0
    with_mean = (projected + (E - 1) * (mean_over - d["epoch_overhead_s"]) - measured) / measured
    no_val = (projected - d["val_startup_s"] - E * d["val_epoch_s"] - measured) / measured
    # the fit's end past its last step: a teardown stall the estimate says it does not count
    stall = max(0.0, parts[2]) if parts[2] > STALL_S else 0.0
    no_stall = (projected - (measured - stall)) / (measured - stall)
    print(
        f"{name:20s} {E} x {S:4d} | estimate {projected:6.2f} s (took {est_wall:4.1f} s of a "
        f"{res['budget_limit_s']:.0f} s budget; "
        f"{est_load}) measured {measured:6.2f} s ({run_load}) error {err * 100:+6.1f} % | "
        f"step {d['step_time_s'] * 1e3:.3f} vs {step * 1e3:.3f} ms "
        f"({E * S * (d['step_time_s'] - step) / measured * 100:+5.1f} %), "
        f"epoch overhead {d['epoch_overhead_s'] * 1e3:4.0f} vs {over * 1e3:4.0f} ms "
        f"({(E - 1) * (d['epoch_overhead_s'] - over) / measured * 100:+5.1f} %), "
        f"fixed {est_fixed:.2f} vs {fixed:.2f} s ({(est_fixed - fixed) / measured * 100:+5.1f} %; "
        f"run: set-up {parts[0]:.2f}, first step {parts[1]:.2f}, end {parts[2]:.2f} s) | "
        f"estimate after the run {after:6.2f} s, mean of both {aba * 100:+6.1f} % | "
        f"without epoch term {no_epoch * 100:+6.1f} %, "
        f"with the mean boundary {with_mean * 100:+6.1f} % (boundaries {bounds} ms)"
        + (
            f" | validation {d['val_steps']} steps, without its term {no_val * 100:+6.1f} %"
            if split and y is not None
            else ""
        ),
        flush=True,
    )
    return (err, aba, no_epoch, with_mean, no_val, no_stall, stall), (est_wall, res["budget_limit_s"])


def _report(rows, walls, split) -> None:
    for name, errors in rows:
        med = [statistics.median(e[i] for e in errors) * 100 for i in range(6)]
        each = ", ".join(f"{e[0] * 100:+.1f}" for e in errors)
        print(
            f"{name:20s} median error {med[0]:+6.1f} % (each: {each}); "
            f"mean of the estimates before and after the run {med[1]:+6.1f} %; "
            f"without the epoch term {med[2]:+6.1f} %; "
            f"with the mean boundary, not the median {med[3]:+6.1f} %"
            + (f"; without the validation term {med[4]:+6.1f} %" if split else "")
        )
        stalls = [e[6] for e in errors if e[6] > 0]
        if stalls:
            print(
                f"{'':20s} {len(stalls)} of {len(errors)} runs stalled at their end "
                f"({', '.join(f'{v:.1f}' for v in stalls)} s: not counted, and said so); "
                f"median error without those stalls {med[5]:+6.1f} %"
            )
        w = walls[name]
        print(
            f"{'':20s} the estimate took {statistics.median(a for a, _ in w):.1f} s at the median "
            f"(most {max(a for a, _ in w):.1f} s) of its {w[0][1]:.0f} s budget"
        )
    worst = max(abs(statistics.median(e[0] for e in errors)) for _, errors in rows)
    print(f"worst median error {worst * 100:.1f} % (target: within 15 %)")


def main() -> None:
    args = _parse()
    print(f"load average before: {_loadavg()} on {os.cpu_count()} CPUs", flush=True)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    only = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    rows, walls = [], {}
    for make in models():
        errors = []
        for _ in range(args.repeat):
            name, m, x, y, bs, spe = make()
            if only and not any(w in name.lower() for w in only):
                break
            err, wall = _measure(args, name, m, x, y, bs, spe)
            errors.append(err)
            walls.setdefault(name, []).append(wall)
        if errors:
            rows.append((name, errors))
    print(f"load average after: {_loadavg()} on {os.cpu_count()} CPUs")
    _report(rows, walls, args.validation_split or None)


if __name__ == "__main__":
    main()

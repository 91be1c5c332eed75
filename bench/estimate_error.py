"""Error of kerasgpu.estimate against the measured full run, for several models on this CPU (a benchmark).

    python bench/estimate_error.py [--epochs 5] [--threads 1] [--repeat 1]

For each model: `estimate(model, x, y, epochs=E)` (times warm steps of a copy), then the same
model trains for real (`fit`, E epochs, the same data and batch) and the wall time is measured.
Prints the projection, the measured time and the error per model (target: within 15 %), and
the estimate's warm step against the full run's own steps (mean and median, the tracing step
left out) and its first step against the estimated startup: where the two drift apart, the
machine's load changed between the estimate and the run.
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
        return "MLP 128-512-256-10", m, x, y, 64

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
        return "CNN (MNIST-sized)", m, x, y, 32

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
        return "Embedding + LSTM", m, x, y, 32

    return [mlp, cnn, rnn]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="estimate and measure each model this often")
    ap.add_argument(
        "--threads", type=int, default=1, help="TensorFlow CPU threads (1: least disturbed by other load)"
    )
    args = ap.parse_args()
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from kerasgpu.kernel.train.estimate import estimate

    class Probe(keras.callbacks.Callback):
        """The full run's own step clock (median: what the run does when nothing else takes the CPU)."""

        def on_train_begin(self, logs=None):
            self.t = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t.append(time.perf_counter())

    rows = []
    for make in models():
        errors = []
        for _ in range(args.repeat):
            name, m, x, y, bs = make()
            res = estimate(m, x, y, epochs=args.epochs, batch_size=bs, devices_=["/CPU:0"])
            projected = res["devices"][0]["total_s"]
            probe = Probe()
            t = time.perf_counter()
            m.fit(x, y, epochs=args.epochs, batch_size=bs, verbose=0, callbacks=[probe])
            measured = time.perf_counter() - t
            err = (projected - measured) / measured
            d = res["devices"][0]
            # step to step, without the first (tracing) step
            gaps = sorted(b - a for a, b in zip(probe.t[1:], probe.t[2:], strict=False))
            run_median = gaps[len(gaps) // 2]
            run_mean = sum(gaps) / len(gaps)
            step_err = (d["step_time_s"] - run_mean) / run_mean
            errors.append((err, step_err))
            print(
                f"{name:22s} {args.epochs} x {res['steps_per_epoch']:4d} steps  estimate {projected:7.2f} s  "
                f"measured {measured:7.2f} s  error {err * 100:+6.1f} %  | step: estimate "
                f"{d['step_time_s'] * 1000:.2f} ms, run mean {run_mean * 1000:.2f} ms "
                f"({step_err * 100:+.1f} %), run median {run_median * 1000:.2f} ms; first step "
                f"{probe.t[1] - probe.t[0]:.2f} s, estimated startup {d['startup_s']:.2f} s",
                flush=True,
            )
        rows.append((name, statistics.median(e for e, _ in errors), statistics.median(s for _, s in errors)))
    for name, err, step_err in rows:
        print(f"{name:22s} median error: total {err * 100:+6.1f} %, step {step_err * 100:+6.1f} %")
    worst = max(abs(r[1]) for r in rows)
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"worst error {worst * 100:.1f} % (target: within 15 %)")


if __name__ == "__main__":
    main()

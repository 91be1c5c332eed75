"""The estimate's wall time against its budget on slow-step models (a benchmark).

    python bench/estimate_budget.py [--repeat 3] [--budgets default,6] [--epochs 3] [--threads 1]

Two models whose steps take seconds, where a budget is hardest to keep:

- WGAN-GP, the corpus example (python_ext/tests/corpus/wgan_gp.py, keras-io's code run as it is:
  a subclassed model with its own train_step, three critic steps and a gradient penalty each, so
  its first step traces a large graph). It trains itself in place (it cannot be copied), as
  `%gpu_estimate wgan train_images --batch-size 512` measures it in the corpus test.
- a small model whose every step sleeps 0.5 s in the graph (a step of seconds, using no CPU).

For each budget (`default`: the estimate's own, 20 s, at most a tenth of a run of minutes),
`--repeat` times: `estimate(...)`, its wall time against the budget it kept to (the ratio is what
matters: at most 1, or a little over where the first, traced step alone overran it, which the card
then says), whether the answer is an upper bound (only the traced step fit in the budget), and the
projected time; then the same fit for real, timed, for the projection's error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERASGPU_BACKEND", "none")
CORPUS = ROOT / "python_ext" / "tests" / "corpus" / "wgan_gp.py"


def wgan():
    """The corpus example as it runs in a notebook (its own 1-epoch fit builds the model)."""
    ns: dict = {"__name__": "wgan_gp"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(CORPUS.read_text(), str(CORPUS), "exec"), ns)  # noqa: S102 - our own corpus file
    return "WGAN-GP (corpus, in place)", ns["wgan"], ns["train_images"], None, ns["BATCH_SIZE"]


def sleepy():
    import keras
    import numpy as np
    import tensorflow as tf

    class Slow(keras.layers.Layer):
        def call(self, x):
            y = tf.numpy_function(lambda a: (time.sleep(0.5), a)[1], [x], tf.float32)
            return tf.ensure_shape(y, x.shape)

    m = keras.Sequential([keras.Input((8,)), Slow(), keras.layers.Dense(1)])
    m.compile("adam", "mse")
    x = np.random.rand(320, 8).astype("float32")
    y = np.random.rand(320, 1).astype("float32")
    return "0.5 s sleep in each step", m, x, y, 8


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budgets", default="default,6", help="comma-separated: seconds, or default")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow CPU threads")
    ap.add_argument("--only", default="", help="comma-separated parts of model names to run")
    ap.add_argument("--no-run", action="store_true", help="skip the real fits (no projection error)")
    args = ap.parse_args()
    print(f"load average before: {_loadavg()} on {os.cpu_count()} CPUs", flush=True)
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from kerasgpu.kernel.train.estimate import estimate

    budgets = [None if b.strip() == "default" else float(b) for b in args.budgets.split(",")]
    only = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    summary = []
    for make in (wgan, sleepy):
        name, model, x, y, bs = make()
        if only and not any(w in name.lower() for w in only):
            continue
        for budget in budgets:
            ratios, errors = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                res = estimate(
                    model, x, y, epochs=args.epochs, batch_size=bs, devices_=["/CPU:0"], budget=budget
                )
                wall = time.perf_counter() - t
                d = res["devices"][0]
                limit = res["budget_limit_s"]
                ratios.append(wall / limit)
                err = ""
                if not args.no_run:
                    t = time.perf_counter()
                    model.fit(x, y, batch_size=bs, epochs=args.epochs, verbose=0)
                    real = time.perf_counter() - t
                    errors.append((d["total_s"] - real) / real)
                    err = f"; real fit {real:6.2f} s, error {errors[-1] * 100:+6.1f} %"
                print(
                    f"{name:28s} budget {limit:4.1f} s: took {wall:5.1f} s ({wall / limit:4.2f} of it); "
                    f"first step {d['first_step_s']:5.2f} s, longest fit end {d['fit_end_s']:5.2f} s; "
                    f"{'upper bound' if d['upper_bound'] else 'estimate'} {d['total_s']:6.2f} s{err} "
                    f"| load {_loadavg()} | {d['error'] or '; '.join(d['measured'])[:160]}",
                    flush=True,
                )
            summary.append((name, budget, ratios, errors))
    print(f"load average after: {_loadavg()} on {os.cpu_count()} CPUs")
    for name, budget, ratios, errors in summary:
        err = f"; median error {statistics.median(errors) * 100:+.1f} %" if errors else ""
        print(
            f"{name:28s} budget {'default' if budget is None else f'{budget:g} s'}: wall / budget "
            f"median {statistics.median(ratios):.2f}, most {max(ratios):.2f}{err}"
        )


if __name__ == "__main__":
    main()

"""The input-wait measurement: its cost per step, and its verdict against known truths (a benchmark).

    python bench/input_wait.py [--step-ms 10] [--steps 150] [--rounds 12] [--pairs 40] [--calls 250]
                               [--part all|cost|slowed|trace]

cost, two numbers:
- direct (the sharp one): what the measurement adds to one step, in microseconds. Keras' own train
  function of a tiny model (so the step's own noise is small) is called `--calls` times in a row on the
  same repeating in-memory iterator, with the input timer's wrapper (eager `get_next`, timed, then the
  step on the batch) and without (Keras' in-graph `get_next`), in `--pairs` block pairs in ABBA order;
  per pair the difference of the blocks' median call times. That difference is dispatch work,
  independent of what the step computes, so its share of a --step-ms step is the cost there. Beside
  it, the wrapper's own Python work alone: `next()` of a `TimedBatches` against a bare `get_next()` on
  the same ready iterator.
- whole fit (the check that nothing else scales with the step): one Keras model whose warm step takes
  about --step-ms (an MLP, width calibrated), fed by an in-memory tf.data pipeline (cache + prefetch);
  `--rounds` pairs of `fit`s in ABBA order with a TrainingMonitor that measures the input wait and one
  that does not (both: no display, no GPU watch, no receipt), the same bare step clock in both: the
  median ratio of the median step with/without. On a shared 2-core machine its interval stays a few %
  wide (80 pairs: 0.987, 95 % CI 0.963 .. 1.019), too wide for 1 %.
Each prints its median, a 95 % distribution-free confidence interval, whether it supports "under 1 %",
and the load average around it.

slowed: the same model fed by a pipeline with a `map` that sleeps a fixed delay per batch, (tf.data's
own C++ sleep stage), (a) without prefetch (prefetch injection off: input and step take turns; truth =
the delay's share of the measured step; prints the error in points) and (b) with `.prefetch(1)` (the
delay overlaps the step: what is left of it; printed, no truth under a varying load).

trace: the H200 trace's phases (tests/fixtures/nvidia/h200-trace): the GPU-busy verdict (findings'
input_starving) and the input share the phases' own step rates imply (1 - starving/healthy steps/s), and a
CPU replay of the same ratio (compute ~5 ms; the starving phase's input 150 ms per 49.5 ms step, scaled
to the same compute) through the input-wait measurement; each with the Input Pipeline Analyzer's level.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_ext"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERASGPU_BACKEND"] = "none"
TRACE = ROOT / "python_ext" / "tests" / "fixtures" / "nvidia" / "h200-trace"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-ms", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=12, help="whole-fit ABBA pairs")
    ap.add_argument("--pairs", type=int, default=40, help="direct cost: ABBA block pairs")
    ap.add_argument("--calls", type=int, default=250, help="direct cost: steps a block")
    ap.add_argument("--part", choices=["all", "cost", "slowed", "trace"], default="all")
    args = ap.parse_args()
    if args.part in ("all", "cost"):
        direct_cost(args)
    if args.part == "cost" and not args.rounds:  # the direct number only
        return
    bench = Bench(args)
    if args.part in ("all", "cost") and args.rounds:
        whole_fit_cost(bench)
    if args.part in ("all", "slowed"):
        slowed(bench)
    if args.part in ("all", "trace"):
        trace(bench)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" (1, 5, 15 min) on {os.cpu_count()} CPUs"


def _block_pairs(arms: dict, pairs: int) -> tuple[list[float], list[float]]:
    """ABBA pairs of blocks of arms "with" and "without" (callables returning seconds per call): per
    pair with - without, and the without times."""
    diffs, base = [], []
    for r in range(pairs):
        order = ("without", "with") if r % 2 == 0 else ("with", "without")
        t = {name: arms[name]() for name in order}
        diffs.append(t["with"] - t["without"])
        base.append(t["without"])
    return diffs, base


def _say(lo: float, hi: float, limit: float) -> str:
    if hi < limit:
        return f"under {limit:g} % (the whole interval)"
    if lo > limit:
        return f"OVER {limit:g} % (the whole interval)"
    return f"not shown under {limit:g} %"


def _wrapper_work(it, timer, pairs: int) -> list[float]:
    """Per ABBA pair: a step's TimedBatches and its next() minus a bare get_next, on a ready iterator."""
    from kerasgpu.kernel.train.inputwait import TimedBatches

    class Ready:
        """The same batch at once, every time: no TensorFlow op; only the wrapper's Python work is timed."""

        batch = it.get_next()

        def get_next(self):
            return self.batch

    ready = Ready()

    def fetch(timed_fetch: bool, n: int = 100_000):
        def run():
            t = time.perf_counter()
            if timed_fetch:
                for _ in range(n):
                    next(TimedBatches(ready, timer))
            else:
                for _ in range(n):
                    ready.get_next()
            return (time.perf_counter() - t) / n

        return run

    return _block_pairs({"with": fetch(True), "without": fetch(False)}, pairs)[0]


def direct_cost(args) -> None:
    """The input timer's own cost per step, timed directly (see the module's docstring)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from kerasgpu.kernel.train.inputwait import InputTimer
    from training_monitor import median_ci

    rng = np.random.default_rng(0)
    x, y = rng.random((64 * 32, 16), dtype="float32"), rng.random((64 * 32, 1), dtype="float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).cache().repeat().prefetch(tf.data.AUTOTUNE)
    m = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    m.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)  # makes Keras' train function
    plain = m.train_function
    timer = InputTimer()
    timer.install(m)
    timed = m.train_function  # the wrapper fit runs under a watched fit (it keeps Keras' function)
    timer.uninstall()
    it = iter(m.distribute_strategy.experimental_distribute_dataset(ds))  # what Keras' fit hands it
    for f in (plain, timed, plain, timed):  # trace both paths, warm the caches
        for _ in range(100):
            f(it)

    def block(f, n):
        def run():  # the block's median call: a burst of another process's work moves it little
            times = []
            for _ in range(n):
                t = time.perf_counter()
                f(it)
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        return run

    load0 = _load()
    diffs, base = _block_pairs(
        {"with": block(timed, args.calls), "without": block(plain, args.calls)}, args.pairs
    )

    wrap = _wrapper_work(it, timer, args.pairs)
    load1 = _load()
    lo, hi = median_ci(diffs)
    med = statistics.median(diffs)
    step = args.step_ms / 1000
    print(
        f"cost, direct: a tiny model's step {statistics.median(base) * 1e6:.0f} us without the input "
        f"timer; the timer adds {med * 1e6:+.1f} us a step (95 % CI {lo * 1e6:+.1f} .. {hi * 1e6:+.1f}; "
        f"{args.pairs} ABBA block pairs of {args.calls} steps) = {med / step * 100:+.3f} % of a "
        f"{args.step_ms:g} ms step (CI {lo / step * 100:+.3f} .. {hi / step * 100:+.3f} %): "
        f"{_say(lo / step * 100, hi / step * 100, 1.0)}"
    )
    wl, wh = median_ci(wrap)
    print(
        f"  of which the wrapper's own Python work (a TimedBatches per step, its next(): two clock reads, "
        f"three sums), against the same ready iterator: {statistics.median(wrap) * 1e6:+.3f} us a step "
        f"(95 % CI {wl * 1e6:+.3f} .. {wh * 1e6:+.3f}) = {statistics.median(wrap) / step * 100:.4f} % of "
        f"a {args.step_ms:g} ms step"
    )
    print(f"  load average before {load0}, after {load1}")


class Bench:
    """The calibrated model of --step-ms and its pipelines, shared by the whole-fit parts."""

    def __init__(self, args):
        import keras
        import numpy as np
        import tensorflow as tf
        from training_monitor import mlp

        self.args, self.tf, self.batch = args, tf, 64
        rng = np.random.default_rng(0)
        n = self.batch * args.steps
        self.x = rng.random((n, 256), dtype="float32")
        self.y = rng.random((n, 1), dtype="float32")
        self.width = 256
        for _ in range(6):  # calibrate: a warm step of about --step-ms
            m = mlp(self.width)
            self.fit(m, self.fast_ds(), False)
            step, _ = self.fit(m, self.fast_ds(), False)
            if abs(step * 1000 - args.step_ms) / args.step_ms < 0.15:
                break
            self.width = max(32, int(self.width * (args.step_ms / 1000 / step) ** 0.5))
        self.m = mlp(self.width)
        self.fit(self.m, self.fast_ds(), True)
        self.fit(self.m, self.fast_ds(), False)
        print(
            f"model: MLP 3x{self.width}, batch {self.batch}, {args.steps} steps a fit; "
            f"TF {tf.__version__}, Keras {keras.__version__}"
        )

    def fast_ds(self):
        tf = self.tf
        ds = tf.data.Dataset.from_tensor_slices((self.x, self.y)).batch(self.batch)
        return ds.cache().prefetch(tf.data.AUTOTUNE)

    def slow_ds(self, delay, prefetch):
        # tf.data's own sleep stage (C++, no GIL, no copies): the delay is the only extra input work
        from tensorflow.python.data.experimental.ops import testing

        tf = self.tf
        ds = tf.data.Dataset.from_tensor_slices((self.x, self.y)).batch(self.batch).cache()
        ds = ds.apply(testing.sleep(int(delay * 1e6)))
        if prefetch:
            return ds.prefetch(1)
        opts = tf.data.Options()
        opts.experimental_optimization.inject_prefetch = False
        return ds.with_options(opts)

    def fit(self, m, ds, measure: bool):
        from kerasgpu.kernel.train.monitor import TrainingMonitor
        from training_monitor import step_clock

        probe = step_clock()
        mon = TrainingMonitor(display=False, gpu=False, publish=False, record=False, measure_input=measure)
        m.fit(ds, epochs=1, verbose=0, callbacks=[probe, mon])
        return probe.median(), mon


def whole_fit_cost(b: Bench) -> None:
    from training_monitor import median_ci

    load0 = _load()
    ratios, steps0 = [], []
    for r in range(b.args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        res = {}
        for measure in order:
            res[measure] = b.fit(b.m, b.fast_ds(), measure)[0]
        ratios.append(res[True] / res[False])
        steps0.append(res[False])
    lo, hi = median_ci(ratios)
    med = statistics.median(ratios)
    print(
        f"cost, whole fit: median step {statistics.median(steps0) * 1000:.2f} ms without; with/without "
        f"median ratio {med:.4f} (95 % CI {lo:.4f} .. {hi:.4f}; range {min(ratios):.4f} .. "
        f"{max(ratios):.4f}; {b.args.rounds} ABBA pairs): {_say((lo - 1) * 100, (hi - 1) * 100, 1.0)}"
    )
    print(f"  load average before {load0}, after {_load()}")


def slowed(b: Bench) -> None:
    from kerasgpu.kernel.train.findings import input_level

    fit, m, fast_ds, slow_ds = b.fit, b.m, b.fast_ds, b.slow_ds
    compute = statistics.median(fit(m, fast_ds(), True)[0] for _ in range(3))
    print(f"slowed: compute-alone step {compute * 1000:.2f} ms")
    worst = 0.0
    for prefetch in (False, True):
        for delay_ms in (2, 5, 10, 20, 40):
            step, mon = fit(m, slow_ds(delay_ms / 1000, prefetch), True)
            share = mon.input_share or 0.0
            mean_step = mon.step_time or step
            if prefetch:  # overlapped: the truth depends on compute under the load of the moment
                print(
                    f"  prefetch(1) delay {delay_ms:>2} ms: step {mean_step * 1000:6.2f} ms, measured "
                    f"{share * 100:5.1f} % (overlapped), {input_level(share)}"
                )
                continue
            # the pipeline alone, right after: what producing one batch really takes (the sleep
            # overshoots under load; batching and the cache read count too)
            t = time.perf_counter()
            k = sum(1 for _ in slow_ds(delay_ms / 1000, False))
            truth = ((time.perf_counter() - t) / k) / mean_step
            err = (share - truth) * 100
            worst = max(worst, abs(err))
            print(
                f"  no prefetch delay {delay_ms:>2} ms: step {mean_step * 1000:6.2f} ms, measured "
                f"{share * 100:5.1f} %, pipeline-alone/step {truth * 100:5.1f} %, "
                f"error {err:+5.1f} points, "
                f"{input_level(share)}"
            )
    print(
        f"slowed (no prefetch): largest error {worst:.1f} points ({'within' if worst <= 5 else 'OUTSIDE'} 5)"
    )


def trace(b: Bench) -> None:
    from kerasgpu.kernel.train.findings import FitStats, GpuUse, input_level, input_starving
    from training_monitor import mlp

    fit, fast_ds, slow_ds, width = b.fit, b.fast_ds, b.slow_ds, b.width
    phases = [json.loads(line) for line in (TRACE / "phases.jsonl").read_text().splitlines()]
    samples = [json.loads(line) for line in (TRACE / "nvml-10hz.jsonl").read_text().splitlines()]
    at = {p["phase"]: p for p in phases}
    rate = {k: at[f"{k}_done"]["steps_per_s"] for k in ("healthy", "starving")}
    for k in ("healthy", "starving"):
        t0, t1 = at[k]["t"] + 2, at[f"{k}_done"]["t"]  # 2 s of warm-up
        util = statistics.mean(s["util_gpu"] for s in samples if t0 <= s["t"] <= t1)
        n_s = sum(1 for s in samples if t0 <= s["t"] <= t1)
        stats = FitStats(
            device="gpu",
            gpus=[GpuUse(0, util_mean_pct=util, samples=n_s)],
            step_time_s=1 / rate[k],
        )
        busy = "starving" if input_starving(stats) else "fed"
        implied = max(0.0, 1 - rate["starving"] / rate["healthy"]) if k == "starving" else 0.0
        # CPU replay: the same compute/input ratio, compute ~5 ms
        c_ms = 1000 / rate["healthy"]
        scale = 5.0 / c_ms
        delay = (150 * scale / 1000) if k == "starving" else 0.0
        ds = slow_ds(delay, True) if delay else fast_ds()
        mm = mlp(max(32, int(width * 0.7)))
        fit(mm, ds if not delay else slow_ds(delay, True), True)
        _, mon = fit(mm, slow_ds(delay, True) if delay else fast_ds(), True)
        share = mon.input_share or 0.0
        print(
            f"trace {k}: GPU busy {util:.0f} % ({n_s} readings) -> {busy}; steps/s imply input share "
            f"{implied * 100:.0f} % ({input_level(implied)}); CPU replay measured {share * 100:.0f} % "
            f"({input_level(share)})"
        )


if __name__ == "__main__":
    main()

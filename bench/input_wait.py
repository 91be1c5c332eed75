"""The input-wait measurement: its cost per step, and its verdict against known truths (a benchmark).

    python bench/input_wait.py [--step-ms 10] [--steps 150] [--rounds 12] [--part all|cost|slowed|trace]

cost: one Keras model whose warm step takes about --step-ms (an MLP, width calibrated), fed by an
in-memory tf.data pipeline (cache + prefetch); `--rounds` pairs of `fit`s in ABBA order with a
TrainingMonitor that measures the input wait and one that does not (both: no display, no GPU watch,
no receipt), the same bare step clock in both. Prints the median ratio of the median step with/without,
its 95 % distribution-free confidence interval, and whether it supports "under 1 %".

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
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--part", choices=["all", "cost", "slowed", "trace"], default="all")
    args = ap.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    from kerasgpu.kernel.train.findings import FitStats, GpuUse, input_level, input_starving
    from kerasgpu.kernel.train.monitor import TrainingMonitor
    from training_monitor import median_ci, mlp, step_clock

    batch = 64
    rng = np.random.default_rng(0)
    n = batch * args.steps
    x = rng.random((n, 256), dtype="float32")
    y = rng.random((n, 1), dtype="float32")

    def fast_ds():
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().prefetch(tf.data.AUTOTUNE)

    def slow_ds(delay, prefetch):
        # tf.data's own sleep stage (C++, no GIL, no copies): the delay is the only extra input work
        from tensorflow.python.data.experimental.ops import testing

        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
        ds = ds.apply(testing.sleep(int(delay * 1e6)))
        if prefetch:
            return ds.prefetch(1)
        opts = tf.data.Options()
        opts.experimental_optimization.inject_prefetch = False
        return ds.with_options(opts)

    def fit(m, ds, measure: bool):
        probe = step_clock()
        mon = TrainingMonitor(display=False, gpu=False, publish=False, record=False, measure_input=measure)
        m.fit(ds, epochs=1, verbose=0, callbacks=[probe, mon])
        return probe.median(), mon

    width = 256
    for _ in range(6):  # calibrate: a warm step of about --step-ms
        m = mlp(width)
        fit(m, fast_ds(), False)
        step, _ = fit(m, fast_ds(), False)
        if abs(step * 1000 - args.step_ms) / args.step_ms < 0.15:
            break
        width = max(32, int(width * (args.step_ms / 1000 / step) ** 0.5))
    m = mlp(width)
    fit(m, fast_ds(), True)
    fit(m, fast_ds(), False)
    print(
        f"model: MLP 3x{width}, batch {batch}, {args.steps} steps a fit; "
        f"TF {tf.__version__}, Keras {keras.__version__}"
    )

    if args.part in ("all", "cost"):
        ratios, steps0 = [], []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            res = {}
            for measure in order:
                res[measure] = fit(m, fast_ds(), measure)[0]
            ratios.append(res[True] / res[False])
            steps0.append(res[False])
        lo, hi = median_ci(ratios)
        med = statistics.median(ratios)
        print(
            f"cost: median step {statistics.median(steps0) * 1000:.2f} ms without; with/without median ratio "
            f"{med:.4f} (95 % CI {lo:.4f} .. {hi:.4f}; range {min(ratios):.4f} .. {max(ratios):.4f}; "
            f"{args.rounds} ABBA pairs): {'under 1 %' if hi < 1.01 else 'not shown under 1 %'}"
        )

    if args.part in ("all", "slowed"):
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
            f"slowed (no prefetch): largest error {worst:.1f} points "
            f"({'within' if worst <= 5 else 'OUTSIDE'} 5)"
        )

    if args.part in ("all", "trace"):
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

"""Cost of kerasgpu.TrainingMonitor per training step, side by side in one process (a benchmark, not a test).

    python bench/training_monitor.py [--step-ms 10] [--steps 200] [--rounds 20] [--smi fake|none]

Builds one Keras model whose warm step takes about --step-ms on this machine (an MLP, width
calibrated first), then runs `--rounds` pairs of short `fit`s of it, without and with the
monitor (display off, GPU watch on: the telemetry sampler thread runs; `--smi fake` replays the
H200 trace through the test nvidia-smi so that thread really reads and parses lines), in ABBA
order (pair 1 without first, pair 2 with first, ...) so that a load that rises or falls steadily
favours neither arm. For each pair, the ratio with / without of the median step, the mean step,
this process's CPU time per step and the fit's wall time; prints for each the median ratio, a
95 % confidence interval of that median (distribution-free, from the order statistics), the
quartiles and the range, and whether the interval supports "under 1 %". Then the monitor's own
per-step work (its `on_train_batch_begin`, timed alone) as a share of the step.

Measured on the 2-core CPU dev machine (shared, TF 2.21 CPU, Keras 3.15): see README
"Training insight".
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def children_cpu() -> float:
    """CPU seconds of the child processes this one has waited for (the telemetry's nvidia-smi)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def median_ci(values: list[float], conf: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval for the median of `values` (binomial order statistics)."""
    v = sorted(values)
    n = len(v)
    # the largest k with P(Binomial(n, 1/2) < k) <= (1 - conf) / 2: [v[k-1], v[n-k]] covers the median
    k, tail = 0, 0.0
    while k < n:
        nxt = tail + math.comb(n, k) / 2**n
        if nxt > (1 - conf) / 2:
            break
        tail, k = nxt, k + 1
    if k == 0:  # too few values for this confidence: the whole range
        return v[0], v[-1]
    return v[k - 1], v[n - k]


def mlp(width: int):
    """The benches' model: three Dense layers of `width` on 256 features, Adam and MSE."""
    import keras

    m = keras.Sequential(
        [keras.Input((256,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(3)]
        + [keras.layers.Dense(1)]
    )
    m.compile("adam", "mse")
    return m


def step_clock():
    """A bare step clock, the same in every arm: the gaps between batch starts after the first 5."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t.append(time.perf_counter())

        def gaps(self):
            return [b - a for a, b in zip(self.t[5:], self.t[6:], strict=False)]

        def median(self):
            return statistics.median(self.gaps())

    return StepClock()


def _args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-ms", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=20, help="pairs of fits, without and with")
    ap.add_argument("--smi", choices=["fake", "none"], default="fake")
    ap.add_argument(
        "--control",
        action="store_true",
        help="A/A control: the second arm runs without the monitor too (the method's own bias and noise)",
    )
    args = ap.parse_args()
    if args.smi == "fake":
        fake = ROOT / "python_ext" / "tests" / "fake_nvidia_smi"
        os.environ["PATH"] = os.pathsep.join([str(fake), os.path.dirname(sys.executable), os.environ["PATH"]])
        os.environ["KERASGPU_BACKEND"] = "smi"
        os.environ["FAKE_NVIDIA_SMI_STATE"] = "trace:healthy"
        os.environ["FAKE_NVIDIA_SMI_PROCS"] = f"{os.getpid()}:20000@0"
    else:
        os.environ["KERASGPU_BACKEND"] = "none"
    return args


def _fitter(args, batch: int):
    """fit(m, callbacks, steps) -> (fit wall s, median step s, mean step s, this process's CPU s per
    step, the same with the child processes it waited for: the telemetry's nvidia-smi)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((batch * args.steps, 256), dtype="float32")
    y = rng.random((batch * args.steps, 1), dtype="float32")

    def fit(m, callbacks, steps=None):
        k = steps or args.steps
        probe = step_clock()
        c, ch, t = time.process_time(), children_cpu(), time.perf_counter()
        m.fit(
            x[: batch * k],
            y[: batch * k],
            batch_size=batch,
            epochs=1,
            verbose=0,
            callbacks=[probe, *callbacks],
        )
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        gaps = probe.gaps()
        return wall, statistics.median(gaps), statistics.mean(gaps), cpu / k, (cpu + children_cpu() - ch) / k

    return fit


def _calibrated(fit, step_ms: float) -> int:
    """The MLP width whose warm step takes about `step_ms`."""
    width = 256
    for _ in range(6):
        m = mlp(width)
        fit(m, [], 20)
        step = fit(m, [], 60)[1]
        if abs(step * 1000 - step_ms) / step_ms < 0.15:
            break
        width = max(32, int(width * (step_ms / 1000 / step) ** 0.5))
    return width


def _own_work(m, batch: int) -> tuple[float, float]:
    """The monitor's per-step work alone, and what it does once a second (the window, the findings, the
    card's HTML and text: what a display update sends), in seconds a call."""
    from kerasgpu.kernel.train.monitor import ProgressCard, TrainingMonitor

    mon = TrainingMonitor(batch_size=batch, display=False, gpu=False, publish=False)
    mon.set_model(m)
    mon.params = {"epochs": 1, "steps": 10**6}
    mon.on_train_begin()
    mon.on_epoch_begin(0)
    n = 200_000
    t = time.perf_counter()
    for b in range(n):
        mon.on_train_batch_begin(b)
    per_call = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for b in range(1000):
        window = mon._update(b)
        mon.progress.findings = mon._findings(window)
        card = ProgressCard(mon.progress)
        card._repr_html_()
        card.to_text()
    per_refresh = (time.perf_counter() - t) / 1000
    mon.on_train_end()
    return per_call, per_refresh


def _report(plain, watched) -> None:
    print("ratio with / without, per pair:    median [95 % CI of the median]  quartiles  min..max")
    verdicts = []
    for i, what in [
        (1, "median step (wall)"),
        (2, "mean step (wall)"),
        (3, "CPU per step (process)"),
        (4, "CPU incl. nvidia-smi"),
        (0, "fit wall"),
    ]:
        r = sorted(b[i] / a[i] for a, b in zip(plain, watched, strict=True))
        lo, hi = median_ci(r)
        q = statistics.quantiles(r, n=4)
        print(
            f"  {what:24s} {statistics.median(r):.4f} [{lo:.4f}, {hi:.4f}]  {q[0]:.3f}-{q[2]:.3f}  "
            f"{r[0]:.3f}..{r[-1]:.3f}"
        )
        if i:
            verdicts.append((what, lo, hi))
    for what, lo, hi in verdicts:
        if hi < 1.01:
            say = "under 1 % (the whole interval is below 1.01)"
        elif lo > 1.01:
            say = "OVER 1 % (the whole interval is above 1.01)"
        else:
            say = f"not resolved: the interval spans {(lo - 1) * 100:+.1f} % to {(hi - 1) * 100:+.1f} %"
        print(f"  {what:24s} {say}")


def main() -> None:
    args = _args()
    from kerasgpu.kernel.train.monitor import TrainingMonitor

    batch = 64
    fit = _fitter(args, batch)
    width = _calibrated(fit, args.step_ms)
    m = mlp(width)
    fit(m, [], 20)  # trace
    load_before = os.getloadavg()
    plain, watched = [], []
    for i in range(args.rounds):  # ABBA: a load that rises or falls steadily favours neither arm
        second = [] if args.control else [TrainingMonitor(batch_size=batch, display=False)]
        arms = [(plain, []), (watched, second)]
        for out, callbacks in arms if i % 2 == 0 else arms[::-1]:
            out.append(fit(m, callbacks))
    load_after = os.getloadavg()
    per_call, per_refresh = _own_work(m, batch)

    print(
        f"load average (1, 5, 15 min) before {' '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {' '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} CPUs"
    )
    print(
        f"model: MLP 3x{width}, batch {batch}, {args.steps} steps a fit, {args.rounds} pairs "
        f"(ABBA order), smi={args.smi}{', A/A CONTROL: no monitor in either arm' if args.control else ''}"
    )
    print(
        f"median step without / with monitor  {statistics.median(r[1] for r in plain) * 1000:.3f} / "
        f"{statistics.median(r[1] for r in watched) * 1000:.3f} ms"
    )
    _report(plain, watched)
    ps = statistics.median(r[1] for r in plain)
    print(f"monitor work per step         {per_call * 1e6:8.2f} us = {per_call / ps * 100:.3f} % of a step")
    print(
        f"refresh (once a second)       {per_refresh * 1e6:8.1f} us = {per_refresh * 100:.3f} % of a second"
    )


if __name__ == "__main__":
    main()

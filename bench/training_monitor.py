"""Cost of kerasgpu.TrainingMonitor per training step, side by side in one process (a benchmark, not a test).

    python bench/training_monitor.py [--step-ms 10] [--steps 300] [--rounds 5] [--smi fake|none]

Builds one Keras model whose warm step takes about --step-ms on this machine (an MLP, width
calibrated first), then alternates `fit` without and with the monitor (display off, GPU
watch on: the telemetry sampler thread runs; `--smi fake` replays the H200 trace through the
test nvidia-smi so that thread really reads and parses lines), `--rounds` times each.
Prints the median wall time of both and their ratio, and the monitor's own cost per step
(its `on_train_batch_begin`, timed alone) as a share of the step.

Measured 2026-11-29 on the 2-core CPU dev machine (shared, TF 2.21 CPU, Keras 3.15):
see README "Training insight".
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-ms", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smi", choices=["fake", "none"], default="fake")
    args = ap.parse_args()
    if args.smi == "fake":
        fake = ROOT / "python_ext" / "tests" / "fake_nvidia_smi"
        os.environ["PATH"] = os.pathsep.join([str(fake), os.path.dirname(sys.executable), os.environ["PATH"]])
        os.environ["KERASGPU_BACKEND"] = "smi"
        os.environ["FAKE_NVIDIA_SMI_STATE"] = "trace:healthy"
        os.environ["FAKE_NVIDIA_SMI_PROCS"] = f"{os.getpid()}:20000@0"
    else:
        os.environ["KERASGPU_BACKEND"] = "none"

    import keras
    import numpy as np
    from kerasgpu.kernel.train.monitor import TrainingMonitor

    batch = 64
    rng = np.random.default_rng(0)
    x = rng.random((batch * args.steps, 256), dtype="float32")
    y = rng.random((batch * args.steps, 1), dtype="float32")

    def model(width: int):
        m = keras.Sequential(
            [keras.Input((256,))]
            + [keras.layers.Dense(width, activation="relu") for _ in range(3)]
            + [keras.layers.Dense(1)]
        )
        m.compile("adam", "mse")
        return m

    class Probe(keras.callbacks.Callback):
        """The same bare step clock in both arms: the median step is robust to a busy machine."""

        def on_train_begin(self, logs=None):
            self.t = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t.append(time.perf_counter())

        def median_step(self):
            gaps = sorted(b - a for a, b in zip(self.t[5:], self.t[6:], strict=False))
            return gaps[len(gaps) // 2]

    def fit(m, callbacks, steps=None):
        n = batch * (steps or args.steps)
        probe = Probe()
        t = time.perf_counter()
        m.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0, callbacks=[probe, *callbacks])
        return time.perf_counter() - t, probe.median_step()

    # calibrate the width so that a warm step takes about --step-ms
    width = 256
    for _ in range(6):
        m = model(width)
        fit(m, [], 20)
        step = fit(m, [], 60)[1]
        if abs(step * 1000 - args.step_ms) / args.step_ms < 0.15:
            break
        width = max(32, int(width * (args.step_ms / 1000 / step) ** 0.5))
    m = model(width)
    fit(m, [], 20)  # trace
    plain, watched = [], []
    for _ in range(args.rounds):
        plain.append(fit(m, []))
        watched.append(fit(m, [TrainingMonitor(batch_size=batch, display=False)]))
    p = statistics.median(w for w, _ in plain)
    w = statistics.median(w for w, _ in watched)
    ps = statistics.median(s for _, s in plain)
    ws = statistics.median(s for _, s in watched)
    pairs = sorted(b[1] / a[1] for a, b in zip(plain, watched, strict=True))

    # the monitor's per-step work alone
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
    # what happens once a second: the numbers, the card's HTML and text (what a display update sends)
    from kerasgpu.kernel.train.monitor import ProgressCard

    t = time.perf_counter()
    for b in range(1000):
        mon._update(b)
        card = ProgressCard(mon.progress)
        card._repr_html_()
        card.to_text()
    per_refresh = (time.perf_counter() - t) / 1000
    mon.on_train_end()

    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"model: MLP 3x{width}, batch {batch}, {args.steps} steps a fit, {args.rounds} rounds, smi={args.smi}"
    )
    print(f"median step without monitor   {ps * 1000:8.3f} ms")
    print(f"median step with monitor      {ws * 1000:8.3f} ms")
    print(
        f"step ratio with / without     {ws / ps:8.4f}  ({(ws / ps - 1) * 100:+.2f} %; median of rounds "
        f"{statistics.median(pairs):.4f}; per round: {', '.join(f'{r:.3f}' for r in pairs)})"
    )
    print(
        f"fit wall ratio                {w / p:8.4f}  (median {w:.3f} s vs {p:.3f} s; includes the sampler's "
        "start per fit and the machine's noise)"
    )
    print(f"monitor work per step         {per_call * 1e6:8.2f} us = {per_call / ps * 100:.3f} % of a step")
    print(
        f"refresh (once a second)       {per_refresh * 1e6:8.1f} us = {per_refresh * 100:.3f} % of a second"
    )


if __name__ == "__main__":
    main()

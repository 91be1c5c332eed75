"""CPU per reading of the kernel-side sampler that streams the kernel host's GPUs over the comm
(kerasgpu.hostgpus.HostGpus; a benchmark, not a test).

    python bench/kernel_sampler.py [--seconds S] [--rate-hz 1,10] [--gpus 1,8]

In this process, as in a kernel: the telemetry Sampler (nvidia-smi backend: one long-lived
`nvidia-smi -lms` process, here the fake replaying the H200 under load) and HostGpus publishing
every reading through a stand-in for the comm that JSON-encodes it (what `comm.send` does
before the socket). Measured: this process's CPU (all threads; not nvidia-smi's) over S seconds
while watched, minus the same process idle for S seconds, divided by the readings published.
The fake nvidia-smi is a Python script, far costlier than the real tool, and runs in its own
process: it is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python_ext"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate-hz", default="1,10")
    parser.add_argument("--gpus", default="1,8")
    args = parser.parse_args()
    fake = ROOT / "python_ext" / "tests" / "fake_nvidia_smi"
    os.environ["PATH"] = os.pathsep.join([str(fake), str(Path(sys.executable).parent), os.environ["PATH"]])
    os.environ["KERASGPU_BACKEND"] = "smi"
    os.environ["FAKE_NVIDIA_SMI_STATE"] = "load"
    from kerasgpu.kernel.hostgpus import HostGpus
    from kerasgpu.telemetry import Sampler

    sent = [0]

    def publish(data: dict) -> None:  # what the comm does with it before the socket
        json.dumps(data, allow_nan=False)
        sent[0] += 1

    print(f"kernel-side sampler, {args.seconds:g} s per row, CPU of this process (not nvidia-smi's)")
    print(
        f"{'GPUs':>4} {'rate':>6} {'readings':>8} {'CPU/reading':>12} {'CPU % core':>11} {'idle % core':>12}"
    )
    for gpus in [int(g) for g in args.gpus.split(",")]:
        os.environ["FAKE_NVIDIA_SMI_GPUS"] = str(gpus)
        for hz in [float(r) for r in args.rate_hz.split(",")]:
            sampler = Sampler(interval_ms=int(1000 / hz), history_seconds=60)
            host = HostGpus(publish, sampler=sampler, host="bench")
            cpu0, t0 = time.process_time(), time.perf_counter()
            time.sleep(args.seconds)
            idle = (time.process_time() - cpu0) / (time.perf_counter() - t0)
            host.watch()
            time.sleep(2.0)  # the stream's first readings (process start) are not the steady state
            sent[0] = 0
            cpu0, t0 = time.process_time(), time.perf_counter()
            time.sleep(args.seconds)
            cpu, wall, n = time.process_time() - cpu0, time.perf_counter() - t0, sent[0]
            host.close()
            sampler.stop()
            per = 1000 * (cpu - idle * wall) / max(n, 1)
            print(
                f"{gpus:>4} {hz:>4g}Hz {n:>8} {per:>10.3f}ms {100 * cpu / wall:>10.2f}% {100 * idle:>11.2f}%"
            )


if __name__ == "__main__":
    main()

"""What the GPU Fleet query costs the Jupyter server: CPU and event-loop lag with 3 and 100 hosts
(a benchmark, not a test).

    python bench/fleet.py [--window S] [--hosts 3,100] [--gpus 8]

For each fleet size it starts, on 127.0.0.1, an exposition server (a subprocess answering
kerasgpu's, DCGM exporter's and the nvidia-smi exporter's metric names for GPUS GPUs per host,
one third of the hosts each) and a real Prometheus (Debian's `prometheus`) scraping it as N
targets, each named by a `host` label. Then, in this process, on one asyncio loop like the
server's, kerasgpu's own `FleetQuery` (server/fleet.py, the code behind GET
kerasgpu/api/v1/fleet) with fleet_interval = 1 s, and a probe task that sleeps 5 ms again and
again and records how late it wakes (the loop's scheduling lag). Two windows of S seconds:
  baseline  the probe alone (no fleet query);
  fleet     plus 4 clients asking the fleet 4 times a second each (16 requests/s: the query
            goes to Prometheus once a second, the rest are answered from the cache).
Printed per window: this process's CPU (all threads: the HTTP client on the loop, the JSON
parse in the executor) as % of one core, lag p50 / p99 / max, and for the fleet window the
query rounds, their wall time, CPU per round and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python_ext"))

PERIOD = 0.005  # seconds between lag probes


def exposition(kind: str, gpus: int) -> str:
    """One simulated host's metrics text in an exporter's own names and units."""
    lines = []
    for i in range(gpus):
        used = 1000 * (i + 1)
        util = (i * 13) % 100
        if kind == "kerasgpu":
            labels = f'gpu="{i}",uuid="GPU-00000000-0000-0000-0000-{i:012d}",name="NVIDIA H200"'
            lines += [
                f"kerasgpu_utilization_gpu_percent{{{labels}}} {util}",
                f"kerasgpu_memory_used_bytes{{{labels}}} {used * 1048576}",
                f"kerasgpu_memory_total_bytes{{{labels}}} {143771 * 1048576}",
                f"kerasgpu_temperature_celsius{{{labels}}} 40",
                f"kerasgpu_power_draw_watts{{{labels}}} 150",
            ]
        elif kind == "dcgm":
            labels = (
                f'gpu="{i}",UUID="GPU-11111111-0000-0000-0000-{i:012d}",device="nvidia{i}",'
                'modelName="NVIDIA A100-SXM4-80GB",pci_bus_id="00000000:07:00.0"'
            )
            lines += [
                f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {util}",
                f"DCGM_FI_DEV_FB_USED{{{labels}}} {used}",
                f"DCGM_FI_DEV_FB_FREE{{{labels}}} {81050 - used}",
                f"DCGM_FI_DEV_FB_RESERVED{{{labels}}} 870",
                f"DCGM_FI_DEV_SM_CLOCK{{{labels}}} 1410",
            ]
        else:
            u = f'uuid="22222222-0000-0000-0000-{i:012d}"'
            lines += [
                f'nvidia_smi_gpu_info{{{u},name="NVIDIA GeForce RTX 4090",index="{i}"}} 1',
                f"nvidia_smi_utilization_gpu_ratio{{{u}}} {util / 100}",
                f"nvidia_smi_memory_used_bytes{{{u}}} {used * 1048576}",
                f"nvidia_smi_memory_total_bytes{{{u}}} {24564 * 1048576}",
                f"nvidia_smi_memory_free_bytes{{{u}}} {(24564 - used) * 1048576}",
            ]
    return "\n".join(lines) + "\n"


def serve(port: int, gpus: int) -> None:
    """The exposition server (run as a subprocess): /kerasgpu, /dcgm and /nvidia_smi."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pages = {f"/{k}": exposition(k, gpus).encode() for k in ("kerasgpu", "dcgm", "nvidia_smi")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = pages.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def started(argv: list[str], log: Path, **kwargs):
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **kwargs
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape_configs(hosts: int, exporter: str) -> list[dict]:
    kinds = ("kerasgpu", "dcgm", "nvidia_smi")
    return [
        {
            "job_name": kind,
            "metrics_path": f"/{kind}",
            "static_configs": [
                {"targets": [exporter], "labels": {"host": f"node-{i:03d}"}}
                for i in range(hosts)
                if i % 3 == k
            ],
        }
        for k, kind in enumerate(kinds)
        if any(i % 3 == k for i in range(hosts))
    ]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def window(seconds: float, query=None) -> dict:
    lags: list[float] = []
    rounds_before = query.rounds if query else 0
    round_walls: list[float] = []
    stop = time.monotonic() + seconds

    async def probe():
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            await asyncio.sleep(PERIOD)
            lags.append(time.perf_counter() - t0 - PERIOD)

    async def client():
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            before = query.rounds
            encoded = await query.encoded()  # what GET fleet sends each client
            if query.rounds != before:
                round_walls.append(time.perf_counter() - t0)
            assert encoded.startswith('{"prometheus"') and '"status": "ok"' in encoded, encoded[:300]
            await asyncio.sleep(0.25)

    cpu0, t0 = time.process_time(), time.perf_counter()
    tasks = [probe()] + ([client() for _ in range(4)] if query else [])
    await asyncio.gather(*tasks)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    ms = [1000 * v for v in lags]
    return {
        "cpu_pct": 100 * cpu / wall,
        "cpu_s": cpu,
        "wall": wall,
        "p50": pct(ms, 0.5),
        "p99": pct(ms, 0.99),
        "max": max(ms),
        "rounds": (query.rounds - rounds_before) if query else 0,
        "round_ms": 1000 * statistics.median(round_walls) if round_walls else float("nan"),
    }


async def measure(hosts: int, gpus: int, seconds: float, work: Path) -> tuple[dict, dict, int]:
    from kerasgpu.server.config import KerasGPU
    from kerasgpu.server.fleet import FleetQuery

    exporter_port, prom_port = free_port(), free_port()
    exporter = f"127.0.0.1:{exporter_port}"
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}}
    config["scrape_configs"] = scrape_configs(hosts, exporter)
    (work / "prometheus.yml").write_text(json.dumps(config))
    serve_argv = [sys.executable, __file__, "--serve", str(exporter_port), "--gpus", str(gpus)]
    prom_argv = [
        shutil.which("prometheus") or "/usr/bin/prometheus",
        f"--config.file={work / 'prometheus.yml'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        "--log.level=warn",
    ]
    with started(serve_argv, work / "exporter.log"), started(prom_argv, work / "prometheus.log", cwd=work):
        query = FleetQuery(KerasGPU(prometheus_url=f"http://127.0.0.1:{prom_port}", fleet_interval=1.0))
        deadline = time.monotonic() + 120
        while True:  # until Prometheus has scraped every host
            answer = await query.get()
            hosts_seen = answer["hosts"] if answer["status"] == "ok" else []
            if len(hosts_seen) == hosts and all(len(h["gpus"]) == gpus for h in hosts_seen):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"Prometheus never showed {hosts} hosts: {json.dumps(answer)[:500]}")
            await asyncio.sleep(1.0)
        series = len(json.dumps(answer))
        base = await window(seconds)
        fleet = await window(seconds, query)
    return base, fleet, series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--hosts", default="3,100")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.gpus)
        return
    what = f"{args.gpus} GPUs per host, fleet_interval 1 s, 16 requests/s, {args.window:g} s windows"
    print(f"fleet query cost: {what}")
    print(
        f"{'hosts':>5} {'window':>8} {'CPU %core':>10} {'lag p50':>8} {'p99':>7} {'max':>7} "
        f"{'rounds':>6} {'round ms':>8} {'CPU/round':>10}"
    )
    for hosts in [int(h) for h in args.hosts.split(",")]:
        with tempfile.TemporaryDirectory(prefix="kerasgpu-fleet-bench-") as tmp:
            base, fleet, size = asyncio.run(measure(hosts, args.gpus, args.window, Path(tmp)))
        per_round = (
            1000 * (fleet["cpu_s"] - base["cpu_s"] * fleet["wall"] / base["wall"]) / max(fleet["rounds"], 1)
        )
        for name, w in (("baseline", base), ("fleet", fleet)):
            extra = (
                f"{w['rounds']:>6} {w['round_ms']:>8.1f} {per_round:>8.2f}ms"
                if name == "fleet"
                else f"{'':>6} {'':>8} {'':>10}"
            )
            print(
                f"{hosts:>5} {name:>8} {w['cpu_pct']:>9.2f}% {w['p50']:>6.2f}ms {w['p99']:>5.2f}ms "
                f"{w['max']:>5.2f}ms {extra}"
            )
        print(
            f"{hosts:>5} {'ratio':>8} {fleet['cpu_pct'] / base['cpu_pct']:>9.2f}x "
            f"{fleet['p50'] / base['p50']:>6.2f}x {fleet['p99'] / base['p99']:>5.2f}x "
            f"{fleet['max'] / base['max']:>5.2f}x   (answer {size / 1024:.0f} KiB JSON)"
        )


if __name__ == "__main__":
    main()

"""Event-loop lag and CPU of a real Jupyter server streaming GPU readings to N websocket clients
(a benchmark, not a test).

    python bench/stream.py [--window S] [--clients 1,10,50]

Starts a real `jupyter server` per configuration (the fake nvidia-smi on PATH replaying the
H200 load capture, KERASGPU_BACKEND=smi, a token, c.KerasGPU.interval_ms per rate) with a
benchmark-only server extension (bench/lagprobe.py) that measures, inside the server, how late
an asyncio task that sleeps 5 ms again and again wakes up: the event loop's scheduling lag.
Then, for 0 clients (the baseline: the same server, idle), then 1, 10 and 50 clients on
/kerasgpu/api/v1/stream, it measures over a window of S seconds:
  lag p50 / p99 / max   of the server's event loop, from the probe;
  server CPU            user+system time of the server process (all its threads) / window;
  smi CPU               the same for its nvidia-smi child (the fake: a Python script, so far
                        costlier than the real tool);
  fan-out p50/p99       how long kerasgpu's Broadcaster takes to write one reading to every
                        client (timed by the probe extension), a part of the lag;
  clients CPU           this process (the clients), which shares the machine's cores;
  msg/s per client      what each client received (proof the stream flowed).
Each row prints its difference to the 0-client baseline of the same server. With 0 clients the
sampler is stopped (it runs only while someone watches), so "1 client - 0" is the sampler plus
one socket, and "50 clients - 1 client" is what the fan-out to 49 more costs.
Configurations: 1 GPU at 1 Hz and at 10 Hz; 8 GPUs at 10 Hz (CPU should grow with GPUs, not
clients). The clients run in this process (one asyncio loop), on the same machine.

Targets: lag p99 < 5 ms with 50 clients at 10 Hz; server CPU grows with GPUs, not clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from streambench import StreamClient, end_process, free_port
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
FAKE_DIR = ROOT / "python_ext" / "tests" / "fake_nvidia_smi"


class Server:
    """A real `jupyter server` subprocess with kerasgpu and the lag probe."""

    def __init__(self, interval_ms: int, gpus: int, tmp: Path):
        self.interval_ms, self.gpus = interval_ms, gpus
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = tmp / f"server-{interval_ms}ms-{gpus}gpu"
        self.dir.mkdir()
        config = self.dir / "bench_config.py"
        config.write_text(
            f"c.ServerApp.jpserver_extensions = {{'kerasgpu': True, 'lagprobe': True}}\n"
            f"c.KerasGPU.interval_ms = {interval_ms}\n"
        )
        env = dict(os.environ)
        env.update(
            PATH=os.pathsep.join([str(FAKE_DIR), str(Path(sys.executable).parent), env["PATH"]]),
            PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH", "")])),
            KERASGPU_BACKEND="smi",
            FAKE_NVIDIA_SMI_STATE="load",
            FAKE_NVIDIA_SMI_GPUS=str(gpus),
            JUPYTER_RUNTIME_DIR=str(self.dir / "runtime"),
        )
        env.pop("FAKE_NVIDIA_SMI_STATE_FILE", None)
        self.log = open(self.dir / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.dir}",
                f"--config={config}",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("jupyter server exited:\n" + (self.dir / "server.log").read_text()[-3000:])
            try:
                await self.get("/kerasgpu-bench/lag?reset=1")
                return
            except (OSError, Exception):  # noqa: BLE001 - not up yet
                await asyncio.sleep(0.3)
        raise RuntimeError(f"jupyter server did not answer in {timeout} s; see {self.dir / 'server.log'}")

    async def get(self, path: str) -> dict:
        headers = {"Authorization": f"token {self.token}"}
        req = HTTPRequest(self.base + path, headers=headers, request_timeout=10)
        reply = await AsyncHTTPClient().fetch(req)
        return json.loads(reply.body)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: the server process (all threads), and its live nvidia-smi children."""
        t = self.ps.cpu_times()
        child = 0.0
        for c in self.ps.children(recursive=True):
            try:
                ct = c.cpu_times()
                child += ct.user + ct.system
            except psutil.NoSuchProcess:
                pass
        return t.user + t.system, child

    def stop(self) -> None:
        end_process(self.proc, signal.SIGINT, 10)
        self.log.close()


async def measure(server: Server, n: int, window: float, settle: float) -> dict:
    clients = [StreamClient() for _ in range(n)]
    await asyncio.gather(*(c.connect(server) for c in clients))
    await asyncio.sleep(settle)  # the sampler (re)starts with the first client
    await server.get("/kerasgpu-bench/lag?reset=1")
    cpu0, child0 = server.cpu()
    own0 = time.process_time()
    got0 = sum(c.received for c in clients)
    t0 = time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - t0
    cpu1, child1 = server.cpu()
    own = time.process_time() - own0
    got1 = sum(c.received for c in clients)
    lag = await server.get("/kerasgpu-bench/lag?reset=1")
    dropped = sum(c.closed_by_server for c in clients)
    for c in clients:
        c.close()
    await asyncio.sleep(0.5)  # let the server see them go
    return {
        "clients": n,
        **lag,
        "cpu_pct": 100 * (cpu1 - cpu0) / elapsed,
        "smi_pct": 100 * max(0.0, child1 - child0) / elapsed,
        "clients_pct": 100 * own / elapsed,
        "msg_s": (got1 - got0) / elapsed / n if n else 0.0,
        "dropped": dropped,
    }


def print_rows(title: str, rows: list[dict]) -> None:
    base = rows[0]
    print(f"\n{title}")
    print(
        f"{'clients':>7} {'lag p50':>8} {'p99':>7} {'max':>7} {'p99-base':>9}"
        f" {'fan-out p50/p99':>16} {'server CPU':>11} {'-base':>7} {'smi CPU':>8} {'clients CPU':>12}"
        f" {'msg/s/client':>13} {'dropped':>8}"
    )
    for r in rows:
        fan = f"{r['fanout_p50_ms']:.2f}/{r['fanout_p99_ms']:.2f}ms" if r["fanouts"] else "-"
        print(
            f"{r['clients']:>7} {r['p50_ms']:>6.2f}ms {r['p99_ms']:>5.2f}ms {r['max_ms']:>5.1f}ms"
            f" {r['p99_ms'] - base['p99_ms']:>+7.2f}ms"
            f" {fan:>16}"
            f" {r['cpu_pct']:>10.1f}% {r['cpu_pct'] - base['cpu_pct']:>+6.1f}%"
            f" {r['smi_pct']:>7.1f}% {r['clients_pct']:>11.1f}% {r['msg_s']:>13.1f} {r['dropped']:>8}"
        )


async def run(args) -> dict:
    results = {}
    configs = [(1000, 1, args.clients), (100, 1, args.clients), (100, 8, [1, max(args.clients)])]
    with tempfile.TemporaryDirectory(prefix="kerasgpu-bench-") as tmp:
        for interval_ms, gpus, counts in configs:
            server = Server(interval_ms, gpus, Path(tmp))
            try:
                await server.wait_ready()
                await asyncio.sleep(3.0)  # start-up work done before the baseline
                rows = [await measure(server, 0, args.window, 0.5)]
                for n in counts:
                    rows.append(await measure(server, n, args.window, args.settle))
            finally:
                server.stop()
            plural = "s" if gpus > 1 else ""
            title = f"{1000 / interval_ms:g} Hz, {gpus} GPU{plural} (interval_ms={interval_ms})"
            print_rows(title, rows)
            results[(interval_ms, gpus)] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per scenario")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds between connecting and measuring")
    parser.add_argument("--clients", default="1,10,50", help="client counts, comma-separated")
    args = parser.parse_args()
    args.clients = [int(x) for x in args.clients.split(",")]
    print(
        f"{os.cpu_count()} CPUs; fake nvidia-smi (H200 load capture), KERASGPU_BACKEND=smi; "
        f"{args.window:g} s per scenario; clients in this process"
    )
    t0 = time.monotonic()
    results = asyncio.run(run(args))
    top = max(args.clients)
    r10 = results[(100, 1)]
    by_n = {r["clients"]: r for r in r10}
    r8 = {r["clients"]: r for r in results[(100, 8)]}
    print("\nSummary (10 Hz):")
    print(f"  lag p99 with {top} clients, 1 GPU: {by_n[top]['p99_ms']:.2f} ms (target < 5 ms)")
    print(f"  lag p99 with {top} clients, 8 GPUs: {r8[top]['p99_ms']:.2f} ms")
    one, many = by_n[1]["cpu_pct"], by_n[top]["cpu_pct"]
    print(
        f"  server CPU, 1 GPU: 1 client {one:.1f}% -> {top} clients {many:.1f}%"
        f" ({many / max(one, 1e-9):.2f}x for {top}x the clients)"
    )
    print(
        f"  server CPU, {top} clients: 1 GPU {by_n[top]['cpu_pct']:.1f}% -> 8 GPUs {r8[top]['cpu_pct']:.1f}%"
        f" ({r8[top]['cpu_pct'] / max(by_n[top]['cpu_pct'], 1e-9):.2f}x)"
    )
    print(f"total {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()

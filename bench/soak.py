"""Soak: N websocket clients on a real Jupyter server for a long time, watching what the server holds
(a benchmark, not a test).

    python bench/soak.py [--clients 50] [--rate 10] [--duration 600] [--every 10] [--gpus 1] [--churn S]

Starts a real `jupyter server` on 127.0.0.1 (a token, the kerasgpu extension, the fake nvidia-smi
replaying the H200 load capture on PATH, c.KerasGPU.interval_ms = 1000 / rate), connects N clients
to /kerasgpu/api/v1/stream (the server pushes each reading to every one of them), polls the REST
endpoints (devices, history, processes, metrics) once a second as an open panel and a scraper
would, and every `--every` seconds samples the server process: RSS, threads, open fds and child
processes (nvidia-smi, its wrapper). With `--churn S` every client also hangs up and connects
again once per S seconds, in turn (tabs opening, reloading, closing). Prints a row per sample,
then the first sample against the last, what each client received, and whether anything was
left running after the server stopped.

What a leak looks like: threads, fds or children that grow with time (they should be constant);
RSS that keeps growing after the history ring buffer is full (c.KerasGPU.history_seconds, 600 s
by default: until then the ring fills, and RSS grows with it).

Bounded on purpose: at most 500 clients, 100 Hz and 2 hours; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

ROOT = Path(__file__).resolve().parents[1]
FAKE_DIR = ROOT / "python_ext" / "tests" / "fake_nvidia_smi"
MAX_CLIENTS, MAX_RATE, MAX_DURATION = 500, 100, 7200


class Server:
    """A real `jupyter server` subprocess with kerasgpu on 127.0.0.1."""

    def __init__(self, interval_ms: int, gpus: int, tmp: Path):
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = tmp
        (tmp / "config").mkdir()
        (tmp / "root").mkdir()
        (tmp / "config" / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {"jpserver_extensions": {"kerasgpu": True}},
                    "KerasGPU": {"interval_ms": interval_ms},
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVIDIA_SMI")}
        env.update(
            PATH=os.pathsep.join([str(FAKE_DIR), str(Path(sys.executable).parent), env["PATH"]]),
            KERASGPU_BACKEND="smi",
            FAKE_NVIDIA_SMI_STATE="load",
            FAKE_NVIDIA_SMI_GPUS=str(gpus),
            JUPYTER_CONFIG_DIR=str(tmp / "config"),
            JUPYTER_DATA_DIR=str(tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        )
        self.log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in stop()
        argv = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={tmp / 'root'}",
        ]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.proc.pid)

    async def get(self, path: str) -> bytes:
        req = HTTPRequest(
            self.base + path, headers={"Authorization": f"token {self.token}"}, request_timeout=30
        )
        return (await AsyncHTTPClient().fetch(req)).body

    async def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("jupyter server exited:\n" + (self.dir / "server.log").read_text()[-3000:])
            try:
                await self.get("/api/status")
                return
            except (OSError, HTTPClientError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def sample(self) -> dict:
        """What the server holds now."""
        with self.ps.oneshot():
            children = self.ps.children(recursive=True)
            return {
                "rss_mib": self.ps.memory_info().rss / 2**20,
                "threads": self.ps.num_threads(),
                "fds": self.ps.num_fds(),
                "children": len(children),
                "cpu_s": sum(self.ps.cpu_times()[:2]),
            }

    def stop(self) -> list[str]:
        """SIGTERM, as a service manager stops it; returns what of its children is still running."""
        children = self.ps.children(recursive=True)
        end_process(self.proc, signal.SIGTERM, 30)
        self.log.close()
        time.sleep(0.5)
        left = []
        for c in children:
            try:
                if c.status() != psutil.STATUS_ZOMBIE:
                    left.append(" ".join(c.cmdline()))
                    c.kill()
            except psutil.NoSuchProcess:
                pass
        return left


async def churn(
    server: Server, clients: list[StreamClient], every: float, stop: asyncio.Event, counts: dict
) -> None:
    """Each client in turn hangs up and connects again, so every client does once per `every` s
    (browser tabs opening, reloading and closing)."""
    i = 0
    pause = every / max(1, len(clients))
    while not stop.is_set():
        client = clients[i % len(clients)]
        client.close()
        fresh = StreamClient()
        try:
            await fresh.connect(server)
            fresh.received = client.received
            clients[i % len(clients)] = fresh
            counts["reconnects"] += 1
        except (OSError, HTTPClientError):
            counts["failed"] += 1
        i += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)


async def poll_rest(server: Server, stop: asyncio.Event, counts: dict) -> None:
    """The REST traffic of an open panel and a Prometheus scraper: one round a second."""
    paths = [
        "/kerasgpu/api/v1/devices",
        "/kerasgpu/api/v1/history?seconds=60",
        "/kerasgpu/api/v1/processes",
        "/kerasgpu/metrics",
    ]
    while not stop.is_set():
        for path in paths:
            try:
                await server.get(path)
                counts["ok"] += 1
            except (OSError, HTTPClientError):
                counts["failed"] += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def row(t: float, s: dict) -> str:
    return (
        f"{t:7.0f} s  rss {s['rss_mib']:7.1f} MiB  threads {s['threads']:3d}  fds {s['fds']:4d}  "
        f"children {s['children']:2d}  cpu {s['cpu_s']:7.1f} s"
    )


async def soak(args) -> int:
    interval_ms = max(10, round(1000 / args.rate))
    with tempfile.TemporaryDirectory(prefix="kerasgpu-soak-") as tmp:
        server = Server(interval_ms, args.gpus, Path(tmp))
        clients: list[StreamClient] = []
        try:
            await server.wait_ready()
            print(
                f"jupyter server pid {server.proc.pid} on 127.0.0.1:{server.port}; {args.clients} clients, "
                f"{args.rate:g} Hz (interval_ms {interval_ms}), {args.gpus} GPU(s), {args.duration:g} s"
            )
            clients = [StreamClient() for _ in range(args.clients)]
            await asyncio.gather(*(c.connect(server) for c in clients))
            stop = asyncio.Event()
            counts = {"ok": 0, "failed": 0, "reconnects": 0}
            rest = asyncio.ensure_future(poll_rest(server, stop, counts))
            churning = (
                asyncio.ensure_future(churn(server, clients, args.churn, stop, counts))
                if args.churn
                else None
            )
            await asyncio.sleep(min(10.0, args.duration / 10))  # warm-up: sampler, stream, first requests
            t0 = time.monotonic()
            got0 = sum(c.received for c in clients)
            samples = [(0.0, server.sample())]
            print(row(*samples[0]))
            while (elapsed := time.monotonic() - t0) < args.duration:
                await asyncio.sleep(min(args.every, args.duration - elapsed))
                samples.append((time.monotonic() - t0, server.sample()))
                print(row(*samples[-1]), flush=True)
            elapsed = time.monotonic() - t0
            got = sum(c.received for c in clients) - got0
            stop.set()
            await rest
            if churning is not None:
                await churning
        finally:
            for c in clients:
                c.close()
            await asyncio.sleep(0.5)
            left = server.stop()
    first, last = samples[0][1], samples[-1][1]
    print()
    print(f"{'':10s}{'start':>10s}{'end':>10s}{'min':>10s}{'max':>10s}")
    formats = {"rss_mib": "{:10.1f}", "threads": "{:10d}", "fds": "{:10d}", "children": "{:10d}"}
    for key, fmt in formats.items():
        values = [s[key] for _, s in samples]
        cells = "".join(fmt.format(v) for v in (first[key], last[key], min(values), max(values)))
        print(f"{key:10s}{cells}")
    cpu = 100 * (last["cpu_s"] - first["cpu_s"]) / elapsed
    print(f"server CPU {cpu:.1f}% of one core over {elapsed:.0f} s")
    per_client = got / elapsed / max(1, args.clients)
    dropped = sum(c.closed_by_server for c in clients)
    print(f"stream: {per_client:.2f} messages/s per client (target {args.rate:g})")
    print(f"clients the server dropped: {dropped}")
    print(f"REST requests answered: {counts['ok']}; reconnects: {counts['reconnects']}")
    print(f"failed requests or connects: {counts['failed']}")
    print(f"left running after SIGTERM: {left or 'nothing'}")
    return 0 if not left and not dropped and not counts["failed"] else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="websocket clients (default 50)")
    p.add_argument("--rate", type=float, default=10.0, help="readings per second (default 10)")
    p.add_argument("--duration", type=float, default=600.0, help="seconds to soak (default 600)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs the fake nvidia-smi replays (default 1)")
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        help="every client reconnects once per this many seconds (default: never)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        p.error(f"--clients must be 1 to {MAX_CLIENTS}")
    if not 0 < args.rate <= MAX_RATE:
        p.error(f"--rate must be above 0 and at most {MAX_RATE} Hz (the sampler's floor is 10 Hz)")
    if not 1 <= args.duration <= MAX_DURATION:
        p.error(f"--duration must be 1 to {MAX_DURATION} s")
    if not 1 <= args.gpus <= 64:
        p.error("--gpus must be 1 to 64")
    if args.churn and not 1 <= args.churn <= MAX_DURATION:
        p.error(f"--churn must be 1 to {MAX_DURATION} s")
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())

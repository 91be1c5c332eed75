"""No nvidia-smi outlives the Jupyter server: a real `jupyter server` process (the extension loaded,
the H200 replay behind a wrapper-script nvidia-smi, as module systems and containers install it) is
stopped with SIGTERM or SIGINT while nvidia-smi hangs, and nothing of it is left running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from streamutil import next_message
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

TOKEN = "kerasgpu-stop-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smi_processes(state_file: Path) -> list[psutil.Process]:
    """Live processes (wrapper or fake nvidia-smi) started for this test's fake."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue  # dead, waiting for its parent to read its exit status
            cmd = " ".join(proc.info["cmdline"] or [])
            if "nvidia-smi" not in cmd:
                continue
            if proc.environ().get("FAKE_NVIDIA_SMI_STATE_FILE") == str(state_file):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def wrapped_smi(fake_smi, tmp_path):
    """`nvidia-smi` on PATH is a shell script that runs the fake as its child (not exec)."""
    bin_dir = tmp_path / "wrapper-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "nvidia-smi"
    # The trailing `exit` keeps the shell from exec'ing the fake: it stays the fake's parent.
    wrapper.write_text(f'#!/bin/sh\n# a site wrapper\n"{fake_smi.exe}" "$@"\nexit $?\n')
    wrapper.chmod(0o755)
    env = fake_smi.env
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return fake_smi, env


@pytest.fixture
def server(wrapped_smi, tmp_path):
    """Starts `jupyter server` with the extension on 127.0.0.1; stops it (and anything left) at the end."""
    fake, env = wrapped_smi
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"kerasgpu": True}},
                # A hung call stays hung for the whole test: only the stop can end it.
                "KerasGPU": {"interval_ms": 200, "smi_timeout": 300},
            }
        )
    )
    env.update(
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    port = free_port()
    (tmp_path / "root").mkdir()
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={tmp_path / 'root'}",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, f"127.0.0.1:{port}", fake, tmp_path / "server.log"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for leftover in smi_processes(fake.state_file):
            leftover.kill()
        log.close()


async def ready(host: str, proc, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
        try:
            await AsyncHTTPClient().fetch(
                f"http://{host}/api/status", headers={"Authorization": f"token {TOKEN}"}, request_timeout=5
            )
            return
        except (HTTPClientError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_no_nvidia_smi_outlives_a_stopped_server(server, sig):
    proc, host, fake, log = server
    fake.set(state="load")
    await ready(host, proc, log)
    ws = await websocket_connect(
        HTTPRequest(f"ws://{host}/kerasgpu/api/v1/stream", headers={"Authorization": f"token {TOKEN}"})
    )
    try:
        await next_message(ws, "samples", timeout=60)
        streaming = await wait_until(lambda: smi_processes(fake.state_file), "the nvidia-smi stream")
        assert any("-lms" in " ".join(p.cmdline()) for p in streaming)

        # nvidia-smi hangs: the stream stalls (killed, wrapper and all), the re-open hangs too.
        fake.set(fail="hang")
        stalled = await next_message(ws, "status", timeout=60, where=lambda m: m["status"]["state"] != "ok")
        assert stalled["status"]["code"] == "timeout"
        await wait_until(lambda: all(gone(p) for p in streaming), "the stalled stream (wrapper, fake) to end")

        def hung_query():
            procs = smi_processes(fake.state_file)
            streams = [p for p in procs if "-lms" in " ".join(p.cmdline())]
            return procs if len(procs) >= 2 and not streams else None

        hung = await wait_until(hung_query, "the hung nvidia-smi query (wrapper and fake)")
        assert {Path(p.cmdline()[1]).name for p in hung} >= {"nvidia-smi"}
    finally:
        ws.close()

    # With no client left, a REST request takes its own look: a one-shot query that hangs too,
    # in a thread of the server's executor (which Python waits for at exit).
    request = asyncio.ensure_future(
        AsyncHTTPClient().fetch(
            f"http://{host}/kerasgpu/api/v1/devices",
            headers={"Authorization": f"token {TOKEN}"},
            request_timeout=120,
            raise_error=False,
        )
    )
    await wait_until(lambda: len(smi_processes(fake.state_file)) >= 4, "a second hung query (the request's)")

    # Stop the server while nvidia-smi hangs.
    proc.send_signal(sig)
    await wait_until(lambda: proc.poll() is not None, f"the server to exit on {sig.name}", timeout=60)
    left = await wait_until_empty(fake.state_file)
    assert left == [], f"nvidia-smi left running after {sig.name}: {[p.cmdline() for p in left]}"
    # The request ends too: answered (the killed query is a status) or cut off with the server.
    with contextlib.suppress(HTTPClientError, OSError):
        await request
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


async def wait_until_empty(state_file: Path, timeout: float = 10.0) -> list:
    """The fake's processes still alive once SIGKILL had time to land (empty when all are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in smi_processes(state_file) if not gone(p)]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)

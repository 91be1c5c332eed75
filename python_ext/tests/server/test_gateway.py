"""A kernel on another host sees other GPUs than the server: a real Jupyter Enterprise Gateway.

Enterprise Gateway 3.3 (in its own venv, scripts/eg_venv.sh: it pins jupyter_server<2) runs on
127.0.0.1 with the H200 replay (under load) on its kernels' PATH; its kernels run this project's
venv (ipykernel, kerasgpu). The Jupyter server under test has no nvidia-smi and uses the gateway
through its gateway client. The server's own telemetry says nvidia-smi was not found, while
kerasgpu in the gateway's kernel reads the H200 where that kernel runs, and, started the way the
frontend starts it (a silent user expression, `kerasgpu.kernel.hostgpus.start()`), streams that host's
readings over the kernel's `kerasgpu` comm through the gateway and the server's websocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from promutil import free_port
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

ROOT = Path(__file__).resolve().parents[3]
FAKE_SMI_DIR = ROOT / "python_ext" / "tests" / "fake_nvidia_smi"
EG_VENV = Path(os.environ.get("KERASGPU_EG_VENV", Path.home() / ".cache" / "kerasgpu" / "eg-venv"))

pytestmark = pytest.mark.gateway


@pytest.fixture(scope="session")
def eg_venv() -> Path:
    """Enterprise Gateway's own venv, built once per machine (minutes the first time)."""
    if not (EG_VENV / ".built").exists():
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "eg_venv.sh"), str(EG_VENV), sys.executable],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            message = (
                f"cannot build Enterprise Gateway's venv: {result.stdout[-1500:]}{result.stderr[-1500:]}"
            )
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return EG_VENV


@pytest.fixture
def eg_port():
    return free_port()


@pytest.fixture
def fresh_gateway_client():
    """GatewayClient is a process-wide singleton: an earlier test's server made one without a
    gateway URL, which this server would reuse (and start kernels locally). A new one for this
    test, and none left behind for the next tests."""
    from jupyter_server.gateway.gateway_client import GatewayClient

    GatewayClient.clear_instance()
    yield
    GatewayClient.clear_instance()


@pytest.fixture
def jp_server_config(eg_port, fresh_gateway_client):
    return {
        "GatewayClient": {"url": f"http://127.0.0.1:{eg_port}", "request_timeout": 120.0},
        # The relay that closes an upstream socket opened after the browser left (see below).
        "ServerApp": {
            "jpserver_extensions": {"kerasgpu": True},
            "kernel_websocket_connection_class": "kerasgpu.gateway_ws.GatewayWebSocketConnection",
        },
        "KerasGPU": {"interval_ms": 200, "smi_timeout": 3.0},
    }


@pytest.fixture
def gateway(eg_venv, eg_port, tmp_path, no_smi):
    """Enterprise Gateway on 127.0.0.1; its kernels get the H200 replay (load) first on PATH."""
    # The gateway's kernels run this project's venv (ipykernel and kerasgpu), not the gateway's.
    spec_dir = tmp_path / "eg-data" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (kerasgpu)",
        "language": "python",
        "metadata": {
            "process_proxy": {
                "class_name": "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"
            }
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    state_file = tmp_path / "fake-nvidia-smi-state.json"
    state_file.write_text(json.dumps({"state": "load", "gpus": 1}))
    env = dict(os.environ)
    env.update(
        # The fake's `#!/usr/bin/env python3` runs this venv's Python.
        PATH=os.pathsep.join([str(FAKE_SMI_DIR), str(Path(sys.executable).parent), env["PATH"]]),
        PYTHONPATH=str(ROOT / "python_ext"),
        FAKE_NVIDIA_SMI_STATE_FILE=str(state_file),
        KERASGPU_BACKEND="smi",
        # Kernels inherit only these; root is refused kernels unless left out of this list.
        EG_INHERITED_ENVS="PATH,PYTHONPATH,FAKE_NVIDIA_SMI_STATE_FILE,KERASGPU_BACKEND",
        EG_UNAUTHORIZED_USERS="nobody",
        JUPYTER_RUNTIME_DIR=str(tmp_path / "eg-runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / "eg-data"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "eg-config"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    log_path = tmp_path / "gateway.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            str(eg_venv / "bin" / "jupyter-enterprisegateway"),
            "--ip=127.0.0.1",
            f"--port={eg_port}",
            "--port_retries=0",
        ],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def wait_for_gateway(port: int, proc, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"Enterprise Gateway exited: {log.read_text()[-3000:]}"
        try:
            await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/api/kernelspecs", request_timeout=5)
            return
        except (HTTPClientError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Enterprise Gateway never answered: {log.read_text()[-3000:]}"
                ) from None
            await asyncio.sleep(0.5)


def request(code: str, user_expressions: dict | None = None) -> tuple[str, str]:
    """An execute_request over the kernel websocket (JSON), silent when it only evaluates expressions."""
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": bool(user_expressions),
            "store_history": False,
            "allow_stdin": False,
            "user_expressions": user_expressions or {},
        },
        "channel": "shell",
        "buffers": [],
    }
    return msg_id, json.dumps(message)


async def messages(ws, timeout: float = 120.0):
    """Every message from the kernel websocket until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.read_message(), timeout=max(0.1, deadline - time.monotonic()))
        assert raw is not None, "the kernel's websocket closed"
        yield json.loads(raw)


async def execute(ws, code: str, user_expressions: dict | None = None, seen: list | None = None):
    """Runs `code` in the kernel behind the websocket; its stdout and execute_reply content
    (every message of the request is appended to `seen`)."""
    msg_id, message = request(code, user_expressions)
    ws.write_message(message)
    out = []
    async for msg in messages(ws):
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if seen is not None:
            seen.append(msg)
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif kind == "execute_reply":
            return "".join(out), msg["content"]
    raise AssertionError("unreachable")


START = {"kerasgpu": '__import__("kerasgpu.kernel.hostgpus", fromlist=["start"]).start()'}
STOP = {"kerasgpu": '__import__("kerasgpu.kernel.hostgpus", fromlist=["stop"]).stop()'}


async def test_a_gateway_kernel_reads_the_gpus_of_its_own_host(gateway, eg_port, api, jp_fetch, jp_ws_fetch):
    proc, log = gateway
    await wait_for_gateway(eg_port, proc, log)

    # The server's host has no NVIDIA driver: its own telemetry says so.
    devices = await api("devices")
    assert devices["status"]["state"] != "ok"
    assert "nvidia-smi was not found" in devices["status"]["reason"]

    # A kernel started through the server runs in the gateway, where the H200 is.
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel = json.loads(response.body)
    try:
        # Its Python is not on the server's host: the TensorFlow probe says so, it does not guess.
        tf = await api("tensorflow", params={"kernel_id": kernel["id"]})
        assert tf["status"] == "remote_kernel"
        assert tf["reason"].startswith("This notebook's kernel runs in a Jupyter gateway")
        assert "%gpu_check" in tf["hint"]
        ws = await jp_ws_fetch("api", "kernels", kernel["id"], "channels")
        try:
            out, _ = await execute(
                ws,
                "import json, os, kerasgpu.telemetry as t\n"
                "snap = t.probe('smi')\n"
                "import socket\n"
                "print(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), **snap.to_json()}))\n",
            )
            seen = json.loads(out.strip().splitlines()[-1])
            assert seen["status"]["state"] == "ok", seen["status"]
            [device] = seen["devices"]
            [sample] = seen["samples"]
            assert device["name"] == "NVIDIA H200"
            assert (sample["utilization_gpu"], sample["memory_used_mib"]) == (100, 25715)
            # The kernel is the gateway's child, not the server's.
            assert seen["pid"] != os.getpid()

            # What the frontend does to watch the kernel's host: a silent user expression; the
            # readings come back over the kernel's `kerasgpu` comm, through gateway and server.
            during: list[dict] = []
            _, reply = await execute(ws, "", START, seen=during)
            assert reply["user_expressions"]["kerasgpu"]["data"]["text/plain"] == "'watching'"
            [opened] = [m["content"] for m in during if m["header"]["msg_type"] == "comm_open"]
            assert (opened["target_name"], opened["data"]["type"]) == ("kerasgpu", "hello")
            found = {}
            async for msg in messages(ws, timeout=60):
                if msg["header"]["msg_type"] == "comm_msg":
                    data = msg["content"]["data"]
                    if data.get("type") == "gpus":
                        found.setdefault(data["event"], data)
                if "samples" in found and "status" in found:
                    break
            assert found["status"]["devices"][0]["name"] == "NVIDIA H200"
            assert found["status"]["host"] == seen["host"]
            [sample] = found["samples"]["samples"]
            assert (sample["utilization_gpu"], sample["memory_used_mib"]) == (100, 25715)
            _, reply = await execute(ws, "", STOP)
            assert reply["user_expressions"]["kerasgpu"]["data"]["text/plain"] == "'stopped'"
        finally:
            ws.close()
    finally:
        await jp_fetch("api", "kernels", kernel["id"], method="DELETE")


async def test_a_kernel_socket_dropped_while_it_connects_does_not_stall_the_next(
    gateway, eg_port, jp_fetch, jp_ws_fetch
):
    """Chromium drops the first socket of every gateway kernel (no subprotocol in the answer) and
    JupyterLab reconnects with the same session id at once. jupyter_server's own relay leaks the
    upstream socket of the dropped one and Enterprise Gateway holds the reconnect until that
    "stale connection" times out (~95 s); kerasgpu.gateway_ws closes it, so the kernel answers."""
    proc, log = gateway
    await wait_for_gateway(eg_port, proc, log)
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel = json.loads(response.body)
    session = uuid.uuid4().hex
    try:
        channels = ("api", "kernels", kernel["id"], "channels")
        dropped = await jp_ws_fetch(*channels, params={"session_id": session})
        dropped.close()  # while the server's own handshake with the gateway is under way
        ws = await jp_ws_fetch(*channels, params={"session_id": session})
        try:
            try:
                _, reply = await asyncio.wait_for(execute(ws, "print('answered')"), timeout=30)
            except asyncio.TimeoutError:
                raise AssertionError("the gateway held the reconnect (a leaked stale connection)") from None
            assert reply["status"] == "ok"
        finally:
            ws.close()
        assert "Replacing stale connection" in log.read_text()  # the case this test is about
    finally:
        await jp_fetch("api", "kernels", kernel["id"], method="DELETE")

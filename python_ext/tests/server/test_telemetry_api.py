"""History, stream, processes, shutdown and metrics of the kerasgpu server extension,
against a real Jupyter server with real kernels and the nvidia-smi replay."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from streamutil import next_message
from tornado.httpclient import HTTPClientError


async def test_stream_says_hello_then_pushes_every_reading(fake_smi, stream):
    fake_smi.set(state="load")
    ws = await stream()
    hello = json.loads(await ws.read_message())
    assert hello["type"] == "hello"
    assert hello["interval_ms"] == 200
    # What a client knows after a few messages: status and devices from hello/status, then readings.
    status, devices, readings = hello["status"], hello["devices"], []
    while len(readings) < 2:
        message = json.loads(await asyncio.wait_for(ws.read_message(), 15))
        if message["type"] == "status":
            status, devices = message["status"], message["devices"]
        elif message["type"] == "samples":
            readings.append(message["samples"])
    assert status["state"] == "ok"
    assert devices[0]["name"] == "NVIDIA H200"
    [sample] = readings[-1]
    assert sample["utilization_gpu"] == 100
    assert 25 * 1024 < sample["memory_used_mib"] < 26 * 1024
    assert readings[1][0]["timestamp"] >= readings[0][0]["timestamp"]


async def test_every_client_is_served_by_one_sampler(fake_smi, stream, jp_serverapp):
    clients = [await stream() for _ in range(3)]
    for ws in clients:
        await next_message(ws, "samples")
    state = jp_serverapp.web_app.settings.get("kerasgpu_state")
    assert state is not None
    # One subscription to the sampler for all clients, and it goes away with the last one.
    assert state.sampler.subscriber_count == 1
    assert len(state.broadcaster.clients) == 3
    for ws in clients:
        ws.close()
    for _ in range(100):
        if not state.sampler.running:
            break
        await asyncio.sleep(0.05)
    assert not state.sampler.running


async def test_history_gives_the_readings_the_charts_start_from(fake_smi, stream, api):
    fake_smi.set(state="load")
    ws = await stream()
    for _ in range(3):
        await next_message(ws, "samples")
    data = await api("history", params={"seconds": "60"})
    assert data["status"]["state"] == "ok"
    assert len(data["samples"]) >= 3
    stamps = [s["timestamp"] for s in data["samples"]]
    assert stamps == sorted(stamps)
    assert {s["utilization_gpu"] for s in data["samples"]} == {100}


@pytest.mark.parametrize("seconds", ["abc", "-1", "1e9", "nan"])
async def test_history_refuses_absurd_windows_with_a_clear_error(fake_smi, jp_fetch, seconds):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kerasgpu", "api", "v1", "history", params={"seconds": seconds})
    assert err.value.code == 400
    assert "seconds must be a number from 0 to 600" in json.loads(err.value.response.body)["message"]


async def test_gpu_lost_mid_run_is_reported_and_recovers(fake_smi, stream):
    fake_smi.set(state="load")
    ws = await stream()
    await next_message(ws, "samples")
    fake_smi.set(fail="gpu_lost")
    lost = await next_message(ws, "status", where=lambda m: m["status"]["state"] != "ok")
    assert lost["status"]["code"] == "gpu_lost"
    assert "lost" in lost["status"]["reason"].lower()
    fake_smi.set(fail="")
    back = await next_message(ws, "status", where=lambda m: m["status"]["state"] == "ok", timeout=20)
    assert back["devices"][0]["name"] == "NVIDIA H200"
    await next_message(ws, "samples")


async def test_a_hung_nvidia_smi_becomes_a_timeout_status(fake_smi, api):
    fake_smi.set(fail="hang")
    data = await api("devices")
    assert data["status"]["code"] == "timeout"
    assert data["status"]["reason"]


async def test_stream_refuses_no_token_and_foreign_origins(fake_smi, stream):
    with pytest.raises(HTTPClientError) as err:
        await stream(headers={"Authorization": ""})
    assert err.value.code == 403
    with pytest.raises(HTTPClientError) as err:
        await stream(headers={"Origin": "http://evil.example.com"})
    assert err.value.code == 403


async def start_kernel(jp_fetch, path: str | None = None) -> str:
    if path is None:
        r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
        return json.loads(r.body)["id"]
    body = {"path": path, "name": path.rsplit("/", 1)[-1], "type": "notebook", "kernel": {"name": "python3"}}
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return json.loads(r.body)["kernel"]["id"]


async def test_processes_are_matched_to_notebooks_and_can_be_shut_down(fake_smi, jp_fetch, jp_serverapp, api):
    from kerasgpu.server.processes import kernel_pid

    kernel_id = await start_kernel(jp_fetch, "experiments/train.ipynb")
    pid = kernel_pid(jp_serverapp.kernel_manager, kernel_id)
    assert pid
    fake_smi.set(
        state="load",
        procs=[
            {"pid": pid, "used_mib": 25000, "name": "python3"},
            {"pid": 4242, "used_mib": 1000, "name": "/usr/bin/other-users-job"},
            # A host pid from another container that is, here, this test's own process.
            {"pid": os.getpid(), "used_mib": 500, "name": "/opt/conda/bin/java"},
        ],
    )
    data = await api("processes")
    rows = {p["pid"]: p for p in data["processes"]}
    ours, theirs = rows[pid], rows[4242]
    assert ours["kernel"]["id"] == kernel_id
    assert ours["kernel"]["name"] == "python3"
    assert ours["sessions"][0]["path"] == "experiments/train.ipynb"
    assert ours["used_memory_mib"] == 25000
    assert ours["gpu_index"] == 0
    assert ours["can_shutdown"] is True
    assert theirs["kernel"] is None and theirs["can_shutdown"] is False
    # As nvitop shows: who runs it, since when, with what command (the real kernel process here).
    import getpass
    import time

    assert ours["user"] == getpass.getuser()
    assert 0 < time.time() - ours["started"] < 600
    assert "ipykernel" in ours["cmdline"] and ours["cmdline"].startswith(sys.executable.rsplit("/", 1)[0])
    # A pid this host can't see (another container's) has no details, and no error.
    import psutil

    if not psutil.pid_exists(4242):
        assert theirs["user"] is None and theirs["cmdline"] is None
    # A pid that runs another program here than the one the driver named: the details would be
    # of the wrong process, so there are none.
    alien = rows[os.getpid()]
    assert alien["user"] is None and alien["cmdline"] is None and alien["started"] is None

    # Another user's process can't be touched...
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kerasgpu", "api", "v1", "processes", "4242", "shutdown", method="POST", body="")
    assert err.value.code == 404
    assert "not a kernel of this Jupyter server" in json.loads(err.value.response.body)["message"]
    # ...ours is shut down through the kernel manager.
    done = await api("processes", str(pid), "shutdown", method="POST", body="")
    assert done == {"pid": pid, "kernel_id": kernel_id, "shutdown": True}
    kernels = json.loads((await jp_fetch("api", "kernels")).body)
    assert kernel_id not in [k["id"] for k in kernels]


async def test_a_host_pid_that_is_a_kernel_here_but_another_program_there_is_not_ours(
    fake_smi, jp_fetch, jp_serverapp, api
):
    """In a container the driver reports host pids: one can collide with a local kernel's pid.
    Named as another program by the driver, it gets no kernel, no notebook and no Shut down."""
    from kerasgpu.server.processes import kernel_pid

    kernel_id = await start_kernel(jp_fetch, "collide.ipynb")
    pid = kernel_pid(jp_serverapp.kernel_manager, kernel_id)
    fake_smi.set(state="load", procs=[{"pid": pid, "used_mib": 30000, "name": "/usr/lib/jvm/bin/java"}])
    [row] = (await api("processes"))["processes"]
    assert row["pid"] == pid
    assert row["kernel"] is None and row["sessions"] == [] and row["can_shutdown"] is False
    assert row["cmdline"] is None


async def test_a_child_of_a_kernel_counts_as_the_kernel(fake_smi, jp_fetch, jp_serverapp, api):
    kernel_id = await start_kernel(jp_fetch)
    # The kernel starts a subprocess (as a DataLoader worker would) that takes GPU memory.
    client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    out = []
    try:
        await client.wait_for_ready(timeout=60)
        await client.execute_interactive(
            "import subprocess; worker = subprocess.Popen(['sleep', '60']); print(worker.pid)",
            output_hook=lambda msg: out.append(msg["content"].get("text", "")),
            timeout=60,
        )
        child = int("".join(out).strip())
        fake_smi.set(procs=[{"pid": child, "used_mib": 512, "name": "sleep"}])
        data = await api("processes")
        [row] = data["processes"]
        assert row["pid"] == child
        assert row["kernel"]["id"] == kernel_id
        assert row["can_shutdown"] is True
    finally:
        client.stop_channels()


async def test_metrics_are_prometheus_gauges_per_gpu(fake_smi, jp_fetch):
    fake_smi.set(state="load", gpus=2)
    text = (await jp_fetch("kerasgpu", "metrics")).body.decode()
    assert "kerasgpu_up 1.0" in text
    assert "# TYPE kerasgpu_memory_used_bytes gauge" in text
    for index in (0, 1):
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith("kerasgpu_utilization_gpu_percent{") and f'gpu="{index}"' in ln
        )
        assert 'name="NVIDIA H200"' in line and 'uuid="GPU-' in line
        assert line.endswith(" 100.0")
    # nvidia-smi cannot measure PCIe / NVLink traffic: the gauges are declared, with no sample
    # (absent, never a made-up 0).
    assert "# TYPE kerasgpu_pcie_rx_bytes_per_second gauge" in text
    assert not any(ln.startswith(("kerasgpu_pcie_", "kerasgpu_nvlink_")) for ln in text.splitlines())


async def test_metrics_without_a_gpu_say_down_and_list_no_gauges(no_smi, jp_fetch):
    text = (await jp_fetch("kerasgpu", "metrics")).body.decode()
    assert "kerasgpu_up 0.0" in text
    assert "kerasgpu_memory_used_bytes{" not in text


async def test_a_client_that_stops_reading_is_dropped_not_buffered(
    fake_smi, jp_fetch, jp_serverapp, jp_http_port, jp_base_url
):
    """A websocket client that stops reading (asyncio pauses the socket): the server lets go of it."""
    import base64
    import os
    import time

    fake_smi.set(state="load", gpus=128)  # big readings fill the socket buffers quickly
    state = jp_serverapp.web_app.settings["kerasgpu_state"]
    token = jp_serverapp.identity_provider.token
    reader, writer = await asyncio.open_connection("localhost", jp_http_port, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {jp_base_url}kerasgpu/api/v1/stream HTTP/1.1\r\nHost: localhost:{jp_http_port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: token {token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    try:
        assert b"101" in await asyncio.wait_for(reader.readline(), 30)
        deadline = time.monotonic() + 90
        while not state.broadcaster.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(state.broadcaster.clients) == 1, "the client never subscribed"
        # From here on it reads nothing: its buffers fill, and the server must let go of it.
        while state.broadcaster.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not state.broadcaster.clients, "a client that reads nothing was kept (and buffered)"
    finally:
        writer.close()


def test_a_process_is_recognised_by_its_program_whatever_the_driver_spells():
    """Details are kept for the same program (a version suffix, a path, a whole command line as
    programs that rewrite their argv give it) and dropped for another one."""
    import psutil
    from kerasgpu.server.processes import same_program

    me = psutil.Process()  # this test's Python
    exe = me.exe()
    assert same_program(exe, me)
    assert same_program("python3", me)
    assert same_program(f"{exe} -m pytest --some=/path/with/slashes", me)
    assert same_program(None, me)  # the driver did not say: not a reason to hide anything
    assert not same_program("/usr/lib/jvm/bin/java", me)
    assert not same_program("/opt/google/chrome/chrome --type=gpu-process --user-data-dir=/home/x", me)

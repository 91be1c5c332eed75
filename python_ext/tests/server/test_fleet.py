"""The GPU fleet from a real Prometheus (Debian's `prometheus`, on 127.0.0.1), end to end.

Prometheus scrapes two real `jupyter server` processes with kerasgpu (one replays the H200
idle, the other the H200 under load), a static exposition with NVIDIA DCGM exporter's
documented names (a DGX with two A100s, one held by a Kubernetes pod) and one with the
nvidia-smi exporter's names (a desktop RTX). A third Jupyter server (in-process) configured
with `c.KerasGPU.prometheus_url` shows them all through GET kerasgpu/api/v1/fleet, best place
for a job first; a stopped, a silent or no Prometheus is a status with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from promutil import free_port, require_prometheus, run_prometheus, stop
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

TOKEN = "kerasgpu-fleet-test"
MIB = 1024 * 1024

DCGM_LABELS = (
    'UUID="GPU-5a1c0e2b-7f3d-4e11-9a2b-0c6d8e1f2a3{gpu}",pci_bus_id="00000000:07:00.0",device="nvidia{gpu}",'
    'modelName="NVIDIA A100-SXM4-80GB",Hostname="dgx-a100-07",DCGM_FI_DRIVER_VERSION="535.104.05"'
)
# (gpu, util %, FB used MiB, FB free MiB, FB reserved MiB, k8s labels)
DCGM_GPUS = (
    (0, 0, 0, 81050, 870, ""),
    (1, 87, 60000, 21050, 870, ',container="train",namespace="team-a",pod="bert-finetune-0"'),
)
RTX_UUID = "df6e7a7c-7314-46f8-abc4-b88b36dcf3aa"  # the nvidia-smi exporter's uuid, without GPU-


def dcgm_text() -> str:
    """DCGM exporter's text: names, units (MiB, %) and labels as its docs show them."""
    lines = []
    for name, help_text, column in (
        ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", 1),
        ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", 2),
        ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", 3),
        ("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", 4),
        ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", None),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for gpu in DCGM_GPUS:
            labels = f'gpu="{gpu[0]}",' + DCGM_LABELS.format(gpu=gpu[0]) + gpu[5]
            lines.append(f"{name}{{{labels}}} {gpu[column] if column else 1410}")
    return "\n".join(lines) + "\n"


def nvidia_smi_exporter_text() -> str:
    """utkuozdemir/nvidia_gpu_exporter's text: ratios, bytes, a uuid label, name on gpu_info."""
    u = f'uuid="{RTX_UUID}"'
    return (
        "# TYPE nvidia_smi_gpu_info gauge\n"
        f'nvidia_smi_gpu_info{{driver_version="550.54.14",name="NVIDIA GeForce RTX 2080 SUPER",'
        f'{u},index="0"}} 1\n'
        "# TYPE nvidia_smi_utilization_gpu_ratio gauge\n"
        f"nvidia_smi_utilization_gpu_ratio{{{u}}} 0.05\n"
        "# TYPE nvidia_smi_memory_used_bytes gauge\n"
        f"nvidia_smi_memory_used_bytes{{{u}}} 7.06740224e+08\n"
        "# TYPE nvidia_smi_memory_total_bytes gauge\n"
        f"nvidia_smi_memory_total_bytes{{{u}}} 8.589934592e+09\n"
        "# TYPE nvidia_smi_memory_free_bytes gauge\n"
        f"nvidia_smi_memory_free_bytes{{{u}}} 7.883194368e+09\n"
    )


@contextlib.contextmanager
def exposition_server(pages: dict[str, str]):
    """A loopback HTTP server answering each path of `pages` with that Prometheus text."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def jupyter_servers(tmp_path: Path, fake_smi, states: list[str]):
    """One `jupyter server` process with kerasgpu per state, each replaying that capture of the fake."""
    started: list[tuple[subprocess.Popen, object, tuple]] = []
    try:
        for state in states:
            home = tmp_path / f"server-{state}"
            (home / "config").mkdir(parents=True)
            (home / "root").mkdir()
            state_file = home / "fake-nvidia-smi-state.json"
            state_file.write_text(json.dumps({"state": state, "gpus": 1}))
            config = {
                "ServerApp": {"jpserver_extensions": {"kerasgpu": True}},
                "KerasGPU": {"interval_ms": 500},
            }
            (home / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
            env = fake_smi.env
            env.update(
                FAKE_NVIDIA_SMI_STATE_FILE=str(state_file),
                FAKE_NVIDIA_SMI_STATE=state,
                JUPYTER_CONFIG_DIR=str(home / "config"),
                JUPYTER_DATA_DIR=str(home / "data"),
                JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                JUPYTER_PLATFORM_DIRS="1",
            )
            port = free_port()
            argv = [
                sys.executable,
                "-m",
                "jupyter_server",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}",
                "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={home / 'root'}",
            ]
            if os.geteuid() == 0:
                argv.append("--allow-root")
            log_path = home / "server.log"
            log = log_path.open("wb")
            proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
            started.append((proc, log, (f"127.0.0.1:{port}", proc, log_path)))
        yield [item for _, _, item in started]
    finally:
        for proc, log, _ in started:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


async def devices_of(host: str, proc, log: Path, timeout: float = 120.0) -> dict:
    """The server's own GET devices once it reads its (fake) GPU."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
        try:
            response = await AsyncHTTPClient().fetch(
                f"http://{host}/kerasgpu/api/v1/devices",
                headers={"Authorization": f"token {TOKEN}"},
                request_timeout=10,
            )
            data = json.loads(response.body)
            if data["status"]["state"] == "ok" and data["devices"] and data["samples"]:
                return data
        except (HTTPClientError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{host} never read its GPUs: {log.read_text()[-3000:]}")
        await asyncio.sleep(0.3)


@pytest.fixture
def prom_port():
    return free_port()


@pytest.fixture
def fleet_overrides():
    """Changes to the in-process server's fleet settings (tests parametrize it; None removes one)."""
    return {}


@pytest.fixture
def fleet_settings(prom_port, fleet_overrides):
    settings = {"prometheus_url": f"http://127.0.0.1:{prom_port}", "fleet_interval": 1.0, **fleet_overrides}
    return {key: value for key, value in settings.items() if value is not None}


@pytest.fixture
def jp_server_config(fleet_settings):
    return {"ServerApp": {"jpserver_extensions": {"kerasgpu": True}}, "KerasGPU": fleet_settings}


async def fleet_until(api, predicate, what: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = await api("fleet")
        if predicate(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"the fleet never showed {what}; last answer: {json.dumps(data)[:3000]}")
        await asyncio.sleep(0.5)


def by_host(data: dict) -> dict[str, dict]:
    return {h["host"]: h for h in data["hosts"]}


async def test_the_fleet_shows_every_host_prometheus_scrapes(fake_smi, tmp_path, prom_port, api):
    require_prometheus()
    with (
        jupyter_servers(tmp_path, fake_smi, ["idle", "load"]) as servers,
        exposition_server({"/metrics": dcgm_text(), "/rtx/metrics": nvidia_smi_exporter_text()}) as static,
    ):
        own = {}
        for (host, proc, log), state in zip(servers, ["idle", "load"], strict=True):
            own[state] = (host, await devices_of(host, proc, log))
        idle_host, load_host = own["idle"][0], own["load"][0]
        scrape_configs = [
            {
                "job_name": "kerasgpu",
                "metrics_path": "/kerasgpu/metrics",
                "authorization": {"type": "token", "credentials": TOKEN},
                # The idle server is named by a label in the scrape config, the other by its address.
                "static_configs": [
                    {"targets": [idle_host], "labels": {"host": "h200-idle"}},
                    {"targets": [load_host]},
                ],
            },
            {"job_name": "dcgm", "static_configs": [{"targets": [static]}]},
            {
                "job_name": "nvidia_smi",
                "metrics_path": "/rtx/metrics",
                "static_configs": [{"targets": [static], "labels": {"host": "rtx-desktop"}}],
            },
        ]
        with run_prometheus(tmp_path, scrape_configs, port=prom_port) as (url, proc, log):
            data = await fleet_until(
                api,
                lambda d: (
                    d["status"] == "ok"
                    and len(d["hosts"]) == 4
                    and all(g["mem_free_mib"] is not None for h in d["hosts"] for g in h["gpus"])
                ),
                "four hosts with their memory",
            )
            assert data["prometheus"] == url
            hosts = by_host(data)
            assert set(hosts) == {"h200-idle", load_host, "dgx-a100-07", "rtx-desktop"}

            # Each kerasgpu host shows what that server's own panel reads from its GPU.
            for name, state in (("h200-idle", "idle"), (load_host, "load")):
                reading = own[state][1]["samples"][0]
                device = own[state][1]["devices"][0]
                [gpu] = hosts[name]["gpus"]
                assert hosts[name]["source"] == "kerasgpu"
                assert gpu["name"] == "NVIDIA H200" and gpu["uuid"] == device["uuid"] and gpu["index"] == 0
                assert gpu["util"] == reading["utilization_gpu"]
                assert gpu["mem_used_mib"] == reading["memory_used_mib"]
                assert gpu["mem_total_mib"] == reading["memory_total_mib"]
                assert gpu["mem_free_mib"] == reading["memory_total_mib"] - reading["memory_used_mib"]
                assert "holders" not in gpu
            busy = hosts[load_host]["gpus"][0]
            assert (busy["util"], busy["mem_used_mib"], busy["free"]) == (100, 25715, False)
            assert hosts["h200-idle"]["gpus"][0]["free"] is True

            dgx = hosts["dgx-a100-07"]
            assert dgx["source"] == "dcgm" and dgx["free_gpus"] == 1
            assert [g["index"] for g in dgx["gpus"]] == [0, 1]  # the free one first
            assert [
                (g["util"], g["mem_used_mib"], g["mem_free_mib"], g["mem_total_mib"]) for g in dgx["gpus"]
            ] == [
                (0, 0, 81050, 81920),
                (87, 60000, 21050, 81920),
            ]
            assert dgx["gpus"][1]["holders"] == ["team-a/bert-finetune-0 (train)"]
            assert {g["name"] for g in dgx["gpus"]} == {"NVIDIA A100-SXM4-80GB"}

            [rtx] = hosts["rtx-desktop"]["gpus"]
            assert hosts["rtx-desktop"]["source"] == "nvidia_smi"
            assert (rtx["name"], rtx["uuid"], rtx["index"]) == (
                "NVIDIA GeForce RTX 2080 SUPER",
                f"GPU-{RTX_UUID}",
                0,
            )
            assert (rtx["util"], rtx["mem_used_mib"], rtx["mem_total_mib"], rtx["mem_free_mib"]) == (
                5,
                674,
                8192,
                7518,
            )

            # Where a job fits now: free GPUs by free memory, the busy host last.
            assert [h["host"] for h in data["hosts"]] == [
                "h200-idle",
                "dgx-a100-07",
                "rtx-desktop",
                load_host,
            ]

            # Prometheus goes away: a status with the reason, not an error page.
            stop(proc)
            down = await fleet_until(api, lambda d: d["status"] != "ok", "Prometheus stopped")
            assert down["status"] == "unreachable" and down["hosts"] == []
            assert f"Prometheus at {url} cannot be reached" in down["reason"]


class SilentServer:
    """Accepts connections on 127.0.0.1:port and never answers (a hung Prometheus); counts them."""

    def __init__(self, port: int):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()


@pytest.mark.parametrize(
    "fleet_overrides",
    [{"fleet_interval": 600.0, "prometheus_timeout": 1.0}],
    ids=["interval-600s-timeout-1s"],
)
async def test_a_silent_prometheus_is_asked_once_and_reported(prom_port, api):
    silent = SilentServer(prom_port)
    try:
        answers = await asyncio.gather(*(api("fleet") for _ in range(10)))
        for data in answers:
            assert data["status"] == "unreachable"
            assert data["reason"] == f"Prometheus at http://127.0.0.1:{prom_port} did not answer within 1 s"
        # Ten clients, one question to Prometheus; the answer is kept for the interval.
        assert (await api("fleet"))["status"] == "unreachable"
        assert len(silent.accepted) == 1
    finally:
        silent.close()


@pytest.mark.parametrize("fleet_overrides", [{"prometheus_url": None}], ids=["no-url"])
async def test_without_prometheus_the_fleet_says_how_to_set_it_up(api):
    data = await api("fleet")
    assert data["status"] == "off" and data["hosts"] == []
    assert "c.KerasGPU.prometheus_url" in data["reason"]


async def test_the_fleet_needs_the_token(jp_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kerasgpu", "api", "v1", "fleet", headers={"Authorization": ""})
    assert err.value.code == 403

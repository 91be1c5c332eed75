"""/kerasgpu/metrics scraped by a real Prometheus (Debian's `prometheus`, which `make test` installs),
started here on loopback, scraping a real Jupyter server under a JupyterHub-style base_url with the
H200 replay on PATH; the scraped values are read back through Prometheus's HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

PROMETHEUS = shutil.which("prometheus")
MIB = 1024 * 1024


@pytest.fixture
def jp_base_url():
    return "/user/alice/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prometheus(tmp_path, jp_serverapp, jp_fetch, jp_http_port, jp_base_url):
    """A Prometheus on 127.0.0.1 that scrapes the server's /kerasgpu/metrics every second with its token.

    (`jp_fetch` starts the server's listening socket: without it nothing answers on the port.)"""
    if PROMETHEUS is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed: `make test` installs Debian's prometheus package")
        pytest.skip("prometheus is not installed (`make test` installs Debian's prometheus package)")
    port = free_port()
    token = jp_serverapp.identity_provider.token
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "kerasgpu",
                "metrics_path": f"{jp_base_url}kerasgpu/metrics",
                "authorization": {"type": "token", "credentials": token},
                "static_configs": [{"targets": [f"127.0.0.1:{jp_http_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc, tmp_path / "prometheus.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def prom_api(url: str, path: str, **params) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    response = await AsyncHTTPClient().fetch(f"{url}/api/v1/{path}{query}", request_timeout=10)
    data = json.loads(response.body)
    assert data["status"] == "success", data
    return data["data"]


async def scraped(url: str, proc, log, query: str, count: int, timeout: float = 90.0) -> list[dict]:
    """The result of `query` once it has `count` series (waits for Prometheus to start and scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        try:
            result = (await prom_api(url, "query", query=query))["result"]
            if len(result) >= count:
                return result
        except (HTTPClientError, ConnectionError, OSError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            targets = await prom_api(url, "targets")
            raise AssertionError(f"no scraped {query!r} within {timeout} s; targets: {targets}")
        await asyncio.sleep(0.5)


async def test_metrics_are_prometheus_text(fake_smi, jp_fetch):
    response = await jp_fetch("kerasgpu", "metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE kerasgpu_up gauge" in response.body.decode()


async def test_metrics_need_the_token(fake_smi, jp_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kerasgpu", "metrics", headers={"Authorization": ""})
    assert err.value.code == 403


async def test_a_real_prometheus_scrapes_every_gpu(fake_smi, prometheus):
    fake_smi.set(state="load", gpus=2)
    url, proc, log = prometheus
    util = await scraped(url, proc, log, 'kerasgpu_utilization_gpu_percent{job="kerasgpu"}', 2)
    assert sorted(r["metric"]["gpu"] for r in util) == ["0", "1"]
    assert {r["metric"]["name"] for r in util} == {"NVIDIA H200"}
    assert all(r["metric"]["uuid"].startswith("GPU-") for r in util)
    assert {float(r["value"][1]) for r in util} == {100.0}

    [up] = await scraped(url, proc, log, "kerasgpu_up", 1)
    assert float(up["value"][1]) == 1.0
    memory = await scraped(url, proc, log, "kerasgpu_memory_used_bytes", 2)
    assert {float(r["value"][1]) for r in memory} == {25715 * MIB}
    [target] = (await prom_api(url, "targets"))["activeTargets"]
    assert target["health"] == "up" and target["lastError"] == ""
    assert target["scrapeUrl"].endswith("/user/alice/kerasgpu/metrics")


async def test_prometheus_sees_the_gpus_go_down_and_come_back(fake_smi, prometheus):
    url, proc, log = prometheus
    fake_smi.set(state="load")
    await scraped(url, proc, log, "kerasgpu_up == 1", 1)
    fake_smi.set(fail="no_driver")
    await scraped(url, proc, log, "kerasgpu_up == 0", 1)
    fake_smi.set(fail="")
    await scraped(url, proc, log, "kerasgpu_up == 1", 1)
    # Never a scrape error: a GPU failure is a value, not a broken target.
    [target] = (await prom_api(url, "targets"))["activeTargets"]
    assert target["health"] == "up"

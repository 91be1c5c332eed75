"""/kerasgpu/metrics scraped by a real Prometheus (Debian's `prometheus`, which `make test` installs),
started here on loopback, scraping a real Jupyter server under a JupyterHub-style base_url with the
H200 replay on PATH; the scraped values are read back through Prometheus's HTTP API."""

from __future__ import annotations

import pytest
from promutil import prom_api, run_prometheus, scraped
from tornado.httpclient import HTTPClientError

MIB = 1024 * 1024


@pytest.fixture
def jp_base_url():
    return "/user/alice/"


@pytest.fixture
def prometheus(tmp_path, jp_serverapp, jp_fetch, jp_http_port, jp_base_url):
    """A Prometheus on 127.0.0.1 that scrapes the server's /kerasgpu/metrics every second with its token.

    (`jp_fetch` starts the server's listening socket: without it nothing answers on the port.)"""
    token = jp_serverapp.identity_provider.token
    scrape = {
        "job_name": "kerasgpu",
        "metrics_path": f"{jp_base_url}kerasgpu/metrics",
        "authorization": {"type": "token", "credentials": token},
        "static_configs": [{"targets": [f"127.0.0.1:{jp_http_port}"]}],
    }
    with run_prometheus(tmp_path, [scrape]) as running:
        yield running


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

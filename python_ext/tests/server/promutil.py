"""A real Prometheus (Debian's `prometheus`) on 127.0.0.1 for tests, and reads of its HTTP API.

`run_prometheus(tmp_path, scrape_configs)` starts one with those scrape configs (1 s scrapes),
yields (url, proc, log path) and stops it; `scraped` waits for a query to have N series.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_prometheus() -> str:
    """The prometheus executable; fails under CI and skips elsewhere when it is missing."""
    if PROMETHEUS is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed: `make test` installs Debian's prometheus package")
        pytest.skip("prometheus is not installed (`make test` installs Debian's prometheus package)")
    return PROMETHEUS


@contextlib.contextmanager
def run_prometheus(
    tmp_path: Path, scrape_configs: list[dict], port: int | None = None, name: str = "prometheus"
):
    """Prometheus on 127.0.0.1:`port` (a free one by default) scraping every second; stopped on exit."""
    exe = require_prometheus()
    port = port or free_port()
    work = tmp_path / name
    work.mkdir(exist_ok=True)
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": scrape_configs}
    (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    log_path = work / "prometheus.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={work / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc, log_path
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """Ends a Prometheus started here (idempotent)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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

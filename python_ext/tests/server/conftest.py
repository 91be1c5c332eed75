"""A real Jupyter server (in-process, on a real port) with the kerasgpu extension loaded."""

from __future__ import annotations

import json

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403  (fixtures jp_* depend on)
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_serverapp, jp_fetch, jp_ws_fetch, ...)


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"kerasgpu": True}},
        "KerasGPU": {"interval_ms": 200, "smi_timeout": 3.0},
    }


@pytest.fixture
def api(jp_fetch):
    """GET (or other method on) /kerasgpu/api/v1/<path> with the token; returns the parsed JSON."""

    async def call(*path, method="GET", **kwargs):
        response = await jp_fetch("kerasgpu", "api", "v1", *path, method=method, **kwargs)
        return json.loads(response.body)

    return call


@pytest.fixture
def stream(jp_ws_fetch):
    """Opens /kerasgpu/api/v1/stream; `next_message(ws, type)` reads until a message of that type."""
    opened = []

    async def connect(**kwargs):
        ws = await jp_ws_fetch("kerasgpu", "api", "v1", "stream", **kwargs)
        opened.append(ws)
        return ws

    yield connect
    for ws in opened:
        ws.close()

"""A real Jupyter server (in-process, on a real port) with the kerasgpu extension loaded."""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403  (fixtures jp_* depend on)
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_serverapp, jp_fetch, jp_ws_fetch, ...)


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"kerasgpu": True}},
        "KerasGPU": {"interval_ms": 200},
    }

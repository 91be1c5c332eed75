"""The CUDA-build tier: real `tensorflow` and `tensorflow[and-cuda]` 2.21 environments (make test-cuda).

Its tests are marked `cuda_build` and run only when selected (`pytest -m cuda_build`, as
`make test-cuda` does) and when scripts/cuda_venvs.sh has built the environments; the
default `pytest` run skips them, so `make test` runs them once, in their own target.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403  (fixtures jp_* depend on)
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_serverapp, jp_fetch, ...)

REPO = Path(__file__).resolve().parents[3]
VENVS = Path(os.environ.get("KERASGPU_CUDA_VENVS") or REPO / ".venv-cuda")
MARK = "cuda_build"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARK}: needs the real CUDA builds of TensorFlow in .venv-cuda/ (make test-cuda)"
    )


def venvs_reason() -> str | None:
    """None when both environments of the tier are there, else what is missing."""
    for name in ("tf", "and-cuda"):
        if not (VENVS / name / "bin" / "python").exists():
            return f"{VENVS / name} is missing: make test-cuda builds it"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips the tier unless `-m` selects it and its environments exist."""
    tier = [item for item in items if item.get_closest_marker(MARK)]
    if not tier:
        return
    if MARK not in (config.getoption("markexpr") or ""):
        reason = f"the CUDA-build tier runs with `make test-cuda` (pytest -m {MARK})"
    else:
        reason = venvs_reason()
    if reason:
        for item in tier:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"kerasgpu": True}},
        "KerasGPU": {"interval_ms": 200, "smi_timeout": 3.0},
    }


@pytest.fixture
def api(jp_fetch):
    """GET /kerasgpu/api/v1/<path> with the token; returns the parsed JSON."""

    async def call(*path, **kwargs):
        response = await jp_fetch("kerasgpu", "api", "v1", *path, **kwargs)
        return json.loads(response.body)

    return call

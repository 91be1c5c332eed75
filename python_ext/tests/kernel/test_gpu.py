"""On a real NVIDIA GPU (skipped elsewhere): the driver section and Keras 3 jax / torch backend checks."""

from __future__ import annotations

import importlib.util

import pytest
from kerasgpu import check

pytestmark = pytest.mark.gpu


def test_check_sees_the_real_gpus_through_telemetry():
    report = check(json=True)
    assert report["driver"]["status"]["state"] == "ok"
    assert report["driver"]["devices"] and report["driver"]["devices"][0]["name"].startswith("NVIDIA")
    assert report["runtime_initialized"] is False


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs PyTorch")
def test_torch_backend_check_counts_gpus_and_names_them_only_when_deep():
    from kerasgpu.kernel.checks import _torch_facts

    light = _torch_facts(deep=False)
    assert light["gpu_count"] >= 1 and light["devices"] is None
    deep = _torch_facts(deep=True)
    assert deep["devices"] and deep["devices"][0].startswith("NVIDIA")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
def test_jax_backend_check_lists_devices_only_when_deep():
    from kerasgpu.kernel.checks import _jax_facts

    light = _jax_facts(deep=False)
    assert light["devices"] is None and light["initialized"] is False
    deep = _jax_facts(deep=True)
    assert deep["gpu_count"] >= 1, deep

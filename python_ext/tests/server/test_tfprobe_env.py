"""The TensorFlow probe reports the kernel's own environment, not what it set for its child
(TF_FORCE_GPU_ALLOW_GROWTH=true, so that listing devices does not take every GPU's memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kerasgpu.server import tfprobe


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory) -> str:
    """A real Python without TensorFlow: the probe answers fast."""
    root = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return str(root / "bin" / "python")


@pytest.mark.parametrize(("kernel_value", "reported"), [(None, None), ("false", "false"), ("true", "true")])
def test_the_probe_reports_the_kernels_own_allow_growth(plain_python, monkeypatch, kernel_value, reported):
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    spec_env = {"PYTHONPATH": ""}
    if kernel_value is not None:
        spec_env["TF_FORCE_GPU_ALLOW_GROWTH"] = kernel_value
    result = tfprobe.run_probe(plain_python, spec_env, timeout=60)
    assert result.status == tfprobe.NOT_INSTALLED, result
    assert result.facts["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == reported


def test_the_servers_own_setting_is_what_a_kernel_inherits(plain_python, monkeypatch):
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")
    result = tfprobe.run_probe(plain_python, {"PYTHONPATH": ""}, timeout=60)
    assert result.facts["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"

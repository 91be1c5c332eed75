"""`kerasgpu status` as a user runs it: a real subprocess against the fake nvidia-smi."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kerasgpu
import pytest

SOURCE = str(Path(kerasgpu.__file__).resolve().parents[1])


def kerasgpu_status(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SOURCE, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "kerasgpu.cli", "status", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_idle(fake_smi):
    got = kerasgpu_status()
    assert got.returncode == 0, got.stderr
    out = got.stdout
    assert "1 NVIDIA GPU (backend: smi)" in out
    assert "Driver 580.159.04, CUDA 13.0" in out
    assert "GPU 0: NVIDIA H200 (GPU-2cc6da62-3a1f-977c-8ec3-06eda63b09f3" in out
    assert "0.0 GiB used of 140.4 GiB (0.0 %), 0.6 GiB reserved" in out
    assert "No process is using the GPUs." in out


def test_load(fake_smi):
    fake_smi.set(state="load")
    out = kerasgpu_status().stdout
    assert "25.1 GiB used of 140.4 GiB (17.9 %)" in out
    assert "100 % GPU, 24 % memory" in out
    assert "power 690.6 W of 700.0 W" in out
    assert "SM 1470 MHz" in out
    assert "pid 542" in out and "python3" in out


def test_json(fake_smi):
    fake_smi.set(state="load", gpus=4)
    got = kerasgpu_status("--json")
    data = json.loads(got.stdout)
    assert got.returncode == 0
    assert data["status"]["state"] == "ok"
    assert [d["name"] for d in data["devices"]] == ["NVIDIA H200"] * 4
    assert [s["memory_used_mib"] for s in data["samples"]] == [25715] * 4
    assert {p["pid"] for p in data["processes"]} == {542}


def test_geforce_without_a_power_limit(fake_smi):
    fake_smi.set(state="load", variant="geforce")
    out = kerasgpu_status().stdout
    assert "NVIDIA GeForce RTX 4090" in out and "20.0 GiB used of 24.0 GiB" in out
    assert "power 690.6 W," in out and "n/a memory" in out  # no limit printed, never "0 W"


def test_no_nvidia_smi(no_smi):
    got = kerasgpu_status()
    assert got.returncode == 1
    assert "No GPU can be used (smi_not_found" in got.stdout
    assert "Reason: nvidia-smi was not found on PATH" in got.stdout
    assert "What to do: Install the NVIDIA driver" in got.stdout
    data = json.loads(kerasgpu_status("--json").stdout)
    assert data["status"]["code"] == "smi_not_found" and data["devices"] == []


@pytest.mark.parametrize(
    "fail, words",
    [
        ("no_driver", "The NVIDIA driver is not running"),
        ("mismatch", "reload the nvidia kernel module"),
        ("no_devices", "found no GPU"),
        ("gpu_lost", "The GPUs could not be read (gpu_lost"),
    ],
)
def test_failures(fake_smi, fail, words):
    fake_smi.set(fail=fail)
    got = kerasgpu_status()
    assert got.returncode == 1 and words in got.stdout


def test_bad_command_lines(fake_smi, monkeypatch):
    got = kerasgpu_status("--backend", "cuda")
    assert got.returncode == 2 and "invalid choice" in got.stderr
    monkeypatch.setenv("KERASGPU_BACKEND", "cuda")
    got = kerasgpu_status()
    assert got.returncode == 2 and "KERASGPU_BACKEND='cuda' is not a GPU telemetry backend" in got.stderr
    monkeypatch.setenv("KERASGPU_BACKEND", "smi")
    assert kerasgpu_status("--backend", "smi").returncode == 0


def test_installed_console_script(fake_smi):
    exe = shutil.which("kerasgpu", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the package is not installed in this environment")
    fake_smi.set(state="load")
    got = subprocess.run([exe, "status"], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and "25.1 GiB used of 140.4 GiB" in got.stdout

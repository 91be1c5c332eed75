"""Root pytest fixtures: the fake `nvidia-smi` on PATH, a PATH without one, and the `gpu` marker.

Imports only the standard library and pytest, so the `gpu`-marked tests run on a
GPU machine that has nvidia-ml-py but no Jupyter.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from gpu_env import real_gpu_reason

TESTS = Path(__file__).resolve().parent
FAKE_SMI_DIR = TESTS / "fake_nvidia_smi"
FIXTURES = TESTS / "fixtures" / "nvidia"

_FAKE_VARS = (
    "FAKE_NVIDIA_SMI_STATE",
    "FAKE_NVIDIA_SMI_GPUS",
    "FAKE_NVIDIA_SMI_FAIL",
    "FAKE_NVIDIA_SMI_VARIANT",
    "FAKE_NVIDIA_SMI_PROCS",
    "FAKE_NVIDIA_SMI_STATE_FILE",
    "FAKE_NVIDIA_SMI_COUNTER_FILE",
)


def _path_without_smi(path: str) -> list[str]:
    return [d for d in path.split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]


class FakeSmi:
    """Controls the fake `nvidia-smi` (tests/fake_nvidia_smi/nvidia-smi) put first on PATH.

    Every change is written to the state file that the fake re-reads on each call
    and each streamed line, so it reaches fakes that are already running, and to
    the environment, so subprocesses started later (a Jupyter server) inherit it.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
        self._mp = monkeypatch
        self.dir = FAKE_SMI_DIR
        self.exe = FAKE_SMI_DIR / "nvidia-smi"
        self.state_file = tmp_path / "fake-nvidia-smi-state.json"
        self.counter_file = tmp_path / "fake-nvidia-smi-state.json.count"
        self._state: dict = {"state": "idle", "gpus": 1, "fail": "", "variant": "h200", "procs": None}
        # The venv's interpreter next on PATH makes `#!/usr/bin/env python3` start fast
        # (a pyenv shim costs ~0.2 s per call).
        path = [str(FAKE_SMI_DIR), str(Path(sys.executable).parent)] + _path_without_smi(os.environ["PATH"])
        monkeypatch.setenv("PATH", os.pathsep.join(path))
        monkeypatch.setenv("FAKE_NVIDIA_SMI_STATE_FILE", str(self.state_file))
        # Tests of the replay must not read a real GPU through NVML when one exists.
        monkeypatch.setenv("KERASGPU_BACKEND", "smi")
        self.set()

    def set(self, *, state=None, gpus=None, fail=None, variant=None, procs=...) -> FakeSmi:
        """Changes what the fake answers; unnamed settings keep their value.

        state: idle | load | multi | trace; gpus: how many GPUs; fail: "" (none),
        no_driver, mismatch, no_devices, gpu_lost, hang, malformed or lost_after=N;
        variant: h200 | geforce | mig | quirky; procs: None (the capture's) or a
        list of {"pid", "used_mib", "name", "gpu"} dicts.
        """
        for key, value in (("state", state), ("gpus", gpus), ("fail", fail), ("variant", variant)):
            if value is not None:
                self._state[key] = value
        if procs is not ...:
            self._state["procs"] = procs
        self.state_file.write_text(json.dumps(self._state))
        env = {
            "FAKE_NVIDIA_SMI_STATE": str(self._state["state"]),
            "FAKE_NVIDIA_SMI_GPUS": str(self._state["gpus"]),
            "FAKE_NVIDIA_SMI_FAIL": str(self._state["fail"]),
            "FAKE_NVIDIA_SMI_VARIANT": str(self._state["variant"]),
        }
        for key, value in env.items():
            self._mp.setenv(key, value)
        return self

    def reset_counter(self) -> None:
        """Restarts the call / tick count that `lost_after=N` and the `trace` state use."""
        self.counter_file.unlink(missing_ok=True)

    @property
    def calls(self) -> int:
        """How many one-shot calls and streamed ticks the fake has answered so far."""
        try:
            return int(self.counter_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    @property
    def env(self) -> dict[str, str]:
        """The whole environment a subprocess needs to use this fake."""
        return dict(os.environ)


@pytest.fixture
def fake_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeSmi:
    """The fake `nvidia-smi` first on PATH (idle, one H200); returns its controller."""
    for var in _FAKE_VARS:
        monkeypatch.delenv(var, raising=False)
    return FakeSmi(monkeypatch, tmp_path)


@pytest.fixture
def no_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without any `nvidia-smi` (as on a machine with no NVIDIA driver)."""
    path = [str(Path(sys.executable).parent)] + _path_without_smi(os.environ["PATH"])
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    monkeypatch.setenv("KERASGPU_BACKEND", "smi")
    for var in _FAKE_VARS:
        monkeypatch.delenv(var, raising=False)


_GPU_REASON: list = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips tests marked `gpu` unless NVML reaches a real NVIDIA GPU."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    if not _GPU_REASON:
        _GPU_REASON.append(real_gpu_reason())
    reason = _GPU_REASON[0]
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a real NVIDIA GPU: {reason}")
    for item in gpu_items:
        item.add_marker(skip)

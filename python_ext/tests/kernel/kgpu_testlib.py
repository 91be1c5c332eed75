"""Helpers for the kernel tests: run cells in a fresh IPython process with real TensorFlow inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON_EXT = HERE.parents[1]
RUNNER = HERE / "ipython_runner.py"
DOCTOR_FIXTURES = HERE / "fixtures" / "doctor"
# A first cell that splits the CPU into two logical devices (TensorFlow's documented way to test
# distribution without GPUs): MirroredStrategy then has two replicas.
TWO_CPUS = """\
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
"""


class Cell:
    """What one cell printed and displayed."""

    def __init__(self, raw: dict):
        self.raw = raw
        self.stdout: str = raw["stdout"]
        self.outputs: list[dict] = raw["outputs"]
        self.error: str | None = raw["error"]

    @property
    def json(self) -> dict:
        """The JSON a `--json` magic printed."""
        return json.loads(self.stdout)

    @property
    def text(self) -> str:
        return "\n".join(o.get("text/plain", "") for o in self.outputs)

    @property
    def html(self) -> str:
        return "\n".join(o.get("text/html", "") for o in self.outputs)


def clean_env(extra: dict | None = None) -> dict:
    """This process's environment with python_ext importable and TensorFlow's C++ chatter down."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_EXT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")  # a real GPU on the test machine must not change CPU results
    env.pop("TF_CONFIG", None)
    env.update(extra or {})
    return env


def run_cells(cells: list[str], env: dict | None = None, timeout: float = 120) -> list[Cell]:
    """Runs `cells` in a fresh Python with a real InteractiveShell and `%load_ext kerasgpu`."""
    proc = subprocess.run(
        [sys.executable, str(RUNNER)],
        input=json.dumps(cells),
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=timeout,
        check=False,
    )
    mark = "@@KERASGPU-RESULTS@@"
    if proc.returncode != 0 or mark not in proc.stdout:
        raise AssertionError(
            f"runner failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return [Cell(c) for c in json.loads(proc.stdout.rsplit(mark, 1)[1])]

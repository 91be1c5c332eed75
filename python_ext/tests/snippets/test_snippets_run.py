"""Every snippet runs without error in a real IPython kernel with real TensorFlow (the CPU build).

Snippets placed at the top must run before TensorFlow starts, so each gets a
fresh kernel as its first cell; the rest share one kernel in the order a user
would run them. The kernels run concurrently (one nbclient each).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

import nbformat
import pytest
from kerasgpu.core import snippets
from kerasgpu.core.planner.wrap import wrap_source
from nbclient import NotebookClient

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

MODEL_CELL = """\
import keras

LEARNING_RATE = 1e-3
model = keras.Sequential(
    [keras.Input((32,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)]
)
model.compile(
    optimizer=keras.optimizers.Adam(LEARNING_RATE),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
"""


def _code(snippet_id: str) -> str:
    return snippets.get(snippet_id)["code"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def notebooks() -> dict[str, list[str]]:
    """Name -> cell sources of each notebook the test runs (each in its own kernel)."""
    worker = _code("multi_worker_strategy").replace("WORKERS = []", f'WORKERS = ["localhost:{_free_port()}"]')
    assert "localhost" in worker
    return {
        "main": [
            _code("verify_gpu"),
            _code("memory_growth"),
            wrap_source(MODEL_CELL) + "\n",
            "assert kerasgpu.notebook_strategy().extended.variable_created_in_scope("
            "model.trainable_variables[0].value)",
            _code("tf_data_pipeline"),
            "assert BATCH_SIZE == 64\n"
            "history = model.fit(train_ds, epochs=1, verbose=0)\n"
            'print("loss", history.history["loss"][0])',
            _code("log_device_placement"),  # after the runtime started: says so instead
            _code("keras_backends_gpu"),
            _code("mixed_precision"),  # auto: no GPU here, so it sets nothing and says why
            'assert keras.mixed_precision.global_policy().name == "float32"',
        ],
        "memory_limit": [
            _code("memory_limit"),
            _code("log_device_placement"),
            "import tensorflow as tf\n"
            "print('sum', float(tf.linalg.matmul(tf.ones((3, 3)), tf.ones((3, 3)))[0, 0]))",
        ],
        "multi_worker_tf_config": [
            worker,
            "import json, os\nassert json.loads(os.environ['TF_CONFIG'])['task'] == "
            "{'type': 'worker', 'index': 0}\n"
            "with strategy.scope():\n" + "".join(f"    {line}\n" for line in MODEL_CELL.splitlines()),
            "import numpy as np\n"
            "model.fit(np.zeros((128, 32)), np.zeros(128), batch_size=BATCH_SIZE, epochs=1, verbose=0)",
        ],
        "multi_worker_local": [_code("multi_worker_strategy")],
    }


def _kernel_env() -> dict[str, str]:
    """The kernel's environment: no nvidia-smi on PATH (as in CI), TensorFlow's default logging."""
    path = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    env = dict(os.environ)
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), *path]),
        KERASGPU_BACKEND="smi",
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("TF_CONFIG", None)
    env.pop("KERAS_BACKEND", None)
    return env


async def _run_all(cells_by_name: dict[str, list[str]], cwd: Path) -> dict[str, nbformat.NotebookNode]:
    async def run(name, cells):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        client = NotebookClient(nb, kernel_name="python3", timeout=180, allow_errors=True)
        await client.async_execute(env=_kernel_env(), cwd=str(cwd))
        return name, nb

    done = await asyncio.gather(*(run(n, c) for n, c in cells_by_name.items()))
    return dict(done)


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    cwd = tmp_path_factory.mktemp("snippet-kernels")
    return asyncio.run(_run_all(notebooks(), cwd))


def _errors(nb) -> list[str]:
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                out.append(f"cell {i}:\n{cell.source}\n{o.ename}: {o.evalue}")
    return out


def _text(nb, i: int) -> str:
    """Everything cell i printed or displayed, as text."""
    parts = []
    for o in nb.cells[i].get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o.data.get("text/plain", "") + o.data.get("text/html", ""))
    return "".join(parts)


@pytest.mark.parametrize("name", list(notebooks()))
def test_every_notebook_of_snippets_runs_without_error(executed, name):
    assert not _errors(executed[name]), "\n\n".join(_errors(executed[name]))


def test_what_the_snippets_report_in_the_shared_kernel(executed):
    nb = executed["main"]
    assert "GPU check" in _text(nb, 0)  # the verification cell shows the %gpu_check card
    assert "TensorFlow sees no GPU in this kernel, so memory growth changes nothing" in _text(nb, 1)
    assert "Memory growth on" not in _text(nb, 1)
    assert "loss" in _text(nb, 5)
    assert "Restart the kernel and run this cell first" in _text(nb, 6)
    backends = _text(nb, 7)
    assert "backend: tensorflow" in backends
    assert "JAX: not installed" in backends or "JAX " in backends
    assert "PyTorch: not installed" in backends or "PyTorch " in backends
    assert "Mixed precision not set" in _text(nb, 8) and "sees no GPU" in _text(nb, 8)


def test_top_snippets_report_in_their_fresh_kernels(executed):
    assert "TensorFlow sees no GPU in this kernel, so the limit changes nothing" in _text(
        executed["memory_limit"], 0
    )
    assert "Placement logging on" in _text(executed["memory_limit"], 1)
    ran = _text(executed["memory_limit"], 2)
    assert "sum 3.0" in ran
    # oneDNN renames the op on some CPUs (_MklMatMul with AVX-512): accept both names.
    assert re.search(
        r"Executing op (?:_Mkl)?MatMul in device /job:localhost/replica:0/task:0/device:CPU:0", ran
    )
    assert '"cluster": {"worker": ["localhost:' in _text(executed["multi_worker_tf_config"], 0)
    assert "1 replica(s) in sync; global batch size 64" in _text(executed["multi_worker_tf_config"], 0)
    assert "TF_CONFIG: unset (single worker)" in _text(executed["multi_worker_local"], 0)

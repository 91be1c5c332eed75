"""The training-insight example notebook runs top to bottom in a real kernel with real TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "training_insight.ipynb"
PYTHON_EXT = Path(__file__).resolve().parents[1]


@pytest.mark.tf
def test_training_insight_notebook(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERASGPU_BACKEND", "none")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PYTHON_EXT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(EXAMPLE, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]

    def texts(cell):
        return [o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs]

    assert "Every Keras fit in this kernel" in "".join(texts(code[0]))
    estimate = "".join(texts(code[2]))
    assert "GPU estimate: [OK] CPU ~" in estimate and "CPU meets the 36 h deadline" in estimate
    # the fit shows ONE card, updated in place to its final state
    fit = [o for o in code[3].outputs if o.output_type == "display_data"]
    assert len(fit) == 1, code[3].outputs
    assert "Trained: epoch 5/5" in fit[0]["data"]["text/plain"]
    assert "kerasgpu-training" in fit[0]["data"]["text/html"]
    assert "No GPU is visible to TensorFlow" in "".join(texts(code[4]))
    assert "unmonitored" in "".join(texts(code[5]))

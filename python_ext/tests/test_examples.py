"""The demo notebook that `make lab` opens runs top to bottom in a real kernel with real TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.tf
def test_the_keras_demo_trains_on_the_data_it_makes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(EXAMPLES / "keras_gpu_demo.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    assert "GPUs TensorFlow sees:" in outputs
    accuracy = float(outputs.rsplit("final validation accuracy:", 1)[1].split()[0])
    # Two spirals are learnable: a model that trained does far better than chance.
    assert accuracy > 0.7

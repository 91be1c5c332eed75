"""The snippet loader: headers, placements, the wrap marker, and the catalog the server serves."""

from __future__ import annotations

import ast

import pytest
from kerasgpu.core import snippets
from kerasgpu.core.planner.wrap import WRAP_COMMENT, WRAP_LINE, wrap_source
from kerasgpu.core.snippets import MARKER, PLACEMENTS, SnippetError, load_catalog, parse

EXPECTED = {
    "verify_gpu": "top",
    "memory_growth": "top",
    "memory_limit": "top",
    "mirrored_strategy": "wrap",
    "multi_worker_strategy": "top",
    "mixed_precision": "cursor",
    "log_device_placement": "top",
    "tf_data_pipeline": "cursor",
    "keras_backends_gpu": "cursor",
}


def test_the_catalog_has_every_snippet_of_the_issue_with_its_placement():
    catalog = load_catalog()
    assert {e["id"]: e["placement"] for e in catalog} == EXPECTED
    assert [e["order"] for e in catalog] == sorted(e["order"] for e in catalog)
    for entry in catalog:
        assert entry["placement"] in PLACEMENTS
        assert entry["title"] and entry["description"].endswith(".")
        assert not entry["code"].startswith("#"), "the header must not leak into the inserted code"
        if entry["id"] != "verify_gpu":  # the verification cell is two magics (an .ipy file)
            ast.parse(entry["code"])  # valid Python as inserted


def test_each_catalog_entry_is_the_file_on_disk():
    for entry in load_catalog():
        path = snippets.HERE / f"{entry['id']}.py"
        text = (path if path.exists() else path.with_suffix(".ipy")).read_text()
        assert text.endswith(entry["code"])


def test_the_wrap_snippet_runs_the_cell_in_the_notebook_strategy():
    entry = snippets.get("mirrored_strategy")
    assert entry["marker"] == MARKER
    assert entry["prefix"].rstrip().endswith("with kerasgpu.notebook_strategy().scope():  " + WRAP_COMMENT)
    cell = "import keras\n\nmodel = keras.Sequential([\n    keras.layers.Dense(1),\n])\n"
    code = wrap_source(cell) + "\n"
    # The same lines as the snippet file, then the cell indented under it.
    assert code == entry["prefix"].split("\n\n", 1)[0] + "\n\n" + WRAP_LINE + (
        "\n    import keras\n\n    model = keras.Sequential([\n        keras.layers.Dense(1),\n    ])\n"
    )
    ast.parse(code)
    assert wrap_source("").endswith(WRAP_LINE + "\n    pass")


def test_the_verification_cell_is_two_magics():
    assert snippets.get("verify_gpu")["code"] == "%load_ext kerasgpu\n%gpu_check\n"


def test_multi_line_descriptions_are_joined():
    entry = parse(
        "# title: T\n# description: one\n#   two\n# placement: cursor\n\nx = 1\n",
        "t",
    )
    assert entry == {
        "id": "t",
        "title": "T",
        "description": "one two",
        "placement": "cursor",
        "order": 100,
        "code": "x = 1\n",
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("# title: T\n# placement: top\n\nx = 1\n", "no 'description'"),
        ("# title: T\n# description: D\n# placement: side\n\nx = 1\n", "'side' is not one of"),
        ("# title: T\n# description: D\n# placement: wrap\n\nx = 1\n", "exactly one line"),
        ("# title: T\n# description: D\n# placement: top\n\npass  # {cell}\n", "only wrap snippets"),
    ],
)
def test_malformed_headers_are_refused(text, words):
    with pytest.raises(SnippetError, match=words):
        parse(text, "bad")


def test_memory_growth_goes_above_a_strategy_cell_that_precedes_the_first_import():
    """`%gpu_distribute` starts TensorFlow's runtime: memory settings must come before it even when
    the notebook imports Keras only in the model cell below it."""
    from kerasgpu.core.planner import plans

    cells = [
        {"source": "%load_ext kerasgpu\n%gpu_check", "cell_type": "code", "tags": ["kerasgpu-verify"]},
        {"source": "%gpu_distribute", "cell_type": "code", "snippet": "distribute_notebook"},
        {"source": "import keras\nmodel = keras.Sequential([keras.layers.Dense(1)])", "cell_type": "code"},
    ]
    plan = plans.plan("snippet", cells, 2, {"id": "memory_growth"})
    assert plan["edits"][0]["index"] == 1  # below the verification cell, above the strategy

"""The snippet loader: headers, placements, the wrap marker, and the catalog the server serves."""

from __future__ import annotations

import ast

import pytest
from kerasgpu import snippets
from kerasgpu.snippets import MARKER, PLACEMENTS, SnippetError, load_catalog, parse, wrap

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
        ast.parse(entry["code"])  # valid Python as inserted


def test_each_catalog_entry_is_the_file_on_disk():
    for entry in load_catalog():
        text = (snippets.HERE / f"{entry['id']}.py").read_text()
        assert text.endswith(entry["code"])


def test_a_wrap_snippet_splits_at_its_marker_and_indents_the_cell():
    entry = snippets.get("mirrored_strategy")
    assert entry["marker"] == MARKER
    assert entry["indent"] == "    "
    assert entry["prefix"].rstrip().endswith("with strategy.scope():")
    assert entry["suffix"] == ""
    assert MARKER not in entry["prefix"] + entry["suffix"]
    cell = "import keras\n\nmodel = keras.Sequential([\n    keras.layers.Dense(1),\n])\n"
    code = wrap(entry, cell)
    assert code.endswith(
        "with strategy.scope():\n    import keras\n\n    model = keras.Sequential([\n"
        "        keras.layers.Dense(1),\n    ])\n"
    )
    ast.parse(code)
    assert wrap(entry, "").endswith("with strategy.scope():\n    pass\n")


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


def test_wrap_refuses_other_placements():
    with pytest.raises(SnippetError):
        wrap(snippets.get("memory_growth"), "x = 1")

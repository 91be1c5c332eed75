"""The notebook tools on code we did not write: every keras-io example of tests/corpus/ as a
notebook in a real kernel (tensorflow-cpu split into two logical CPUs, so MirroredStrategy has two
replicas), once as written and once per tool, applied exactly as the frontend applies it.

Each run must train. A tool may refuse, but only before it inserts anything, with its reason; the
notebook then trains without it. No failure a tool announced and let happen, no silent one (a
distributed run checks after fit that the strategy is in effect and every trained model's variables
are mirrored), no false alarm (a tool that inserted something warns of nothing that did not fail).
"""

from __future__ import annotations

import asyncio

import pytest
from corpus_runner import MODES, examples, prepare, run_all
from kerasgpu.core.known_errors import match_errors

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.corpus, pytest.mark.timeout(2400)]

NAMES = [p.stem for p in examples()]


@pytest.fixture(scope="module")
def corpus():
    runs = [prepare(path, mode) for path in examples() for mode in MODES]
    done = asyncio.run(run_all(runs))
    return {(r.example, r.mode): r for r in done}


def _codes(run) -> set[str]:
    return {m.get("code") for plan in run.plans for m in plan["messages"] if m.get("code")}


def _failure(run) -> str:
    found = match_errors(run.error or "")
    code = found[0]["code"] if found else "unknown"
    return f"{run.example}/{run.mode} failed ({code}): {run.error}\n{run.error_cell}"


def _refused(run, tool: str) -> list[dict]:
    return [p for p in run.plans if p["tool"] == tool and not p["ok"]]


def test_the_corpus_covers_what_the_issue_lists():
    assert len(NAMES) >= 8
    text = "\n".join(p.read_text() for p in examples())
    for needle in (
        "Sequential(",
        "keras.Model(",
        "def train_step",
        "Embedding(",
        "MultiHeadAttention",
        "random",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("name", NAMES)
def test_each_example_trains_as_written(corpus, name):
    run = corpus[(name, "baseline")]
    assert run.trained, f"{name} does not run as converted: {run.error}\n{run.error_cell}"


@pytest.mark.parametrize("name", NAMES)
def test_distribute_this_notebook_with_every_setup_tool(corpus, name):
    """Verification cell, memory growth, mixed precision (auto) and one strategy for the notebook:
    the user's own cells train on two replicas, or Distribute refused before inserting anything."""
    run = corpus[(name, "notebook")]
    cells = [c["source"] for c in run.cells]
    # The verification cell: below the notebook's leading markdown, its first code cell.
    first_code = next(c["source"] for c in run.cells if c["cell_type"] == "code")
    assert first_code == "%load_ext kerasgpu\n%gpu_check"
    assert run.trained, _failure(run)
    assert "Mixing different" not in run.outputs
    refused = _refused(run, "distribute")
    if refused:
        assert not any("%gpu_distribute" in c for c in cells)
        assert refused[0]["messages"][0]["text"].startswith("Not distributed:")
        assert "REPLICAS 1" in run.outputs  # it trained, on one device, as it said
        return
    assert any("%gpu_distribute" in c for c in cells)
    assert "MirroredStrategy with 2 replica(s)" in run.outputs
    assert "REPLICAS 2" in run.outputs  # the strategy in effect after the user's cells
    assert "TRAINED-NOT-MIRRORED []" in run.outputs  # every trained model's variables are mirrored
    assert "GUARD-ERRORS []" in run.outputs  # the guard found no claim that did not hold


@pytest.mark.parametrize("name", NAMES)
def test_the_cell_wrap_trains_or_says_before_running_why_not(corpus, name):
    run = corpus[(name, "wrap")]
    if run.refused:
        assert _codes(run) & {"compiled_elsewhere", "built_elsewhere", "raw_variable"}
        assert all("Distribute the whole notebook" in t or "raw tf.Variable" in t for t in run.refused)
        assert not run.ran
    else:
        assert run.trained, _failure(run)
        assert "Mixing different" not in run.outputs


@pytest.mark.parametrize("name", NAMES)
def test_mixed_float16_with_the_plans_fixes_trains_or_was_refused_first(corpus, name):
    run = corpus[(name, "mixed_float16")]
    assert run.trained, _failure(run)
    if _refused(run, "mixed_precision"):
        assert "Mixed precision was not added" in run.refused[0]
        assert not any("set_mixed_precision" in c["source"] for c in run.cells)
    else:
        assert any("set_mixed_precision" in c["source"] for c in run.cells)
        assert not run.warnings  # every trap it named came with its edit


def _refusals(run) -> str:
    """Which tools refused (and why), or that every tool was applied."""
    refused = [
        f"{p['tool']} ({','.join(m.get('code', '?') for m in p['messages'])})"
        for p in run.plans
        if not p["ok"]
    ]
    return "refused " + "; ".join(refused) if refused else "all tools applied"


def test_summary(corpus, capsys):
    """Prints what each tool did to each example (the figures in the README and the notes)."""
    rows = []
    for name in NAMES:
        cols = []
        for mode in MODES:
            r = corpus[(name, mode)]
            if r.mode == "wrap" and r.refused:
                cols.append("refused: " + ",".join(sorted(_codes(r))))
            elif r.trained:
                cols.append("trains" + ("" if r.mode == "baseline" else f" ({_refusals(r)})"))
            else:
                cols.append("FAILS")
        rows.append(f"{name:40} " + " | ".join(f"{c:44}" for c in cols))
    with capsys.disabled():
        print("\n" + f"{'example':40} " + " | ".join(f"{m:44}" for m in MODES))
        print("\n".join(rows))

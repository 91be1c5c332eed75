"""The notebook tools on code we did not write: every keras-io example of tests/corpus/ as a
notebook in a real kernel (tensorflow-cpu split into two logical CPUs, so MirroredStrategy has two
replicas), once as written and once per tool, applied exactly as the frontend applies it.

Each run must train, or fail with exactly the problem a tool announced before it ran: the tool's
message code and the doctor's diagnosis of TensorFlow's real error name the same cause.
"""

from __future__ import annotations

import asyncio

import pytest
from corpus_runner import MODES, examples, prepare, run_all
from kerasgpu.kernel import doctor

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.timeout(1500)]

# What the doctor calls TensorFlow's error -> the tool message that announced it.
ANNOUNCED_BY = {
    "model_not_built": {"model_without_call"},
    "uneven_replica_batch": {"uneven_eval"},
    "mixed_dtype_op": {"float32_in_custom_layer", "custom_train_step"},
    "index_out_of_vocabulary": {"float_input_embedding"},
}
BLOCKING_TRAPS = {"float32_in_custom_layer", "float_input_embedding", "custom_train_step"}
NAMES = [p.stem for p in examples()]


@pytest.fixture(scope="module")
def corpus():
    runs = [prepare(path, mode) for path in examples() for mode in MODES]
    done = asyncio.run(run_all(runs))
    return {(r.example, r.mode): r for r in done}


def _codes(run) -> set[str]:
    return {m.get("code") for plan in run.plans for m in plan["messages"] if m.get("code")}


def _explained(run) -> tuple[bool, str]:
    """Whether a failed run failed as a tool said it would; and the doctor's code for the error."""
    found = doctor.diagnose(run.error or "")
    code = found[0]["code"] if found else "unknown"
    return bool(ANNOUNCED_BY.get(code, set()) & _codes(run)), code


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
    """Verification cell, memory growth, mixed precision (auto) and one strategy for the notebook."""
    run = corpus[(name, "notebook")]
    cells = [c["source"] for c in run.cells]
    assert cells[0] == "%load_ext kerasgpu\n%gpu_check"
    assert any("%gpu_distribute" in c for c in cells)
    if run.trained:
        assert "REPLICAS 2" in run.outputs  # the user's own cells trained on two replicas
        assert "MirroredStrategy with 2 replica(s)" in run.outputs
        assert "Mixing different" not in run.outputs
    else:
        ok, code = _explained(run)
        assert ok, f"{name}: unannounced failure ({code}): {run.error}\n{run.error_cell}"


@pytest.mark.parametrize("name", NAMES)
def test_the_cell_wrap_trains_or_says_before_running_why_not(corpus, name):
    run = corpus[(name, "wrap")]
    if run.refused:
        assert _codes(run) & {"compiled_elsewhere", "built_elsewhere"}
        assert all("Distribute the whole notebook" in t for t in run.refused)
        assert not run.ran
    else:
        assert run.trained or _explained(run)[0], f"{name}: {run.error}\n{run.error_cell}"
        assert "Mixing different" not in run.outputs


@pytest.mark.parametrize("name", NAMES)
def test_mixed_float16_trains_or_its_trap_was_named_first(corpus, name):
    run = corpus[(name, "mixed_float16")]
    if run.trained:
        # Nothing blocking was announced for a notebook that trains.
        assert not (_codes(run) & BLOCKING_TRAPS), run.warnings
    else:
        ok, code = _explained(run)
        assert ok, f"{name}: unannounced failure ({code}): {run.error}\n{run.error_cell}"


def test_summary(corpus, capsys):
    """Prints what each tool did to each example (the figures in the README and the notes)."""
    rows = []
    for name in NAMES:
        cols = []
        for mode in MODES:
            r = corpus[(name, mode)]
            if r.refused:
                cols.append("refused: " + ",".join(sorted(_codes(r))))
            elif r.trained:
                cols.append("trains")
            else:
                cols.append("announced: " + _explained(r)[1])
        rows.append(f"{name:45} " + " | ".join(f"{c:32}" for c in cols))
    with capsys.disabled():
        print("\n" + f"{'example':45} " + " | ".join(f"{m:32}" for m in MODES))
        print("\n".join(rows))

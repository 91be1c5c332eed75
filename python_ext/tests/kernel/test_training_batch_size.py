"""The batch-size finder: a real out-of-memory on the CPU (a child process with an address-space
limit), the grow-then-bisect search, recovery after each OOM, and the user's model untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kgpu_testlib import clean_env, run_cells

CHILD = Path(__file__).resolve().parent / "batch_size_child.py"


def _child(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(CHILD), "400", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
        check=False,
    )
    assert "@@RESULT@@" in proc.stdout, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    out = json.loads(proc.stdout.split("@@RESULT@@", 1)[1])
    out["stderr"] = proc.stderr
    return out


@pytest.fixture(scope="module")
def child():
    return _child()


def test_without_a_gpu_it_says_so_and_runs_nothing(child):
    r = child["no_gpu"]
    assert r["status"] == "no_gpu" and r["tries"] == [] and r["largest"] is None
    assert "No GPU is visible" in r["message"]


def test_grows_then_bisects_to_the_largest_batch_that_fits(child):
    r = child["found"]
    tries = r["tries"]
    sizes = [t["batch_size"] for t in tries]
    first_oom = next(i for i, t in enumerate(tries) if not t["fits"])
    # growth: doubling from 256 until the first real out-of-memory
    assert sizes[: first_oom + 1] == [256 * 2**i for i in range(first_oom + 1)]
    assert tries[first_oom]["error"].startswith("ResourceExhaustedError")
    # bisection between the last fit and the first failure, to within 1/16
    assert r["largest"] < r["first_failing"] <= sizes[first_oom]
    assert r["first_failing"] - r["largest"] <= max(1, r["largest"] // 16)
    assert all(t["fits"] == (t["batch_size"] <= r["largest"]) for t in tries)
    assert child["suggested_trains"] is True  # the batch it suggests does train a step


def test_a_search_the_budget_ends_says_what_it_tried_and_how_to_go_on(child):
    r, text = child["short"]["result"], child["short"]["text"]
    assert r["status"] == "ok" and r["out_of_budget"] is True and r["budget_s"] == 0.001
    assert [t["batch_size"] for t in r["tries"]] == [256] and r["largest"] == 256  # the first try always runs
    assert r["first_failing"] is None and r["capped_at"] is None  # no size failed; no cap was reached
    assert "Batch 256 fits, the largest tried" in text and "budget ran out after 1 try," in text
    assert "--start 512" in text and "--budget" in text
    assert not child["found"]["out_of_budget"]  # a budget the search fits in: it ends as before


def test_the_search_does_not_flood_the_cell_with_retracing_warnings(child):
    # every try traces a new copy on purpose; TensorFlow would warn about it from the fifth on
    assert len(child["found"]["tries"]) >= 6
    assert "triggered tf.function retracing" not in child["stderr"]


def test_recovers_after_each_out_of_memory(child):
    tries = child["found"]["tries"]
    # a size that fits, tried after an out-of-memory: the failed try left nothing behind
    after_oom = [t for i, t in enumerate(tries) if t["fits"] and any(not u["fits"] for u in tries[:i])]
    assert after_oom, [(t["batch_size"], t["fits"]) for t in tries]
    assert all(t["samples_per_s"] > 0 for t in tries if t["fits"])


def test_leaves_the_users_model_untouched(child):
    assert child["weights_unchanged"] is True
    assert child["optimizer_steps_during_search"] == 0


def test_a_model_that_cannot_be_copied_is_searched_in_place_and_put_back():
    r = _child("--subclassed")
    found = r["found"]
    found_tries = found["tries"]
    assert found["in_place"] is True and all(t["in_place"] for t in found_tries)
    assert any(not t["fits"] for t in found_tries) and found["largest"] < found["first_failing"]
    assert r["suggested_trains"] is True
    # the user's weights, optimizer object and its step count, after every out-of-memory
    assert r["weights_unchanged"] is True and r["optimizer_kept"] is True
    assert r["optimizer_steps_during_search"] == 0


def test_magic_without_gpu_does_nothing():
    cells = run_cells(
        [
            "import numpy as np, keras\n"
            "x = np.zeros((8, 4), 'float32'); y = np.zeros((8, 1), 'float32')\n"
            "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]); m.compile('sgd', 'mse')",
            "%gpu_batch_size m x y",
            "%gpu_batch_size m x y --json",
        ],
        env=clean_env({"KERASGPU_BACKEND": "none"}),
    )
    assert "No GPU is visible to TensorFlow" in cells[1].text
    assert cells[2].json["status"] == "no_gpu"

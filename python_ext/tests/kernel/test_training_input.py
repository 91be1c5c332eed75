"""Input wait measured during watched fits (real TensorFlow CPU): a slow tf.data pipeline is called highly
input-bound, the fix is named in the user's own code, the next fit shows the measured gain, a deadline it
cannot meet names the largest measured saving, and %gpu_runs lists the runs with what changed."""

from __future__ import annotations

import json

import pytest
from kgpu_testlib import clean_env, run_cells

SETUP = """
import json, time, numpy as np, keras, tensorflow as tf
from kerasgpu.kernel.train import watch
rng = np.random.default_rng(0)
x = rng.random((1024, 32), dtype="float32"); y = rng.random((1024, 1), dtype="float32")
def slow(a, b):  # 15 ms a batch, sleeping: the step waits, the shared CPU stays free
    time.sleep(0.015)
    return a, b
def slow_map(a, b):
    a2, b2 = tf.py_function(slow, [a, b], [tf.float32, tf.float32])
    a2.set_shape(a.shape); b2.set_shape(b.shape)
    return a2, b2
m = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
m.compile("sgd", "mse")
def report():
    mon = watch.last_monitor()
    return json.dumps({"findings": mon.findings, "progress": mon.progress.to_json()})
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    db = tmp_path_factory.mktemp("runs") / "runs.sqlite"
    cells = [
        SETUP,
        "%gpu_watch on --no-card --deadline 1s",
        "slow_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(slow_map)\n"
        "m.fit(slow_ds, epochs=4, verbose=0); print(report())",
        "fast_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(slow_map).cache()"
        ".prefetch(tf.data.AUTOTUNE)\nm.fit(fast_ds, epochs=6, verbose=0); print(report())",
        "%gpu_runs --json",
        # 5: steps_per_execution > 1: Keras' fused multi-step loop is left alone, the wait not measured
        "m4 = keras.Sequential([keras.Input((32,)), keras.layers.Dense(1)])\n"
        "m4.compile('sgd', 'mse', steps_per_execution=4)\n"
        "class Seen(keras.callbacks.Callback):\n"
        "    def on_train_batch_begin(self, batch, logs=None):\n"
        "        self.wrapped = getattr(self.model.train_function, '_kerasgpu_input_timer', False)\n"
        "seen = Seen(); m4.fit(slow_ds, epochs=2, verbose=0, callbacks=[seen])\n"
        "print(json.dumps({'wrapped': seen.wrapped, 'progress': watch.last_monitor().progress.to_json()}))",
        "%gpu_watch off",
    ]
    return run_cells(
        cells, env=clean_env({"KERASGPU_BACKEND": "none", "KERASGPU_RUNS_DB": str(db)}), timeout=600
    )


def test_slow_pipeline_is_highly_input_bound_with_its_cause_and_fix(runs):
    r = json.loads(runs[2].stdout)
    f = next(f for f in r["findings"] if f["code"] == "input_bound")
    assert f["level"] == "warning" and f["title"].startswith("Highly input-bound")
    assert f["data"]["input_share"] >= 0.5  # 15 ms of sleep against a step of well under a millisecond
    assert "map without num_parallel_calls" in f["data"]["dominant"]
    assert ".prefetch(tf.data.AUTOTUNE)" in f["fix"] and "num_parallel_calls=tf.data.AUTOTUNE" in f["fix"]
    p = r["progress"]
    assert p["input_level"] == "highly input-bound" and p["input_share"] == pytest.approx(
        f["data"]["input_share"], abs=0.05
    )


def test_deadline_it_cannot_meet_names_the_largest_measured_saving(runs):
    r = json.loads(runs[2].stdout)
    v = r["progress"]["deadline_verdict"]
    assert v["meets"] is False and "will miss the deadline" in v["text"]
    assert v["best"]["change"] == "the input pipeline fix"
    assert "Largest measured saving: the input pipeline fix" in v["text"]
    assert v["best"]["projected_end"] < v["projected_end"]
    miss = next(f for f in r["findings"] if f["code"] in ("deadline_miss", "deadline_missed"))
    assert miss


def test_the_next_fit_shows_the_measured_improvement(runs):
    r = json.loads(runs[3].stdout)
    cmp = r["progress"]["compare"]
    assert "faster than the run of" in cmp["text"] and "input wait" in cmp["text"]
    assert cmp["speedup"] > 1.5
    assert "no prefetch -> " in cmp["text"]  # what changed: the input
    assert r["progress"]["input_share"] < json.loads(runs[2].stdout)["progress"]["input_share"]


def test_steps_per_execution_keeps_keras_fused_loop(runs):
    r = json.loads(runs[5].stdout)
    assert r["wrapped"] is False
    p = r["progress"]
    assert p["input_share"] is None and p["input_level"] is None and p["step_time_s"] > 0


def test_gpu_runs_lists_the_receipts(runs):
    data = runs[4].json
    rows = data["data"]["runs"] if "data" in data else data["runs"]
    assert len(rows) == 2
    new, old = rows
    assert new["batch_size"] == 32 and new["device"] == "cpu" and new["tf_version"]
    assert new["keras_version"] and new["dtype_policy"] == "float32" and new["strategy"]
    assert old["input_share"] > new["input_share"]
    assert "faster than the run of" in new["compare"]


def test_the_one_click_pipeline_fix_edits_the_users_cell_and_the_next_fit_proves_it(tmp_path):
    """The finding names the dataset and the fixes; the notebook planner's input_pipeline tool (what
    the card's button runs, through the preview) edits the user's own pipeline cell; the notebook run
    again trains faster and its card says by how much against the run before."""
    from kerasgpu.core.planner import plans

    env = clean_env({"KERASGPU_BACKEND": "none", "KERASGPU_RUNS_DB": str(tmp_path / "runs.sqlite")})
    pipeline = "train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(slow_map)"
    fit = "m.fit(train_ds, epochs=4, verbose=0); print(report())"
    notebook = [SETUP, "%gpu_watch on --no-card", pipeline, fit]
    before = json.loads(run_cells(notebook, env=env, timeout=600)[3].stdout)
    finding = next(f for f in before["findings"] if f["code"] == "input_bound")
    offered = finding["data"]["pipeline_fix"]
    assert offered["dataset"] == "train_ds"
    assert set(offered["fixes"]) == {"num_parallel_calls", "prefetch"}

    plan = plans.plan("input_pipeline", [{"source": c} for c in notebook], None, offered)
    assert plan["ok"] and [e["index"] for e in plan["edits"]] == [2]
    fixed = plan["edits"][0]["source"]
    assert fixed == (
        "train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)"
        ".map(slow_map, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)"
    )
    after = json.loads(
        run_cells([SETUP, "%gpu_watch on --no-card", fixed, fit], env=env, timeout=600)[3].stdout
    )
    assert after["progress"]["input_share"] < before["progress"]["input_share"]
    assert "faster than the run of" in after["progress"]["compare"]["text"]

"""`%gpu_estimate` / kerasgpu.estimate: the arithmetic and the one-line answer (pure), then real
Keras models on CPU: the user's model is untouched, and `%gpu_watch --deadline` warns during fit."""

from __future__ import annotations

import json

import pytest
from kerasgpu.kernel.train.estimate import DeviceTime, project, verdict
from kgpu_testlib import clean_env, run_cells

H = 3600.0
NOW = 1_800_000_000.0


def dev(label: str, total: float, device: str = "/CPU:0") -> DeviceTime:
    return DeviceTime(device, label, 0.01, 0.0, 0.0, 100, 1, 32, total_s=total)


def test_project_is_startup_plus_overhead_plus_epochs_times_steps():
    # 50 epochs x 1800 steps at 2 s a step, 30 s of tracing, 2 s of fit set-up: 50 h
    assert project(2.0, 1800, 50, fit_overhead_s=2.0, startup_s=30.0) == pytest.approx(50 * H + 32)


def test_only_the_gpu_meets_a_36_hour_deadline():
    v = verdict(
        [dev("CPU", 50 * H), dev("GPU 0 (H200)", 2 * H, "/GPU:0")], NOW + 36 * H, NOW, "36 h deadline"
    )
    assert v.line == "CPU ~50 h, GPU 0 (H200) ~2.0 h: only GPU 0 (H200) meets the 36 h deadline"
    assert v.meets == ["GPU 0 (H200)"]


def test_no_device_meets_says_how_much_faster_the_best_must_be():
    v = verdict([dev("CPU", 50 * H)], NOW + 25 * H, NOW, "25 h deadline")
    assert v.line == "CPU ~50 h: none meets the 25 h deadline; CPU needs to be 2.0x faster"
    assert v.needed_speedup == pytest.approx(2.0)


def test_without_deadline_compares_devices():
    v = verdict([dev("CPU", 50 * H), dev("GPU 0", 2 * H, "/GPU:0")], None, NOW)
    assert v.line.endswith("GPU 0 is 25.0x faster than CPU") and v.fastest == "GPU 0"


def test_all_meet_and_failed_devices_are_named():
    both = verdict([dev("CPU", H), dev("GPU 0", 0.1 * H, "/GPU:0")], NOW + 36 * H, NOW, "36 h deadline")
    assert both.line.endswith("both meet the 36 h deadline")
    broken = dev("GPU 1", 0, "/GPU:1")
    broken.error = "ResourceExhaustedError: OOM"
    v = verdict([dev("CPU", H), broken], NOW + 36 * H, NOW, "36 h deadline")
    assert "GPU 1: ResourceExhaustedError: OOM" in v.line and v.meets == ["CPU"]


SETUP = """
import json, numpy as np, keras, tensorflow as tf
rng = np.random.default_rng(0)
x = rng.random((1000, 16), dtype="float32"); y = rng.integers(0, 3, 1000)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(3)])
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
model.fit(x[:64], y[:64], epochs=1, verbose=0)  # the user's model has trained a little
before = [w.copy() for w in model.get_weights()]
iters = int(model.optimizer.iterations.numpy())
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
"""


@pytest.fixture(scope="module")
def cells():
    return run_cells(
        [
            SETUP,
            "%gpu_estimate model x y --epochs 2 --batch-size 20 --deadline 36h",
            "%gpu_estimate model ds --epochs 3000 --deadline 1s --json",
            "same = all((a == b).all() for a, b in zip(before, model.get_weights()))\n"
            "steps = int(model.optimizer.iterations.numpy()) - iters\n"
            "print(json.dumps({'same_weights': same, 'iterations': steps}))",
            "%gpu_watch on --deadline 1s --no-card",
            "from kerasgpu.kernel.train import watch\n"
            "model.fit(x, y, epochs=10, batch_size=4, verbose=0)\n"
            "m = watch.last_monitor()\n"
            "first = [f['code'] for f in m.epoch_findings[0]]\n"
            "print(json.dumps({'epoch1': first, 'end': m.progress.to_json()}))",
        ],
        env=clean_env({"KERASGPU_BACKEND": "none"}),
        timeout=600,
    )


def test_gpu_estimate_answers_in_one_line(cells):
    card = cells[1]
    assert card.error is None, card.error
    line = card.text.splitlines()[0]
    assert line.startswith("GPU estimate: [OK] CPU ~") and line.endswith("CPU meets the 36 h deadline")
    assert "2 x 50 steps" in card.text  # 1000 samples / batch 20, two epochs
    assert "What would change it" in card.text


def test_gpu_estimate_json_on_a_dataset_and_a_deadline_it_misses(cells):
    res = cells[2].json
    assert res["kind"] == "gpu_estimate" and res["steps_per_epoch"] == 20 and res["epochs"] == 3000
    assert res["meets"] == [] and "none meets" in res["line"]
    d = res["devices"][0]
    assert d["device"] == "/CPU:0" and d["error"] is None and d["step_time_s"] > 0
    assert d["total_s"] == pytest.approx(d["startup_s"] + d["fit_overhead_s"] + 3000 * 20 * d["step_time_s"])


def test_estimate_leaves_the_users_model_untouched(cells):
    assert json.loads(cells[3].stdout) == {"same_weights": True, "iterations": 0}


def test_watch_deadline_warns_during_fit(cells):
    out = json.loads(cells[5].stdout)
    # 10 epochs x 250 steps don't end within 1 s on any CPU: the first epoch already says so
    assert "deadline_miss" in out["epoch1"]
    assert out["end"]["deadline"] is not None


def test_other_keras_backends_are_refused_not_mislabelled(monkeypatch):
    import sys
    import types

    from kerasgpu.kernel.runtime import KerasGPUError
    from kerasgpu.kernel.train.batch_size import find_batch_size
    from kerasgpu.kernel.train.estimate import estimate

    fake = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    for call in (lambda: estimate(object(), None), lambda: find_batch_size(object(), None)):
        with pytest.raises(KerasGPUError) as err:
            call()
        assert err.value.code == "backend" and "runs on jax" in err.value.problem

"""`%gpu_estimate` / kerasgpu.estimate: the arithmetic and the one-line answer (pure), then real
Keras models on CPU: the user's model is untouched, and `%gpu_watch --deadline` warns during fit."""

from __future__ import annotations

import json

import pytest
from kerasgpu.kernel.train.estimate import DeviceTime, boundaries, deadline_answer, pace, project
from kgpu_testlib import clean_env, run_cells

H = 3600.0
NOW = 1_800_000_000.0


def dev(label: str, total: float, device: str = "/CPU:0") -> DeviceTime:
    return DeviceTime(device, label, 0.01, 0.0, 0.0, 100, 1, 32, total_s=total)


def test_project_is_startup_plus_overhead_plus_epochs_times_steps():
    # 50 epochs x 1800 steps at 2 s a step, 30 s of tracing, 2 s of fit set-up: 50 h
    assert project(2.0, 1800, 50, fit_overhead_s=2.0, startup_s=30.0) == pytest.approx(50 * H + 32)
    # each epoch after the first costs 3 s more (its end, a new iterator): 49 x 3 s
    total = project(2.0, 1800, 50, fit_overhead_s=2.0, startup_s=30.0, epoch_overhead_s=3.0)
    assert total == pytest.approx(50 * H + 32 + 49 * 3)
    assert project(2.0, 1800, 1, epoch_overhead_s=3.0) == pytest.approx(3600)  # one epoch: no boundary


def epoch_clock(epochs: int, steps: int, step: float, first_extra: float, boundary: float, slow=()):
    """Batch-begin times of `epochs` epochs: each epoch's first gap `first_extra` longer (its new
    iterator), `boundary` seconds between one epoch's last step and the next epoch's first,
    and the gaps listed in `slow` (epoch, index) 10 steps long."""
    out, t = [], 100.0
    for e in range(epochs):
        times = [t]
        for k in range(1, steps):
            gap = step + (first_extra if k == 1 else 0.0) + (9 * step if (e, k) in slow else 0.0)
            times.append(times[-1] + gap)
        out.append(times)
        t = times[-1] + step + boundary
    return out


def test_pace_splits_the_warm_step_from_each_epochs_overhead():
    step, over, gaps = pace(epoch_clock(3, 10, 0.01, first_extra=0.02, boundary=0.2))
    assert step == pytest.approx(0.01)  # each epoch's first gap (the iterator) left out
    assert over == pytest.approx(0.22)  # the boundary plus the new iterator's first batch
    assert gaps == 3 * 8


def test_pace_takes_the_mean_step_so_slow_steps_count():
    # one step in 24 is 10x slower: the full run pays for such steps, so the mean, not the median
    clock = epoch_clock(3, 10, 0.01, 0.02, 0.2, slow={(1, 5)})
    step, over, _ = pace(clock)
    assert step == pytest.approx(0.01 + 0.09 / 24)
    # nothing lost or counted twice: 2 boundaries and 20 steps span the second batches of epoch 0 and 2
    assert 2 * over + 20 * step == pytest.approx(clock[2][1] - clock[0][1])
    with pytest.raises(ValueError):
        pace([[0.0, 0.1], [0.3, 0.4]])  # no step-to-step gap after the iterator's first


def test_one_long_block_at_a_boundary_does_not_become_every_epochs_cost():
    # 4 boundaries of 0.2 s, one of them blocked 1 s more (the iterator's teardown waiting)
    clock = epoch_clock(5, 10, 0.01, 0.02, 0.2)
    for later in clock[3:]:
        later[:] = [t + 1.0 for t in later]
    step, over, _ = pace(clock)
    assert step == pytest.approx(0.01)
    assert over == pytest.approx(0.22)  # the median: a mean would say 0.47 s an epoch
    assert boundaries(clock, step) == pytest.approx([0.22, 0.22, 1.22, 0.22])


def test_one_timed_epoch_has_no_boundary_to_measure():
    step, over, _ = pace(epoch_clock(1, 10, 0.01, 0.02, 0.2))
    assert step == pytest.approx(0.01) and over == 0.0


def test_only_the_gpu_meets_a_36_hour_deadline():
    v = deadline_answer(
        [dev("CPU", 50 * H), dev("GPU 0 (H200)", 2 * H, "/GPU:0")], NOW + 36 * H, NOW, "36 h deadline"
    )
    assert v.line == "CPU ~50 h, GPU 0 (H200) ~2.0 h: only GPU 0 (H200) meets the 36 h deadline"
    assert v.meets == ["GPU 0 (H200)"]


def test_no_device_meets_says_how_much_faster_the_best_must_be():
    v = deadline_answer([dev("CPU", 50 * H)], NOW + 25 * H, NOW, "25 h deadline")
    assert v.line == "CPU ~50 h: none meets the 25 h deadline; CPU needs to be 2.0x faster"
    assert v.needed_speedup == pytest.approx(2.0)


def test_without_deadline_compares_devices():
    v = deadline_answer([dev("CPU", 50 * H), dev("GPU 0", 2 * H, "/GPU:0")], None, NOW)
    assert v.line.endswith("GPU 0 is 25.0x faster than CPU") and v.fastest == "GPU 0"


def test_all_meet_and_failed_devices_are_named():
    both = deadline_answer(
        [dev("CPU", H), dev("GPU 0", 0.1 * H, "/GPU:0")], NOW + 36 * H, NOW, "36 h deadline"
    )
    assert both.line.endswith("both meet the 36 h deadline")
    broken = dev("GPU 1", 0, "/GPU:1")
    broken.error = "ResourceExhaustedError: OOM"
    v = deadline_answer([dev("CPU", H), broken], NOW + 36 * H, NOW, "36 h deadline")
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

# a dataset whose every iterator starts 80 ms late (each epoch makes one, as with a file to open)
SLOW_START = """
import time, kerasgpu
def batches():
    time.sleep(0.08)
    for i in range(0, 400, 20):
        yield x[i:i + 20], y[i:i + 20]
spec = (tf.TensorSpec((None, 16), tf.float32), tf.TensorSpec((None,), tf.int64))
slow = tf.data.Dataset.from_generator(batches, output_signature=spec).apply(
    tf.data.experimental.assert_cardinality(20))
res = kerasgpu.estimate(model, slow, epochs=4, devices_=["/CPU:0"])
print(json.dumps(res["devices"][0]))
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
            "%gpu_watch off",
            SLOW_START,
            # 8-14: validation after each epoch, as fit runs it
            "x1, y1 = np.concatenate([x, x[:1]]), np.concatenate([y, y[:1]])  # 1001 samples\n"
            "%gpu_estimate model x1 y1 --epochs 3 --batch-size 10 --validation-split 0.5 --json",
            "from keras.src.trainers.data_adapters.array_slicing import train_validation_split\n"
            "(tx, ty), (vx, vy) = train_validation_split((x1, y1), validation_split=0.5)\n"
            "print(json.dumps([len(tx), len(vx)]))",
            "xv, yv, vds = x[:90], y[:90], ds.take(4)\n"
            "%gpu_estimate model x y --batch-size 20 --validation-data xv yv --json",
            "%gpu_estimate model ds --validation-data vds --json",
            "%gpu_estimate model x y --validation-split 1.5",
            "%gpu_estimate model x y --validation-data x_val y_val",
            "tiny, tiny_y = x[:4], y[:4]\n%gpu_estimate model tiny tiny_y --validation-split 0.8",
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
    assert d["timed_epochs"] >= 2 and d["epoch_overhead_s"] >= 0
    fixed = d["startup_s"] + d["fit_overhead_s"]
    assert d["total_s"] == pytest.approx(fixed + 2999 * d["epoch_overhead_s"] + 3000 * 20 * d["step_time_s"])


def test_estimate_counts_what_each_epoch_costs_besides_its_steps(cells):
    d = json.loads(cells[7].stdout)
    assert d["error"] is None and d["timed_epochs"] >= 2
    # each timed epoch's new iterator sleeps 80 ms before its first batch: that is per-epoch cost,
    # not step time (the steps of a 16-32-3 MLP take well under a millisecond)
    assert d["epoch_overhead_s"] >= 0.07
    assert d["step_time_s"] < 0.02
    steps = 4 * 20 * d["step_time_s"]
    assert d["total_s"] == pytest.approx(
        d["startup_s"] + d["fit_overhead_s"] + 3 * d["epoch_overhead_s"] + steps
    )


def test_estimate_leaves_the_users_model_untouched(cells):
    assert json.loads(cells[3].stdout) == {"same_weights": True, "iterations": 0}


def test_estimate_counts_a_validation_pass_after_each_epoch(cells):
    est = cells[8].json
    n_train, n_val = json.loads(cells[9].stdout)  # Keras' own split of the same arrays
    assert (n_train, n_val) == (500, 501)  # Keras rounds the training share down
    assert est["steps_per_epoch"] == 50 and est["validation_steps"] == 51  # batches of 10
    d = est["devices"][0]
    assert d["val_steps"] == est["validation_steps"] and d["val_step_s"] > 0
    assert d["val_epoch_s"] >= d["val_steps"] * d["val_step_s"]
    train_only = project(d["step_time_s"], 50, 3, d["fit_overhead_s"], d["startup_s"], d["epoch_overhead_s"])
    # the whole run: training as before, the validation tracing once, and 3 validation passes
    assert d["total_s"] == pytest.approx(train_only + d["val_startup_s"] + 3 * d["val_epoch_s"])


def test_validation_data_as_arrays_or_a_dataset(cells):
    assert cells[10].json["validation_steps"] == 5  # 90 samples in batches of 20
    assert cells[10].json["devices"][0]["val_epoch_s"] > 0
    assert cells[11].json["validation_steps"] == 4  # the dataset's own length
    assert cells[11].json["devices"][0]["error"] is None


def test_bad_validation_arguments_say_what_fit_takes(cells):
    assert "between 0 and 1" in cells[12].text
    assert "No variable named 'x_val'" in cells[13].text
    # fit refuses a split that leaves nothing to train on: so does the estimate, saying why
    assert "validation_split=0.8 of 4 samples leaves nothing to train on" in cells[14].text


def test_a_model_that_overrides_compile_is_measured_in_place_not_left_uncompiled():
    # clone_model copies it (it has get_config), but Keras cannot compile the copy as the model is
    # (compile() takes other arguments): it only warns and the copy's fit would fail
    cells = run_cells(
        [
            "import json, numpy as np, keras\n"
            "class Gan(keras.Model):\n"
            "    def __init__(self, units=8, **kw):\n"
            "        super().__init__(**kw)\n"
            "        self.units = units; self.a = keras.layers.Dense(units); self.b = keras.layers.Dense(1)\n"
            "    def call(self, x):\n"
            "        return self.b(self.a(x))\n"
            "    def get_config(self):\n"
            "        return {'units': self.units}\n"
            "    def compile(self, d_optimizer, loss_fn):\n"
            "        super().compile(optimizer=d_optimizer, loss=loss_fn)\n"
            "        self.d_optimizer = d_optimizer\n"
            "    traces = 0\n"
            "    def train_step(self, data):  # runs in Python only when the step is traced\n"
            "        Gan.traces += 1\n"
            "        return super().train_step(data)\n"
            "m = Gan(); m.compile(keras.optimizers.Adam(1e-3), 'mse')\n"
            "x = np.random.rand(128, 4).astype('float32'); y = np.random.rand(128, 1).astype('float32')\n"
            "m.fit(x, y, epochs=1, verbose=0)\n"
            "def state():\n"
            "    return [v.numpy().tolist() for v in m.variables + m.d_optimizer.variables]\n"
            "before, fn, traced = state(), m.train_function, Gan.traces",
            "%gpu_estimate m x y --json",
            "same = {'new_traces': Gan.traces - traced, 'same': state() == before}\n"
            "same['fn'] = m.train_function is fn\n"
            "print(json.dumps(same))",
        ],
        env=clean_env({"KERASGPU_BACKEND": "none"}),
        timeout=300,
    )
    cpu = cells[1].json["devices"][0]
    assert cpu["error"] is None and cpu["in_place"] is True and cpu["step_time_s"] > 0
    # it trained with the model's own train function, as the user's next fit would: not traced again
    # (a GAN's traced step can take longer than the budget); weights and Adam's state put back exactly
    assert json.loads(cells[2].stdout) == {"new_traces": 0, "same": True, "fn": True}


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

    fake = types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: "torch"))
    monkeypatch.setitem(sys.modules, "keras", fake)
    for call in (lambda: estimate(object(), None), lambda: find_batch_size(object(), None)):
        with pytest.raises(KerasGPUError) as err:
            call()
        assert err.value.code == "backend" and "runs on torch" in err.value.problem
        assert "KERAS_BACKEND=tensorflow or jax" in err.value.fix


def test_a_model_that_cannot_be_copied_is_timed_where_it_lives_and_says_so_elsewhere():
    # Two logical CPUs stand in for a GPU machine's CPU and GPU: the model's weights are on the first.
    cells = run_cells(
        [
            "import tensorflow as tf, numpy as np, keras, json\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "class Net(keras.Model):  # subclassed, no get_config()\n"
            "    def __init__(self, units):\n"
            "        super().__init__()\n"
            "        self.a = keras.layers.Dense(units); self.b = keras.layers.Dense(1)\n"
            "    def call(self, x):\n"
            "        return self.b(self.a(x))\n"
            "with tf.device('/CPU:0'):\n"
            "    m = Net(16); m.compile('adam', 'mse')\n"
            "    x = np.random.rand(128, 4).astype('float32'); y = np.random.rand(128, 1).astype('float32')\n"
            "    m.fit(x, y, epochs=1, verbose=0)",
            "from kerasgpu.kernel.train.estimate import estimate\n"
            "r = estimate(m, x, y, devices_=['/CPU:0', '/CPU:1'])\n"
            "print(json.dumps([(d['device'], d['in_place'], d['error']) for d in r['devices']]))",
            "%gpu_batch_size m x y --json",
        ],
        env=clean_env({"KERASGPU_BACKEND": "none"}),
        timeout=300,
    )
    (home, home_in_place, home_err), (other, other_in_place, other_err) = json.loads(cells[1].stdout)
    assert (home, home_in_place, home_err) == ("/CPU:0", True, None)
    assert other == "/CPU:1" and other_in_place is False
    assert other_err == (
        "Net is a subclassed keras.Model without get_config(): it cannot be copied to /CPU:1, "
        "and is measured only on /CPU:0, where its weights are."
    )
    assert cells[2].json["status"] == "no_gpu"  # no GPU: nothing runs, copy or not


# ---------------------------------------------------------------- every input fit takes (issue 20)

INPUTS = """
import json, time, numpy as np, keras, tensorflow as tf
rng = np.random.default_rng(0)
xa = rng.random((640, 16), dtype="float32"); xb = rng.random((640, 4), dtype="float32")
y = rng.integers(0, 3, 640)
ia, ib = keras.Input((16,), name="a"), keras.Input((4,), name="b")
two = keras.Model([ia, ib], keras.layers.Dense(3)(keras.layers.concatenate([ia, ib])))
two.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
one = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
one.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

class Batches(keras.utils.Sequence):  # keras-io's pattern: a Sequence of (x, y) batches
    def __init__(self, x, y, batch_size=32, **kw):
        super().__init__(**kw)
        self.x, self.y, self.batch_size = x, y, batch_size
    def __len__(self):
        return len(self.x) // self.batch_size
    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]

train_seq, val_seq = Batches(xa[:512], y[:512]), Batches(xa[512:], y[512:])
def batches(n=None):
    i = 0
    while n is None or i < n:
        k = (i * 32) % 640
        yield xa[k:k + 32], y[k:k + 32]
        i += 1
train_gen, val_gen = batches(), batches()
ds = tf.data.Dataset.from_tensor_slices((xa, y)).batch(32)
filtered = ds.filter(lambda a, b: True)  # unknown cardinality
"""


@pytest.fixture(scope="module")
def inputs():
    return run_cells(
        [
            INPUTS,
            "%gpu_watch on",
            "%gpu_estimate two [xa, xb] y --epochs 2 --json",  # 2: a list expression
            "%gpu_estimate two {'a': xa, 'b': xb} y --batch-size 64 --validation-split 0.25 --json",
            "%gpu_estimate one train_seq --epochs 3 --validation-data val_seq --json",  # 4: Sequence
            "%gpu_estimate one train_gen --epochs 2",  # 5: a generator, its length unknown
            "%gpu_estimate one train_gen --epochs 2 --steps-per-epoch 20 --validation-data val_gen "
            "--validation-steps 4 --json",
            "%gpu_estimate one filtered",  # 7
            "%gpu_estimate one filtered --steps-per-epoch 20 --validation-data ds.take(3) --json",
            "%gpu_batch_size one train_seq --json",  # 9: no GPU here: refuses cleanly
            "from kerasgpu.kernel.train import watch\n"
            "print(json.dumps({'last': watch.last_monitor() is None, 'seq_batches': len(train_seq)}))",
            "%gpu_estimate one val_gen",  # 11: one expression that fit does not take as x
            "%gpu_estimate one [xa, xb_typo] y",
        ],
        env=clean_env({"KERASGPU_BACKEND": "none"}),
        timeout=600,
    )


def test_the_magics_take_python_expressions_for_several_inputs(inputs):
    res = inputs[2].json
    assert res["input_kind"] == "arrays" and res["steps_per_epoch"] == 20  # 640 / 32
    assert res["devices"][0]["error"] is None and res["devices"][0]["total_s"] > 0
    res = inputs[3].json  # a dict of inputs, split as fit splits it: 480 train, 160 validate
    assert res["steps_per_epoch"] == 8 and res["validation_steps"] == 3
    assert res["devices"][0]["val_epoch_s"] > 0
    assert "No variable named 'xb_typo'" in inputs[12].text


def test_a_sequence_and_its_validation_sequence(inputs):
    res = inputs[4].json
    assert res["input_kind"] == "pydataset" and res["steps_per_epoch"] == 16  # its own __len__
    assert res["validation_steps"] == 4 and "keras.utils.PyDataset of 16 batches" in res["input"]
    d = res["devices"][0]
    assert d["error"] is None and d["val_step_s"] > 0 and d["timed_epochs"] >= 2
    # the user's Sequence is read, never changed
    assert json.loads(inputs[10].stdout)["seq_batches"] == 16


def test_a_generator_needs_steps_per_epoch_and_then_is_estimated(inputs):
    text = inputs[5].text
    # the user's own expression, not fit's parameter name
    assert "train_gen is a generator, whose length cannot be known" in text and "--steps-per-epoch N" in text
    assert "setting an array element" not in text
    res = inputs[6].json
    assert res["input_kind"] == "generator" and res["steps_per_epoch"] == 20 and res["validation_steps"] == 4
    assert "8 batches taken from it and reused" in res["input"]
    assert res["devices"][0]["error"] is None and res["devices"][0]["val_epoch_s"] > 0
    # what it cannot measure in its budget is said: the teardown stall of fit's one iterator over train_gen
    assert (
        len(res["not_counted"]) == 1
        and "train_gen is read through one input iterator" in res["not_counted"][0]
    )
    assert (
        inputs[4].json["not_counted"] == []
    )  # a Sequence: a new iterator each epoch, timed at the boundaries


def test_a_dataset_of_unknown_length(inputs):
    assert "a tf.data.Dataset of unknown length" in inputs[7].text and "--steps-per-epoch" in inputs[7].text
    res = inputs[8].json
    assert res["steps_per_epoch"] == 20 and res["validation_steps"] == 3
    assert res["devices"][0]["error"] is None


def test_the_finder_refuses_cleanly_without_a_gpu(inputs):
    assert inputs[9].json["status"] == "no_gpu" and inputs[9].json["tries"] == []


def test_the_tools_own_fits_show_no_monitor_card_and_leave_no_monitor(inputs):
    # %gpu_watch is on: the user's fits get a card; the estimate's and finder's fits never do
    for cell in inputs[2:10]:
        assert "Training" not in cell.text and "Trained" not in cell.text, cell.text[:300]
        assert "kerasgpu-training" not in cell.html
    assert json.loads(inputs[10].stdout)["last"] is True  # no monitor ever ran: nothing for the panel


def test_a_generator_given_alone_asks_for_its_steps_and_the_cell_does_not_fail(inputs):
    assert inputs[11].error is None and "--steps-per-epoch N" in inputs[11].text
    assert "val_gen is a generator" in inputs[11].text


# ---------------------------------------------------------------- bounded cost (issue 20)

SLOW = """
import json, time, numpy as np, keras, tensorflow as tf

class Slow(keras.layers.Layer):
    # each training step waits 0.5 s in the graph (like a GAN step of seconds), using no CPU
    def call(self, x):
        y = tf.numpy_function(lambda a: (time.sleep(0.5), a)[1], [x], tf.float32)
        return tf.ensure_shape(y, x.shape)

slow = keras.Sequential([keras.Input((8,)), Slow(), keras.layers.Dense(1)])
slow.compile("adam", "mse")
xs = np.random.rand(320, 8).astype("float32"); ys = np.random.rand(320, 1).astype("float32")
asked = time.time()
"""


@pytest.fixture(scope="module")
def slow_cells():
    return run_cells(
        [
            SLOW,
            "%gpu_estimate slow xs ys --epochs 3 --batch-size 8 --budget 6 --deadline 2min --json",
            "print(json.dumps({'asked': asked}))",
            # a budget the first (traced) step alone overruns: 0.5 s of sleep in it
            "%gpu_estimate slow xs ys --epochs 3 --batch-size 8 --budget 0.5",
            "%gpu_estimate slow xs ys --epochs 3 --batch-size 8 --budget 0.5 --json",
        ],
        env=clean_env({"KERASGPU_BACKEND": "none"}),
        timeout=300,
    )


def test_a_slow_step_model_is_answered_within_its_budget_and_its_clock_time_is_taken_after(slow_cells):
    cells = slow_cells
    res = cells[1].json
    d = res["devices"][0]
    assert d["error"] is None
    # 3 epochs x 40 steps at 0.5 s: 60 s, told in 6 s (its wall time against the budget: the bench's)
    assert res["budget_s"] == 6
    assert d["step_time_s"] == pytest.approx(0.5, rel=0.15)
    assert d["total_s"] == pytest.approx(60, rel=0.15)
    assert any("no timed fit" in m for m in d["measured"]), d["measured"]
    # the answer's clock is read after measuring, not when the command started
    asked = json.loads(cells[2].stdout)["asked"]
    assert res["answered_at"] - asked >= res["wall_s"] - 0.5
    assert "meets the 2 min deadline" in res["line"]


def test_a_budget_the_traced_step_overruns_says_so_and_gives_a_bound_from_that_step(slow_cells):
    res = slow_cells[4].json
    d = res["devices"][0]
    # it stopped after the first step: no warm step timed, and nothing invented in their place
    assert d["error"] is None and d["upper_bound"] and d["timed_steps"] == 0
    assert d["step_time_s"] == d["first_step_s"] >= 0.5  # the measured first step, its sleep included
    assert d["total_s"] >= 3 * 40 * d["first_step_s"]  # every step at that time: at least the true 60 s
    assert "only the first step" in d["measured"][-1] and "--budget" in d["measured"][-1]
    card = slow_cells[3].text
    assert (
        "CPU ~" in card
        and " or less" in card
        and "no warm step was timed" in card
        and "For a full estimate: --budget" in card
    )


def test_the_budget_is_never_more_than_a_tenth_of_a_run_of_minutes():
    from kerasgpu.kernel.train.estimate import budget_for

    assert budget_for(20, 3600) == 20  # a run of an hour: the budget
    assert budget_for(600, 3600) == 360  # ... a tenth of it at most
    assert budget_for(60, 30) == 18  # a short run: a tenth of a few minutes
    assert budget_for(20, None) == 20

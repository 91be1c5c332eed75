"""`%gpu_batch_size` and `%gpu_estimate` on Keras 3 with the JAX backend, in an environment without
TensorFlow (make test-jax builds it: scripts/jax_env.sh). On the CPU: a real XLA RESOURCE_EXHAUSTED
under an address-space limit, grow then bisect, recovery (JAX's live arrays back to where they were),
the user's model untouched, the magics in a real IPython. On a real GPU (`gpu`): the search for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="needs JAX: make test-jax runs these in their own environment")

KERNEL_TESTS = Path(__file__).resolve().parents[1] / "kernel"
sys.path.insert(0, str(KERNEL_TESTS))
from kgpu_testlib import clean_env, run_cells  # noqa: E402

JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


def _child(script: Path, args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert "@@RESULT@@" in proc.stdout, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    return json.loads(proc.stdout.split("@@RESULT@@", 1)[1])


@pytest.fixture(scope="module")
def cpu_search():
    """The TensorFlow tests' child (the same model and limit), run on JAX."""
    return _child(KERNEL_TESTS / "batch_size_child.py", ["400", "--untimed"], clean_env(JAX))


def test_no_gpu_says_jax_sees_none_and_how_to_get_one(cpu_search):
    r = cpu_search["no_gpu"]
    assert r["status"] == "no_gpu" and r["tries"] == [] and r["backend"] == "jax"
    assert r["message"].startswith("No GPU is visible to JAX")
    assert 'pip install -U "jax[cuda12]"' in r["fix"]


def test_grows_then_bisects_on_a_real_xla_out_of_memory(cpu_search):
    r = cpu_search["found"]
    assert r["backend"] == "jax" and r["device"] == "/CPU:0"
    tries = r["tries"]
    sizes = [t["batch_size"] for t in tries]
    first_oom = next(i for i, t in enumerate(tries) if not t["fits"])
    assert sizes[: first_oom + 1] == [256 * 2**i for i in range(first_oom + 1)]
    # XLA's error, raised when the step's result is read (JAX dispatches asynchronously)
    assert tries[first_oom]["error"] == "JaxRuntimeError: out of memory"
    assert r["largest"] < r["first_failing"] <= sizes[first_oom]
    assert r["first_failing"] - r["largest"] <= max(1, r["largest"] // 16)
    assert all(t["fits"] == (t["batch_size"] <= r["largest"]) for t in tries)
    assert all(t["samples_per_s"] > 0 for t in tries if t["fits"])
    assert cpu_search["suggested_trains"] is True  # the batch it suggests does train a step
    assert r["suggested"] % 8 == 0 and 0.85 * r["largest"] < r["suggested"] <= 0.9 * r["largest"]


def test_an_out_of_memory_of_the_last_step_is_not_missed(cpu_search):
    # JAX returns before the step has run: a try with no timed steps must still wait for its one step
    r = cpu_search["untimed"]
    fail = 4 * next(t["batch_size"] for t in cpu_search["found"]["tries"] if not t["fits"])
    assert (r["tries"][0]["batch_size"], r["tries"][0]["fits"]) == (fail, False)
    assert r["largest"] < fail and all(t["samples_per_s"] is None for t in r["tries"])


def test_every_out_of_memory_leaves_nothing_behind(cpu_search):
    tries = cpu_search["found"]["tries"]
    ooms = [t for t in tries if not t["fits"]]
    # the bytes of JAX's live arrays on the device are back to what they were before the try
    # (within 1 MiB; the copy of the model alone holds 4 MiB)
    assert ooms and all(t["memory_back"] is True for t in ooms), ooms
    assert all(t["memory_after"] - t["memory_before"] < 1024 for t in ooms), ooms
    assert cpu_search["found"]["memory_back_after_oom"] is True
    assert any(t["fits"] for t in tries[tries.index(ooms[0]) :])  # and a smaller batch trains after it


def test_the_users_model_is_untouched(cpu_search):
    assert cpu_search["weights_unchanged"] is True
    assert cpu_search["optimizer_steps_during_search"] == 0


def test_a_model_that_cannot_be_copied_is_searched_in_place_and_put_back():
    r = _child(KERNEL_TESTS / "batch_size_child.py", ["400", "--subclassed"], clean_env(JAX))
    found = r["found"]
    assert found["in_place"] is True and any(not t["fits"] for t in found["tries"])
    assert all(t["memory_back"] is True for t in found["tries"] if not t["fits"]), found["tries"]
    assert r["suggested_trains"] is True
    assert r["weights_unchanged"] is True and r["optimizer_kept"] is True
    assert r["optimizer_steps_during_search"] == 0


def test_magics_in_a_jax_kernel_without_tensorflow():
    cells = run_cells(
        [
            "import numpy as np, keras\n"
            "x = np.random.rand(256, 8).astype('float32'); y = np.zeros((256, 1), 'float32')\n"
            "m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])\n"
            "m.compile('sgd', 'mse'); w = [a.copy() for a in m.get_weights()]",
            "%gpu_batch_size m x y",
            "%gpu_estimate m x y --epochs 40 --deadline 36h --json",
            "import sys; print(keras.backend.backend(), 'tensorflow' in sys.modules,"
            " all((a == b).all() for a, b in zip(w, m.get_weights())))",
        ],
        env=clean_env(JAX),
        timeout=300,
    )
    assert "No GPU is visible to JAX" in cells[1].text and "jax[cuda12]" in cells[1].text
    est = cells[2].json
    assert [d["label"] for d in est["devices"]] == ["CPU"] and est["devices"][0]["error"] is None
    assert est["devices"][0]["step_time_s"] > 0 and est["meets"] == ["CPU"]
    assert est["line"].startswith("CPU ~") and "36 h deadline" in est["line"]
    assert cells[3].stdout.split() == ["jax", "False", "True"]


@pytest.mark.gpu
def test_finds_the_batch_size_on_a_real_gpu():
    """Keras 3 on JAX, on the GPU: JAX may hold 10 % of it; the search runs into that and recovers."""
    env = clean_env({"KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.10"})
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("JAX_PLATFORMS", None)
    out = _child(Path(__file__).resolve().parent / "gpu_child.py", [], env)
    r = out["found"]
    print(json.dumps({k: v for k, v in out.items() if k != "found"}))
    for t in r["tries"]:
        print(
            t["batch_size"], t["fits"], t["samples_per_s"], t["error"], t["memory_before"], t["memory_after"]
        )
    assert r["status"] == "ok" and r["device"] == "/GPU:0" and r["gpu_name"].startswith("NVIDIA")
    assert r["memory_limit"] and r["largest"] and r["first_failing"], r
    assert r["largest"] < r["first_failing"]
    ooms = [t for t in r["tries"] if not t["fits"]]
    assert ooms and all("out of memory" in t["error"] for t in ooms)
    assert all(t["memory_back"] is True for t in ooms), ooms  # XLA's bytes_in_use back to the start
    assert out["memory_after_search"] <= out["memory_before_search"] + 2**20  # a few cached scalars
    assert out["weights_unchanged"] is True and out["optimizer_steps_during_search"] == 0


def test_a_model_that_cannot_be_copied_is_measured_in_place_and_put_back():
    cells = run_cells(
        [
            "import json, numpy as np, keras\n"
            "class Net(keras.Model):  # subclassed, no get_config(): clone_model cannot copy it\n"
            "    def __init__(self, units):\n"
            "        super().__init__()\n"
            "        self.a = keras.layers.Dense(units, activation='relu'); self.b = keras.layers.Dense(1)\n"
            "    def call(self, x):\n"
            "        return self.b(self.a(x))\n"
            "m = Net(32); m.compile('adam', 'mse')\n"
            "x = np.random.rand(256, 8).astype('float32'); y = np.random.rand(256, 1).astype('float32')\n"
            "m.fit(x, y, epochs=1, verbose=0)\n"
            "w = [np.array(v.numpy()) for v in m.variables]; opt = m.optimizer\n"
            "steps = int(opt.iterations.numpy()); fn = m.train_function",
            "from kerasgpu.kernel.train.batch_size import find_batch_size\n"
            "r = find_batch_size(m, x, y, device='/CPU:0', start=8, max_batch=32, timing_steps=1,\n"
            "                    budget=600)\n"
            "print(json.dumps({k: r[k] for k in ('in_place', 'largest', 'tries')}))",
            "%gpu_estimate m x y --epochs 2 --json",
            "print(json.dumps([all((a == np.array(v.numpy())).all() for a, v in zip(w, m.variables)),"
            " m.optimizer is opt, int(opt.iterations.numpy()) == steps, m.train_function is fn]))",
            "h = m.fit(x, y, epochs=1, verbose=0)\n"
            "print(json.dumps([int(opt.iterations.numpy()) - steps,"
            " bool(np.isfinite(h.history['loss'][0]))]))",
        ],
        env=clean_env(JAX),
        timeout=300,
    )
    found = json.loads(cells[1].stdout)
    assert found["in_place"] is True and found["largest"] == 32
    assert all(t["fits"] and t["samples_per_s"] > 0 for t in found["tries"])
    est = cells[2].json["devices"][0]
    assert est["in_place"] is True and est["error"] is None and est["step_time_s"] > 0
    assert json.loads(cells[3].stdout) == [True, True, True, True]  # weights, optimizer, its steps, train fn
    assert json.loads(cells[4].stdout) == [8, True]  # the user's next fit: their optimizer, 8 steps


def test_in_place_keeps_the_weights_on_their_device_and_times_steps_not_dispatch():
    # two CPU devices stand in for a GPU machine's CPU and GPU; the model lives on the second
    env = clean_env({**JAX, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    cells = run_cells(
        [
            "import json, numpy as np, jax, keras\n"
            "class Net(keras.Model):\n"
            "    def __init__(self):\n"
            "        super().__init__(); self.a = keras.layers.Dense(8); self.b = keras.layers.Dense(1)\n"
            "    def call(self, x):\n"
            "        return self.b(self.a(x))\n"
            "cpu1 = jax.devices('cpu')[1]\n"
            "with jax.default_device(cpu1):\n"
            "    m = Net(); m.compile('adam', 'mse')\n"
            "    x = np.random.rand(64, 4).astype('float32'); y = np.random.rand(64, 1).astype('float32')\n"
            "    m.fit(x, y, epochs=1, verbose=0)\n"
            "where = lambda: sorted({str(next(iter(v.value.devices()))) for v in m.variables})\n"
            "print(json.dumps(where()))",
            "from kerasgpu.kernel.train.estimate import estimate, _Clock\n"
            "r = estimate(m, x, y, devices_=['/CPU:1'])\n"
            "from keras.src.callbacks.callback_list import CallbackList\n"
            "print(json.dumps([r['devices'][0]['in_place'], r['devices'][0]['error'], where(),"
            " CallbackList([_Clock().cb])._async_train]))",
        ],
        env=env,
        timeout=300,
    )
    before = json.loads(cells[0].stdout)
    in_place, error, after, async_train = json.loads(cells[1].stdout)
    assert len(before) == 1 and before[0].endswith("1"), before  # e.g. "cpu:1"
    assert in_place is True and error is None
    assert after == before  # put back where they were, not on JAX's default device
    # the estimate's clock makes Keras run batch ends in step: it times steps, not their dispatch
    assert async_train is False

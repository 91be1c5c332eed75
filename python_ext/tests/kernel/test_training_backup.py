"""%gpu_watch --backup: a kernel killed mid-fit resumes from its last checkpoint in a new kernel (real Jupyter
kernels via jupyter_client, real TensorFlow CPU)."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from jupyter_client.manager import KernelManager
from kgpu_testlib import clean_env

CELL = """
%load_ext kerasgpu
%gpu_watch on --no-card --backup {backup} --max-loss 0.2s
import json, time, numpy as np, keras, tensorflow as tf
from kerasgpu.kernel.train import watch
keras.utils.set_random_seed(0)
x = np.random.rand(640, 8).astype("float32"); y = np.random.rand(640, 1).astype("float32")
def slow(a, b):
    time.sleep(0.02)
    return a, b
def slow_map(a, b):
    a2, b2 = tf.py_function(slow, [a, b], [tf.float32, tf.float32])
    a2.set_shape(a.shape); b2.set_shape(b.shape)
    return a2, b2
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(slow_map)
m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
m.compile("sgd", "mse")
h = m.fit(ds, epochs=6, verbose=0)
p = watch.last_monitor().progress
print("@@" + json.dumps({{"epochs_run": h.epoch, "resumed": p.resumed, "every": p.checkpoint_every}}))
"""


def _kernel(env):
    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def test_a_kernel_killed_mid_fit_resumes_in_a_new_kernel(tmp_path):
    env = clean_env({"KERASGPU_BACKEND": "none", "KERASGPU_RUNS_DB": str(tmp_path / "runs.sqlite")})
    backup = tmp_path / "backup"
    km, kc = _kernel(env)
    try:
        kc.execute(CELL.format(backup=backup))
        deadline = time.time() + 240
        meta = None
        while time.time() < deadline:  # until a checkpoint after the first epoch exists
            found = list(backup.glob("*/training_metadata.json"))
            if found:
                try:
                    if json.loads(found[0].read_text())["epoch"] >= 2:
                        meta = found[0]
                        break
                except (ValueError, KeyError):
                    pass
            time.sleep(0.1)
        assert meta is not None, "no checkpoint written during the fit"
        km.signal_kernel(signal.SIGKILL)  # the kernel dies mid-fit, as on a restart or a preemption
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    saved_epoch = json.loads(Path(meta).read_text())["epoch"]
    assert saved_epoch < 6
    km, kc = _kernel(env)
    try:
        out = []
        reply = kc.execute_interactive(
            CELL.format(backup=backup),
            timeout=300,
            output_hook=lambda msg: out.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        km.shutdown_kernel(now=True)
        kc.stop_channels()
    line = next(s for s in "".join(out).splitlines() if s.startswith("@@"))
    result = json.loads(line[2:])
    # the new kernel's fit started at the checkpoint's epoch, not at 0, and said so
    assert result["epochs_run"][0] >= saved_epoch >= 2 and result["epochs_run"][-1] == 5
    assert result["resumed"]["epoch"] >= 2 and result["every"] >= 1
    assert not list(backup.glob("*/training_metadata.json"))  # a finished fit removes its backup

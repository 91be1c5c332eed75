"""`%gpu_watch` and TrainingMonitor around real Keras `fit` runs (CPU TensorFlow), with the real
H200 trace replayed through the test nvidia-smi as the GPU this kernel trains on."""

from __future__ import annotations

import json
import os
import re
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from kgpu_testlib import TWO_CPUS, clean_env, run_cells

FAKE_SMI_DIR = Path(__file__).resolve().parents[1] / "fake_nvidia_smi"

SETUP = """
import os, json, numpy as np, keras
from kerasgpu.kernel.train import watch
from kerasgpu.kernel.train.monitor import comm as _comm
sent = []  # every message the card's comm sends (what the panel's training card reads), as sent
_publish = _comm.publish
def _record(data):
    sent.append(json.loads(json.dumps(data)))
    return _publish(data)
_comm.publish = _record
rng = np.random.default_rng(0)
x = rng.random((4096, 64), dtype="float32"); y = rng.random((4096, 1), dtype="float32")
import time, tensorflow as tf
def slow(a, b):  # a slow CPU input pipeline: 4 ms a batch (sleeps, so the shared CPU stays free)
    time.sleep(0.004)
    return a, b
def slow_map(a, b):
    a2, b2 = tf.py_function(slow, [a, b], [tf.float32, tf.float32])
    a2.set_shape(a.shape); b2.set_shape(b.shape)
    return a2, b2
data = tf.data.Dataset.from_tensor_slices((x[:2048], y[:2048])).batch(8).map(slow_map)
def make():
    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                          keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
    m.compile("adam", "mse")
    return m
def fit_under(state, procs, gpus=1, epochs=3):
    os.environ["FAKE_NVIDIA_SMI_STATE"] = state
    os.environ["FAKE_NVIDIA_SMI_GPUS"] = str(gpus)
    os.environ["FAKE_NVIDIA_SMI_PROCS"] = procs
    m = make()
    m.fit(data, epochs=epochs, verbose=0)
    mon = watch.last_monitor()
    return {"findings": mon.findings, "progress": mon.progress.to_json(),
            "epoch_findings": mon.epoch_findings,
            "sent": [d for d in sent if d["fit_id"] == mon.progress.fit_id]}
OWN = f"{os.getpid()}:20000@0"
"""


def _env() -> dict:
    path = [str(FAKE_SMI_DIR), os.path.dirname(sys.executable), os.environ["PATH"]]
    return clean_env(
        {
            "PATH": os.pathsep.join(path),
            "KERASGPU_BACKEND": "smi",
            "KERASGPU_WATCH_INTERVAL_MS": "100",
            "FAKE_NVIDIA_SMI_STATE_FILE": "",
        }
    )


@pytest.fixture(scope="module")
def runs():
    cells = [
        SETUP,
        "%gpu_watch on",
        "print(json.dumps(fit_under('trace:starving', OWN)))",
        "print(json.dumps(fit_under('trace:healthy', OWN)))",
        "print(json.dumps(fit_under('trace:healthy', OWN, gpus=2, epochs=1)))",
        "print(json.dumps(fit_under('trace', '')))",  # the trace's process is not this kernel
        "%gpu_watch off",
        "print(json.dumps({'own_fit': 'fit' not in keras.Model.__dict__, 'status': watch.status()}))",
        # 8-9: a model built in mixed precision, the global policy set back after: it trains mixed
        "%gpu_watch on",
        "keras.config.set_dtype_policy('mixed_bfloat16'); mixed = make()\n"
        "keras.config.set_dtype_policy('float32')\n"
        "os.environ.update(FAKE_NVIDIA_SMI_STATE='trace:healthy', FAKE_NVIDIA_SMI_GPUS='1')\n"
        "os.environ['FAKE_NVIDIA_SMI_PROCS'] = OWN\n"
        "mixed.fit(data, epochs=1, verbose=0); mon = watch.last_monitor()\n"
        "print(json.dumps({'findings': mon.findings, 'precision': mon.receipt['dtype_policy']}))",
    ]
    return run_cells(cells, env=_env(), timeout=600)


def _codes(result: dict) -> list[str]:
    return [f["code"] for f in result["findings"]]


def test_watch_on_shows_a_live_card_for_every_fit(runs):
    on = runs[1]
    assert "Every Keras fit in this kernel" in on.text
    starving = runs[2]
    # one display, then updates of it: the card's text has progress, speed, ETA and the GPU
    texts = [o.get("text/plain", "") for o in starving.outputs]
    htmls = [o.get("text/html", "") for o in starving.outputs]
    assert any("kerasgpu-training" in h for h in htmls)
    assert any("ETA" in t and "samples/s" in t and "GPU 0 busy" in t for t in texts)
    assert "Trained: epoch 3/3" in texts[-1]


def test_starving_trace_finds_the_input_pipeline(runs):
    result = json.loads(runs[2].stdout)
    assert result["findings"][0]["code"] == "input_starving"
    f = result["findings"][0]
    assert 20 <= f["data"]["util_mean_pct"] <= 45
    assert "prefetch(tf.data.AUTOTUNE)" in f["fix"]
    p = result["progress"]
    assert p["status"] == "done" and p["progress"] == 1.0 and p["steps"] == 256 and p["epochs"] == 3
    assert p["device"] == "gpu" and p["gpus"] == [0]
    assert p["step_time_s"] > 0 and p["samples_per_s"] == pytest.approx(8 / p["step_time_s"])
    # findings at the end of each epoch too
    assert len(result["epoch_findings"]) == 3
    assert any("input_starving" in [f["code"] for f in ep] for ep in result["epoch_findings"])


def _panel_pct(value: float) -> str:
    """The panel's Math.round(value) (src/models/training.ts)."""
    return str(Decimal(value).quantize(Decimal(1), ROUND_HALF_UP))


def _panel_ms(seconds: float) -> str:
    """The panel's (seconds * 1000).toFixed(1) (src/models/training.ts)."""
    return str(Decimal(seconds * 1000).quantize(Decimal("0.1"), ROUND_HALF_UP))


def test_the_cards_numbers_and_its_findings_come_from_one_window(runs):
    """Every update the card sends: the GPU's busy %, the step time and the input wait its findings quote
    are the numbers its headline shows (the same window, written the same way), live and at the end."""
    sent = json.loads(runs[2].stdout)["sent"]
    checked = set()
    for msg in sent:
        for f in msg["findings"]:
            for busy in re.findall(r"busy (\d+) %", f["evidence"]):
                assert busy == _panel_pct(msg["gpu_util_pct"]), (msg["status"], f["evidence"])
                checked.add(("busy", msg["status"]))
            for step in re.findall(r"\(([\d.]+) ms a step\)|of its ([\d.]+) ms", f["evidence"]):
                assert "".join(step) == _panel_ms(msg["step_time_s"]), (msg["status"], f["evidence"])
                checked.add(("step", msg["status"]))
            for wait in re.findall(r"waits (\d+) % of its time", f["evidence"]):
                assert wait == _panel_pct(msg["input_share"] * 100), (msg["status"], f["evidence"])
                checked.add(("wait", msg["status"]))
    # not vacuous: the starving finding quoted all three while running and at the end
    assert {(k, s) for k in ("busy", "step", "wait") for s in ("running", "done")} <= checked, checked
    # the notebook's own card says the same as the panel's
    last = [o.get("text/plain", "") for o in runs[2].outputs][-1]
    head = re.search(r"GPU 0 busy (\d+) %", last).group(1)
    assert f"busy {head} % on average" in last and head == _panel_pct(sent[-1]["gpu_util_pct"])


def test_healthy_trace_is_not_starving_but_has_room_for_a_larger_batch(runs):
    result = json.loads(runs[3].stdout)
    codes = _codes(result)
    assert "input_starving" not in codes
    assert "memory_unused" in codes and "mixed_precision_off" in codes
    mem = next(f for f in result["findings"] if f["code"] == "memory_unused")
    assert mem["data"]["suggested_batch_size"] == 8 * mem["data"]["factor"]


def test_one_of_two_gpus_without_strategy(runs):
    result = json.loads(runs[4].stdout)
    f = next(f for f in result["findings"] if f["code"] == "gpus_unused")
    assert f["data"] == {"used": 1, "available": 2}


def test_cpu_build_on_a_gpu_machine_says_why(runs):
    result = json.loads(runs[5].stdout)
    assert result["progress"]["device"] == "cpu"
    f = result["findings"][0]
    assert f["code"] == "cpu_fit_with_gpu" and f["data"]["reason"] == "cpu_only_build"
    assert "tensorflow[and-cuda]" in f["fix"]


def test_a_model_built_in_mixed_precision_is_not_told_to_use_it(runs):
    """The precision is the model's own: the global policy set back to float32 after the model was built
    in mixed_bfloat16 does not make the finding ask for what the model already does."""
    result = json.loads(runs[9].stdout)
    assert result["precision"] == "mixed_bfloat16"
    codes = [f["code"] for f in result["findings"]]
    assert "mixed_precision_off" not in codes and "memory_unused" in codes  # the same healthy trace


def test_watch_off_puts_keras_fit_back(runs):
    assert "unmonitored" in runs[6].text
    assert json.loads(runs[7].stdout) == {
        "own_fit": True,
        "status": {"on": False, "options": {"display": True}},
    }


SCRIPT = """
import numpy as np, keras
from kerasgpu import TrainingMonitor
x = np.random.rand(512, 8).astype("float32"); y = np.random.rand(512, 1).astype("float32")
m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
m.compile("sgd", "mse")
m.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[TrainingMonitor(batch_size=32)])
"""


def test_plain_text_in_a_terminal():
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=clean_env({"KERASGPU_BACKEND": "none"}),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("Training:", "Trained:"))]
    # one line per epoch, then the end; no HTML
    assert [ln.split("  ")[0] for ln in lines] == [
        "Training: epoch 1/2",
        "Training: epoch 2/2",
        "Trained: epoch 2/2",
    ]
    assert "samples/s" in lines[-1] and "on CPU" in lines[-1] and "<div" not in proc.stdout


def test_idle_gpus_with_the_notebooks_strategy_already_set_say_so():
    """%gpu_distribute set a strategy, but the model was built before it: the strategy guard trains it
    with no strategy current, and the finding says the strategy is set (not "run %gpu_distribute"); a
    model built under it leaves no GPU idle and no finding."""
    fit = (
        "os.environ.update(FAKE_NVIDIA_SMI_STATE='trace:healthy', FAKE_NVIDIA_SMI_GPUS='2', "
        "FAKE_NVIDIA_SMI_PROCS=OWN)\n"
        "{0}.fit(data, epochs=1, verbose=0)\n"
        "print(json.dumps(watch.last_monitor().findings))"
    )
    cells = run_cells(
        [
            TWO_CPUS,
            SETUP,
            "outside = make()",
            "%gpu_distribute",
            "%gpu_watch on --no-card",
            fit.format("outside"),
            "inside = make()\n" + fit.format("inside"),
        ],
        env=_env(),
        timeout=600,
    )
    assert all(c.error is None for c in cells), [c.error for c in cells]
    idle = next(f for f in json.loads(cells[5].stdout) if f["code"] == "gpus_unused")
    assert "already set (2 replicas)" in idle["fix"] and "build and compile the model again" in idle["fix"]
    assert "run %gpu_distribute in a cell" not in idle["fix"]
    assert "gpus_unused" not in [f["code"] for f in json.loads(cells[6].stdout)]

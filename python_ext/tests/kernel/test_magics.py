"""The magics in a real IPython shell with real tensorflow-cpu, on a machine without a GPU.

Each session runs in its own process: TensorFlow's runtime can't be
un-initialised, and "it stays uninitialised" is what several tests check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from IPython.utils.capture import capture_output
from kgpu_testlib import PYTHON_EXT, clean_env, run_cells


def no_smi_env(**extra) -> dict:
    env = clean_env(extra)
    env["PATH"] = os.pathsep.join(
        d for d in env["PATH"].split(os.pathsep) if d and not os.path.exists(os.path.join(d, "nvidia-smi"))
    )
    env["KERASGPU_BACKEND"] = "smi"
    return env


# ---------------------------------------------------------------- in-process, no TensorFlow


def test_loading_twice_is_harmless(shell):
    before = len(shell.events.callbacks["post_run_cell"])
    shell.run_line_magic("reload_ext", "kerasgpu")
    from kerasgpu.kernel.magics import load_ipython_extension

    load_ipython_extension(shell)
    assert len(shell.events.callbacks["post_run_cell"]) == before
    assert shell.find_line_magic("gpu_check") is not None


def test_unload_removes_magics_and_hook():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kerasgpu")
    ip.run_line_magic("unload_ext", "kerasgpu")
    assert ip.find_line_magic("gpu_check") is None
    assert ip.find_cell_magic("distribute") is None


@pytest.mark.parametrize(
    ("magic", "kind", "says"),
    [
        ("gpu_check", "line", "--deep"),
        ("gpu_memory", "line", "{growth,nogrowth,limit,status}"),
        ("gpu_mem", "line", "reset"),
        ("gpu_visible", "line", "'all' or 'none'"),
        ("tf_placement", "line", "{on,off}"),
        ("mixed_precision", "line", "mixed_float16"),
        ("tf_log", "line", "DEBUG"),
        ("distribute", "cell", "--per-replica-batch"),
        ("gpu_doctor", "line", "--auto"),
        ("gpu_doctor", "cell", "--auto"),
    ],
)
def test_every_magic_has_help(shell, magic, kind, says):
    with capture_output() as cap:
        shell.run_cell(f"%{'%' if kind == 'cell' else ''}{magic}?")
    assert says in cap.stdout
    assert f"%{magic} [" in cap.stdout  # magic_arguments' usage line


def test_package_import_stays_light():
    code = textwrap.dedent(
        """
        import sys, kerasgpu
        from kerasgpu import check, match_errors, set_memory_growth
        heavy = sorted(m for m in ("tensorflow", "keras", "IPython", "jax", "torch") if m in sys.modules)
        print(",".join(heavy) or "none", check.__module__, match_errors.__module__)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["none", "kerasgpu.kernel.checks", "kerasgpu.core.known_errors"]


# ---------------------------------------------------------------- a CPU kernel, runtime never started


CPU_CELLS = [
    "%gpu_check --json",  # 0
    "%gpu_check",  # 1
    "%gpu_memory status --json",  # 2
    "%gpu_visible none --json",  # 3
    "%mixed_precision mixed_float16 --json",  # 4
    "%tf_log ERROR --json",  # 5
    "%gpu_mem --json",  # 6
    "%tf_placement on --json",  # 7
    # 8: what the user does next must still work: change visible devices and split the CPU.
    textwrap.dedent(
        """
        import tensorflow as tf
        from kerasgpu import runtime_initialized
        before = runtime_initialized()
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_visible_devices([], "CPU")
        tf.config.set_visible_devices(cpus, "CPU")
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
        print(before, len(tf.config.list_logical_devices("CPU")), runtime_initialized())
        """
    ),
    "%gpu_memory growth",  # 9
    "%gpu_memory growth --json",  # 10
    "%gpu_check --json",  # 11
    "%gpu_mem --json",  # 12
    # 13: a real TensorFlow error, then the doctor on it
    "tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 3)",
    "%gpu_doctor --json",  # 14
    "%gpu_doctor --auto on",  # 15
    "x = tf.zeros((2**40,))",  # 16: a real ResourceExhaustedError from TensorFlow
    "%gpu_doctor --auto off",  # 17
    "y = tf.zeros((2**40,))",  # 18
]


@pytest.fixture(scope="module")
def cpu_session():
    return run_cells(CPU_CELLS, env=no_smi_env())


def test_gpu_check_json_reports_no_gpu_and_why(cpu_session):
    report = cpu_session[0].json
    v = report["verdict"]
    assert v["status"] == "no_gpu" and v["device"] == "CPU" and v["gpu_count"] == 0
    assert report["driver"]["status"]["code"] == "smi_not_found"
    first, second = v["problems"][0], v["problems"][1]
    assert first["code"] == "driver_library_missing" and "nvidia-smi was not found" in first["problem"]
    assert report["cuda"]["libcuda"]["loaded"] is False  # asked with ctypes, TensorFlow not started
    assert second["code"] == "cpu_only_wheel" and second["severity"] == "blocking"
    assert '%pip install "tensorflow[and-cuda]==2.21.0"' in second["commands"]
    tf = report["tensorflow"]
    assert tf["version"] == "2.21.0" and tf["built_with_cuda"] is False
    assert tf["build_info"]["is_cuda_build"] is False
    assert tf["physical_gpus"] == []
    assert report["keras"]["backend"] == "tensorflow" and report["keras"]["version"].startswith("3.")
    assert report["runtime_initialized"] is False and report["runtime_initialized_after"] is False


def test_gpu_check_leaves_the_runtime_open_for_the_next_cell(cpu_session):
    assert cpu_session[8].error is None, cpu_session[8].error
    assert cpu_session[8].stdout.split() == ["False", "2", "True"]


def test_gpu_check_card_has_html_and_plain_text(cpu_session):
    cell = cpu_session[1]
    assert cell.stdout == ""
    assert cell.text.startswith("GPU check: [XX] TensorFlow in this notebook sees no GPU: no NVIDIA driver")
    assert "Fix, in this order:" in cell.text and '%pip install "tensorflow[and-cuda]==2.21.0"' in cell.text
    assert 'class="kerasgpu-card kerasgpu-error"' in cell.html
    assert "tensorflow[and-cuda]" in cell.html and "<table" in cell.html


def test_settings_before_the_runtime_starts(cpu_session):
    status = cpu_session[2].json
    assert status["gpus"] == [] and status["can_change"] is True
    visible = cpu_session[3].json
    assert visible["visible"] == [] and visible["runtime_initialized"] is False
    mp = cpu_session[4].json
    assert mp["policy"] == "mixed_float16"
    assert [f["code"] for f in mp["fixes"]] == ["no_gpu", "float32_output"]
    log = cpu_session[5].json
    assert log["python_level"] == "ERROR" and log["tf_cpp_min_log_level"] == "2"
    assert cpu_session[6].json["summary"].startswith("TensorFlow hasn't started")
    assert cpu_session[7].json["log_device_placement"] is True


def test_gpu_memory_growth_after_start_is_explained(cpu_session):
    card = cpu_session[9]
    assert card.error is None
    assert "already initialised" in card.text
    assert "Restart the kernel" in card.text and "TF_FORCE_GPU_ALLOW_GROWTH=true" in card.text
    assert "Traceback" not in card.text
    err = cpu_session[10].json
    assert err["ok"] is False and err["error"]["code"] == "runtime_initialized"


def test_gpu_check_after_start_says_settings_are_frozen(cpu_session):
    report = cpu_session[11].json
    assert report["runtime_initialized"] is True
    assert "runtime_initialized" in [p["code"] for p in report["verdict"]["problems"]]
    assert cpu_session[12].json["summary"] == "TensorFlow runs without a GPU (no GPU memory to report)."


def test_doctor_explains_a_real_tensorflow_error(cpu_session):
    assert "cannot be modified after being initialized" in cpu_session[13].error
    found = cpu_session[14].json["matches"]
    assert found[0]["code"] == "runtime_initialized"


def test_doctor_offers_itself_only_when_turned_on(cpu_session):
    assert cpu_session[16].error.startswith("ResourceExhaustedError")
    offered = [o for o in cpu_session[16].outputs if "GPU doctor" in o.get("text/plain", "")]
    assert len(offered) == 1
    # The failed allocation was on CPU:0: the doctor says so instead of blaming a GPU.
    assert "Out of memory on the CPU (ResourceExhaustedError)" in offered[0]["text/plain"]
    assert cpu_session[18].error.startswith("ResourceExhaustedError")
    assert not [o for o in cpu_session[18].outputs if "GPU doctor" in o.get("text/plain", "")]


# ---------------------------------------------------------------- --deep starts the runtime on purpose


def test_gpu_check_deep_runs_a_matmul_and_reports_where():
    (cell,) = run_cells(["%gpu_check --deep --json"], env=no_smi_env())
    report = cell.json
    deep = report["deep_check"]
    assert [d["device_type"] for d in deep["local_devices"]] == ["CPU"]
    assert deep["matmul"]["ran_on"].endswith("device:CPU:0") and deep["matmul"]["on_gpu"] is False
    assert deep["memory"] == {}
    assert report["runtime_initialized"] is False and report["runtime_initialized_after"] is True


# ---------------------------------------------------------------- the replayed H200 and a CPU-only TensorFlow


def test_gpu_check_with_the_h200_replay_says_the_wheel_is_the_problem(fake_smi):
    env = clean_env()
    cells = run_cells(["%gpu_check --json", "%gpu_mem --json"], env=env)
    report = cells[0].json
    assert [d["name"] for d in report["driver"]["devices"]] == ["NVIDIA H200"]
    v = report["verdict"]
    assert v["status"] == "gpu_not_used" and v["device"] == "CPU"
    # No libcuda.so.1 on this machine (the replay is only nvidia-smi): named first, then the build.
    assert [p["code"] for p in v["problems"][:2]] == ["driver_library_missing", "cpu_only_wheel"]
    assert "nvidia-smi sees 1 GPU (NVIDIA H200)" in v["problems"][0]["problem"]
    assert v["problems"][1]["level"] == "error"
    mem = cells[1].json
    assert mem["driver"]["status"]["state"] == "ok"
    assert mem["driver"]["this_process_mib"] == {}


# ---------------------------------------------------------------- %%distribute trains on the CPU


TRAIN = textwrap.dedent(
    """
    %%distribute --per-replica-batch 8
    import numpy as np, keras
    x = np.random.rand(64, 4).astype("float32"); y = (x.sum(axis=1) > 2).astype("float32")
    layers = [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, batch_size=GLOBAL_BATCH_SIZE, epochs=1, verbose=0)
    """
).lstrip()


def test_distribute_trains_a_keras_model_for_one_epoch():
    cells = run_cells(
        [
            TRAIN,
            "print(type(strategy).__name__, GLOBAL_BATCH_SIZE, len(history.history['loss']), "
            "bool(np.isfinite(history.history['loss'][0])))",
            "%%distribute --strategy onedevice -q\nprint(strategy.extended.worker_devices)",
            "%%distribute --strategy multiworker\nprint('ran')",
        ],
        env=no_smi_env(),
    )
    card = cells[0]
    assert card.error is None, card.error
    # One CPU and no %gpu_distribute: the notebook's strategy is TensorFlow's default one.
    assert "Default strategy (no distribution) with 1 replica(s)" in card.text
    assert "GLOBAL_BATCH_SIZE = 8 x 1 = 8" in card.text
    assert cells[1].stdout.split() == ["_DefaultDistributionStrategy", "8", "1", "True"]
    assert "CPU:0" in cells[2].stdout and cells[2].outputs == []
    assert "TF_CONFIG is not set" in cells[3].text and "ran" not in cells[3].stdout.splitlines()
    assert cells[3].error  # the cell fails: Run All stops there


def test_distribute_multiworker_reports_a_bad_tf_config():
    bad = json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}})
    (cell,) = run_cells(["%%distribute --strategy multiworker\nprint('ran')"], env=no_smi_env(TF_CONFIG=bad))
    assert "task index 3 is out of range" in cell.text and "ran" not in cell.stdout.splitlines()
    assert cell.error


assert PYTHON_EXT.name == "python_ext"

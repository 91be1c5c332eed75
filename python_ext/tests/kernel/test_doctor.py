"""%gpu_doctor against real TensorFlow error logs from GitHub issues (fixtures/doctor/)."""

from __future__ import annotations

import json

import pytest
from IPython.utils.capture import capture_output
from kerasgpu import match_errors as diagnose
from kgpu_testlib import DOCTOR_FIXTURES


def _load(path):
    header, body, in_header = {}, [], True
    for line in path.read_text(encoding="utf-8").splitlines():
        if in_header and line.startswith("# "):
            key, _, value = line[2:].partition(":")
            header[key.strip()] = value.strip()
        else:
            in_header = False
            body.append(line)
    return header, "\n".join(body)


LOGS = sorted(DOCTOR_FIXTURES.glob("*.txt"))


def test_every_known_failure_has_a_real_log():
    from kerasgpu.core.known_errors import KNOWN

    expected = {_load(p)[0]["expect"] for p in LOGS}
    # (The driver and CUDA-library failures are kerasgpu.core.diagnosis's, with their own logs below.)
    assert {k.code for k in KNOWN} - expected == set()


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_real_log_gets_the_right_diagnosis(path):
    header, log = _load(path)
    assert header["source"].startswith(("https://github.com/", "captured from TensorFlow 2.21"))
    found = diagnose(log)
    assert found, f"nothing matched {path.name}"
    first = found[0]
    assert first["code"] == header["expect"]
    assert first["fix"] and first["link"].startswith("https://")
    assert first["evidence"].removesuffix("...") in log


def test_details_name_what_is_missing_or_mismatched():
    _, log = _load(DOCTOR_FIXTURES / "cudnn_mismatch_tf2x_xla.txt")
    assert diagnose(log)[0]["details"] == {"loaded_cudnn": "9.1.0", "built_with_cudnn": "9.3.0"}
    _, log = _load(DOCTOR_FIXTURES / "dlopen_nvjitlink.txt")
    assert diagnose(log)[0]["details"]["missing_libraries"] == ["libcusolver.so.11", "libnvJitLink.so.12"]
    _, log = _load(DOCTOR_FIXTURES / "windows_cudart_tf29.txt")
    assert diagnose(log)[0]["details"]["missing_libraries"] == ["cudart64_110.dll"]
    _, log = _load(DOCTOR_FIXTURES / "oom_tf1_bfc.txt")
    assert diagnose(log)[0]["details"] == {"device": "GPU:0"}


def test_unrelated_error_matches_nothing():
    assert diagnose("ValueError: Input 0 of layer dense is incompatible with the layer") == []


def test_cell_magic_shows_the_diagnosis_as_card_and_json(shell):
    _, log = _load(DOCTOR_FIXTURES / "runtime_initialized_tf20_windows.txt")
    with capture_output() as cap:
        shell.run_cell("%%gpu_doctor\n" + log)
    data = cap.outputs[0].data
    assert "Device settings changed after TensorFlow started" in data["text/plain"]
    assert "TF_FORCE_GPU_ALLOW_GROWTH" in data["text/plain"]
    assert "kerasgpu-card" in data["text/html"]
    with capture_output() as cap:
        shell.run_cell("%%gpu_doctor --json\n" + log)
    out = json.loads(cap.stdout)
    assert out["source"] == "log"
    assert out["matches"][0]["code"] == "runtime_initialized"


def test_line_magic_diagnoses_the_last_exception(shell):
    shell.run_cell("raise ValueError('shapes (3,) and (4,) not aligned')")
    with capture_output() as cap:
        shell.run_cell("%gpu_doctor --json")
    out = json.loads(cap.stdout)
    assert out["source"] == "exception" and out["matches"] == []


# ---------------------------------------------------------------- TensorFlow 2.21's own lines
# (captured by the CUDA-build tier, python_ext/tests/cuda, from the real `tensorflow` and
# `tensorflow[and-cuda]` wheels)

TF221 = sorted(DOCTOR_FIXTURES.glob("tf221_*.txt"))


@pytest.mark.parametrize("path", TF221, ids=[p.stem for p in TF221])
def test_tensorflow_2_21_logs_name_every_cause_in_order(path):
    header, log = _load(path)
    found = diagnose(log)
    assert [f["code"] for f in found] == header["codes"].split(", ")
    driver = found[0]
    assert driver["code"] == "driver_library_missing"
    assert "pip can't install libcuda.so.1" in driver["cause"]
    assert not any("pip" in c for c in driver["commands"]) and "--gpus all" in driver["fix"]
    if "missing_cuda_libraries" in header["codes"]:
        # "Could not find cuda drivers" is printed when libcudart is missing: the wheels are named too.
        wheels = found[1]
        assert "Could not find cuda drivers on your machine" in wheels["evidence"]
        assert "libcudart" in wheels["cause"] and wheels["commands"] == [
            '%pip install "tensorflow[and-cuda]"'
        ]


def test_tensorflow_2_21_lines_each_read_right():
    from kerasgpu.core.diagnosis import parse_log

    _, log = _load(DOCTOR_FIXTURES / "tf221_cuda_build_without_wheels_vlog1.txt")
    facts = parse_log(log)
    assert facts["libcuda_error"].startswith("libcuda.so.1: cannot open shared object file")
    assert facts["cu_init"] == {"code": 303, "name": "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED"}
    assert facts["cudart_stub"] and facts["no_kernel_driver"]
    assert facts["missing_libraries"] == []  # libcuda.so.1 is the driver's, not a CUDA wheel's
    # Without TF_CPP_MAX_VLOG_LEVEL only cuInit's 303 tells that libcuda.so.1 did not load.
    _, log = _load(DOCTOR_FIXTURES / "tf221_and_cuda_without_driver.txt")
    [only] = diagnose(log)
    assert only["code"] == "driver_library_missing" and "UNKNOWN ERROR (303)" in only["evidence"]
    # An older TensorFlow's cuInit error with a real driver and no GPU is another cause.
    other = diagnose(
        "E cuda_driver.cc:282] failed call to cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device"
    )
    assert [f["code"] for f in other] == ["no_cuda_device"]


def test_the_doctor_adds_what_blocks_this_kernel(shell):
    # This kernel: tensorflow-cpu and no NVIDIA driver; the log says nothing about either.
    with capture_output() as cap:
        shell.run_cell("%%gpu_doctor --json\nW0000 some_file.cc:1] nothing about GPUs here")
    out = json.loads(cap.stdout)
    assert out["matches"] == []
    assert [k["code"] for k in out["kernel"]] == ["driver_library_missing", "cpu_only_wheel"]
    assert out["cause"] == "driver_library_missing"


# ---------------------------------------------------------------- training errors that are not the GPU's
# Provoked in a real IPython with real TensorFlow (CPU): a shape, a label and a dtype bug. Each gets a
# calm card: not a GPU problem, the user's line, what it means in Keras, fixes in the user's names,
# and the GPU state (here: no driver) as one collapsed line, never as the fix.

PROVOKE = [
    "import numpy as np, keras\n"
    "x_train = np.random.rand(64, 28, 28).astype('float32'); labels = np.random.randint(0, 10, 64)\n"
    "net = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation='softmax')])\n"
    "net.compile('adam', 'sparse_categorical_crossentropy')\n"
    "clf = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),\n"
    "                        keras.layers.Dense(10, activation='softmax')])\n"
    "clf.compile('adam', 'sparse_categorical_crossentropy')",
    "print('training')\nnet.fit(x_train, labels, epochs=1,\n        verbose=0)",  # 1: shape
    "%gpu_doctor --json",
    "%gpu_doctor",
    "ids = labels + 5\nclf.fit(x_train, ids, epochs=1, verbose=0)",  # 4: labels out of range
    "%gpu_doctor --json",
    "words = np.array(['cat'] * 64)\nclf.fit(x_train, words, epochs=1, verbose=0)",  # 6: dtype
    "%gpu_doctor --json",
]


@pytest.fixture(scope="module")
def provoked():
    from kgpu_testlib import clean_env, run_cells

    pytest.importorskip("tensorflow")
    return run_cells(PROVOKE, env=clean_env({"KERASGPU_BACKEND": "none"}), timeout=300)


def test_a_shape_bug_is_not_a_gpu_problem_and_names_the_users_line(provoked):
    assert provoked[1].error and "incompatible shape" in provoked[1].error
    out = provoked[2].json
    assert out["not_gpu"] is True and out["matches"] == [] and out["cause"] is None
    assert out["level"] == "info"  # calm, not a red card
    assert out["summary"].startswith("Not a GPU problem: data of the wrong shape")
    assert (out["user_cell"], out["user_lineno"]) == ("In [2]", 2)
    assert out["user_line"] == "net.fit(x_train, labels, epochs=1,"
    assert out["explanation"]["details"] == {"expected": "(None, 784)", "found": "(32, 28, 28)"}
    # fixes in the user's own names, and none of them a driver fix
    [fix] = out["fixes"]
    assert fix["commands"] == ["print(x_train.shape, net.input_shape)", "net.summary()"]
    assert "driver" not in json.dumps(out["fixes"]).lower()
    # the GPU state stays in the card, as one line that opens on demand
    card = provoked[3]
    assert "<details" in card.html and "GPU</b>: No NVIDIA driver here" in card.html
    assert "GPU: No NVIDIA driver here" in card.text and "(not what failed here" in card.text


def test_labels_out_of_range_for_sparse_categorical_crossentropy(provoked):
    out = provoked[5].json
    assert out["not_gpu"] is True and out["explanation"]["code"] == "labels_out_of_range"
    assert out["explanation"]["details"]["classes"] == 10 and out["explanation"]["details"]["label"] >= 10
    assert out["user_line"] == "clf.fit(x_train, ids, epochs=1, verbose=0)"
    assert out["fixes"][0]["commands"] == ["print(ids.min(), ids.max())", "clf.output_shape"]


def test_wrong_dtype(provoked):
    out = provoked[7].json
    assert out["explanation"]["code"] == "wrong_dtype" and out["explanation"]["details"]["dtype"].startswith(
        "str"
    )
    assert out["user_line"] == "clf.fit(x_train, words, epochs=1, verbose=0)"
    assert 'x_train = np.asarray(x_train, dtype="float32")' in out["fixes"][0]["commands"]


def test_fix_texts_name_no_other_examples_variables():
    from kerasgpu.core.known_errors import KNOWN

    # the generic fixes once named the keras-io VAE's and other examples' own variables
    text = json.dumps([k.commands for k in KNOWN] + [k.fix for k in KNOWN])
    for foreign in ("self.decoder", "self.encoder", "z_mean", "x_train", "img_array", "val_ds", "maxlen"):
        assert foreign not in text, foreign


def test_a_pasted_traceback_gives_the_users_line_and_names():
    from kerasgpu.kernel.doctor import report

    log = (
        "---------------------------------------------------------------------------\n"
        "ValueError                                Traceback (most recent call last)\n"
        "Cell In[7], line 3\n"
        "      1 model = make_model()\n"
        "      2 model.compile('adam', 'categorical_crossentropy')\n"
        "----> 3 model.fit(features, targets, epochs=3)\n"
        "ValueError: Arguments `target` and `output` must have the same rank (ndim). "
        "Received: target.shape=(32,), output.shape=(32, 10)\n"
    )
    card = report(log, "log", facts={})
    data = card.to_json()
    assert data["not_gpu"] is True and data["user_line"] == "model.fit(features, targets, epochs=3)"
    assert data["explanation"]["details"] == {"target_shape": "(32,)", "output_shape": "(32, 10)"}
    assert data["fixes"][0]["commands"][0] == "print(targets.shape, model.output_shape)"

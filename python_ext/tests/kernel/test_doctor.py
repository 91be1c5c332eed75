"""%gpu_doctor against real TensorFlow error logs from GitHub issues (fixtures/doctor/)."""

from __future__ import annotations

import json

import pytest
from IPython.utils.capture import capture_output
from kerasgpu import diagnose
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
    from kerasgpu.kernel.doctor import KNOWN

    expected = {_load(p)[0]["expect"] for p in LOGS}
    # (The driver and CUDA-library failures are kerasgpu.diagnosis's, with their own logs below.)
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
    from kerasgpu.diagnosis import parse_log

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

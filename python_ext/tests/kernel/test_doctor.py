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
    # driver_too_old and no_cuda_device have no fixture yet; every other failure the issue names does.
    assert {k.code for k in KNOWN} - expected == {"driver_too_old", "no_cuda_device"}


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_real_log_gets_the_right_diagnosis(path):
    header, log = _load(path)
    assert header["source"].startswith("https://github.com/")
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
    assert "GPU settings changed after TensorFlow started" in data["text/plain"]
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

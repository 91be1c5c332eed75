"""The verdict's rules, fed with the facts `gather()` collects (plain data, as in `check(json=True)`)."""

from __future__ import annotations

import copy

import pytest
from kerasgpu import arch_support, verdict

H200 = {
    "index": 0,
    "uuid": "GPU-1",
    "name": "NVIDIA H200",
    "memory_total_mib": 143771.0,
    "driver_version": "580.159.04",
    "cuda_driver_version": "13.0",
    "compute_capability": "9.0",
}
CUDA_TF = {
    "installed": True,
    "distributions": {"tensorflow": "2.21.0"},
    "nvidia_wheels": {"nvidia-cudnn-cu12": "9.3.0.75"},
    "version": "2.21.0",
    "error": None,
    "built_with_cuda": True,
    "cuda_version": "12.5.1",
    "cudnn_version": "9",
    "compute_capabilities": ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"],
    "physical_gpus": [
        {
            "index": 0,
            "name": "/physical_device:GPU:0",
            "device_name": "NVIDIA H200",
            "compute_capability": "9.0",
            "visible": True,
        }
    ],
}
GOOD = {
    "platform": {"system": "Linux", "release": "6.8", "cuda_visible_devices": None},
    "driver": {"status": {"state": "ok", "backend": "nvml", "code": "ok"}, "devices": [H200]},
    "tensorflow": CUDA_TF,
    "keras": {"installed": True, "backend": "tensorflow"},
    "runtime_initialized": False,
}


def facts(**changes):
    f = copy.deepcopy(GOOD)
    for path, value in changes.items():
        node = f
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return f


def codes(v):
    return [p["code"] for p in v["problems"]]


@pytest.mark.parametrize(
    ("cc", "build", "expected"),
    [
        ("9.0", ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"], "ptx"),
        ("8.6", ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"], "native"),
        ("5.2", ["sm_60", "sm_70", "sm_80", "compute_90"], "missing"),
        ("12.0", ["sm_60", "sm_90a", "sm_100"], "missing"),
        ("10.0", ["sm_90", "sm_100"], "native"),
        ("9.0", ["sm_90a"], "native"),
        ("7.5", ["3.5", "5.2", "6.1", "7.0"], "native"),
        ("9.0", [], None),
        (None, ["sm_80"], None),
    ],
)
def test_arch_support(cc, build, expected):
    assert arch_support(cc, build) == expected


def test_ready_gpu_with_ptx_only_arch_is_ready_with_a_warning():
    v = verdict(facts())
    assert v["status"] == "gpu_ready" and v["device"] == "GPU"
    assert "NVIDIA H200" in v["summary"]
    assert codes(v) == ["arch_ptx_jit"]


def test_cpu_wheel_on_a_gpu_machine_says_install_and_cuda():
    tf = copy.deepcopy(CUDA_TF) | {
        "built_with_cuda": False,
        "distributions": {"tensorflow-cpu": "2.21.0"},
        "physical_gpus": [],
        "compute_capabilities": [],
    }
    v = verdict(facts(tensorflow=tf))
    assert v["status"] == "gpu_not_used" and v["device"] == "CPU"
    assert codes(v)[0] == "cpu_only_wheel"
    assert v["problems"][0]["commands"] == [
        "pip uninstall -y tensorflow-cpu",
        'pip install "tensorflow[and-cuda]"',
    ]


def test_deprecated_tensorflow_gpu_package():
    v = verdict(facts(tensorflow__distributions={"tensorflow-gpu": "2.10.1", "tensorflow": "2.10.1"}))
    assert codes(v)[0] == "tensorflow_gpu_package"
    assert "pip uninstall -y tensorflow-gpu" in v["problems"][0]["commands"]


def test_native_windows_after_2_10():
    v = verdict(facts(platform__system="Windows", tensorflow__physical_gpus=[]))
    assert "windows_native" in codes(v)
    assert v["status"] == "gpu_not_used"
    assert any("WSL2" in p["fix"] for p in v["problems"])
    ok_210 = verdict(facts(platform__system="Windows", tensorflow__version="2.10.1"))
    assert "windows_native" not in codes(ok_210)


def test_gpu_missing_from_the_build():
    old = dict(H200, name="Tesla M60", compute_capability="5.2")
    tf_gpu = dict(CUDA_TF["physical_gpus"][0], device_name="Tesla M60", compute_capability="5.2")
    v = verdict(facts(driver__devices=[old], tensorflow__physical_gpus=[tf_gpu]))
    assert v["status"] == "gpu_problem"
    p = v["problems"][0]
    assert p["code"] == "arch_missing" and "5.2" in p["problem"] and "sm_60" in p["problem"]


def test_driver_too_old_for_the_build_cuda():
    old = dict(H200, driver_version="470.82.01", cuda_driver_version="11.4")
    v = verdict(facts(driver__devices=[old], tensorflow__physical_gpus=[]))
    p = v["problems"][0]
    assert p["code"] == "driver_too_old"
    assert "525.60.13" in p["fix"] and "11.4" in p["problem"] and "12.5.1" in p["problem"]


def test_driver_sees_gpus_but_tensorflow_does_not():
    v = verdict(facts(tensorflow__physical_gpus=[], tensorflow__nvidia_wheels={}))
    assert v["status"] == "gpu_not_used"
    errors = [p for p in v["problems"] if p["level"] == "error"]
    assert [p["code"] for p in errors] == ["tf_sees_no_gpu"]
    assert "no nvidia-* CUDA wheels" in errors[0]["problem"]
    hidden = verdict(facts(tensorflow__physical_gpus=[], platform__cuda_visible_devices="-1"))
    assert "cuda_visible_devices" in codes(hidden) and "tf_sees_no_gpu" not in codes(hidden)


def test_runtime_already_started_is_reported_without_failing():
    v = verdict(facts(runtime_initialized=True))
    assert v["status"] == "gpu_ready"
    assert "runtime_initialized" in codes(v)


def test_keras_on_jax_uses_jax_devices():
    f = facts(tensorflow={"installed": False, "distributions": {}, "physical_gpus": []})
    f["keras"] = {"installed": True, "backend": "jax", "backend_check": {"framework": "jax", "gpu_count": 1}}
    v = verdict(f)
    assert v["status"] == "gpu_ready" and v["framework"] == "jax"
    f["keras"]["backend_check"]["gpu_count"] = None
    assert verdict(f)["status"] == "unknown"

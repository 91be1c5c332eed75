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
        "%pip uninstall -y tensorflow-cpu",
        '%pip install "tensorflow[and-cuda]==2.21.0"',
    ]


def test_deprecated_tensorflow_gpu_package():
    v = verdict(facts(tensorflow__distributions={"tensorflow-gpu": "2.10.1", "tensorflow": "2.10.1"}))
    assert codes(v)[0] == "tensorflow_gpu_package"
    assert "%pip uninstall -y tensorflow-gpu" in v["problems"][0]["commands"]


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
    v = verdict(facts(tensorflow__physical_gpus=[], cuda=cuda_facts()))
    assert v["status"] == "gpu_not_used"
    errors = [p for p in v["problems"] if p["level"] == "error"]
    assert [p["code"] for p in errors] == ["tf_sees_no_gpu"]
    assert "libcuda.so.1 and the CUDA wheels load" in errors[0]["problem"]
    assert "%%gpu_doctor" in errors[0]["fix"]
    hidden = verdict(facts(tensorflow__physical_gpus=[], platform__cuda_visible_devices="-1"))
    assert "cuda_visible_devices" in codes(hidden) and "tf_sees_no_gpu" not in codes(hidden)


# ---------------------------------------------------------------- libcuda.so.1, cuInit and the CUDA wheels

AND_CUDA_WHEELS = [
    "nvidia-cublas-cu12",
    "nvidia-cuda-cupti-cu12",
    "nvidia-cuda-nvcc-cu12",
    "nvidia-cuda-nvrtc-cu12",
    "nvidia-cuda-runtime-cu12",
    "nvidia-cudnn-cu12",
    "nvidia-cufft-cu12",
    "nvidia-curand-cu12",
    "nvidia-cusolver-cu12",
    "nvidia-cusparse-cu12",
    "nvidia-nccl-cu12",
    "nvidia-nvjitlink-cu12",
]
NO_SO = "libcuda.so.1: cannot open shared object file: No such file or directory"


def cuda_facts(libcuda=True, wheels=True, cu_init=0, **extra):
    """What `cudafacts.gather_cuda` returns (shapes as gathered with TF 2.21 and its wheels)."""
    f = {
        "system": "linux",
        "libcuda": {
            "loaded": libcuda,
            "path": "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04" if libcuda else None,
            "error": None if libcuda else NO_SO,
            "on_disk": [],
        },
        "cu_init": {"code": cu_init, "name": "CUDA_SUCCESS" if cu_init == 0 else "?"} if libcuda else None,
        "driver_cuda_version": "13.0" if libcuda else None,
        "device_count": 1 if libcuda and cu_init == 0 else None,
        "dev_nodes": ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"] if libcuda else [],
        "proc_driver_version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04"
        if libcuda
        else None,
        "tf_distribution": {"name": "tensorflow", "version": "2.21.0"},
        "and_cuda": AND_CUDA_WHEELS,
        "wheels": {w: {"version": "12.9", "libs": {"lib.so.12": None}} for w in AND_CUDA_WHEELS}
        if wheels
        else {},
        "system_libs": {} if wheels else {w: {"soname": "x", "error": "not found"} for w in AND_CUDA_WHEELS},
        "cuda_visible_devices": None,
        "ld_library_path": None,
    }
    f.update(extra)
    return f


def blocking(v):
    return [p["code"] for p in v["problems"] if p["severity"] == "blocking"]


def test_a_working_stack_has_only_the_ptx_note():
    v = verdict(facts(cuda=cuda_facts()))
    assert v["status"] == "gpu_ready" and codes(v) == ["arch_ptx_jit"]
    assert v["problems"][0]["severity"] == "info" and v["problems"][0]["fix"].startswith("Fine to use")


def test_tensorflow_without_wheels_and_without_libcuda_names_both_driver_first():
    v = verdict(facts(tensorflow__physical_gpus=[], cuda=cuda_facts(libcuda=False, wheels=False)))
    assert blocking(v) == ["driver_library_missing", "missing_cuda_libraries"]
    driver, wheels = v["problems"][:2]
    assert "pip can't install libcuda.so.1" in driver["problem"]
    assert "nvidia-smi sees 1 GPU (NVIDIA H200)" in driver["problem"]
    assert not any("pip install" in c for c in driver["commands"])
    assert "--gpus all" in driver["fix"] and "ldconfig" in driver["fix"]
    assert wheels["commands"] == ['%pip install "tensorflow[and-cuda]==2.21.0"']
    assert "None of the 12 CUDA wheels" in wheels["problem"]
    # The PTX note comes after every blocking cause, and the summary names the first one, once.
    assert codes(v)[-1] == "arch_ptx_jit"
    assert v["summary"] == (
        "The driver sees 1 GPU but TensorFlow can't use it, so training will run on the CPU. "
        "The NVIDIA driver's library libcuda.so.1 does not load in this process."
    )
    assert v["cause"] == "driver_library_missing"


def test_all_wheels_without_libcuda_blames_only_the_driver_library():
    v = verdict(facts(tensorflow__physical_gpus=[], cuda=cuda_facts(libcuda=False)))
    assert blocking(v) == ["driver_library_missing"]
    assert not any("pip install" in c for p in v["problems"] for c in p["commands"])


def test_a_library_that_needs_libcuda_is_not_a_broken_wheel():
    cuda = cuda_facts(libcuda=False)
    cuda["wheels"]["nvidia-cudnn-cu12"]["libs"]["libcudnn_engines_runtime_compiled.so.9"] = NO_SO
    assert blocking(verdict(facts(tensorflow__physical_gpus=[], cuda=cuda))) == ["driver_library_missing"]
    cuda["wheels"]["nvidia-cublas-cu12"]["libs"]["libcublasLt.so.12"] = (
        "libcublasLt.so.12: invalid ELF header"
    )
    v = verdict(facts(tensorflow__physical_gpus=[], cuda=cuda))
    assert blocking(v) == ["driver_library_missing", "cuda_library_broken"]
    assert "invalid ELF header" in v["problems"][1]["problem"]


def test_no_driver_at_all_says_a_driver_alone_is_not_enough():
    no_smi = {
        "state": "error",
        "backend": "none",
        "code": "smi_not_found",
        "reason": "nvidia-smi was not found.",
    }
    v = verdict(
        facts(
            driver={"status": no_smi, "devices": []},
            tensorflow__physical_gpus=[],
            cuda=cuda_facts(libcuda=False, wheels=False),
        )
    )
    assert v["status"] == "no_gpu"
    assert blocking(v) == ["driver_library_missing", "missing_cuda_libraries"]
    assert v["problems"][0]["title"].startswith("No NVIDIA driver here")
    assert "a driver alone is not enough" in v["problems"][1]["fix"]
    assert ".)." not in v["summary"] and v["summary"].count("GPU") == 1


def test_a_system_cuda_stands_in_for_missing_wheels():
    cuda = cuda_facts(wheels=False)
    cuda["system_libs"] = {w: {"soname": "x", "error": None} for w in AND_CUDA_WHEELS}
    assert "missing_cuda_libraries" not in codes(verdict(facts(cuda=cuda)))


@pytest.mark.parametrize(
    ("cu_init", "cvd", "code"),
    [
        (100, "", "cuda_visible_devices"),
        (100, None, "no_cuda_device"),
        (34, None, "driver_stub_library"),
        (803, None, "driver_mismatch"),
        (999, None, "cuinit_failed"),
    ],
)
def test_what_cuinit_answered_names_the_cause(cu_init, cvd, code):
    v = verdict(
        facts(
            tensorflow__physical_gpus=[],
            platform__cuda_visible_devices=cvd,
            cuda=cuda_facts(cu_init=cu_init, cuda_visible_devices=cvd),
        )
    )
    assert blocking(v)[0] == code
    assert f"cuInit(0) returned {cu_init}" in v["problems"][0]["problem"]


def test_libcuda_on_disk_but_not_on_the_loader_path_says_ldconfig():
    cuda = cuda_facts(libcuda=False)
    cuda["libcuda"]["on_disk"] = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1"]
    p = verdict(facts(tensorflow__physical_gpus=[], cuda=cuda))["problems"][0]
    assert p["code"] == "driver_library_missing"
    assert "sudo ldconfig" in p["fix"] and "/usr/lib/x86_64-linux-gnu" in p["fix"]


def test_the_driver_cuda_comes_from_libcuda_when_it_loads():
    v = verdict(facts(tensorflow__physical_gpus=[], cuda=cuda_facts(driver_cuda_version="11.8")))
    p = v["problems"][0]
    assert p["code"] == "driver_too_old" and "CUDA 11.8" in p["problem"] and "525.60.13" in p["fix"]


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


def _every_fault():
    no_smi = {
        "state": "error",
        "backend": "none",
        "code": "smi_not_found",
        "reason": "nvidia-smi was not found.",
    }
    yield facts(tensorflow__physical_gpus=[], cuda=cuda_facts(libcuda=False, wheels=False))
    yield facts(tensorflow__physical_gpus=[], cuda=cuda_facts(libcuda=False))
    yield facts(
        driver={"status": no_smi, "devices": []},
        tensorflow__physical_gpus=[],
        cuda=cuda_facts(libcuda=False, wheels=False),
    )
    on_disk = cuda_facts(libcuda=False)
    on_disk["libcuda"]["on_disk"] = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1"]
    yield facts(tensorflow__physical_gpus=[], cuda=on_disk)
    for cu_init, cvd in ((100, ""), (100, None), (34, None), (803, None), (999, None)):
        yield facts(
            tensorflow__physical_gpus=[],
            platform__cuda_visible_devices=cvd,
            cuda=cuda_facts(cu_init=cu_init, cuda_visible_devices=cvd),
        )


def test_every_fix_command_runs_in_a_notebook_cell():
    """The fixes are shown as code to copy into the notebook: a magic or a `!` line, never a command
    for a terminal or a host (`docker run ...` is said in the fix's words, where it belongs)."""
    seen = 0
    for f in _every_fault():
        v = verdict(f)
        for c in v["fix_commands"] + [c for p in v["problems"] for c in p["commands"]]:
            seen += 1
            assert c[:1] in ("%", "!"), f"{c!r} does not run in a notebook cell ({blocking(v)})"
    assert seen > 10

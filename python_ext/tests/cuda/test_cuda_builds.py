"""The real CUDA builds of TensorFlow 2.21 on a machine without a GPU driver, with and without the H200
nvidia-smi replay: `%gpu_check`, `%gpu_check --deep`, the server's probe and `%gpu_doctor` (on the log
TensorFlow prints) name the same causes in the same order, each with a fix that works.

Environments (scripts/cuda_venvs.sh, from a wheel folder outside the clone):
  .venv-cuda/tf        `tensorflow` 2.21.0, the CUDA build, without the nvidia-*-cu12 wheels
  .venv-cuda/and-cuda  `tensorflow[and-cuda]` 2.21.0: the same plus all 12 CUDA runtime wheels
  .venv (this one)     `tensorflow-cpu` 2.21.0, the CPU-only build
None of them has libcuda.so.1 (the driver's library): this machine has no NVIDIA driver.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cuda_build

TESTS = Path(__file__).resolve().parents[1]
VENVS = Path(os.environ.get("KERASGPU_CUDA_VENVS") or TESTS.parents[1] / ".venv-cuda")
RUNNER = TESTS / "kernel" / "ipython_runner.py"
FIXTURES = TESTS / "kernel" / "fixtures" / "doctor"
WHEELS = Path(os.environ.get("KERASGPU_WHEEL_CACHE") or Path.home() / ".cache" / "kerasgpu" / "wheels")
AND_CUDA = '%pip install "tensorflow[and-cuda]==2.21.0"'

# What each environment must be told, blocking causes in order (the same from all four tools).
DRIVER, WHEELS_MISSING, CPU_BUILD = "driver_library_missing", "missing_cuda_libraries", "cpu_only_wheel"
HIDDEN = "cuda_visible_devices"
ENVIRONMENTS = {
    # name: (venv, the H200 replay on PATH, CUDA_VISIBLE_DEVICES, blocking causes)
    "tensorflow+replay": ("tf", True, None, [DRIVER, WHEELS_MISSING]),
    "tensorflow": ("tf", False, None, [DRIVER, WHEELS_MISSING]),
    "and-cuda+replay": ("and-cuda", True, None, [DRIVER]),
    "and-cuda": ("and-cuda", False, None, [DRIVER]),
    "and-cuda+replay+hidden": ("and-cuda", True, "-1", [DRIVER, HIDDEN]),
    "cpu+replay": (None, True, None, [DRIVER, CPU_BUILD]),
    "cpu": (None, False, None, [DRIVER, CPU_BUILD]),
}


def python_of(venv: str | None) -> str:
    return str(VENVS / venv / "bin" / "python") if venv else sys.executable


def _env(**extra) -> dict[str, str]:
    """This process's environment (with the fake or no nvidia-smi) for a kernel of another venv."""
    env = dict(os.environ)  # CUDA_VISIBLE_DEVICES as the test set it
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env["PYTHONPATH"] = str(TESTS.parent)  # kerasgpu from the clone, nothing from this venv
    env.update(extra)
    return env


# ---------------------------------------------------------------- TensorFlow's own log

LIST_GPUS = "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"
_LOGS: dict[tuple, str] = {}


def tf_log(venv: str | None, vlog: int) -> str:
    """What TensorFlow prints importing itself and listing GPUs (cached per environment)."""
    key = (venv, vlog, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if key not in _LOGS:
        proc = subprocess.run(
            [python_of(venv), "-c", LIST_GPUS],
            capture_output=True,
            text=True,
            env=_env(TF_CPP_MAX_VLOG_LEVEL=str(vlog), PYTHONPATH=""),
            timeout=180,
            check=True,
        )
        assert proc.stdout.strip() == "[]"
        _LOGS[key] = proc.stderr
    return _LOGS[key]


# The lines about the driver and the CUDA libraries, without time stamp, thread id and host name.
_RELEVANT = re.compile(r"(?:cudart_stub|cuda_platform|dso_loader|cuda_diagnostics|gpu_device)\.cc:\d+\] .*")


def gpu_lines(log: str) -> list[str]:
    lines = [m.group(0) for m in _RELEVANT.finditer(log)]
    return [re.sub(r"on this host \([^)]*\)", "on this host (HOST)", line) for line in lines]


CAPTURED = {
    # fixture: (venv, vlog, expected codes from the log alone, what it shows)
    "tf221_cuda_build_without_wheels.txt": (
        "tf",
        0,
        [DRIVER, WHEELS_MISSING],
        "tensorflow 2.21.0 (CUDA 12.5.1 build) without nvidia-*-cu12 wheels, no libcuda.so.1",
    ),
    "tf221_cuda_build_without_wheels_vlog1.txt": (
        "tf",
        1,
        [DRIVER, WHEELS_MISSING],
        "tensorflow 2.21.0 without nvidia-*-cu12 wheels, no libcuda.so.1, TF_CPP_MAX_VLOG_LEVEL=1",
    ),
    "tf221_and_cuda_without_driver.txt": (
        "and-cuda",
        0,
        [DRIVER],
        "tensorflow[and-cuda] 2.21.0, all 12 CUDA wheels, no libcuda.so.1",
    ),
    "tf221_and_cuda_without_driver_vlog1.txt": (
        "and-cuda",
        1,
        [DRIVER],
        "tensorflow[and-cuda] 2.21.0, all 12 CUDA wheels, no libcuda.so.1, TF_CPP_MAX_VLOG_LEVEL=1",
    ),
}


def _fixture_text(name: str) -> str:
    venv, vlog, codes, what = CAPTURED[name]
    header = [
        "# source: captured from TensorFlow 2.21.0 by python_ext/tests/cuda/test_cuda_builds.py",
        f"# expect: {codes[0]}",
        f"# codes: {', '.join(codes)}",
        f"# tensorflow: {what}",
    ]
    body = [line for line in tf_log(venv, vlog).splitlines() if line.strip()]
    return "\n".join(header + body) + "\n"


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_the_doctor_fixtures_are_what_tensorflow_2_21_prints(name, monkeypatch):
    """The 2.21 fixtures of %gpu_doctor hold TensorFlow's lines as it prints them today (rewrite them
    with KERASGPU_UPDATE_FIXTURES=1)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    path = FIXTURES / name
    if os.environ.get("KERASGPU_UPDATE_FIXTURES") == "1":
        path.write_text(_fixture_text(name), encoding="utf-8")
    venv, vlog, _, _ = CAPTURED[name]
    assert gpu_lines(path.read_text(encoding="utf-8")) == gpu_lines(tf_log(venv, vlog))


# ---------------------------------------------------------------- the four tools, environment by environment


def run_cells(venv: str | None, cells: list[str]) -> list[dict]:
    proc = subprocess.run(
        [python_of(venv), str(RUNNER)],
        input=json.dumps(cells),
        capture_output=True,
        text=True,
        env=_env(TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
        check=False,
    )
    mark = "@@KERASGPU-RESULTS@@"
    assert proc.returncode == 0 and mark in proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit(mark, 1)[1])


def blocking(problems: list[dict]) -> list[str]:
    return [p["code"] for p in problems if p["severity"] == "blocking"]


def check_fix(code: str, item: dict) -> None:
    """The fix given for `code` (a verdict problem or a doctor match) is one that works for it."""
    commands, text = item["commands"], item.get("cause") or item["problem"]
    if code == DRIVER:
        # pip can't install the driver's library: the fix is GPU access for this process.
        assert not any("pip" in c for c in commands)
        assert "--gpus all" in item["fix"] and "ldconfig" in item["fix"]
        assert "pip can't install libcuda.so.1" in text
    elif code == WHEELS_MISSING:
        # (A log does not say which TensorFlow printed it: from the log alone the pin is left out.)
        assert commands in ([AND_CUDA], ['%pip install "tensorflow[and-cuda]"'])
        assert "a driver alone is not enough" in item["fix"]
    elif code == CPU_BUILD:
        assert commands == ["%pip uninstall -y tensorflow-cpu", AND_CUDA]
    elif code == HIDDEN:
        assert "CUDA_VISIBLE_DEVICES='-1'" in text
        assert "Unset it" in item["fix"] and "restart the kernel" in item["fix"]


@pytest.fixture
def driver_view(request):
    """The H200 replay on PATH, or no nvidia-smi at all."""
    return request.getfixturevalue("fake_smi" if request.param else "no_smi")


@pytest.mark.parametrize(
    ("env_name", "driver_view"),
    [(name, smi) for name, (_, smi, _, _) in ENVIRONMENTS.items()],
    ids=list(ENVIRONMENTS),
    indirect=["driver_view"],
)
async def test_the_four_tools_name_the_same_causes(env_name, driver_view, monkeypatch, jp_data_dir, api):
    venv, replay, cvd, expected = ENVIRONMENTS[env_name]
    python = python_of(venv)
    # Set for TensorFlow's log, the kernel and (through this server's environment) the probe alike.
    if cvd is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cvd)
    # TensorFlow's log with TF_CPP_MAX_VLOG_LEVEL=1, given to %%gpu_doctor in a fresh kernel
    # (TensorFlow not imported there yet), then %gpu_check and %gpu_check --deep.
    log = await asyncio.to_thread(tf_log, venv, 1)
    doctor_cell, check_cell, deep_cell = await asyncio.to_thread(
        run_cells, venv, ["%%gpu_doctor --json\n" + log, "%gpu_check --json", "%gpu_check --deep --json"]
    )
    # The server's probe of a kernelspec whose argv[0] is this environment's Python.
    spec = Path(jp_data_dir) / "kernels" / "tier"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": env_name, "language": "python", "env": {"PYTHONPATH": ""}})
    )
    probe = await api("tensorflow", params={"kernel_name": "tier"})

    check = json.loads(check_cell["stdout"])
    deep = json.loads(deep_cell["stdout"])
    doctor = json.loads(doctor_cell["stdout"])
    assert probe["status"] == "ok", probe
    assert probe["tensorflow"]["version"] == check["tensorflow"]["version"] == "2.21.0"

    # 1. The same blocking causes, in the same order, from all four.
    assert blocking(check["verdict"]["problems"]) == expected
    assert blocking(deep["verdict"]["problems"]) == expected
    assert blocking(probe["verdict"]["problems"]) == expected
    assert [m["code"] for m in doctor["matches"] + doctor["kernel"]] == expected
    assert check["verdict"]["cause"] == probe["verdict"]["code"] == doctor["cause"] == expected[0]

    # 2. The facts behind them were gathered, not guessed (and without starting TensorFlow).
    for cuda in (check["cuda"], probe["cuda"]):
        assert cuda["libcuda"]["loaded"] is False and "libcuda.so.1" in cuda["libcuda"]["error"]
        assert cuda["cu_init"] is None and cuda["dev_nodes"] == [] and cuda["proc_driver_version"] is None
        if venv == "and-cuda":
            assert len(cuda["wheels"]) == 12 and sorted(cuda["wheels"]) == cuda["and_cuda"]
            # Loaded with ctypes: all of them, but the cuDNN engine that links libcuda.so.1 itself.
            assert cuda["wheels"]["nvidia-cuda-runtime-cu12"]["libs"] == {"libcudart.so.12": None}
            failed = {lib: e for w in cuda["wheels"].values() for lib, e in w["libs"].items() if e}
            assert list(failed) == ["libcudnn_engines_runtime_compiled.so.9"]
            assert failed["libcudnn_engines_runtime_compiled.so.9"].startswith("libcuda.so.1: cannot open")
        else:
            assert cuda["wheels"] == {}
    assert check["runtime_initialized_after"] is False and deep["runtime_initialized_after"] is True
    assert deep["deep_check"]["matmul"]["on_gpu"] is False

    # 3. Each cause comes with a fix that works for it, in every tool.
    for code in expected:
        for problems in (check["verdict"]["problems"], probe["verdict"]["problems"]):
            check_fix(code, next(p for p in problems if p["code"] == code))
        check_fix(code, next(m for m in doctor["matches"] + doctor["kernel"] if m["code"] == code))

    # 4. What a user reads: the summary and the probe's reason name the first cause, once, and notes
    # ("PTX JIT is fine") come after every blocking cause.
    first = check["verdict"]["problems"][0]
    for summary in (check["verdict"]["summary"], probe["verdict"]["summary"]):
        assert summary.endswith(first["title"] + ".")
        assert summary.count("The driver sees") <= 1 and ".)." not in summary
        assert "tensorflow can't" not in summary and "GPU(s)" not in summary
    assert probe["verdict"]["reason"].startswith(first["title"])
    if replay:
        assert "nvidia-smi sees 1 GPU (NVIDIA H200)" in first["problem"]
        assert check["verdict"]["status"] == probe["verdict"]["status"] == "gpu_not_used"
        severities = [p["severity"] for p in check["verdict"]["problems"]]
        assert severities == sorted(severities)  # "blocking" < "info"
        if venv is not None:
            assert check["verdict"]["problems"][-1]["code"] == "arch_ptx_jit"
    else:
        assert "nvidia-smi was not found" in first["problem"]
        assert check["verdict"]["status"] == probe["verdict"]["status"] == "no_gpu"
        assert check["verdict"]["summary"].startswith("No GPU: training will run on the CPU. ")


# ---------------------------------------------------------------- the wheel fix does what it says


def _would_install(venv: str, requirement: str) -> list[str]:
    """What `pip install` of `requirement` would add to `venv`, resolved offline from the wheel folder."""
    proc = subprocess.run(
        [python_of(venv), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-"]
        + ["--no-index", "--find-links", str(WHEELS), requirement],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(proc.stdout)
    return sorted(item["metadata"]["name"].lower().replace("_", "-") for item in report["install"])


def test_the_wheel_fix_installs_what_and_cuda_has_and_is_no_fix_for_libcuda():
    command = AND_CUDA.removeprefix("%pip install ").strip('"')
    # Without the wheels: the fix adds exactly the 12 CUDA wheels the and-cuda environment has...
    added = _would_install("tf", command)
    have = subprocess.run(
        [
            python_of("and-cuda"),
            "-c",
            "from kerasgpu.core.cudafacts import gather_cuda; print(*gather_cuda()['wheels'])",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout.split()
    assert added == sorted(have) and len(added) == 12
    # ...and where they are all present (libcuda.so.1 missing) it installs nothing: it can't be the fix.
    assert _would_install("and-cuda", command) == []

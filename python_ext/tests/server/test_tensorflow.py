"""GET /kerasgpu/api/v1/tensorflow against a real Jupyter server: the probe runs in each kernelspec's
own Python (this venv has tensorflow-cpu; a throwaway venv has no TensorFlow), never in the server."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

pytest.importorskip("tensorflow")


def _write_spec(kernels: Path, name: str, argv: list[str], language: str = "python", **extra) -> None:
    d = kernels / name
    d.mkdir(parents=True, exist_ok=True)
    spec = {"argv": argv, "display_name": name, "language": language, **extra}
    (d / "kernel.json").write_text(json.dumps(spec))


def _script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


@pytest.fixture(scope="session")
def venv_without_tf(tmp_path_factory) -> str:
    """A real Python environment without TensorFlow (nor pip): its interpreter's path."""
    root = tmp_path_factory.mktemp("notf") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    assert subprocess.run([python, "-c", "import tensorflow"], capture_output=True).returncode != 0
    return str(python)


@pytest.fixture
def kernels(jp_data_dir, tmp_path, venv_without_tf) -> Path:
    """Kernelspecs next to the default python3 one, in the server's data dir."""
    kdir = Path(jp_data_dir) / "kernels"
    launch = ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    # pytest-jupyter exports this process's sys.path as PYTHONPATH to everything the server starts
    # (TensorFlow included): a kernelspec's env is how a real one would keep it out, kernel and probe.
    alone = {"PYTHONPATH": ""}
    _write_spec(kdir, "notf", [venv_without_tf, *launch], env=alone)
    _write_spec(kdir, "rlang", ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"], "R")
    _write_spec(kdir, "missing", [str(tmp_path / "nowhere" / "python"), *launch])
    # A Python that hangs: its pid is written down so the test can see the probe killed it.
    sleepy = _script(tmp_path / "sleepy-python", f"#!/bin/sh\necho $$ > {tmp_path}/sleepy.pid\nsleep 60\n")
    _write_spec(kdir, "sleepy", [sleepy, *launch])
    # The TensorFlow-less Python behind a wrapper that counts how often it is started.
    counted = _script(
        tmp_path / "counted-python",
        f'#!/bin/sh\necho x >> {tmp_path}/spawns\nexec {venv_without_tf} "$@"\n',
    )
    _write_spec(kdir, "counted", [counted, *launch], env={**alone, "CUDA_VISIBLE_DEVICES": "0"})
    return kdir


async def tensorflow(api, **params) -> dict:
    return await api("tensorflow", params=params)


async def test_default_python3_kernelspec_sees_tensorflow_cpu_and_the_answer_is_cached(
    fake_smi, kernels, api
):
    data = await tensorflow(api, kernel_name="python3")
    assert data["status"] == "ok", data
    assert data["reason"] is None
    assert data["kernel"] == {
        "id": None,
        "name": "python3",
        "display_name": data["kernel"]["display_name"],
        "language": "python",
        "argv0": data["kernel"]["argv0"],
        "python": sys.executable,
    }
    tf = data["tensorflow"]
    assert tf["version"] == "2.21.0"
    assert tf["distributions"]["tensorflow-cpu"] == "2.21.0"
    assert tf["built_with_cuda"] is False
    assert tf["build_info"]["is_cuda_build"] is False
    assert tf["physical_gpus"] == []
    assert {"name": "/physical_device:CPU:0", "device_type": "CPU"} in tf["physical_devices"]
    [cpu] = tf["local_devices"]
    assert cpu["name"] == "/device:CPU:0" and cpu["device_type"] == "CPU"
    assert cpu["memory_limit_bytes"] > 0
    assert tf["device_lib_error"] is None
    assert data["keras"] == {"version": "3.15.1", "backend": "tensorflow"}
    assert data["environment"]["python"] == sys.executable
    # The probe sets TF_FORCE_GPU_ALLOW_GROWTH=true for its own child only: the kernel has none.
    assert data["environment"]["tf_force_gpu_allow_growth"] is None
    # The driver (fake nvidia-smi replaying an H200) sees one GPU; this CPU build sees none.
    assert data["driver"]["state"] == "ok" and data["driver"]["gpus"] == 1
    assert data["driver"]["devices"][0]["name"] == "NVIDIA H200"
    v = data["verdict"]
    assert (v["tf_gpus"], v["driver_gpus"], v["ok"]) == (0, 1, False)
    # This machine has no libcuda.so.1: named first, then the CPU-only build (the same order as %gpu_check).
    blocking = [p["code"] for p in v["problems"] if p["severity"] == "blocking"]
    assert blocking == ["driver_library_missing", "cpu_only_wheel"]
    assert v["code"] == "driver_library_missing" and "libcuda.so.1" in v["reason"]
    cpu = v["problems"][1]
    assert "CPU-only build" in cpu["problem"]
    assert '%pip install "tensorflow[and-cuda]==2.21.0"' in cpu["commands"]
    assert v["status"] == "gpu_not_used"
    assert data["cuda"]["libcuda"]["loaded"] is False and data["cuda"]["wheels"] == {}
    assert data["cached"] is False and data["probe_seconds"] > 0
    # The second answer comes from the cache: same probe, no new subprocess.
    again = await tensorflow(api, kernel_name="python3")
    assert again["cached"] is True
    assert again["probed_at"] == data["probed_at"]
    assert again["tensorflow"] == tf


async def test_a_started_kernel_is_probed_through_its_kernelspec(no_smi, kernels, api, jp_fetch):
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel = json.loads(response.body)
    try:
        data = await tensorflow(api, kernel_id=kernel["id"])
    finally:
        await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
    assert data["kernel"]["id"] == kernel["id"]
    assert data["kernel"]["name"] == "python3"
    assert data["status"] == "ok"
    assert data["tensorflow"]["version"] == "2.21.0"
    # No nvidia-smi at all: 0 of 0, and the reason is the missing driver.
    v = data["verdict"]
    assert (v["tf_gpus"], v["driver_gpus"], v["ok"]) == (0, 0, False)
    assert "nvidia-smi was not found" in v["reason"]


async def test_a_kernel_without_tensorflow_says_so(fake_smi, kernels, api, venv_without_tf):
    data = await tensorflow(api, kernel_name="notf")
    assert data["status"] == "not_installed"
    assert data["reason"] == f"TensorFlow is not installed in this kernel's environment ({venv_without_tf})."
    assert f"{venv_without_tf} -m pip install" in data["hint"]
    assert data["tensorflow"] is None
    assert data["environment"]["python"] == venv_without_tf
    v = data["verdict"]
    assert (v["tf_gpus"], v["driver_gpus"], v["ok"]) == (0, 1, False)
    assert v["code"] == "no_tensorflow"
    assert v["reason"] == "TensorFlow is not installed in this kernel's environment."


async def test_a_non_python_kernel_gets_a_clear_answer(fake_smi, kernels, api):
    data = await tensorflow(api, kernel_name="rlang")
    assert data["status"] == "not_python"
    assert "runs R, not Python" in data["reason"]
    assert data["kernel"]["python"] is None and data["kernel"]["argv0"] == "R"
    assert data["verdict"]["tf_gpus"] is None and data["verdict"]["driver_gpus"] == 1
    assert data["verdict"]["ok"] is False and data["verdict"]["reason"] == data["reason"]


async def test_a_missing_interpreter_gets_a_clear_answer(fake_smi, kernels, api):
    data = await tensorflow(api, kernel_name="missing")
    assert data["status"] == "interpreter_not_found"
    assert "was not found" in data["reason"]


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({"kernel_id": "00000000-0000-0000-0000-000000000000"}, 404, "No running kernel has the id"),
        ({"kernel_name": "no-such-spec"}, 404, "no kernelspec named 'no-such-spec'"),
        ({}, 400, "Give kernel_id"),
    ],
)
async def test_unknown_kernels_are_a_404_with_a_message(no_smi, kernels, jp_fetch, params, code, words):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kerasgpu", "api", "v1", "tensorflow", params=params)
    assert err.value.code == code
    assert words in json.loads(err.value.response.body)["message"]


async def test_the_probe_needs_the_token(no_smi, jp_fetch, jp_base_url, jp_http_port):
    url = f"http://localhost:{jp_http_port}{jp_base_url}kerasgpu/api/v1/tensorflow?kernel_name=python3"
    with pytest.raises(HTTPClientError) as err:
        await AsyncHTTPClient().fetch(url)
    assert err.value.code == 403


async def test_one_spawn_per_interpreter_until_refresh(fake_smi, kernels, api, tmp_path):
    spawns = tmp_path / "spawns"
    first, second = await asyncio.gather(
        tensorflow(api, kernel_name="counted"), tensorflow(api, kernel_name="counted")
    )
    assert first["status"] == second["status"] == "not_installed"
    third = await tensorflow(api, kernel_name="counted")
    assert third["cached"] is True
    assert spawns.read_text().count("x") == 1  # two at once shared one run; the third hit the cache
    # The kernelspec's env reaches the probe.
    assert third["environment"]["cuda_visible_devices"] == "0"
    fresh = await tensorflow(api, kernel_name="counted", refresh="1")
    assert fresh["cached"] is False
    assert spawns.read_text().count("x") == 2


@pytest.fixture
def short_probe_timeout(monkeypatch):
    monkeypatch.setenv("KERASGPU_TF_PROBE_TIMEOUT", "2")


async def test_a_hanging_interpreter_times_out_and_the_server_keeps_answering(
    short_probe_timeout, fake_smi, kernels, api, tmp_path
):
    t0 = time.monotonic()
    slow = asyncio.ensure_future(tensorflow(api, kernel_name="sleepy"))
    await asyncio.sleep(0.3)
    catalog = await api("snippets")
    devices = await api("devices")
    assert not slow.done(), "other requests are answered while the probe waits"
    assert catalog["snippets"] and devices["devices"]
    data = await slow
    assert 2 <= time.monotonic() - t0 < 20
    assert data["status"] == "timeout"
    assert "did not finish within 2 s" in data["reason"]
    assert data["verdict"]["ok"] is False and data["verdict"]["code"] == "timeout"
    pid = int((tmp_path / "sleepy.pid").read_text())
    for _ in range(50):  # the probe's process group was killed
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"the hanging probe {pid} is still running")


# ---------------------------------------------------------------- the parent's judging, without a server

H200_DESC = "device: {i}, name: NVIDIA H200, pci bus id: 0000:{bus}:00.0, compute capability: 9.0"


def _gpu_facts(n_gpus: int, cvd: str | None = None) -> dict:
    """What the child prints for a CUDA build of TensorFlow 2.21 on H200s (device_lib's own desc format)."""
    buses = ["19", "3b", "4c", "5d"]
    return {
        "python": "/opt/venv/bin/python",
        "python_version": "3.11.7",
        "system": "Linux",
        "release": "6.8.0",
        "machine": "x86_64",
        "env": {"CUDA_VISIBLE_DEVICES": cvd, "TF_FORCE_GPU_ALLOW_GROWTH": "true"},
        "distributions": {"tensorflow": "2.21.0"},
        "nvidia_wheels": {"nvidia-cudnn-cu12": "9.3.0.75"},
        "installed": True,
        "error": None,
        "version": "2.21.0",
        "build_info": {
            "is_cuda_build": True,
            "cuda_version": "12.5.1",
            "cudnn_version": "9",
            "cuda_compute_capabilities": ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"],
        },
        "built_with_cuda": True,
        "physical_devices": [{"name": "/physical_device:CPU:0", "device_type": "CPU"}]
        + [
            {
                "name": f"/physical_device:GPU:{i}",
                "device_type": "GPU",
                "device_name": "NVIDIA H200",
                "compute_capability": "9.0",
            }
            for i in range(n_gpus)
        ],
        "local_devices": [
            {
                "name": "/device:CPU:0",
                "device_type": "CPU",
                "memory_limit_bytes": 268435456,
                "physical_device_desc": "",
            }
        ]
        + [
            {
                "name": f"/device:GPU:{i}",
                "device_type": "GPU",
                "memory_limit_bytes": 139_000_000_000,
                "physical_device_desc": H200_DESC.format(i=i, bus=buses[i]),
            }
            for i in range(n_gpus)
        ],
        "device_lib_error": None,
        "keras": {"version": "3.15.1", "backend": "tensorflow"},
    }


def _driver(n: int) -> dict:
    return {
        "status": {"state": "ok", "backend": "smi", "code": None, "reason": None},
        "devices": [{"index": i, "name": "NVIDIA H200", "compute_capability": "9.0"} for i in range(n)],
    }


def test_device_lib_descriptions_are_parsed_and_all_gpus_seen_is_ok():
    from kerasgpu.server import tfprobe

    result = tfprobe.ProbeResult(tfprobe.OK, "/opt/venv/bin/python", facts=_gpu_facts(2))
    tf = result.tensorflow()
    gpu1 = tf["local_devices"][2]
    assert gpu1["gpu_name"] == "NVIDIA H200"
    assert gpu1["pci_bus_id"] == "0000:3b:00.0"
    assert gpu1["compute_capability"] == "9.0"
    assert gpu1["memory_limit_bytes"] == 139_000_000_000
    assert [g["supported_by_build"] for g in tf["physical_gpus"]] == ["ptx", "ptx"]  # compute_90 only
    v = tfprobe.probe_answer(result, _driver(2), tfprobe.OK, None)
    assert (v["tf_gpus"], v["driver_gpus"], v["ok"], v["reason"]) == (2, 2, True, None)
    assert v["status"] == "gpu_ready"


def test_cuda_visible_devices_is_named_when_tensorflow_sees_fewer_gpus():
    from kerasgpu.server import tfprobe

    result = tfprobe.ProbeResult(tfprobe.OK, "/opt/venv/bin/python", facts=_gpu_facts(2, cvd="0,1"))
    v = tfprobe.probe_answer(result, _driver(4), tfprobe.OK, None)
    assert (v["tf_gpus"], v["driver_gpus"], v["ok"]) == (2, 4, False)
    assert v["code"] == "cuda_visible_devices"
    assert "TensorFlow sees 2 of the 4 GPUs" in v["reason"] and "CUDA_VISIBLE_DEVICES='0,1'" in v["reason"]


def test_missing_cuda_libraries_come_from_the_probe_log():
    from kerasgpu.server import tfprobe

    log = (
        "W0000 gpu_device.cc:2365] Cannot dlopen some GPU libraries. Please make sure the missing libraries "
        "mentioned above are installed properly if you would like to use GPU.\n"
        "Skipping registering GPU devices..."
    )
    result = tfprobe.ProbeResult(tfprobe.OK, "/opt/venv/bin/python", facts=_gpu_facts(0), stderr_tail=log)
    v = tfprobe.probe_answer(result, _driver(1), tfprobe.OK, None)
    assert (v["tf_gpus"], v["driver_gpus"], v["ok"]) == (0, 1, False)
    assert v["code"] == "missing_cuda_libraries"
    assert "Cannot dlopen some GPU libraries" in v["reason"]
    assert v["log_diagnosis"][0]["code"] == "missing_cuda_libraries"


def test_interpreter_follows_jupyter_clients_rules(tmp_path):
    from kerasgpu.server import tfprobe

    assert tfprobe.interpreter(["python", "-m", "ipykernel_launcher"]) == sys.executable
    assert tfprobe.interpreter(["python3", "-m", "ipykernel_launcher"]) == sys.executable
    assert tfprobe.interpreter([str(tmp_path / "none")]) is None
    assert tfprobe.interpreter([]) is None
    assert tfprobe.spec_env({"A": "${HOME}/x"}) == {"A": os.environ["HOME"] + "/x"}


# The one verdict on every surface: what the server's probe answers (the panel and the status bar
# render it as they get it) is word for word what %gpu_check, %gpu_doctor and the training card say
# in a kernel of the same environment. This venv is tensorflow-cpu on a machine without libcuda.so.1.
_SURFACES = """
import json
from kerasgpu.kernel import checks, doctor
from kerasgpu.kernel.train import findings as F
report = checks.check()
card = doctor.report("Epoch 1/3", "log")
fit = F.cpu_fit_with_gpu(F.FitStats(device="cpu", driver_gpus=1, tf_built_with_cuda=False, tf_gpus=0))
print(json.dumps({
    "check": {"summary": report.summary, "order": report.order, "text": report.to_text(),
              "html": report._repr_html_()},
    "doctor": {"summary": card.summary, "verdict": card.data["verdict"]},
    "finding": fit.to_json() if fit else None,
}))
"""


@pytest.mark.parametrize(
    ("fault", "headline"),
    [
        (
            "cpu_only_build",
            "TensorFlow in this notebook sees 0 of 1 GPU: the driver's libcuda.so.1 does not load; "
            "CPU-only build",
        ),
        ("no_driver", "TensorFlow in this notebook sees no GPU: no NVIDIA driver; CPU-only build"),
        ("no_nvidia_smi", "TensorFlow in this notebook sees no GPU: no NVIDIA driver; CPU-only build"),
    ],
)
async def test_one_verdict_text_on_every_surface(fault, headline, fake_smi, kernels, api, monkeypatch):
    if fault == "no_driver":
        fake_smi.set(fail="no_driver")
    elif fault == "no_nvidia_smi":
        path = [p for p in os.environ["PATH"].split(os.pathsep) if "fake_nvidia_smi" not in p]
        monkeypatch.setenv("PATH", os.pathsep.join(path))
    want = "ok" if fault == "cpu_only_build" else "unavailable"
    for _ in range(100):  # the server's sampler follows the driver's state within a few readings
        if (await api("devices"))["status"]["state"] == want:
            break
        await asyncio.sleep(0.1)
    v = (await tensorflow(api, kernel_name="python3", refresh="1"))["verdict"]
    assert v["headline"] == headline
    # Every fix as code, in a safe order: tensorflow-cpu goes before the CUDA build comes, with %pip.
    assert v["fix_commands"][:2] == [
        "%pip uninstall -y tensorflow-cpu",
        '%pip install "tensorflow[and-cuda]==2.21.0"',
    ]
    assert v["text"] == f"{headline}.\nFix, in this order:\n" + "\n".join(v["fix_commands"])
    out = subprocess.run(
        [sys.executable, "-c", _SURFACES], capture_output=True, text=True, env=dict(os.environ), timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["check"]["summary"] == f"{headline}."
    assert seen["check"]["order"] == v["fix_commands"]
    assert "Fix, in this order:\n" + "\n".join(f"  {c}" for c in v["fix_commands"]) in seen["check"]["text"]
    assert seen["doctor"]["verdict"] == {
        "headline": headline,
        "fix_commands": v["fix_commands"],
        "text": v["text"],
    }
    assert seen["doctor"]["summary"].endswith(f"but: {headline}.")
    finding = seen["finding"]
    assert finding["evidence"] == f"{headline}." and finding["data"]["fix_commands"] == v["fix_commands"]
    assert "pip install 'tensorflow[and-cuda]' (and uninstall" not in json.dumps(seen)

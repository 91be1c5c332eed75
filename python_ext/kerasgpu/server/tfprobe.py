"""The TensorFlow probe: what TensorFlow sees from a kernel's own Python, asked in a short subprocess.

The server never imports TensorFlow: importing it and listing devices grabs GPU
memory and would pin the server to its own environment. Instead the kernel side's
`kerasgpu/kernel/probe.py` (after the text of `core.cudafacts`, the only code that runs
elsewhere: stdlib and TensorFlow) runs as `<kernelspec argv[0]> -c <its text>` with
TF_FORCE_GPU_ALLOW_GROWTH=true and a timeout, and prints its facts as one JSON line. The
parent parses them, judges them with `diagnosis.verdict` (as %gpu_check does) in
`probe_answer`, and caches the answer per interpreter (and kernelspec environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import cudafacts, diagnosis
from ..core.known_errors import match_errors
from ..core.tfbuild import build_capabilities, parse_device_desc, plain

PROBE_TIMEOUT_S = 60.0  # a cold TensorFlow import plus CUDA start-up can take tens of seconds
CACHE_TTL_S = 300.0
MARK = "KERASGPU_TFPROBE_JSON:"  # as kernel/probe.py prints it
STDERR_TAIL = 4000

# Statuses of a probe; only the first three carry TensorFlow facts.
OK, NOT_INSTALLED, IMPORT_FAILED = "ok", "not_installed", "import_failed"
NOT_PYTHON, NO_INTERPRETER, TIMEOUT, FAILED = "not_python", "interpreter_not_found", "timeout", "probe_failed"


# The kernel side's probe, run as text (never imported here): the kernel's Python may lack kerasgpu.
PROBE_FILE = Path(__file__).resolve().parent.parent / "kernel" / "probe.py"
CHILD_SOURCE = inspect.getsource(cudafacts) + "\n" + PROBE_FILE.read_text(encoding="utf-8")


# ---------------------------------------------------------------- kernelspec -> interpreter


def interpreter(argv: list[str], env: dict[str, str] | None = None) -> str | None:
    """The executable a kernelspec's argv[0] names, resolved like jupyter_client launches it."""
    if not argv:
        return None
    exe = argv[0]
    path = (env or {}).get("PATH", os.environ.get("PATH"))
    if os.path.basename(exe) == "env":
        # `/usr/bin/env [-flags] [VAR=value ...] python ...`: env looks the first plain word up on PATH.
        words = [w for w in argv[1:] if not w.startswith("-") and "=" not in w]
        found = shutil.which(words[0], path=path) if words else None
        return os.path.abspath(found) if found else None
    # jupyter_client runs a bare "python" / "python3" / "python3.X" kernelspec with its own Python.
    if exe in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return sys.executable
    found = shutil.which(exe, path=path)
    return os.path.abspath(found) if found else None


def spec_env(spec_env: dict[str, str] | None) -> dict[str, str]:
    """A kernelspec's `env` with ${VAR} filled in from the server's environment, as jupyter_client does."""
    return {k: string.Template(str(v)).safe_substitute(os.environ) for k, v in (spec_env or {}).items()}


# ---------------------------------------------------------------- running


@dataclass
class ProbeResult:
    """One probe of one interpreter: a status, what the child said, and how the run went."""

    status: str
    python: str | None
    reason: str | None = None
    hint: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""
    seconds: float = 0.0
    probed_at: float = field(default_factory=time.time)

    def tensorflow(self) -> dict[str, Any] | None:
        """The answer's `tensorflow` section (None when TensorFlow could not be asked)."""
        f = self.facts
        if self.status not in (OK, IMPORT_FAILED, NOT_INSTALLED) or not f.get("installed"):
            return None
        info = {k: plain(v) for k, v in (f.get("build_info") or {}).items()}
        ccs = build_capabilities(info)
        local = [
            {**d, **parse_device_desc(d.get("physical_device_desc", ""))} for d in f.get("local_devices", [])
        ]
        gpus = []
        for i, d in enumerate(x for x in f.get("physical_devices", []) if x.get("device_type") == "GPU"):
            cc = d.get("compute_capability")
            gpus.append(
                {
                    "index": i,
                    "name": d["name"],
                    "device_name": d.get("device_name"),
                    "compute_capability": cc,
                    "visible": True,  # a fresh process hides nothing with set_visible_devices
                    "supported_by_build": diagnosis.arch_support(cc, ccs),
                }
            )
        return {
            "version": f.get("version"),
            "error": f.get("error"),
            "distributions": f.get("distributions", {}),
            "nvidia_wheels": f.get("nvidia_wheels", {}),
            "built_with_cuda": f.get("built_with_cuda"),
            "cuda_version": info.get("cuda_version"),
            "cudnn_version": info.get("cudnn_version"),
            "compute_capabilities": ccs,
            "build_info": info,
            "physical_devices": f.get("physical_devices", []),
            "physical_gpus": gpus,
            "local_devices": local,
            "device_lib_error": f.get("device_lib_error"),
        }


def run_probe(python: str, env: dict[str, str], timeout: float) -> ProbeResult:
    """Runs the child in `python` and waits at most `timeout` seconds (blocking: call it off the loop)."""
    kernel_env = {**os.environ, **env}  # what the kernel itself starts with
    child_env = {**kernel_env, "TF_FORCE_GPU_ALLOW_GROWTH": "true", "PYTHONIOENCODING": "utf-8"}
    # `python -c` puts its working directory first on sys.path: run it in a private, empty
    # one, so no module planted in a shared folder (/tmp, the server's cwd) can shadow one.
    with tempfile.TemporaryDirectory(prefix="kerasgpu-tfprobe-") as private:
        result = _run_probe_in(python, child_env, timeout, private)
    # The child saw the TF_FORCE_GPU_ALLOW_GROWTH=true set for it alone: report the kernel's own.
    reported = result.facts.get("env")
    if isinstance(reported, dict):
        reported["TF_FORCE_GPU_ALLOW_GROWTH"] = kernel_env.get("TF_FORCE_GPU_ALLOW_GROWTH")
    return result


def _run_probe_in(python: str, child_env: dict[str, str], timeout: float, cwd: str) -> ProbeResult:
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            [python, "-c", CHILD_SOURCE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            cwd=cwd,
            start_new_session=os.name == "posix",  # a timeout kills its children too
        )
    except OSError as exc:
        return ProbeResult(
            NO_INTERPRETER,
            python,
            f"The kernel's interpreter {python} could not be started: {exc}.",
            "Check the kernelspec's argv[0] (jupyter kernelspec list).",
        )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        try:
            # A child stuck in the driver may ignore even SIGKILL: don't wait for it forever.
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
        return ProbeResult(
            TIMEOUT,
            python,
            f"The TensorFlow probe in {python} did not finish within {timeout:g} s.",
            "TensorFlow may be stuck starting CUDA (a hung driver or GPU): run nvidia-smi, "
            "and %gpu_check in the kernel itself.",
            stderr_tail=_tail(err),
            seconds=time.monotonic() - t0,
        )
    seconds = time.monotonic() - t0
    text = out.decode("utf-8", "replace")
    facts = None
    for line in reversed(text.splitlines()):
        if line.startswith(MARK):
            with contextlib.suppress(ValueError):
                facts = json.loads(line[len(MARK) :])
            break
    if not isinstance(facts, dict):
        return ProbeResult(
            FAILED,
            python,
            f"The TensorFlow probe in {python} exited with code {proc.returncode} without an answer.",
            "Is the kernelspec's argv[0] a Python interpreter? The probe's stderr shows what it said.",
            stderr_tail=_tail(err),
            seconds=seconds,
        )
    stderr = _tail(err)
    if not facts.get("installed"):
        return ProbeResult(
            NOT_INSTALLED,
            python,
            f"TensorFlow is not installed in this kernel's environment ({python}).",
            f'Install it there, then restart the kernel: {python} -m pip install "tensorflow[and-cuda]" '
            '(or %pip install "tensorflow[and-cuda]" in the notebook).',
            facts,
            stderr,
            seconds,
        )
    if facts.get("error"):
        return ProbeResult(
            IMPORT_FAILED,
            python,
            f"TensorFlow is installed in this kernel's environment but failed to load: {facts['error']}",
            "Reinstall it in a clean environment; mixed CUDA wheels from other packages are the usual "
            "cause (%gpu_doctor in the kernel names the library).",
            facts,
            stderr,
            seconds,
        )
    return ProbeResult(OK, python, None, None, facts, stderr, seconds)


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()


def _tail(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")[-STDERR_TAIL:]


class TFProbe:
    """Probes interpreters off the event loop: one run per interpreter at a time, answers cached.

    `spawns` counts the subprocesses started (the cache and the sharing of
    in-flight runs are what keep it low).
    """

    def __init__(self, timeout: float = PROBE_TIMEOUT_S, ttl: float = CACHE_TTL_S):
        self.timeout = timeout
        self.ttl = ttl
        self.spawns = 0
        self._cache: dict[tuple, tuple[float, ProbeResult]] = {}
        self._running: dict[tuple, asyncio.Future] = {}

    async def probe(
        self, python: str, env: dict[str, str], refresh: bool = False
    ) -> tuple[ProbeResult, bool]:
        """(result, cached) for `python` with the kernelspec's `env`."""
        key = (python, tuple(sorted(env.items())))
        hit = self._cache.get(key)
        if hit and not refresh and time.monotonic() - hit[0] < self.ttl:
            return hit[1], True
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running), False
        loop = asyncio.get_running_loop()
        self.spawns += 1
        future = loop.run_in_executor(None, run_probe, python, env, self.timeout)
        self._running[key] = future
        try:
            result = await asyncio.shield(future)
        finally:
            self._running.pop(key, None)
        if result.status in (OK, NOT_INSTALLED, IMPORT_FAILED):
            # Failures (a timeout, a crash) are asked again next time, not remembered for the TTL.
            self._cache[key] = (time.monotonic(), result)
        return result, False


# ---------------------------------------------------------------- judging


def probe_answer(result: ProbeResult | None, driver: dict[str, Any], status: str, reason: str | None) -> dict:
    """ "TensorFlow sees N of M GPUs": counts, whether that is all of them, and why not.

    `driver` is `telemetry.probe().to_json()` taken by the server; `status` and
    `reason` are the probe's (or why there was none).
    """
    drv_status = driver.get("status", {})
    drv_devices = driver.get("devices", []) if drv_status.get("state") == "ok" else []
    driver_gpus = len(drv_devices)
    tf = result.tensorflow() if result else None
    if status == OK and tf:
        tf_gpus: int | None = len(tf["physical_gpus"])
    elif status in (NOT_INSTALLED, IMPORT_FAILED):
        tf_gpus = 0
    else:
        tf_gpus = None
    out = _blank_answer(tf_gpus, driver_gpus, bool(status == OK and tf_gpus and tf_gpus >= driver_gpus))
    if result is None or status not in (OK, NOT_INSTALLED, IMPORT_FAILED):
        out.update(
            reason=reason, code=status, summary=reason, headline=(reason or "").rstrip("."), text=reason
        )
        return out
    log = result.stderr_tail + "\n" + (result.facts.get("error") or "")
    judged = diagnosis.verdict(_diagnosis_facts(result.facts, tf, drv_status, drv_devices, log))
    out.update(
        {k: judged[k] for k in ("status", "summary", "problems", "headline", "fix_commands", "fix_steps")}
    )
    out["text"] = judged["text"]
    out["log_diagnosis"] = match_errors(log)
    if out["ok"]:
        return out
    first = _first_cause(judged, tf_gpus, driver_gpus)
    if first:
        out.update(
            reason=first["problem"],
            code=first["code"],
            fix=first.get("fix"),
            commands=first.get("commands", []),
            link=first.get("link"),
        )
    else:
        out.update(reason=judged["summary"], code=judged["status"])
    return out


def _blank_answer(tf_gpus: int | None, driver_gpus: int, ok: bool) -> dict[str, Any]:
    return {
        "tf_gpus": tf_gpus,
        "driver_gpus": driver_gpus,
        "ok": ok,
        "reason": None,
        "code": None,
        "fix": None,
        "commands": [],
        "link": None,
        "status": None,
        "summary": None,
        "problems": [],
        "log_diagnosis": [],
        # The one verdict (diagnosis.verdict_text) the panel and the status bar show as they get it.
        "headline": None,
        "fix_commands": [],
        "fix_steps": [],
        "text": None,
    }


def _diagnosis_facts(
    facts: dict[str, Any], tf: dict[str, Any] | None, drv_status: dict, drv_devices: list, log: str
) -> dict[str, Any]:
    """The probe's facts in the shape `diagnosis.verdict` reads (as %gpu_check gathers them)."""
    env = facts.get("env", {})
    keras = facts.get("keras") or {}
    return {
        "platform": {
            "system": facts.get("system"),
            "release": facts.get("release"),
            "machine": facts.get("machine"),
            "python": facts.get("python_version"),
            "executable": facts.get("python"),
            "wsl": "microsoft" in str(facts.get("release", "")).lower(),
            "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
            "tf_force_gpu_allow_growth": env.get("TF_FORCE_GPU_ALLOW_GROWTH"),
        },
        "driver": {"status": drv_status, "devices": drv_devices, "processes": []},
        "tensorflow": {"installed": bool(facts.get("installed")), **(tf or {})},
        "keras": {
            "installed": bool(keras),
            "version": keras.get("version"),
            "backend": keras.get("backend"),
            "error": keras.get("error"),
            "backend_check": None,
        },
        "runtime_initialized": False,
        # What the child found before importing TensorFlow, and what TensorFlow then printed.
        "cuda": facts.get("cuda"),
        "log": diagnosis.parse_log(log),
    }


def _first_cause(judged: dict[str, Any], tf_gpus: int | None, driver_gpus: int) -> dict[str, Any] | None:
    """The cause the summary names: the first blocking one, else the first note (else fewer GPUs)."""
    blocking = [p for p in judged["problems"] if p["severity"] == diagnosis.BLOCKING]
    first = (blocking or judged["problems"] or [None])[0]
    if first is None and tf_gpus and tf_gpus < driver_gpus:
        first = {
            "code": "tf_sees_fewer_gpus",
            "problem": f"TensorFlow sees {tf_gpus} of the {driver_gpus} GPUs the driver lists.",
            "fix": "Run %gpu_check --deep in the kernel; a GPU in a bad state or an unsupported "
            "architecture is the usual cause.",
            "commands": ["%gpu_check --deep", "!nvidia-smi"],
            "link": None,
        }
    return first

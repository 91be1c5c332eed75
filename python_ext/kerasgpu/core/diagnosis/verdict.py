"""The verdict: the causes (`rules.diagnose`) with a status, a one-line summary, and the one
headline and fix list every surface shows (panel, status bar, training card, %gpu_check, %gpu_doctor)."""

from __future__ import annotations

import re
from typing import Any

from .causes import BLOCKING, gpus, sentence
from .facts import Facts
from .rules import diagnose

FRAMEWORKS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}

# Each blocking cause in a few words, for the one headline every surface shows.
_SHORT = {
    "windows_native": "no GPU on native Windows",
    "no_tensorflow": "TensorFlow is not installed",
    "no_devices": "no NVIDIA GPU here",
    "cuda_visible_devices": "CUDA_VISIBLE_DEVICES hides the GPUs",
    "no_cuda_device": "the driver finds no GPU",
    "driver_stub_library": "a stub libcuda.so.1 is loaded",
    "driver_mismatch": "driver version mismatch",
    "driver_too_old": "the driver is too old",
    "cuinit_failed": "the driver failed to start CUDA",
    "tensorflow_import_failed": "TensorFlow fails to load",
    "tensorflow_gpu_package": "the deprecated tensorflow-gpu package",
    "cpu_only_wheel": "CPU-only build",
    "missing_cuda_libraries": "CUDA libraries missing",
    "cuda_library_broken": "a CUDA library does not load",
    "arch_missing": "this GPU is not in the build",
    "tf_sees_no_gpu": "TensorFlow registers no GPU",
    "gpus_hidden": "set_visible_devices hides the GPUs",
}


def verdict(facts: dict[str, Any]) -> dict[str, Any]:
    """Causes plus a status and a one-line summary that names the first blocking cause."""
    problems = diagnose(facts)
    f = Facts.of(facts)
    backend = f.keras.get("backend") or ("tensorflow" if f.tf.get("installed") else None)
    other = f.keras.get("backend_check") or {}
    if backend in ("jax", "torch"):
        n_gpu, framework = other.get("gpu_count") or 0, backend
    else:
        n_gpu, framework = len(f.tf_gpus), "tensorflow"
    name = FRAMEWORKS.get(framework, framework)
    blocking = [p for p in problems if p["severity"] == BLOCKING]
    status, summary = _status(f, framework, name, n_gpu, blocking)
    if backend in ("jax", "torch") and other.get("gpu_count") is None and not blocking:
        status = "unknown"
        summary = f"Keras uses the {backend} backend; run %gpu_check --deep to ask {backend} for its devices."
    seen = len(f.driver_gpus) or f.cuda.get("device_count") or 0
    installed = bool(f.tf.get("installed")) or backend in ("jax", "torch")
    text = verdict_text(problems, name, n_gpu, seen, installed)
    return {
        "status": status,
        "device": "GPU"
        if status == "gpu_ready"
        else ("CPU" if status in ("no_gpu", "gpu_not_used") else None),
        "framework": framework,
        "gpu_count": n_gpu,
        "summary": summary,
        "cause": blocking[0]["code"] if blocking else None,
        "problems": problems,
        **text,
    }


def _status(
    f: Facts, framework: str, name: str, n_gpu: int, blocking: list[dict[str, Any]]
) -> tuple[str, str]:
    """The verdict's status and its one-line summary."""
    first = blocking[0]["title"] if blocking else None
    cuda_ok = bool(f.cuda.get("device_count"))  # cuInit found GPUs, whatever nvidia-smi says
    if n_gpu and not blocking:
        names = (
            ", ".join(sorted({g.get("device_name") or g["name"] for g in f.tf_gpus}))
            if framework == "tensorflow"
            else ""
        )
        return "gpu_ready", f"Keras ({name}) will train on {gpus(n_gpu)}" + (
            f": {names}" if names else ""
        ) + "."
    if not f.tf.get("installed") and f.keras.get("backend") not in ("jax", "torch"):
        return "no_tensorflow", "TensorFlow is not installed in this kernel."
    if not f.driver_gpus and not cuda_ok:
        return (
            "no_gpu",
            f"No GPU: training will run on the CPU. {sentence(first or 'No NVIDIA GPU was found')}",
        )
    if n_gpu:
        return "gpu_problem", f"{name} sees {gpus(n_gpu)} but training on them will fail. {sentence(first)}"
    seen = len(f.driver_gpus) or f.cuda.get("device_count") or 0
    return "gpu_not_used", (
        f"The driver sees {gpus(seen)} but {name} can't use "
        f"{'it' if seen == 1 else 'them'}, so training will run on the CPU. "
        + sentence(first or "See the checks below")
    )


def fix_commands(problems: list[dict[str, Any]]) -> list[str]:
    """The blocking causes' commands as one list in a safe order: every `%pip uninstall` first (one
    command), then the `%pip install`s, then the rest in the causes' order, each once. tensorflow-cpu
    and tensorflow install the same files: uninstalling one after installing the other breaks both."""
    removes: list[str] = []
    installs: list[str] = []
    rest: list[str] = []
    for p in problems:
        if p["severity"] != BLOCKING:
            continue
        for cmd in p.get("commands") or []:
            m = re.match(r"%pip uninstall -y (.+)$", cmd)
            if m:
                removes += [d for d in m.group(1).split() if d not in removes]
            elif cmd.startswith("%pip install") and cmd not in installs:
                installs.append(cmd)
            elif not cmd.startswith("%pip install") and cmd not in rest:
                rest.append(cmd)
    return ([f"%pip uninstall -y {' '.join(removes)}"] if removes else []) + installs + rest


def verdict_text(
    problems: list[dict[str, Any]], name: str, n_gpu: int, seen: int, installed: bool = True
) -> dict[str, Any]:
    """The one verdict every surface shows (panel, status bar, training card, %gpu_check, %gpu_doctor):
    `headline` ("TensorFlow in this notebook sees 0 of 1 GPU: CPU-only build"), `fix_commands` (the
    fixes as code, in a safe order) and `text` (both, as plain text)."""
    blocking = [p for p in problems if p["severity"] == BLOCKING]
    if not installed:
        head = f"{name} is not installed in this notebook's kernel"
    elif seen:
        head = f"{name} in this notebook sees {n_gpu} of {gpus(seen)}"
    elif n_gpu:
        head = f"{name} in this notebook sees {gpus(n_gpu)}"
    else:
        head = f"{name} in this notebook sees no GPU"
    shorts = [p.get("short") or _SHORT.get(p["code"]) or p["title"] for p in blocking]
    shorts = [s for i, s in enumerate(shorts) if s not in shorts[:i]]
    if installed and shorts:
        head += ": " + "; ".join(shorts)
    commands = fix_commands(problems)
    steps = [
        {"code": p["code"], "fix": p["fix"], "commands": list(p.get("commands") or [])} for p in blocking
    ]
    text = head + "." + ("\nFix, in this order:\n" + "\n".join(commands) if commands else "")
    return {"headline": head, "fix_commands": commands, "fix_steps": steps, "text": text}

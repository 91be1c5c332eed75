"""`%gpu_check` / `kerasgpu.check()`: can this kernel train Keras on an NVIDIA GPU, and if not, why.

Facts are gathered without starting TensorFlow's runtime (so memory growth and
visible devices can still be set afterwards); `deep=True` starts it on purpose
to run `device_lib` and a small matmul.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import importlib.util
import os
import platform
import re
import sys
import time
from typing import Any

from .render import Card, Fix, Section, worst
from .runtime import runtime_initialized

AND_CUDA = 'pip install "tensorflow[and-cuda]"'
TF_INSTALL_LINK = "https://www.tensorflow.org/install/pip"

# Oldest Linux driver that runs each CUDA major release (NVIDIA's CUDA release
# notes, "minor version compatibility"); the driver's own CUDA version is better.
MIN_DRIVER_FOR_CUDA = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}

_TF_DISTS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-intel",
    "tf-nightly",
    "tensorflow-macos",
)


def check(deep: bool = False, json: bool = False):
    """Checks driver, GPUs, TensorFlow and Keras; returns a `CheckReport` (or its dict if `json`)."""
    report = CheckReport(gather(deep=deep))
    return report.to_json() if json else report


class CheckReport(Card):
    """The `%gpu_check` card; `facts` holds everything it found, `verdict` what it means."""

    def __init__(self, facts: dict[str, Any]):
        self.facts = facts
        self.verdict = verdict(facts)
        fixes = [Fix(**p) for p in self.verdict["problems"]]
        level = {"gpu_ready": "ok", "no_tensorflow": "error"}.get(self.verdict["status"], "error")
        if level == "ok":
            level = worst([f.level for f in fixes if f.level != "error"] or ["ok"])
        super().__init__("GPU check", level, self.verdict["summary"], _sections(facts), fixes)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "gpu_check", "verdict": self.verdict, **self.facts}


# ---------------------------------------------------------------- gathering


def gather(deep: bool = False) -> dict[str, Any]:
    """Everything `check` looks at, as plain JSON-able data."""
    facts: dict[str, Any] = {
        "deep": deep,
        "platform": _platform_facts(),
        "driver": _driver_facts(),
        "tensorflow": _tensorflow_facts(),
    }
    facts["keras"] = _keras_facts(deep)
    facts["runtime_initialized"] = runtime_initialized()
    facts["deep_check"] = _deep_facts() if deep else None
    facts["runtime_initialized_after"] = runtime_initialized()
    return facts


def _platform_facts() -> dict[str, Any]:
    system = platform.system()
    release = platform.release()
    return {
        "system": system,
        "release": release,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "wsl": system == "Linux" and "microsoft" in release.lower(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "tf_force_gpu_allow_growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
    }


def _driver_facts() -> dict[str, Any]:
    try:
        from kerasgpu.telemetry import probe
    except ImportError as exc:  # telemetry not installed with this package build
        return {
            "status": {
                "state": "error",
                "backend": "none",
                "code": "backend_error",
                "reason": f"kerasgpu telemetry could not be imported: {exc}",
                "hint": None,
            },
            "devices": [],
            "processes": [],
        }
    snap = probe()
    data = snap.to_json()
    return {"status": data["status"], "devices": data["devices"], "processes": data["processes"]}


def _dist_versions(names) -> dict[str, str]:
    out = {}
    for name in names:
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def _nvidia_wheels() -> dict[str, str]:
    out = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-") and ("cu1" in name or "cuda" in name or "cudnn" in name):
            out[name] = dist.version
    return dict(sorted(out.items()))


def _tensorflow_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "installed": False,
        "distributions": _dist_versions(_TF_DISTS),
        "nvidia_wheels": {},
        "version": None,
        "error": None,
        "built_with_cuda": None,
        "build_info": {},
        "cuda_version": None,
        "cudnn_version": None,
        "compute_capabilities": [],
        "physical_gpus": [],
        "visible_gpus": [],
    }
    if "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is None:
        return facts
    facts["installed"] = True
    facts["nvidia_wheels"] = _nvidia_wheels()
    try:
        import tensorflow as tf
    except Exception as exc:  # ImportError, or a broken CUDA library raising at import
        facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts
    facts["version"] = getattr(tf, "__version__", None)
    try:
        info = dict(tf.sysconfig.get_build_info())
    except Exception as exc:
        info = {"error": str(exc)}
    facts["build_info"] = {k: _plain(v) for k, v in info.items()}
    facts["built_with_cuda"] = bool(tf.test.is_built_with_cuda())
    facts["cuda_version"] = _plain(info.get("cuda_version"))
    facts["cudnn_version"] = _plain(info.get("cudnn_version"))
    ccs = info.get("cuda_compute_capabilities") or []
    if isinstance(ccs, str):
        ccs = [c for c in re.split(r"[,\s]+", ccs) if c]
    facts["compute_capabilities"] = [str(c) for c in ccs]
    # Physical devices and their details come from the platform, not the runtime.
    try:
        gpus = tf.config.list_physical_devices("GPU")
        visible = tf.config.get_visible_devices("GPU")
    except Exception as exc:
        facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts
    for i, dev in enumerate(gpus):
        entry: dict[str, Any] = {
            "index": i,
            "name": dev.name,
            "device_name": None,
            "compute_capability": None,
        }
        try:
            details = tf.config.experimental.get_device_details(dev)
            entry["device_name"] = details.get("device_name")
            cc = details.get("compute_capability")
            entry["compute_capability"] = f"{cc[0]}.{cc[1]}" if cc else None
        except Exception as exc:
            entry["error"] = str(exc)
        try:
            entry["memory_growth"] = tf.config.experimental.get_memory_growth(dev)
            conf = tf.config.get_logical_device_configuration(dev)
            entry["memory_limit_mib"] = [c.memory_limit for c in conf] if conf else None
        except Exception:
            pass
        entry["visible"] = dev in visible
        entry["supported_by_build"] = arch_support(entry["compute_capability"], facts["compute_capabilities"])
        facts["physical_gpus"].append(entry)
    facts["visible_gpus"] = [d.name for d in visible]
    return facts


def _keras_facts(deep: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "installed": False,
        "version": None,
        "backend": None,
        "error": None,
        "backend_check": None,
    }
    if "keras" not in sys.modules and importlib.util.find_spec("keras") is None:
        return facts
    facts["installed"] = True
    try:
        import keras
    except Exception as exc:
        facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts
    facts["version"] = getattr(keras, "__version__", None)
    try:
        facts["backend"] = keras.config.backend()
    except AttributeError:  # Keras 2 is TensorFlow only
        facts["backend"] = "tensorflow"
    if facts["backend"] == "jax":
        facts["backend_check"] = _jax_facts(deep)
    elif facts["backend"] == "torch":
        facts["backend_check"] = _torch_facts(deep)
    return facts


def _jax_facts(deep: bool) -> dict[str, Any]:
    """JAX's own view; listing its devices starts its backend (and preallocates memory), so only when deep."""
    import jax

    out: dict[str, Any] = {
        "framework": "jax",
        "version": jax.__version__,
        "cuda_plugins": _dist_versions(("jax-cuda12-plugin", "jax-cuda13-plugin", "jaxlib")),
        "gpu_count": None,
        "devices": None,
        "initialized": None,
    }
    try:
        from jax._src import xla_bridge

        out["initialized"] = bool(getattr(xla_bridge, "_backends", None))
    except Exception:
        pass
    if deep or out["initialized"]:
        try:
            devs = jax.devices()
            out["devices"] = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in devs]
            out["gpu_count"] = sum(1 for d in devs if d.platform == "gpu")
        except Exception as exc:
            out["error"] = str(exc)
    return out


def _torch_facts(deep: bool) -> dict[str, Any]:
    """PyTorch's own view; `is_available` does not create a CUDA context, device names do (deep only)."""
    import torch

    out: dict[str, Any] = {
        "framework": "torch",
        "version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "gpu_count": None,
        "devices": None,
    }
    try:
        out["gpu_count"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if deep and out["gpu_count"]:
            out["devices"] = [torch.cuda.get_device_name(i) for i in range(out["gpu_count"])]
    except Exception as exc:
        out["error"] = str(exc)
    return out


def _deep_facts() -> dict[str, Any]:
    """Starts TensorFlow's runtime on purpose: device_lib, a matmul, and memory info."""
    out: dict[str, Any] = {"local_devices": [], "matmul": None, "memory": {}, "error": None}
    try:
        import tensorflow as tf
        from tensorflow.python.client import device_lib
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    try:
        # allow_growth here so the device listing does not reserve the whole GPU.
        config = tf.compat.v1.ConfigProto()
        config.gpu_options.allow_growth = True
        for d in device_lib.list_local_devices(config):
            out["local_devices"].append(
                {
                    "name": d.name,
                    "device_type": d.device_type,
                    "memory_limit_bytes": int(d.memory_limit),
                    **parse_device_desc(d.physical_device_desc),
                }
            )
    except Exception as exc:
        out["error"] = f"device_lib: {type(exc).__name__}: {exc}"
    gpus = tf.config.list_logical_devices("GPU")
    target = gpus[0].name if gpus else "/CPU:0"
    try:
        t0 = time.perf_counter()
        with tf.device(target):
            a = tf.random.uniform((256, 256))
            c = tf.linalg.matmul(a, a)
            _ = c.numpy()
        out["matmul"] = {
            "requested": target,
            "ran_on": c.device,
            "on_gpu": "GPU" in c.device.upper(),
            "seconds": round(time.perf_counter() - t0, 4),
        }
    except Exception as exc:
        out["matmul"] = {"requested": target, "error": f"{type(exc).__name__}: {exc}"}
    for g in gpus:
        key = g.name.replace("/device:", "")
        try:
            info = tf.config.experimental.get_memory_info(key)
            out["memory"][key] = {
                "current_mib": round(info["current"] / 2**20, 1),
                "peak_mib": round(info["peak"] / 2**20, 1),
            }
        except Exception as exc:
            out["memory"][key] = {"error": str(exc)}
    return out


def parse_device_desc(desc: str) -> dict[str, Any]:
    """'device: 0, name: NVIDIA H200, pci bus id: 0000:..., compute capability: 9.0' -> fields."""
    out: dict[str, Any] = {}
    for key, field in (
        ("name", "gpu_name"),
        ("pci bus id", "pci_bus_id"),
        ("compute capability", "compute_capability"),
    ):
        m = re.search(rf"{key}: ([^,]+)", desc or "")
        if m:
            out[field] = m.group(1).strip()
    return out


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return str(v)


# ---------------------------------------------------------------- judging


def arch_support(cc: str | None, build_ccs: list[str]) -> str | None:
    """How a build runs on a GPU of capability `cc`: "native", "ptx" (JIT), "missing", or None (unknown).

    `build_ccs` is `get_build_info()['cuda_compute_capabilities']`: "sm_80" is
    machine code for 8.x, "compute_90" is PTX that the driver compiles for 9.0
    and newer; old builds list "6.1"-style numbers.
    """
    if not cc or not build_ccs:
        return None
    try:
        major, minor = (int(x) for x in str(cc).split(".")[:2])
    except ValueError:
        return None
    want = (major, minor)
    best = "missing"
    for entry in build_ccs:
        e = str(entry).strip().lower()
        m = re.fullmatch(r"(sm|compute)_(\d+)(\d)([a-z]?)", e)
        if m:
            kind, have = m.group(1), (int(m.group(2)), int(m.group(3)))
            exact_only = bool(m.group(4))  # sm_90a: only 9.0
        else:
            m = re.fullmatch(r"(\d+)\.(\d+)", e)
            if not m:
                continue
            kind, have, exact_only = "sm", (int(m.group(1)), int(m.group(2))), False
        if exact_only and have != want:
            continue
        if kind == "sm" and have[0] == major and have[1] <= minor:
            return "native"
        if kind == "compute" and have <= want:
            best = "ptx"
    return best


def _major(version: str | None) -> int | None:
    m = re.match(r"(\d+)", str(version or ""))
    return int(m.group(1)) if m else None


def _tf_at_least(version: str | None, major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", str(version or ""))
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


def verdict(facts: dict[str, Any]) -> dict[str, Any]:
    """Turns gathered facts into a status, a one-line summary and ordered fixes (most important first)."""
    problems: list[dict[str, Any]] = []

    def add(code, level, problem, fix, commands=(), link=None):
        problems.append(
            {
                "code": code,
                "level": level,
                "problem": problem,
                "fix": fix,
                "commands": list(commands),
                "link": link,
            }
        )

    plat = facts.get("platform", {})
    drv = facts.get("driver", {})
    tf = facts.get("tensorflow", {})
    keras = facts.get("keras", {})
    status = drv.get("status", {})
    driver_gpus = drv.get("devices", [])
    driver_ok = status.get("state") == "ok" and bool(driver_gpus)
    tf_gpus = [g for g in tf.get("physical_gpus", []) if g.get("visible", True)]
    dists = tf.get("distributions", {})
    windows = plat.get("system") == "Windows"

    # 1. The driver: without it nothing else matters.
    if not driver_ok:
        reason = status.get("reason") or "no NVIDIA GPU was found"
        add(
            status.get("code") or "no_devices",
            "error",
            f"No NVIDIA GPU is usable from this kernel: {reason}",
            status.get("hint")
            or "Run this on a machine (or container) with an NVIDIA GPU and its driver; in Docker use "
            "--gpus all with the NVIDIA Container Toolkit.",
            ["nvidia-smi"],
            "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/",
        )

    # 2. TensorFlow itself.
    if not tf.get("installed"):
        if keras.get("backend") not in ("jax", "torch"):
            add(
                "no_tensorflow",
                "error",
                "TensorFlow is not installed in this kernel's environment.",
                "Install the GPU build into this kernel, then restart it.",
                [f"%{AND_CUDA}"],
                TF_INSTALL_LINK,
            )
    elif tf.get("error"):
        add(
            "tensorflow_import_failed",
            "error",
            f"TensorFlow is installed but failed to load: {tf['error']}",
            "Reinstall it in a clean environment; mixed CUDA wheels from other packages are the usual cause.",
            ["pip uninstall -y tensorflow tensorflow-cpu tensorflow-gpu", AND_CUDA],
            TF_INSTALL_LINK,
        )
    if "tensorflow-gpu" in dists:
        add(
            "tensorflow_gpu_package",
            "error" if not tf_gpus else "warning",
            f"The deprecated 'tensorflow-gpu' package ({dists['tensorflow-gpu']}) is installed: it gets no "
            "releases after 2.12 and can shadow the real TensorFlow.",
            "Remove it; the 'tensorflow' package has carried GPU support since 2.1.",
            ["pip uninstall -y tensorflow-gpu", AND_CUDA],
            "https://pypi.org/project/tensorflow-gpu/",
        )
    if windows and tf.get("installed") and _tf_at_least(tf.get("version"), 2, 11):
        add(
            "windows_native",
            "error",
            f"TensorFlow {tf.get('version')} has no GPU support on native Windows (the last was 2.10).",
            "Use WSL2 (Ubuntu) and install the GPU build there, or pin TensorFlow 2.10 with CUDA 11.2 and "
            "cuDNN 8.1.",
            [
                "wsl --install",
                AND_CUDA + "  # inside WSL2",
                'pip install "tensorflow<2.11"  # native, CUDA 11.2',
            ],
            "https://www.tensorflow.org/install/pip#windows-wsl2",
        )
    elif tf.get("installed") and tf.get("built_with_cuda") is False and not windows:
        cpu_dist = "tensorflow-cpu" if "tensorflow-cpu" in dists else "tensorflow"
        add(
            "cpu_only_wheel",
            "error" if driver_ok else "warning",
            f"This TensorFlow ({cpu_dist} {tf.get('version')}) is a CPU-only build: it can't use a GPU even "
            "where one is present.",
            "Install the CUDA build (it brings its own CUDA and cuDNN wheels), then restart the kernel.",
            ([f"pip uninstall -y {cpu_dist}"] if cpu_dist != "tensorflow" else []) + [AND_CUDA],
            TF_INSTALL_LINK,
        )

    # 3. Driver vs the build's CUDA.
    build_cuda = _major(tf.get("cuda_version"))
    if driver_ok and tf.get("built_with_cuda") and build_cuda:
        drv_cuda = _major(driver_gpus[0].get("cuda_driver_version"))
        if drv_cuda is not None and drv_cuda < build_cuda:
            need = MIN_DRIVER_FOR_CUDA.get(build_cuda, "a newer release")
            add(
                "driver_too_old",
                "error",
                f"The NVIDIA driver {driver_gpus[0].get('driver_version')} supports CUDA "
                f"{driver_gpus[0].get('cuda_driver_version')}, but TensorFlow {tf.get('version')} was built "
                "for "
                f"CUDA {tf.get('cuda_version')}.",
                f"Update the NVIDIA driver to {need} or newer (or use a TensorFlow built for CUDA "
                f"{drv_cuda}).",
                ["nvidia-smi  # shows 'CUDA Version' the driver supports"],
                "https://docs.nvidia.com/deploy/cuda-compatibility/",
            )

    # 4. GPU architectures vs the build.
    build_ccs = tf.get("compute_capabilities", [])
    seen = set()
    gpu_ccs = [(g.get("device_name") or g["name"], g.get("compute_capability")) for g in tf_gpus]
    if not gpu_ccs:
        gpu_ccs = [(d.get("name"), d.get("compute_capability")) for d in driver_gpus]
    for name, cc in gpu_ccs:
        support = arch_support(cc, build_ccs)
        if (name, cc) in seen or support not in ("missing", "ptx"):
            continue
        seen.add((name, cc))
        if support == "missing":
            add(
                "arch_missing",
                "error",
                f"{name} (compute capability {cc}) is not in this TensorFlow build's architectures "
                f"({', '.join(build_ccs)}).",
                "Use a TensorFlow release built for this GPU (a newer one for a new GPU, an older one for "
                "an old "
                "GPU), or NVIDIA's NGC TensorFlow container.",
                ['pip install -U "tensorflow[and-cuda]"'],
                "https://developer.nvidia.com/cuda-gpus",
            )
        else:
            add(
                "arch_ptx_jit",
                "warning",
                f"{name} (compute capability {cc}) has no machine code in this build, only PTX: the driver "
                "compiles kernels at start-up (slow first run, cached after).",
                "Fine to use; a TensorFlow release that lists this architecture starts faster.",
                [],
                "https://docs.nvidia.com/cuda/cuda-c-programming-guide/#just-in-time-compilation",
            )

    # 5. The driver sees GPUs but TensorFlow does not.
    physical = tf.get("physical_gpus", [])
    if driver_ok and tf.get("built_with_cuda") and not tf.get("error") and not physical:
        cvd = plat.get("cuda_visible_devices")
        if cvd is not None and cvd.strip() in ("", "-1", "none", "NoDevFiles"):
            add(
                "cuda_visible_devices",
                "error",
                f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU from this kernel.",
                "Unset it (or list the GPUs to use) in the kernel's environment and restart the kernel.",
                ["%env CUDA_VISIBLE_DEVICES=0  # then restart"],
            )
        else:
            wheels = tf.get("nvidia_wheels", {})
            add(
                "tf_sees_no_gpu",
                "error",
                f"The driver sees {len(driver_gpus)} GPU(s) but TensorFlow sees none: its CUDA libraries "
                "(cuDNN, cuBLAS, ...) were not found"
                + ("" if wheels else " and no nvidia-* CUDA wheels are installed")
                + ".",
                "Install the CUDA wheels TensorFlow was built against; run %%gpu_doctor on the import log "
                "for "
                "the exact library.",
                [AND_CUDA],
                TF_INSTALL_LINK + "#linux",
            )
    elif physical and not tf_gpus:
        add(
            "gpus_hidden",
            "warning",
            f"TensorFlow found {len(physical)} GPU(s) but all are hidden by set_visible_devices.",
            "Make them visible before the runtime starts (%gpu_visible all), or restart the kernel.",
            ["%gpu_visible all"],
        )

    # 6. The runtime already started: settings are frozen.
    if facts.get("runtime_initialized"):
        add(
            "runtime_initialized",
            "info",
            "TensorFlow's runtime is already initialised in this kernel: memory growth, memory limits and "
            "visible GPUs can no longer change.",
            "To change them, restart the kernel and run %gpu_memory / %gpu_visible in the first cell.",
        )

    # Where Keras will train.
    backend = keras.get("backend") or ("tensorflow" if tf.get("installed") else None)
    other = keras.get("backend_check") or {}
    if backend in ("jax", "torch"):
        n_gpu = other.get("gpu_count") or 0
        framework = backend
    else:
        n_gpu = len(tf_gpus)
        framework = "tensorflow"
    errors = [p for p in problems if p["level"] == "error"]
    if n_gpu and not errors:
        status_ = "gpu_ready"
        names = (
            ", ".join(sorted({g.get("device_name") or g["name"] for g in tf_gpus}))
            if framework == "tensorflow"
            else ""
        )
        summary = f"Keras ({framework}) will train on {n_gpu} GPU(s)" + (f": {names}" if names else "") + "."
    elif not tf.get("installed") and backend not in ("jax", "torch"):
        status_ = "no_tensorflow"
        summary = "TensorFlow is not installed in this kernel."
    elif not driver_ok:
        status_ = "no_gpu"
        summary = f"No GPU: training will run on the CPU ({status.get('reason') or 'no NVIDIA GPU found'})."
    elif n_gpu:
        status_ = "gpu_problem"
        summary = f"{framework} sees {n_gpu} GPU(s) but training on them will fail: {errors[0]['problem']}"
    else:
        status_ = "gpu_not_used"
        summary = (
            f"The driver sees {len(driver_gpus)} GPU(s) but {framework} can't use them, so training will "
            "run on the "
            f"CPU: {errors[0]['problem'] if errors else 'see the checks below'}"
        )
    if backend in ("jax", "torch") and other.get("gpu_count") is None and not errors:
        status_ = "unknown"
        summary = f"Keras uses the {backend} backend; run %gpu_check --deep to ask {backend} for its devices."
    return {
        "status": status_,
        "device": "GPU"
        if status_ == "gpu_ready"
        else ("CPU" if status_ in ("no_gpu", "gpu_not_used") else None),
        "framework": framework,
        "gpu_count": n_gpu,
        "summary": summary,
        "problems": problems,
    }


# ---------------------------------------------------------------- display


def _sections(facts: dict[str, Any]) -> list[Section]:
    drv, tf, keras, plat = facts["driver"], facts["tensorflow"], facts["keras"], facts["platform"]
    out = []
    st = drv["status"]
    s = Section("NVIDIA driver")
    s.add(
        "state",
        f"{st['state']} ({st['backend']})" + (f": {st['reason']}" if st.get("reason") else ""),
        None if st["state"] == "ok" else "error",
    )
    for d in drv["devices"]:
        s.add(
            f"GPU {d['index']}",
            f"{d['name']}, {_mib(d.get('memory_total_mib'))}, compute capability "
            f"{d.get('compute_capability') or 'n/a'}",
        )
    if drv["devices"]:
        d0 = drv["devices"][0]
        s.add("driver", f"{d0.get('driver_version')} (CUDA {d0.get('cuda_driver_version') or 'n/a'})")
    out.append(s)

    s = Section("TensorFlow")
    if not tf["installed"]:
        s.add("installed", False, "error")
    else:
        s.add("version", tf.get("version") or tf.get("error"), "error" if tf.get("error") else None)
        s.add("packages", [f"{k} {v}" for k, v in tf["distributions"].items()])
        s.add("built with CUDA", tf.get("built_with_cuda"), None if tf.get("built_with_cuda") else "warning")
        if tf.get("built_with_cuda"):
            s.add("CUDA / cuDNN", f"{tf.get('cuda_version')} / {tf.get('cudnn_version')}")
            s.add("architectures", tf.get("compute_capabilities"))
        for g in tf["physical_gpus"]:
            flag = g.get("supported_by_build")
            s.add(
                g["name"].replace("/physical_device:", ""),
                f"{g.get('device_name')}, compute capability {g.get('compute_capability')}"
                + ("" if g.get("visible", True) else ", hidden")
                + (f", build: {flag}" if flag else ""),
                "error" if flag == "missing" else None,
            )
        if not tf["physical_gpus"] and tf.get("version"):
            s.add("GPUs", "none", "warning")
    s.add("runtime initialised", facts["runtime_initialized"])
    out.append(s)

    s = Section("Keras")
    if keras["installed"]:
        s.add("version", keras.get("version") or keras.get("error"))
        s.add("backend", keras.get("backend"))
        bc = keras.get("backend_check")
        if bc:
            s.add(
                f"{bc['framework']} GPUs",
                bc.get("gpu_count") if bc.get("gpu_count") is not None else "not checked",
            )
            if bc.get("devices"):
                s.add(f"{bc['framework']} devices", bc["devices"])
    else:
        s.add("installed", False)
    out.append(s)

    s = Section("Environment")
    s.add(
        "platform",
        f"{plat['system']} {plat['release']} {plat['machine']}" + (" (WSL)" if plat["wsl"] else ""),
    )
    s.add("python", f"{plat['python']} ({plat['executable']})")
    if plat.get("cuda_visible_devices") is not None:
        s.add("CUDA_VISIBLE_DEVICES", plat["cuda_visible_devices"])
    if plat.get("tf_force_gpu_allow_growth") is not None:
        s.add("TF_FORCE_GPU_ALLOW_GROWTH", plat["tf_force_gpu_allow_growth"])
    out.append(s)

    deep = facts.get("deep_check")
    if deep:
        s = Section("Deep check (runtime started)")
        for d in deep["local_devices"]:
            extra = f", {d['gpu_name']}, cc {d.get('compute_capability')}" if d.get("gpu_name") else ""
            s.add(d["name"], f"{d['device_type']}, {_mib(d['memory_limit_bytes'] / 2**20)}{extra}")
        mm = deep.get("matmul") or {}
        if mm.get("error"):
            s.add("matmul", mm["error"], "error")
        elif mm:
            s.add("matmul ran on", mm["ran_on"], None if mm["on_gpu"] else "warning")
        for k, v in deep["memory"].items():
            s.add(f"{k} memory", f"current {v.get('current_mib')} MiB, peak {v.get('peak_mib')} MiB")
        if deep.get("error"):
            s.add("error", deep["error"], "error")
        out.append(s)
    return out


def _mib(v) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1024:.1f} GiB" if v >= 1024 else f"{v:.0f} MiB"

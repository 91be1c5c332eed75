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
import sys
import time
from typing import Any

from ..core import diagnosis
from ..core.cudafacts import gather_cuda
from ..core.tfbuild import build_capabilities, parse_device_desc, plain
from .probe import local_devices
from .render import Card, Fix, Section, worst
from .runtime import runtime_initialized

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
        fixes = [
            Fix(p["code"], p["level"], p["problem"], p["fix"], p["commands"], p["link"])
            for p in self.verdict["problems"]
        ]
        level = {"gpu_ready": "ok", "no_tensorflow": "error"}.get(self.verdict["status"], "error")
        if level == "ok":
            level = worst([f.level for f in fixes if f.level != "error"] or ["ok"])
        # Not ready: the one headline every surface shows (diagnosis.verdict_text), and its fixes in order.
        blocked = any(p["severity"] == diagnosis.BLOCKING for p in self.verdict["problems"])
        summary = self.verdict["headline"] + "." if blocked else self.verdict["summary"]
        super().__init__("GPU check", level, summary, _sections(facts), fixes)
        self.order = list(self.verdict["fix_commands"])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "gpu_check", "verdict": self.verdict, **self.facts}


# ---------------------------------------------------------------- gathering


def gather(deep: bool = False) -> dict[str, Any]:
    """Everything `check` looks at, as plain JSON-able data."""
    facts: dict[str, Any] = {
        "deep": deep,
        "platform": _platform_facts(),
        "driver": _driver_facts(),
        # Before TensorFlow loads anything: libcuda.so.1, cuInit and the CUDA wheels, asked directly.
        "cuda": gather_cuda(),
        "tensorflow": _tensorflow_facts(),
    }
    facts["keras"] = _keras_facts(deep)
    facts["runtime_initialized"] = runtime_initialized()
    facts["deep_check"] = _deep_facts() if deep else None
    facts["runtime_initialized_after"] = runtime_initialized()
    return facts


_KERNEL_VERDICT: dict[str, Any] = {}


def kernel_verdict(refresh: bool = False) -> dict[str, Any]:
    """This kernel's verdict on light facts (nothing new imported), kept for the kernel's life: the
    training card words a CPU fit with it, as %gpu_check and the panel do."""
    if refresh or not _KERNEL_VERDICT:
        _KERNEL_VERDICT.clear()
        _KERNEL_VERDICT.update(verdict(gather_light()))
    return _KERNEL_VERDICT


def gather_light() -> dict[str, Any]:
    """The facts `%gpu_doctor` adds about this kernel: like `gather`, but imports nothing new.

    TensorFlow is asked only if the kernel already imported it; otherwise its build is
    read from the installed distribution (tensorflow-cpu is the CPU-only build).
    """
    facts: dict[str, Any] = {
        "platform": _platform_facts(),
        "driver": _driver_facts(),
        "cuda": gather_cuda(),
    }
    if "tensorflow" in sys.modules:
        facts["tensorflow"] = _tensorflow_facts()
    else:
        facts["tensorflow"] = {
            "installed": importlib.util.find_spec("tensorflow") is not None,
            "distributions": _dist_versions(_TF_DISTS),
            "version": (facts["cuda"].get("tf_distribution") or {}).get("version"),
            "built_with_cuda": None,
        }
    facts["keras"] = {"installed": None, "backend": os.environ.get("KERAS_BACKEND")}
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
    facts["build_info"] = {k: plain(v) for k, v in info.items()}
    facts["built_with_cuda"] = bool(tf.test.is_built_with_cuda())
    facts["cuda_version"] = plain(info.get("cuda_version"))
    facts["cudnn_version"] = plain(info.get("cudnn_version"))
    facts["compute_capabilities"] = build_capabilities(info)
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
        for d in local_devices(tf, device_lib):
            desc = d.pop("physical_device_desc")
            out["local_devices"].append({**d, **parse_device_desc(desc)})
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


# ---------------------------------------------------------------- judging
# The rules live in kerasgpu.core.diagnosis, shared with the server's probe and the doctor.

verdict = diagnosis.verdict
arch_support = diagnosis.arch_support


# ---------------------------------------------------------------- display


def _sections(facts: dict[str, Any]) -> list[Section]:
    out = [_driver_section(facts["driver"])]
    cuda = facts.get("cuda") or {}
    if cuda.get("libcuda", {}).get("loaded") is not None:
        out.append(_cuda_section(cuda))
    out.append(_tensorflow_section(facts["tensorflow"], facts["runtime_initialized"]))
    out.append(_keras_section(facts["keras"]))
    out.append(_environment_section(facts["platform"]))
    deep = facts.get("deep_check")
    if deep:
        out.append(_deep_section(deep))
    return out


def _driver_section(drv: dict[str, Any]) -> Section:
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
    return s


def _cuda_section(cuda: dict[str, Any]) -> Section:
    s = Section("CUDA in this process")
    lib = cuda["libcuda"]
    s.add(
        "libcuda.so.1",
        f"loaded ({lib['path']})" if lib["loaded"] else f"does not load: {lib['error']}",
        None if lib["loaded"] else "error",
    )
    if cuda.get("cu_init"):
        init = cuda["cu_init"]
        s.add("cuInit", f"{init['code']} ({init['name']})", None if init["code"] == 0 else "error")
    if cuda.get("driver_cuda_version"):
        s.add("driver's CUDA", cuda["driver_cuda_version"])
    s.add("device files", cuda.get("dev_nodes") or "none")
    s.add("/proc/driver/nvidia", cuda.get("proc_driver_version") or "missing")
    wanted, have = cuda.get("and_cuda"), cuda.get("wheels") or {}
    if wanted:
        missing = [w for w in wanted if w not in have]
        s.add(
            "CUDA wheels",
            f"{len(wanted) - len(missing)} of {len(wanted)} installed"
            + (f" (missing: {', '.join(missing)})" if missing else ""),
            "error" if missing else None,
        )
    elif have:
        s.add("CUDA wheels", [f"{k} {v['version']}" for k, v in have.items()])
    return s


def _tensorflow_section(tf: dict[str, Any], runtime_initialized: bool) -> Section:
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
    s.add("runtime initialised", runtime_initialized)
    return s


def _keras_section(keras: dict[str, Any]) -> Section:
    s = Section("Keras")
    if not keras["installed"]:
        s.add("installed", False)
        return s
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
    return s


def _environment_section(plat: dict[str, Any]) -> Section:
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
    return s


def _deep_section(deep: dict[str, Any]) -> Section:
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
    return s


def _mib(v) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1024:.1f} GiB" if v >= 1024 else f"{v:.0f} MiB"

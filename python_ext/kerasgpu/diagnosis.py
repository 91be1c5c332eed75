"""The one diagnosis: facts about a kernel's GPU stack in, causes with fixes out, most blocking first.

Pure functions on plain data, shared by `%gpu_check` (and `--deep`), the server's
TensorFlow probe and `%gpu_doctor`, so the four name the same cause for the same
environment. The facts come from `kernel.checks.gather` (the driver's view, the
TensorFlow build, what TensorFlow sees), `cudafacts.gather_cuda` (libcuda.so.1, cuInit,
the CUDA runtime wheels) and `parse_log` (what TensorFlow printed); any part may be
missing, and a rule whose facts are missing stays silent.

A cause is a dict: code, severity ("blocking": training can't use the GPU until it is
fixed; "info": worth knowing), level (the card's colour), title, why (the evidence),
problem (title and why in one text), fix, commands, link.
"""

from __future__ import annotations

import re
from typing import Any

BLOCKING, INFO = "blocking", "info"

FRAMEWORKS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
TF_INSTALL_LINK = "https://www.tensorflow.org/install/pip"
TOOLKIT_LINK = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"

# Oldest Linux driver that runs each CUDA major release (NVIDIA's CUDA release
# notes, "minor version compatibility"); the driver's own CUDA version is better.
MIN_DRIVER_FOR_CUDA = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}

# cuInit's answers by number, for logs that print only the number (TensorFlow 2.21: "UNKNOWN ERROR (303)").
CU_ERRORS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    34: "CUDA_ERROR_STUB_LIBRARY",
    46: "CUDA_ERROR_DEVICES_UNAVAILABLE",
    100: "CUDA_ERROR_NO_DEVICE",
    303: "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
    803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
    999: "CUDA_ERROR_UNKNOWN",
}
_CU_CODES = {v: k for k, v in CU_ERRORS.items()}
_HIDING = ("", "-1", "none", "NoDevFiles")


def and_cuda(version: str | None = None) -> str:
    """The install command for TensorFlow's CUDA build with its runtime wheels, run from the notebook."""
    pin = f"=={version}" if version and re.fullmatch(r"[\w.]+", str(version)) else ""
    return f'%pip install "tensorflow[and-cuda]{pin}"'


# ---------------------------------------------------------------- TensorFlow's log


_LOG = {
    # dso_loader.cc (TF_CPP_MAX_VLOG_LEVEL=1 in 2.21; a warning in 2.x before 2.16)
    "dso": re.compile(r"Could not load dynamic library '([^']+)'(?:; dlerror: ([^\n]*))?"),
    # cuda_platform.cc:52 in 2.21: "failed call to cuInit: INTERNAL: CUDA error: Failed call to
    # cuInit: UNKNOWN ERROR (303)"; older: "failed call to cuInit: CUDA_ERROR_NO_DEVICE: ..."
    "cu_init": re.compile(
        r"failed call to cuInit: (?:[A-Z_]+: CUDA error: Failed call to cuInit: )?([^\n]*)"
    ),
    # cudart_stub.cc:31 in 2.16+: printed when libcudart does not load, whatever the driver does.
    "cudart_stub": re.compile(r"Could not find cuda drivers on your machine[^\n]*"),
    "dlopen_failed": re.compile(r"Cannot dlopen some GPU libraries[^\n]*|Skipping registering GPU devices"),
    # cuda_diagnostics.cc:145
    "no_kernel_driver": re.compile(r"kernel driver does not appear to be running on this host[^\n]*"),
    "driver_too_old": re.compile(
        r"CUDA driver version is insufficient for CUDA runtime version"
        r"|CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"
    ),
    "driver_mismatch": re.compile(
        r"kernel version [\d.]+ does not match DSO version [\d.]+|CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"
    ),
}
_SO = re.compile(r"(lib[\w.+-]+?\.so[.\d]*): cannot open shared object file")


def _line(text: str, m: re.Match) -> str:
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    line = text[start : end if end != -1 else len(text)].strip()
    return line if len(line) <= 300 else line[:297] + "..."


def parse_log(text: str) -> dict[str, Any]:
    """What a TensorFlow log says about the driver and CUDA libraries, as facts (with the line of each)."""
    text = text or ""
    out: dict[str, Any] = {"lines": {}, "missing_libraries": []}
    for m in _LOG["dso"].finditer(text):
        lib, err = m.group(1), m.group(2) or ""
        if lib.lower().endswith(".dll"):
            continue  # native Windows: the doctor's own rule
        if lib.startswith("libcuda.so"):
            out["libcuda_error"] = err or f"{lib} could not be loaded"
            out["lines"].setdefault("libcuda", _line(text, m))
            continue
        out["lines"].setdefault("libraries", _line(text, m))
        for name in [lib, *_SO.findall(err)]:
            if name not in out["missing_libraries"]:
                out["missing_libraries"].append(name)
    for m in _SO.finditer(text):
        name = m.group(1)
        if not name.startswith("libcuda.so") and name not in out["missing_libraries"]:
            out["missing_libraries"].append(name)
            out["lines"].setdefault("libraries", _line(text, m))
    m = _LOG["cu_init"].search(text)
    if m:
        said = m.group(1).strip()
        num = re.search(r"\((\d+)\)", said)
        name = re.match(r"CUDA_ERROR_\w+", said)
        code = int(num.group(1)) if num else (_CU_CODES.get(name.group(0)) if name else None)
        out["cu_init"] = {"code": code, "name": CU_ERRORS.get(code, said) if code else said}
        out["lines"]["cu_init"] = _line(text, m)
    for key in ("cudart_stub", "dlopen_failed", "no_kernel_driver", "driver_too_old", "driver_mismatch"):
        m = _LOG[key].search(text)
        if m:
            out[key] = True
            out["lines"][key] = _line(text, m)
    return out


# ---------------------------------------------------------------- helpers


_GLOG = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ |[\d-]+ [\d:.]+: [IWEF] )(?:\S+/)?")


def _says(line: str | None) -> str:
    """`TensorFlow says: "<line>"`, without the log's time stamp and thread id."""
    return f'TensorFlow says: "{_GLOG.sub("", (line or "").strip())}"'


def _gpus(n: int) -> str:
    return f"{n} GPU" + ("" if n == 1 else "s")


def _sentence(text: str) -> str:
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _major(version: str | None) -> int | None:
    m = re.match(r"(\d+)", str(version or ""))
    return int(m.group(1)) if m else None


def _tf_at_least(version: str | None, major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", str(version or ""))
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


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


class _Causes:
    def __init__(self):
        self.items: list[dict[str, Any]] = []

    def add(self, code, severity, title, why, fix, commands=(), link=None, level=None):
        title, why = title.rstrip("."), _sentence(why)
        self.items.append(
            {
                "code": code,
                "severity": severity,
                "level": level or ("error" if severity == BLOCKING else "info"),
                "title": title,
                "why": why,
                "problem": f"{title}. {why}" if why else _sentence(title),
                "fix": fix,
                "commands": list(commands),
                "link": link,
            }
        )

    def codes(self) -> set[str]:
        return {c["code"] for c in self.items}

    def blocking(self) -> bool:
        return any(c["severity"] == BLOCKING for c in self.items)

    def ordered(self) -> list[dict[str, Any]]:
        return [c for c in self.items if c["severity"] == BLOCKING] + [
            c for c in self.items if c["severity"] != BLOCKING
        ]


# ---------------------------------------------------------------- the rules


def diagnose(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cause the facts show, blocking ones first (in the order to fix them), then notes."""
    c = _Causes()
    plat = facts.get("platform") or {}
    drv = facts.get("driver") or {}
    tf = facts.get("tensorflow") or {}
    keras = facts.get("keras") or {}
    cuda = facts.get("cuda") or {}
    log = facts.get("log") or {}
    lines = log.get("lines", {})
    status = drv.get("status") or {}
    driver_gpus = (drv.get("devices") or []) if status.get("state") == "ok" else []
    smi_known = bool(status)
    windows = plat.get("system") == "Windows"
    dists = tf.get("distributions") or {}
    tf_version = tf.get("version") or (cuda.get("tf_distribution") or {}).get("version")
    cvd = plat.get("cuda_visible_devices", cuda.get("cuda_visible_devices"))
    physical = tf.get("physical_gpus") or []
    tf_gpus = [g for g in physical if g.get("visible", True)]

    # -- 1. TensorFlow on native Windows has no GPU since 2.11: nothing below applies.
    if windows and tf.get("installed") and _tf_at_least(tf.get("version"), 2, 11):
        c.add(
            "windows_native",
            BLOCKING,
            f"TensorFlow {tf.get('version')} has no GPU support on native Windows",
            "The last release that used a GPU on native Windows was 2.10.",
            "Use WSL2 (Ubuntu) and install the CUDA build there, or pin TensorFlow 2.10 with CUDA 11.2 and "
            "cuDNN 8.1.",
            [
                "wsl --install",
                'pip install "tensorflow[and-cuda]"  # inside WSL2',
                'pip install "tensorflow<2.11"',
            ],
            "https://www.tensorflow.org/install/pip#windows-wsl2",
        )

    # -- 2. No TensorFlow: the first thing to install, whatever the driver.
    if not tf.get("installed") and tf and keras.get("backend") not in ("jax", "torch"):
        c.add(
            "no_tensorflow",
            BLOCKING,
            "TensorFlow is not installed in this kernel's environment",
            "",
            "Install the CUDA build into this kernel's environment, then restart the kernel.",
            [and_cuda()],
            TF_INSTALL_LINK,
        )

    # -- 3. The driver, as this process sees it: libcuda.so.1 and cuInit.
    libcuda = (cuda.get("libcuda") or {}).get("loaded")
    cu_init = cuda.get("cu_init") if libcuda else None
    from_log = False
    if libcuda is None and log:
        # TensorFlow's CUDA stub answers cuInit with 303 when it could not load libcuda.so.1.
        log_init = log.get("cu_init") or {}
        if log.get("libcuda_error") or log_init.get("code") == 303:
            libcuda, from_log = False, True
        elif log_init.get("code") is not None or log_init.get("name"):
            libcuda, cu_init, from_log = True, log_init, True
    driver_evidence = (
        bool(driver_gpus) or bool(cuda.get("dev_nodes")) or bool(cuda.get("proc_driver_version"))
    )
    if libcuda is False and not windows:
        _driver_library_missing(c, cuda, log, status, driver_gpus, driver_evidence, from_log)
    elif libcuda and cu_init and cu_init.get("code") != 0:
        _cu_init_failed(c, cu_init, cvd, cuda, lines.get("cu_init") if from_log else None)
    elif libcuda is None and smi_known and not driver_gpus and not windows:
        # No facts of our own (made-up facts, an old probe): the driver's view is all there is.
        c.add(
            status.get("code") or "no_devices",
            BLOCKING,
            "No NVIDIA GPU is usable from this kernel",
            status.get("reason") or "No NVIDIA GPU was found.",
            status.get("hint")
            or "Run this on a machine (or container) with an NVIDIA GPU and its driver; in Docker use "
            "--gpus all with the NVIDIA Container Toolkit.",
            ["nvidia-smi"],
            "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/",
        )
    elif libcuda and cu_init and cu_init.get("code") == 0 and smi_known and not driver_gpus:
        c.add(
            "no_nvidia_smi",
            INFO,
            "CUDA works, but nvidia-smi does not answer here",
            f"cuInit succeeded ({_gpus(cuda.get('device_count') or 0)}), yet the GPU panel's source says: "
            f"{_sentence(status.get('reason') or 'no GPU found')}",
            "Training is not affected; for GPU readings install nvidia-ml-py or put nvidia-smi on PATH.",
            ["%pip install nvidia-ml-py"],
        )

    # -- 4. TensorFlow's build.
    if tf.get("error"):
        c.add(
            "tensorflow_import_failed",
            BLOCKING,
            "TensorFlow is installed but failed to load",
            tf["error"],
            "Reinstall it in a clean environment; mixed CUDA wheels from other packages are the usual cause.",
            ["%pip uninstall -y tensorflow tensorflow-cpu tensorflow-gpu", and_cuda(tf_version)],
            TF_INSTALL_LINK,
        )
    if "tensorflow-gpu" in dists:
        c.add(
            "tensorflow_gpu_package",
            BLOCKING if not tf_gpus else INFO,
            f"The deprecated 'tensorflow-gpu' package ({dists['tensorflow-gpu']}) is installed",
            "It gets no releases after 2.12 and can shadow the real TensorFlow.",
            "Remove it; the 'tensorflow' package has carried GPU support since 2.1.",
            ["%pip uninstall -y tensorflow-gpu", and_cuda()],
            "https://pypi.org/project/tensorflow-gpu/",
            level=None if not tf_gpus else "warning",
        )
    cpu_build = tf.get("built_with_cuda") is False or (
        tf.get("built_with_cuda") is None
        and (cuda.get("tf_distribution") or {}).get("name") == "tensorflow-cpu"
    )
    if tf.get("installed", bool(cuda.get("tf_distribution"))) and cpu_build and not windows:
        cpu = "tensorflow-cpu" in dists or (cuda.get("tf_distribution") or {}).get("name") == "tensorflow-cpu"
        cpu_dist = "tensorflow-cpu" if cpu else "tensorflow"
        c.add(
            "cpu_only_wheel",
            BLOCKING,
            f"This TensorFlow ({cpu_dist} {tf_version}) is a CPU-only build",
            "It can't use a GPU even where one is present.",
            "Install the CUDA build (it brings its own CUDA and cuDNN wheels), then restart the kernel.",
            ([f"%pip uninstall -y {cpu_dist}"] if cpu_dist != "tensorflow" else []) + [and_cuda(tf_version)],
            TF_INSTALL_LINK,
        )

    # -- 5. The CUDA runtime libraries a CUDA build loads (libcudart, cuBLAS, cuDNN, ...).
    cuda_build = tf.get("built_with_cuda") is True or (
        tf.get("built_with_cuda") is None and bool(cuda.get("and_cuda"))
    )
    if not windows and not cpu_build:
        _runtime_libraries(c, cuda, log, tf_version, cuda_build, libcuda)

    # -- 6. Driver vs the build's CUDA.
    build_cuda = _major(tf.get("cuda_version"))
    drv_cuda_text = cuda.get("driver_cuda_version") or (
        driver_gpus[0].get("cuda_driver_version") if driver_gpus else None
    )
    if tf.get("built_with_cuda") and build_cuda and drv_cuda_text:
        drv_cuda = _major(drv_cuda_text)
        if drv_cuda is not None and drv_cuda < build_cuda:
            need = MIN_DRIVER_FOR_CUDA.get(build_cuda, "a newer release")
            version = driver_gpus[0].get("driver_version") if driver_gpus else None
            c.add(
                "driver_too_old",
                BLOCKING,
                f"The NVIDIA driver is too old for this TensorFlow's CUDA {tf.get('cuda_version')}",
                f"The driver{' ' + version if version else ''} supports CUDA {drv_cuda_text}, but TensorFlow "
                f"{tf_version} was built for CUDA {tf.get('cuda_version')}.",
                f"Update the NVIDIA driver to {need} or newer (or use a TensorFlow built for CUDA "
                f"{drv_cuda}).",
                ["!nvidia-smi  # 'CUDA Version' is what the driver supports"],
                "https://docs.nvidia.com/deploy/cuda-compatibility/",
            )
    elif log.get("driver_too_old"):
        c.add(
            "driver_too_old",
            BLOCKING,
            "The NVIDIA driver is too old for the CUDA libraries TensorFlow loads",
            _says(lines.get("driver_too_old")),
            "Update the NVIDIA driver (nvidia-smi shows the CUDA version it supports), or use a TensorFlow "
            "built for an older CUDA.",
            ["!nvidia-smi"],
            "https://docs.nvidia.com/deploy/cuda-compatibility/",
        )
    if log.get("driver_mismatch") and "driver_mismatch" not in c.codes():
        _driver_mismatch(c, _says(lines.get("driver_mismatch")))

    # -- 7. CUDA_VISIBLE_DEVICES.
    hides_all = cvd is not None and cvd.strip() in _HIDING
    if hides_all and "cuda_visible_devices" not in c.codes() and not cpu_build:
        c.add(
            "cuda_visible_devices",
            BLOCKING,
            "CUDA_VISIBLE_DEVICES hides every GPU from this kernel",
            f"CUDA_VISIBLE_DEVICES={cvd!r} in the kernel's environment.",
            "Unset it (or list the GPUs to use) in the kernel's environment, before TensorFlow starts: in "
            "the kernelspec's env, or in the first cell, then restart the kernel.",
            ["%env CUDA_VISIBLE_DEVICES=0  # first cell after a restart", "jupyter kernelspec list"],
        )
    elif cvd is not None and not hides_all and tf_gpus and len(tf_gpus) < len(driver_gpus):
        c.add(
            "cuda_visible_devices",
            INFO,
            f"TensorFlow sees {len(tf_gpus)} of the {len(driver_gpus)} GPUs the driver lists",
            f"CUDA_VISIBLE_DEVICES={cvd!r} in the kernel's environment hides the others.",
            "Unset CUDA_VISIBLE_DEVICES (or list every GPU) in the kernelspec's env, then restart the "
            "kernel.",
            ["jupyter kernelspec list"],
            level="warning",
        )

    # -- 8. GPU architectures vs the build.
    build_ccs = tf.get("compute_capabilities") or []
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
            c.add(
                "arch_missing",
                BLOCKING,
                f"{name} (compute capability {cc}) is not in this TensorFlow build",
                f"The build has machine code or PTX for: {', '.join(build_ccs)}.",
                "Use a TensorFlow release built for this GPU (a newer one for a new GPU, an older one for an "
                "old GPU), or NVIDIA's NGC TensorFlow container.",
                ['%pip install -U "tensorflow[and-cuda]"'],
                "https://developer.nvidia.com/cuda-gpus",
            )
        else:
            c.add(
                "arch_ptx_jit",
                INFO,
                f"{name} (compute capability {cc}) runs this build's PTX, compiled at start-up",
                f"The build has no machine code for {cc} ({', '.join(build_ccs)}), so the driver compiles "
                "its kernels the first time (a slow first run, cached after).",
                "Fine to use; a TensorFlow release that lists this architecture starts faster.",
                [],
                "https://docs.nvidia.com/cuda/cuda-c-programming-guide/#just-in-time-compilation",
            )

    # -- 9. TensorFlow finds no GPU, or hides them, for no reason above.
    if (
        driver_gpus
        and tf.get("built_with_cuda")
        and not tf.get("error")
        and not physical
        and not c.blocking()
    ):
        c.add(
            "tf_sees_no_gpu",
            BLOCKING,
            "TensorFlow registers no GPU, for a reason this check can't see",
            f"The driver sees {_gpus(len(driver_gpus))}"
            + (", libcuda.so.1 and the CUDA wheels load," if cuda.get("libcuda") else "")
            + " yet TensorFlow lists none.",
            "Run the import with TF_CPP_MAX_VLOG_LEVEL=1 and give its log to %%gpu_doctor: it names the "
            "library or error.",
            [
                "!TF_CPP_MAX_VLOG_LEVEL=1 python -c "
                "'import tensorflow as tf; tf.config.list_physical_devices()'"
            ],
            TF_INSTALL_LINK + "#linux",
        )
    elif physical and not tf_gpus:
        c.add(
            "gpus_hidden",
            BLOCKING,
            f"TensorFlow found {_gpus(len(physical))} but set_visible_devices hides them all",
            "",
            "Make them visible before the runtime starts (%gpu_visible all), or restart the kernel.",
            ["%gpu_visible all"],
        )

    # -- 10. The runtime already started: settings are frozen.
    if facts.get("runtime_initialized"):
        c.add(
            "runtime_initialized",
            INFO,
            "TensorFlow's runtime is already initialised in this kernel",
            "Memory growth, memory limits and visible GPUs can no longer change.",
            "To change them, restart the kernel and run %gpu_memory / %gpu_visible in the first cell.",
        )
    return c.ordered()


def _driver_library_missing(c, cuda, log, status, driver_gpus, driver_evidence, from_log) -> None:
    lines = log.get("lines", {})
    why = []
    if from_log:
        if lines.get("libcuda"):
            why.append(_says(lines["libcuda"]))
        if lines.get("cu_init"):
            why.append(
                f"{_says(lines['cu_init'])} (error 303 is what TensorFlow's CUDA stub answers when "
                "libcuda.so.1 did not load)"
            )
        if lines.get("no_kernel_driver"):
            why.append(_says(lines["no_kernel_driver"]))
    else:
        why.append(f"Loading it fails: {(cuda.get('libcuda') or {}).get('error')}")
    if driver_gpus:
        names = ", ".join(sorted({d.get("name") or "?" for d in driver_gpus}))
        why.append(
            f"nvidia-smi sees {_gpus(len(driver_gpus))} ({names}), but this process can't reach the driver"
        )
    elif status.get("state") and status.get("state") != "ok":
        why.append(
            f"No NVIDIA driver answers here either: {status.get('reason') or 'nvidia-smi found no GPU'}"
        )
    if not from_log:
        nodes = cuda.get("dev_nodes") or []
        why.append("GPU device files: " + (", ".join(nodes) if nodes else "no /dev/nvidia*"))
        if not cuda.get("proc_driver_version"):
            why.append("/proc/driver/nvidia/version does not exist (no NVIDIA kernel driver visible)")
    on_disk = [p for p in (cuda.get("libcuda") or {}).get("on_disk", []) if "/stubs/" not in p]
    why.append("pip can't install libcuda.so.1: it comes with the NVIDIA driver, not with TensorFlow")
    if on_disk:
        folder = on_disk[0].rsplit("/", 1)[0]
        fix = (
            f"The driver's library is on disk ({on_disk[0]}) but not on the loader's path: run "
            "`sudo ldconfig` "
            f"(or add {folder} to LD_LIBRARY_PATH in the kernelspec's env or before starting Jupyter), then "
            "restart the kernel."
        )
        commands = ["!sudo ldconfig", f"!ls {folder}/libcuda.so*"]
    elif driver_evidence or driver_gpus:
        fix = (
            "Give this process the GPU driver: a container must be started with `docker run --gpus all` "
            "(the NVIDIA Container Toolkit mounts libcuda.so.1 and /dev/nvidia*); on a host, install the "
            "NVIDIA driver, or if it is installed make libcuda.so.1 findable (`sudo ldconfig` or "
            "LD_LIBRARY_PATH before starting Jupyter). Then restart the kernel."
        )
        commands = ["docker run --gpus all ...", "!ldconfig -p | grep libcuda", "!ls -l /dev/nvidia*"]
    else:
        fix = (
            "Run the notebook where an NVIDIA GPU and its driver are: on a GPU machine install the NVIDIA "
            "driver (it provides libcuda.so.1); in Docker start the container with `docker run --gpus all` "
            "(NVIDIA Container Toolkit); if the driver is installed, make libcuda.so.1 findable (`sudo "
            "ldconfig` or LD_LIBRARY_PATH). Then restart the kernel."
        )
        commands = ["!nvidia-smi", "!ldconfig -p | grep libcuda", "docker run --gpus all ..."]
    no_driver = not (from_log or driver_evidence) and status.get("state") not in (None, "ok")
    c.add(
        "driver_library_missing",
        BLOCKING,
        "No NVIDIA driver here: libcuda.so.1, the driver's library, does not load"
        if no_driver
        else "The NVIDIA driver's library libcuda.so.1 does not load in this process",
        "; ".join(_sentence(w).rstrip(".") for w in why) + ".",
        fix,
        commands,
        TOOLKIT_LINK,
    )
    c.items[-1]["short"] = "no NVIDIA driver" if no_driver else "the driver's libcuda.so.1 does not load"


def _driver_mismatch(c, why: str) -> None:
    c.add(
        "driver_mismatch",
        BLOCKING,
        "The driver's library and the loaded NVIDIA kernel module are different versions",
        why,
        "Reboot after a driver update (or reload the nvidia kernel modules); in a container, use the host's "
        "libcuda (--gpus all) instead of one installed in the image.",
        ["!nvidia-smi", "!cat /proc/driver/nvidia/version"],
        "https://docs.nvidia.com/deploy/cuda-compatibility/",
    )


def _cu_init_failed(c, cu_init, cvd, cuda, log_line) -> None:
    code, name = cu_init.get("code"), cu_init.get("name") or ""
    said = _says(log_line) if log_line else f"cuInit(0) returned {code} ({name})"
    if code == 100 and cvd is not None and cvd.strip() in _HIDING:
        c.add(
            "cuda_visible_devices",
            BLOCKING,
            "CUDA_VISIBLE_DEVICES hides every GPU from this kernel",
            f"CUDA_VISIBLE_DEVICES={cvd!r}, and {said}.",
            "Unset it (or list the GPUs to use) in the kernel's environment, before TensorFlow starts: in "
            "the kernelspec's env, or in the first cell, then restart the kernel.",
            ["%env CUDA_VISIBLE_DEVICES=0  # first cell after a restart", "jupyter kernelspec list"],
        )
    elif code == 100:
        c.add(
            "no_cuda_device",
            BLOCKING,
            "The NVIDIA driver loads but finds no GPU",
            f"{said}. Device files: {', '.join(cuda.get('dev_nodes') or []) or 'none'}.",
            "Give the container the GPU (`docker run --gpus all`, or the device your scheduler "
            "assigns), check that nvidia-smi lists it from inside this kernel's machine, and that "
            "CUDA_VISIBLE_DEVICES names it.",
            ["!nvidia-smi", "%env CUDA_VISIBLE_DEVICES"],
            TOOLKIT_LINK,
        )
    elif code == 34:
        c.add(
            "driver_stub_library",
            BLOCKING,
            "The libcuda.so.1 this process loaded is the CUDA toolkit's stub, not the driver",
            f"{said}; it was loaded from {(cuda.get('libcuda') or {}).get('path') or 'a stubs/ folder'}.",
            "Take the toolkit's stubs/ folder off LD_LIBRARY_PATH (it is for linking only) so the "
            "driver's own libcuda.so.1 loads, then restart the kernel.",
            ["!echo $LD_LIBRARY_PATH", "!ldconfig -p | grep libcuda"],
        )
    elif code == 803:
        _driver_mismatch(c, said)
    elif code == 804:
        c.add(
            "driver_too_old",
            BLOCKING,
            "The CUDA forward-compatibility driver does not support this GPU",
            said,
            "Remove the cuda-compat package from the library path (it is for data-centre GPUs only), or "
            "update the NVIDIA driver itself.",
            ["!nvidia-smi"],
            "https://docs.nvidia.com/deploy/cuda-compatibility/",
        )
    else:
        c.add(
            "cuinit_failed",
            BLOCKING,
            "The NVIDIA driver failed to start CUDA",
            said,
            "Check that nvidia-smi works from this kernel's machine and that the kernel module is loaded "
            "(dmesg shows NVRM errors); a driver update without a reboot, or a GPU that fell off the "
            "bus, needs a reboot.",
            ["!nvidia-smi", "!dmesg | grep -i nvrm"],
            "https://docs.nvidia.com/deploy/xid-errors/",
        )


def _runtime_libraries(c, cuda, log, tf_version, cuda_build, libcuda) -> None:
    lines = log.get("lines", {})
    wanted = cuda.get("and_cuda")
    wheels = cuda.get("wheels") or {}
    if wanted is not None and cuda_build:
        missing = [w for w in wanted if w not in wheels]
        from_system = cuda.get("system_libs") or {}
        # A wheel TensorFlow lacks is no problem when a system CUDA provides its library; the compiler
        # wheel (ptxas, for XLA) has none and is not needed to register a GPU.
        still = [
            w
            for w in missing
            if w != "nvidia-cuda-nvcc-cu12" and (from_system.get(w) or {"error": "?"}).get("error")
        ]
        broken = {
            f"{w}: {lib}": err
            for w, info in wheels.items()
            for lib, err in (info.get("libs") or {}).items()
            if err
            and "libcuda.so" not in err  # a library that needs the driver waits for it, it is not broken
        }
        if missing and still:
            count = "None" if len(missing) == len(wanted) else f"{len(wanted) - len(missing)}"
            why = (
                f"{count} of the {len(wanted)} CUDA wheels of tensorflow[and-cuda] are installed (missing: "
                f"{', '.join(missing)}), and their libraries are not on the system either, so TensorFlow "
                "can't load libcudart, cuBLAS or cuDNN and stays on the CPU even with a working driver"
            )
            if log.get("cudart_stub") or lines.get("cudart_stub"):
                why += (
                    ". TensorFlow's 'Could not find cuda drivers on your machine' is about libcudart, "
                    "the CUDA runtime, not the driver"
                )
            _missing_wheels(c, why, tf_version, {"missing_wheels": missing})
        elif broken:
            lib, err = next(iter(broken.items()))
            c.add(
                "cuda_library_broken",
                BLOCKING,
                "A CUDA runtime wheel is installed but its library does not load",
                f"{lib}: {err}" + (f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""),
                "Reinstall the CUDA wheels that match this TensorFlow, then restart the kernel.",
                [and_cuda(tf_version).replace("install ", "install --force-reinstall ", 1)],
                TF_INSTALL_LINK + "#linux",
            )
        return
    # Only the log to go by (a pasted log, or an old probe).
    said = [lines[k] for k in ("cudart_stub", "libraries", "dlopen_failed") if lines.get(k)]
    if said:
        why = " ".join(_sentence(_says(line)) for line in said)
        if log.get("cudart_stub"):
            why += (
                " 'Could not find cuda drivers on your machine' is printed when libcudart, the CUDA runtime "
                "from the nvidia-cuda-runtime-cu12 wheel, does not load: it is not about the driver"
            )
        _missing_wheels(c, why, tf_version, {"missing_libraries": log.get("missing_libraries") or []})


def _missing_wheels(c, why, tf_version, details) -> None:
    c.add(
        "missing_cuda_libraries",
        BLOCKING,
        "The CUDA runtime libraries TensorFlow needs are not installed",
        why,
        "Install the CUDA wheels that match this TensorFlow into the kernel's own environment with %pip "
        "(they load without LD_LIBRARY_PATH), then restart the kernel; a driver alone is not enough.",
        [and_cuda(tf_version)],
        TF_INSTALL_LINK + "#linux",
    )
    c.items[-1]["details"] = details


# ---------------------------------------------------------------- the verdict


def verdict(facts: dict[str, Any]) -> dict[str, Any]:
    """Causes plus a status and a one-line summary that names the first blocking cause."""
    problems = diagnose(facts)
    drv = facts.get("driver") or {}
    tf = facts.get("tensorflow") or {}
    keras = facts.get("keras") or {}
    cuda = facts.get("cuda") or {}
    status = drv.get("status") or {}
    driver_gpus = (drv.get("devices") or []) if status.get("state") == "ok" else []
    tf_gpus = [g for g in tf.get("physical_gpus") or [] if g.get("visible", True)]
    backend = keras.get("backend") or ("tensorflow" if tf.get("installed") else None)
    other = keras.get("backend_check") or {}
    if backend in ("jax", "torch"):
        n_gpu, framework = other.get("gpu_count") or 0, backend
    else:
        n_gpu, framework = len(tf_gpus), "tensorflow"
    name = FRAMEWORKS.get(framework, framework)
    blocking = [p for p in problems if p["severity"] == BLOCKING]
    first = blocking[0]["title"] if blocking else None
    cuda_ok = bool(cuda.get("device_count"))  # cuInit found GPUs, whatever nvidia-smi says
    if n_gpu and not blocking:
        status_ = "gpu_ready"
        names = (
            ", ".join(sorted({g.get("device_name") or g["name"] for g in tf_gpus}))
            if framework == "tensorflow"
            else ""
        )
        summary = f"Keras ({name}) will train on {_gpus(n_gpu)}" + (f": {names}" if names else "") + "."
    elif not tf.get("installed") and backend not in ("jax", "torch"):
        status_ = "no_tensorflow"
        summary = "TensorFlow is not installed in this kernel."
    elif not driver_gpus and not cuda_ok:
        status_ = "no_gpu"
        summary = f"No GPU: training will run on the CPU. {_sentence(first or 'No NVIDIA GPU was found')}"
    elif n_gpu:
        status_ = "gpu_problem"
        summary = f"{name} sees {_gpus(n_gpu)} but training on them will fail. {_sentence(first)}"
    else:
        seen = len(driver_gpus) or cuda.get("device_count") or 0
        summary = (
            f"The driver sees {_gpus(seen)} but {name} can't use "
            f"{'it' if seen == 1 else 'them'}, so training will run on the CPU. "
            + _sentence(first or "See the checks below")
        )
        status_ = "gpu_not_used"
    if backend in ("jax", "torch") and other.get("gpu_count") is None and not blocking:
        status_ = "unknown"
        summary = f"Keras uses the {backend} backend; run %gpu_check --deep to ask {backend} for its devices."
    seen = len(driver_gpus) or cuda.get("device_count") or 0
    installed = bool(tf.get("installed")) or backend in ("jax", "torch")
    text = verdict_text(problems, name, n_gpu, seen, installed)
    return {
        "status": status_,
        "device": "GPU"
        if status_ == "gpu_ready"
        else ("CPU" if status_ in ("no_gpu", "gpu_not_used") else None),
        "framework": framework,
        "gpu_count": n_gpu,
        "summary": summary,
        "cause": blocking[0]["code"] if blocking else None,
        "problems": problems,
        **text,
    }


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
        head = f"{name} in this notebook sees {n_gpu} of {_gpus(seen)}"
    elif n_gpu:
        head = f"{name} in this notebook sees {_gpus(n_gpu)}"
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


# ---------------------------------------------------------------- a log on its own (%gpu_doctor)

# Which of parse_log's lines is the evidence for each cause it can lead to.
_EVIDENCE = {
    "driver_library_missing": ("libcuda", "cu_init", "no_kernel_driver"),
    "missing_cuda_libraries": ("libraries", "cudart_stub", "dlopen_failed"),
    "no_cuda_device": ("cu_init",),
    "cuda_visible_devices": ("cu_init",),
    "driver_stub_library": ("cu_init",),
    "cuinit_failed": ("cu_init",),
    "driver_too_old": ("driver_too_old", "cu_init"),
    "driver_mismatch": ("driver_mismatch", "cu_init"),
}


def log_causes(text: str, facts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The driver and CUDA-library causes a TensorFlow log shows (with `facts` of the same process, if any),
    each with `evidence`: the log line it rests on (None when only the facts show it)."""
    log = parse_log(text)
    causes = diagnose({**(facts or {}), "log": log})
    for cause in causes:
        keys = _EVIDENCE.get(cause["code"], ())
        cause["evidence"] = next((log["lines"][k] for k in keys if log["lines"].get(k)), None)
        if cause["code"] == "missing_cuda_libraries" and log["missing_libraries"]:
            cause["details"] = {"missing_libraries": list(log["missing_libraries"])}
        elif not cause.get("details") or not any(cause["details"].values()):
            cause["details"] = {}
    return causes

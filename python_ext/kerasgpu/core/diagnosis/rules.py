"""The causes, as small rules over one view of the facts (`facts.Facts`), run in order: a rule
adds the causes its facts show to the list (`causes.Causes`), and may read what the rules before
it found. `diagnose` runs them all; `log_causes` runs them on a TensorFlow log of its own."""

from __future__ import annotations

import re
from typing import Any

from .causes import BLOCKING, INFO, TF_INSTALL_LINK, Causes, and_cuda, gpus, sentence
from .driver import cu_init_failed, driver_library_missing, driver_mismatch, runtime_libraries
from .facts import Facts
from .logs import parse_log, says

# Oldest Linux driver that runs each CUDA major release (NVIDIA's CUDA release
# notes, "minor version compatibility"); the driver's own CUDA version is better.
MIN_DRIVER_FOR_CUDA = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


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


# ---------------------------------------------------------------- the rules, in order


def windows_native(c: Causes, f: Facts) -> None:
    """TensorFlow on native Windows has no GPU since 2.11: nothing below applies."""
    if f.windows and f.tf.get("installed") and _tf_at_least(f.tf.get("version"), 2, 11):
        c.add(
            "windows_native",
            BLOCKING,
            f"TensorFlow {f.tf.get('version')} has no GPU support on native Windows",
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


def no_tensorflow(c: Causes, f: Facts) -> None:
    """No TensorFlow: the first thing to install, whatever the driver."""
    if not f.tf.get("installed") and f.tf and f.keras.get("backend") not in ("jax", "torch"):
        c.add(
            "no_tensorflow",
            BLOCKING,
            "TensorFlow is not installed in this kernel's environment",
            "",
            "Install the CUDA build into this kernel's environment, then restart the kernel.",
            [and_cuda()],
            TF_INSTALL_LINK,
        )


def driver(c: Causes, f: Facts) -> None:
    """The driver, as this process sees it: libcuda.so.1 and cuInit (else the driver's own view)."""
    cu_init = f.cu_init
    if f.libcuda is False and not f.windows:
        driver_library_missing(c, f)
    elif f.libcuda and cu_init and cu_init.get("code") != 0:
        cu_init_failed(c, f)
    elif f.libcuda is None and f.smi_known and not f.driver_gpus and not f.windows:
        # No facts of our own (made-up facts, an old probe): the driver's view is all there is.
        c.add(
            f.status.get("code") or "no_devices",
            BLOCKING,
            "No NVIDIA GPU is usable from this kernel",
            f.status.get("reason") or "No NVIDIA GPU was found.",
            f.status.get("hint")
            or "Run this on a machine (or container) with an NVIDIA GPU and its driver; in Docker use "
            "--gpus all with the NVIDIA Container Toolkit.",
            ["nvidia-smi"],
            "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/",
        )
    elif f.libcuda and cu_init and cu_init.get("code") == 0 and f.smi_known and not f.driver_gpus:
        c.add(
            "no_nvidia_smi",
            INFO,
            "CUDA works, but nvidia-smi does not answer here",
            f"cuInit succeeded ({gpus(f.cuda.get('device_count') or 0)}), yet the GPU panel's source says: "
            f"{sentence(f.status.get('reason') or 'no GPU found')}",
            "Training is not affected; for GPU readings install nvidia-ml-py or put nvidia-smi on PATH.",
            ["%pip install nvidia-ml-py"],
        )


def tensorflow_import_failed(c: Causes, f: Facts) -> None:
    if f.tf.get("error"):
        c.add(
            "tensorflow_import_failed",
            BLOCKING,
            "TensorFlow is installed but failed to load",
            f.tf["error"],
            "Reinstall it in a clean environment; mixed CUDA wheels from other packages are the usual cause.",
            ["%pip uninstall -y tensorflow tensorflow-cpu tensorflow-gpu", and_cuda(f.tf_version)],
            TF_INSTALL_LINK,
        )


def tensorflow_gpu_package(c: Causes, f: Facts) -> None:
    if "tensorflow-gpu" in f.dists:
        c.add(
            "tensorflow_gpu_package",
            BLOCKING if not f.tf_gpus else INFO,
            f"The deprecated 'tensorflow-gpu' package ({f.dists['tensorflow-gpu']}) is installed",
            "It gets no releases after 2.12 and can shadow the real TensorFlow.",
            "Remove it; the 'tensorflow' package has carried GPU support since 2.1.",
            ["%pip uninstall -y tensorflow-gpu", and_cuda()],
            "https://pypi.org/project/tensorflow-gpu/",
            level=None if not f.tf_gpus else "warning",
        )


def cpu_only_build(c: Causes, f: Facts) -> None:
    installed = f.tf.get("installed", bool(f.cuda.get("tf_distribution")))
    if installed and f.cpu_build and not f.windows:
        dist = (f.cuda.get("tf_distribution") or {}).get("name")
        cpu_dist = (
            "tensorflow-cpu" if "tensorflow-cpu" in f.dists or dist == "tensorflow-cpu" else "tensorflow"
        )
        c.add(
            "cpu_only_wheel",
            BLOCKING,
            f"This TensorFlow ({cpu_dist} {f.tf_version}) is a CPU-only build",
            "It can't use a GPU even where one is present.",
            "Install the CUDA build (it brings its own CUDA and cuDNN wheels), then restart the kernel.",
            ([f"%pip uninstall -y {cpu_dist}"] if cpu_dist != "tensorflow" else [])
            + [and_cuda(f.tf_version)],
            TF_INSTALL_LINK,
        )


def cuda_libraries(c: Causes, f: Facts) -> None:
    """The CUDA runtime libraries a CUDA build loads (libcudart, cuBLAS, cuDNN, ...)."""
    if not f.windows and not f.cpu_build:
        runtime_libraries(c, f)


def driver_too_old(c: Causes, f: Facts) -> None:
    """The driver's CUDA version against the build's (else what the log says)."""
    build_cuda = _major(f.tf.get("cuda_version"))
    drv_cuda_text = f.cuda.get("driver_cuda_version") or (
        f.driver_gpus[0].get("cuda_driver_version") if f.driver_gpus else None
    )
    if f.tf.get("built_with_cuda") and build_cuda and drv_cuda_text:
        drv_cuda = _major(drv_cuda_text)
        if drv_cuda is not None and drv_cuda < build_cuda:
            need = MIN_DRIVER_FOR_CUDA.get(build_cuda, "a newer release")
            version = f.driver_gpus[0].get("driver_version") if f.driver_gpus else None
            c.add(
                "driver_too_old",
                BLOCKING,
                f"The NVIDIA driver is too old for this TensorFlow's CUDA {f.tf.get('cuda_version')}",
                f"The driver{' ' + version if version else ''} supports CUDA {drv_cuda_text}, but TensorFlow "
                f"{f.tf_version} was built for CUDA {f.tf.get('cuda_version')}.",
                f"Update the NVIDIA driver to {need} or newer (or use a TensorFlow built for CUDA "
                f"{drv_cuda}).",
                ["!nvidia-smi  # 'CUDA Version' is what the driver supports"],
                "https://docs.nvidia.com/deploy/cuda-compatibility/",
            )
    elif f.log.get("driver_too_old"):
        c.add(
            "driver_too_old",
            BLOCKING,
            "The NVIDIA driver is too old for the CUDA libraries TensorFlow loads",
            says(f.lines.get("driver_too_old")),
            "Update the NVIDIA driver (nvidia-smi shows the CUDA version it supports), or use a TensorFlow "
            "built for an older CUDA.",
            ["!nvidia-smi"],
            "https://docs.nvidia.com/deploy/cuda-compatibility/",
        )


def driver_mismatch_in_log(c: Causes, f: Facts) -> None:
    if f.log.get("driver_mismatch") and "driver_mismatch" not in c.codes():
        driver_mismatch(c, says(f.lines.get("driver_mismatch")))


def cuda_visible_devices(c: Causes, f: Facts) -> None:
    """CUDA_VISIBLE_DEVICES hides every GPU, or some of those the driver lists."""
    cvd = f.cvd
    if f.hides_all and "cuda_visible_devices" not in c.codes() and not f.cpu_build:
        c.add(
            "cuda_visible_devices",
            BLOCKING,
            "CUDA_VISIBLE_DEVICES hides every GPU from this kernel",
            f"CUDA_VISIBLE_DEVICES={cvd!r} in the kernel's environment.",
            "Unset it (or list the GPUs to use) in the kernel's environment, before TensorFlow starts: in "
            "the kernelspec's env, or in the first cell, then restart the kernel.",
            ["%env CUDA_VISIBLE_DEVICES=0  # first cell after a restart", "!jupyter kernelspec list"],
        )
    elif cvd is not None and not f.hides_all and f.tf_gpus and len(f.tf_gpus) < len(f.driver_gpus):
        c.add(
            "cuda_visible_devices",
            INFO,
            f"TensorFlow sees {len(f.tf_gpus)} of the {len(f.driver_gpus)} GPUs the driver lists",
            f"CUDA_VISIBLE_DEVICES={cvd!r} in the kernel's environment hides the others.",
            "Unset CUDA_VISIBLE_DEVICES (or list every GPU) in the kernelspec's env, then restart the "
            "kernel.",
            ["!jupyter kernelspec list"],
            level="warning",
        )


def architectures(c: Causes, f: Facts) -> None:
    """Each GPU's architecture against the build's machine code and PTX."""
    build_ccs = f.tf.get("compute_capabilities") or []
    seen = set()
    gpu_ccs = [(g.get("device_name") or g["name"], g.get("compute_capability")) for g in f.tf_gpus]
    if not gpu_ccs:
        gpu_ccs = [(d.get("name"), d.get("compute_capability")) for d in f.driver_gpus]
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


def tensorflow_sees_no_gpu(c: Causes, f: Facts) -> None:
    """TensorFlow finds no GPU, or hides them, for no reason above."""
    if (
        f.driver_gpus
        and f.tf.get("built_with_cuda")
        and not f.tf.get("error")
        and not f.physical
        and not c.blocking()
    ):
        c.add(
            "tf_sees_no_gpu",
            BLOCKING,
            "TensorFlow registers no GPU, for a reason this check can't see",
            f"The driver sees {gpus(len(f.driver_gpus))}"
            + (", libcuda.so.1 and the CUDA wheels load," if f.cuda.get("libcuda") else "")
            + " yet TensorFlow lists none.",
            "Run the import with TF_CPP_MAX_VLOG_LEVEL=1 and give its log to %%gpu_doctor: it names the "
            "library or error.",
            [
                "!TF_CPP_MAX_VLOG_LEVEL=1 python -c "
                "'import tensorflow as tf; tf.config.list_physical_devices()'"
            ],
            TF_INSTALL_LINK + "#linux",
        )
    elif f.physical and not f.tf_gpus:
        c.add(
            "gpus_hidden",
            BLOCKING,
            f"TensorFlow found {gpus(len(f.physical))} but set_visible_devices hides them all",
            "",
            "Make them visible before the runtime starts (%gpu_visible all), or restart the kernel.",
            ["%gpu_visible all"],
        )


def runtime_initialized(c: Causes, f: Facts) -> None:
    """The runtime already started: settings are frozen."""
    if f.runtime_initialized:
        c.add(
            "runtime_initialized",
            INFO,
            "TensorFlow's runtime is already initialised in this kernel",
            "Memory growth, memory limits and visible GPUs can no longer change.",
            "To change them, restart the kernel and run %gpu_memory / %gpu_visible in the first cell.",
        )


RULES = (
    windows_native,
    no_tensorflow,
    driver,
    tensorflow_import_failed,
    tensorflow_gpu_package,
    cpu_only_build,
    cuda_libraries,
    driver_too_old,
    driver_mismatch_in_log,
    cuda_visible_devices,
    architectures,
    tensorflow_sees_no_gpu,
    runtime_initialized,
)


def diagnose(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cause the facts show, blocking ones first (in the order to fix them), then notes."""
    c, f = Causes(), Facts.of(facts)
    for rule in RULES:
        rule(c, f)
    return c.ordered()


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

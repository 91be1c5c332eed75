"""The causes below TensorFlow: the driver's library (libcuda.so.1), cuInit's answer, and the
CUDA runtime libraries a CUDA build loads (libcudart, cuBLAS, cuDNN, ...)."""

from __future__ import annotations

from .causes import BLOCKING, COMPAT_LINK, TF_INSTALL_LINK, TOOLKIT_LINK, Causes, and_cuda, gpus, sentence
from .facts import HIDING, Facts
from .logs import says


def driver_library_missing(c: Causes, f: Facts) -> None:
    """libcuda.so.1 does not load: what says so, and where the driver is (or is not)."""
    on_disk = [p for p in (f.cuda.get("libcuda") or {}).get("on_disk", []) if "/stubs/" not in p]
    why = [
        *_libcuda_evidence(f),
        "pip can't install libcuda.so.1: it comes with the NVIDIA driver, not with TensorFlow",
    ]
    if on_disk:
        folder = on_disk[0].rsplit("/", 1)[0]
        fix = (
            f"The driver's library is on disk ({on_disk[0]}) but not on the loader's path: run "
            "`sudo ldconfig` "
            f"(or add {folder} to LD_LIBRARY_PATH in the kernelspec's env or before starting Jupyter), then "
            "restart the kernel."
        )
        commands = ["!sudo ldconfig", f"!ls {folder}/libcuda.so*"]
    elif f.driver_evidence or f.driver_gpus:
        fix = (
            "Give this process the GPU driver: a container must be started with `docker run --gpus all` "
            "(the NVIDIA Container Toolkit mounts libcuda.so.1 and /dev/nvidia*); on a host, install the "
            "NVIDIA driver, or if it is installed make libcuda.so.1 findable (`sudo ldconfig` or "
            "LD_LIBRARY_PATH before starting Jupyter). Then restart the kernel."
        )
        commands = ["!ldconfig -p | grep libcuda", "!ls -l /dev/nvidia*"]
    else:
        fix = (
            "Run the notebook where an NVIDIA GPU and its driver are: on a GPU machine install the NVIDIA "
            "driver (it provides libcuda.so.1); in Docker start the container with `docker run --gpus all` "
            "(NVIDIA Container Toolkit); if the driver is installed, make libcuda.so.1 findable (`sudo "
            "ldconfig` or LD_LIBRARY_PATH). Then restart the kernel."
        )
        commands = ["!nvidia-smi", "!ldconfig -p | grep libcuda"]
    no_driver = not (f.from_log or f.driver_evidence) and f.status.get("state") not in (None, "ok")
    c.add(
        "driver_library_missing",
        BLOCKING,
        "No NVIDIA driver here: libcuda.so.1, the driver's library, does not load"
        if no_driver
        else "The NVIDIA driver's library libcuda.so.1 does not load in this process",
        "; ".join(sentence(w).rstrip(".") for w in why) + ".",
        fix,
        commands,
        TOOLKIT_LINK,
    )
    c.items[-1]["short"] = "no NVIDIA driver" if no_driver else "the driver's libcuda.so.1 does not load"


def _libcuda_evidence(f: Facts) -> list[str]:
    """Why we know libcuda.so.1 does not load, and what the driver's own view says."""
    lines, status, why = f.lines, f.status, []
    if f.from_log:
        if lines.get("libcuda"):
            why.append(says(lines["libcuda"]))
        if lines.get("cu_init"):
            why.append(
                f"{says(lines['cu_init'])} (error 303 is what TensorFlow's CUDA stub answers when "
                "libcuda.so.1 did not load)"
            )
        if lines.get("no_kernel_driver"):
            why.append(says(lines["no_kernel_driver"]))
    else:
        why.append(f"Loading it fails: {(f.cuda.get('libcuda') or {}).get('error')}")
    if f.driver_gpus:
        names = ", ".join(sorted({d.get("name") or "?" for d in f.driver_gpus}))
        why.append(
            f"nvidia-smi sees {gpus(len(f.driver_gpus))} ({names}), but this process can't reach the driver"
        )
    elif status.get("state") and status.get("state") != "ok":
        why.append(
            f"No NVIDIA driver answers here either: {status.get('reason') or 'nvidia-smi found no GPU'}"
        )
    if not f.from_log:
        nodes = f.cuda.get("dev_nodes") or []
        why.append("GPU device files: " + (", ".join(nodes) if nodes else "no /dev/nvidia*"))
        if not f.cuda.get("proc_driver_version"):
            why.append("/proc/driver/nvidia/version does not exist (no NVIDIA kernel driver visible)")
    return why


def driver_mismatch(c: Causes, why: str) -> None:
    c.add(
        "driver_mismatch",
        BLOCKING,
        "The driver's library and the loaded NVIDIA kernel module are different versions",
        why,
        "Reboot after a driver update (or reload the nvidia kernel modules); in a container, use the host's "
        "libcuda (--gpus all) instead of one installed in the image.",
        ["!nvidia-smi", "!cat /proc/driver/nvidia/version"],
        COMPAT_LINK,
    )


def cu_init_failed(c: Causes, f: Facts) -> None:
    """libcuda.so.1 loads but cuInit fails: the cause its error code names."""
    cu_init, cvd = f.cu_init or {}, f.cvd
    code, name = cu_init.get("code"), cu_init.get("name") or ""
    log_line = f.lines.get("cu_init") if f.from_log else None
    said = says(log_line) if log_line else f"cuInit(0) returned {code} ({name})"
    if code == 100 and cvd is not None and cvd.strip() in HIDING:
        c.add(
            "cuda_visible_devices",
            BLOCKING,
            "CUDA_VISIBLE_DEVICES hides every GPU from this kernel",
            f"CUDA_VISIBLE_DEVICES={cvd!r}, and {said}.",
            "Unset it (or list the GPUs to use) in the kernel's environment, before TensorFlow starts: in "
            "the kernelspec's env, or in the first cell, then restart the kernel.",
            ["%env CUDA_VISIBLE_DEVICES=0  # first cell after a restart", "!jupyter kernelspec list"],
        )
    elif code == 100:
        c.add(
            "no_cuda_device",
            BLOCKING,
            "The NVIDIA driver loads but finds no GPU",
            f"{said}. Device files: {', '.join(f.cuda.get('dev_nodes') or []) or 'none'}.",
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
            f"{said}; it was loaded from {(f.cuda.get('libcuda') or {}).get('path') or 'a stubs/ folder'}.",
            "Take the toolkit's stubs/ folder off LD_LIBRARY_PATH (it is for linking only) so the "
            "driver's own libcuda.so.1 loads, then restart the kernel.",
            ["!echo $LD_LIBRARY_PATH", "!ldconfig -p | grep libcuda"],
        )
    else:
        _cu_init_other(c, code, said)


def _cu_init_other(c: Causes, code: int | None, said: str) -> None:
    if code == 803:
        driver_mismatch(c, said)
    elif code == 804:
        c.add(
            "driver_too_old",
            BLOCKING,
            "The CUDA forward-compatibility driver does not support this GPU",
            said,
            "Remove the cuda-compat package from the library path (it is for data-centre GPUs only), or "
            "update the NVIDIA driver itself.",
            ["!nvidia-smi"],
            COMPAT_LINK,
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


def runtime_libraries(c: Causes, f: Facts) -> None:
    """The CUDA runtime wheels of tensorflow[and-cuda]: missing, or installed but not loading."""
    wanted, wheels = f.cuda.get("and_cuda"), f.cuda.get("wheels") or {}
    if wanted is None or not f.cuda_build:
        _libraries_from_log(c, f)
        return
    missing = [w for w in wanted if w not in wheels]
    from_system = f.cuda.get("system_libs") or {}
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
        if err and "libcuda.so" not in err  # a library that needs the driver waits for it, it is not broken
    }
    if missing and still:
        count = "None" if len(missing) == len(wanted) else f"{len(wanted) - len(missing)}"
        why = (
            f"{count} of the {len(wanted)} CUDA wheels of tensorflow[and-cuda] are installed (missing: "
            f"{', '.join(missing)}), and their libraries are not on the system either, so TensorFlow "
            "can't load libcudart, cuBLAS or cuDNN and stays on the CPU even with a working driver"
        )
        if f.log.get("cudart_stub") or f.lines.get("cudart_stub"):
            why += (
                ". TensorFlow's 'Could not find cuda drivers on your machine' is about libcudart, "
                "the CUDA runtime, not the driver"
            )
        _missing_wheels(c, why, f.tf_version, {"missing_wheels": missing})
    elif broken:
        lib, err = next(iter(broken.items()))
        c.add(
            "cuda_library_broken",
            BLOCKING,
            "A CUDA runtime wheel is installed but its library does not load",
            f"{lib}: {err}" + (f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""),
            "Reinstall the CUDA wheels that match this TensorFlow, then restart the kernel.",
            [and_cuda(f.tf_version).replace("install ", "install --force-reinstall ", 1)],
            TF_INSTALL_LINK + "#linux",
        )


def _libraries_from_log(c: Causes, f: Facts) -> None:
    """Only the log to go by (a pasted log, or an old probe)."""
    said = [f.lines[k] for k in ("cudart_stub", "libraries", "dlopen_failed") if f.lines.get(k)]
    if said:
        why = " ".join(sentence(says(line)) for line in said)
        if f.log.get("cudart_stub"):
            why += (
                " 'Could not find cuda drivers on your machine' is printed when libcudart, the CUDA runtime "
                "from the nvidia-cuda-runtime-cu12 wheel, does not load: it is not about the driver"
            )
        _missing_wheels(c, why, f.tf_version, {"missing_libraries": f.log.get("missing_libraries") or []})


def _missing_wheels(c: Causes, why: str, tf_version: str | None, details: dict) -> None:
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

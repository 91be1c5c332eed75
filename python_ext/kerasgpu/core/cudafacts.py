"""What CUDA looks like from this process, asked without TensorFlow: the facts the diagnosis reads.

`gather_cuda` loads the driver's library (libcuda.so.1) and the nvidia-*-cu12 runtime
wheels' libraries with ctypes and asks the driver's `cuInit` for its answer. It never
imports TensorFlow, so it starts no TensorFlow runtime and locks no setting.

The function is self-contained (standard library only, every import inside, no module
globals): the server's TensorFlow probe runs its source as is in the kernel's own Python,
where kerasgpu may not be installed, so the kernel and the probe gather the same facts.
"""

from __future__ import annotations


def gather_cuda():
    """The driver library, cuInit's answer, device files and runtime wheels, as plain JSON-able data."""
    import ctypes
    import glob
    import os
    import re
    import sys

    out = {
        "system": sys.platform,
        "libcuda": {"loaded": None, "path": None, "error": None, "on_disk": []},
        "cu_init": None,
        "driver_cuda_version": None,
        "device_count": None,
        "dev_nodes": [],
        "proc_driver_version": None,
        "tf_distribution": None,
        "and_cuda": None,
        "wheels": {},
        "system_libs": {},
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH"),
    }
    if not sys.platform.startswith("linux"):
        return out  # TensorFlow's CUDA builds are Linux (and WSL2) only

    # The kernel driver: device files and its /proc entry (WSL2 has /dev/dxg instead).
    out["dev_nodes"] = sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/dxg"))
    try:
        with open("/proc/driver/nvidia/version") as f:
            out["proc_driver_version"] = f.readline().strip()
    except OSError:
        pass

    # The driver's user-space library, as TensorFlow loads it (by soname, through the loader).
    lib = out["libcuda"]
    cuda = None
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        lib["loaded"] = True
    except OSError as exc:
        lib["loaded"] = False
        lib["error"] = str(exc)
    if cuda is not None:
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    if "libcuda.so" in line:
                        lib["path"] = line.split()[-1]
                        break
        except OSError:
            pass
        names = {
            0: "CUDA_SUCCESS",
            3: "CUDA_ERROR_NOT_INITIALIZED",
            34: "CUDA_ERROR_STUB_LIBRARY",
            46: "CUDA_ERROR_DEVICES_UNAVAILABLE",
            100: "CUDA_ERROR_NO_DEVICE",
            303: "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
            803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
            804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
            999: "CUDA_ERROR_UNKNOWN",
        }
        try:
            version = ctypes.c_int(0)
            if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
                out["driver_cuda_version"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
            code = int(cuda.cuInit(0))
            name = ctypes.c_char_p()
            if cuda.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
                label = name.value.decode("ascii", "replace")
            else:
                label = names.get(code, f"CUDA error {code}")
            out["cu_init"] = {"code": code, "name": label}
            if code == 0:
                count = ctypes.c_int(0)
                if cuda.cuDeviceGetCount(ctypes.byref(count)) == 0:
                    out["device_count"] = count.value
        except (AttributeError, OSError) as exc:  # a library named libcuda.so.1 that is not the driver
            out["cu_init"] = {"code": None, "name": f"not callable: {exc}"}
    else:
        # Installed but not on the loader's path? (The toolkit's stubs/ copy is not the driver.)
        for pattern in (
            "/usr/lib/x86_64-linux-gnu/libcuda.so*",
            "/usr/lib/aarch64-linux-gnu/libcuda.so*",
            "/usr/lib64/libcuda.so*",
            "/usr/lib/libcuda.so*",
            "/usr/local/nvidia/lib64/libcuda.so*",
            "/usr/lib/wsl/lib/libcuda.so*",
            "/usr/local/cuda*/compat/libcuda.so*",
        ):
            lib["on_disk"].extend(sorted(glob.glob(pattern)))

    # The TensorFlow distribution and the CUDA wheels its [and-cuda] extra names.
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8: no metadata, no wheel facts
        return out
    tf_names = ("tensorflow", "tf-nightly", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel")
    found_tf = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in tf_names:
            found_tf[name] = dist
        elif name.startswith("nvidia-") and ("cu1" in name or "cuda" in name or "cudnn" in name):
            # The libraries TensorFlow loads (not nvblas, cufftw, the profiler's host libraries, ...).
            paths = []
            for f in dist.files or []:
                if re.match(
                    r"nvidia/[^/]+/lib/lib(cudart|cublas|cublasLt|cufft|cusolver|cusparse|cudnn\w*|nccl|cupti"
                    r"|nvrtc|nvJitLink|curand)\.so(\.[\d.]+)?$",
                    str(f).replace("\\", "/"),
                ):
                    paths.append(str(dist.locate_file(f)))
            out["wheels"][name] = {
                "version": dist.version,
                "libs": {os.path.basename(p): None for p in paths},
            }
            out["wheels"][name]["_paths"] = sorted(paths)
    for name in tf_names:
        if name in found_tf:
            out["tf_distribution"] = {"name": name, "version": found_tf[name].version}
            extra = []
            for req in found_tf[name].requires or []:
                if re.search(r"""extra\s*==\s*["']and[-_]cuda["']""", req):
                    extra.append(re.match(r"[A-Za-z0-9._-]+", req).group(0).lower().replace("_", "-"))
            out["and_cuda"] = sorted(set(extra))
            break

    # Load every library of every CUDA wheel, as TensorFlow would: a library that needs
    # another one loads on a later pass, once that one is in the process.
    pending = [(w, p) for w, info in out["wheels"].items() for p in info.pop("_paths")]
    errors = {}
    while pending:
        left = []
        for wheel, path in pending:
            try:
                ctypes.CDLL(path)
                out["wheels"][wheel]["libs"][os.path.basename(path)] = None
            except OSError as exc:
                errors[path] = str(exc)
                left.append((wheel, path))
        if len(left) == len(pending):
            break
        pending = left
    for wheel, path in pending:
        out["wheels"][wheel]["libs"][os.path.basename(path)] = errors[path]
    out["wheels"] = dict(sorted(out["wheels"].items()))

    # A wheel TensorFlow wants but does not have: is the library there anyway (a system CUDA)?
    sonames = {
        "nvidia-cuda-runtime-cu12": "libcudart.so.12",
        "nvidia-cublas-cu12": "libcublas.so.12",
        "nvidia-cudnn-cu12": "libcudnn.so.9",
        "nvidia-cufft-cu12": "libcufft.so.11",
        "nvidia-cusolver-cu12": "libcusolver.so.11",
        "nvidia-cusparse-cu12": "libcusparse.so.12",
        "nvidia-curand-cu12": "libcurand.so.10",
        "nvidia-nccl-cu12": "libnccl.so.2",
        "nvidia-nvjitlink-cu12": "libnvJitLink.so.12",
        "nvidia-cuda-nvrtc-cu12": "libnvrtc.so.12",
        "nvidia-cuda-cupti-cu12": "libcupti.so.12",
    }
    for wheel in out["and_cuda"] or []:
        if wheel not in out["wheels"] and wheel in sonames:
            entry = {"soname": sonames[wheel], "error": None}
            try:
                ctypes.CDLL(sonames[wheel])
            except OSError as exc:
                entry["error"] = str(exc)
            out["system_libs"][wheel] = entry
    return out

"""What CUDA looks like from this process, asked without TensorFlow: the facts the diagnosis reads.

`gather_cuda` loads the driver's library (libcuda.so.1) and the nvidia-*-cu12 runtime
wheels' libraries with ctypes and asks the driver's `cuInit` for its answer. It never
imports TensorFlow, so it starts no TensorFlow runtime and locks no setting.

The module is self-contained: standard library only, and valid in Python 3.6 (no
`from __future__`, no annotations): the server's TensorFlow probe runs this file's text as is
in the kernel's own Python, where kerasgpu may not be installed, so the kernel and the probe
gather the same facts. Its names start with `_` or `CU_` / `gather_` so that they do not
collide with the probe's text that follows it.
"""

import ctypes
import glob
import os
import re
import sys

# cuInit's answers by number: for a libcuda.so.1 without cuGetErrorName, and for logs that print
# only the number (TensorFlow 2.21: "UNKNOWN ERROR (303)"). The one table of them.
CU_ERRORS = {
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

# Where a driver's libcuda.so.1 lives when it is installed but not on the loader's path (the
# toolkit's stubs/ copy is not the driver).
_LIBCUDA_PATTERNS = (
    "/usr/lib/x86_64-linux-gnu/libcuda.so*",
    "/usr/lib/aarch64-linux-gnu/libcuda.so*",
    "/usr/lib64/libcuda.so*",
    "/usr/lib/libcuda.so*",
    "/usr/local/nvidia/lib64/libcuda.so*",
    "/usr/lib/wsl/lib/libcuda.so*",
    "/usr/local/cuda*/compat/libcuda.so*",
)
_TF_NAMES = ("tensorflow", "tf-nightly", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel")
# The libraries TensorFlow loads from the CUDA wheels (not nvblas, cufftw, the profiler's host
# libraries, ...).
_WHEEL_LIB = re.compile(
    r"nvidia/[^/]+/lib/lib(cudart|cublas|cublasLt|cufft|cusolver|cusparse|cudnn\w*|nccl|cupti"
    r"|nvrtc|nvJitLink|curand)\.so(\.[\d.]+)?$"
)
# The library of each wheel of tensorflow[and-cuda], as a system CUDA would provide it.
_WHEEL_SONAMES = {
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


def gather_cuda():
    """The driver library, cuInit's answer, device files and runtime wheels, as plain JSON-able data."""
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
    _cuda_kernel_driver(out)
    cuda = _cuda_load_libcuda(out["libcuda"])
    if cuda is not None:
        _cuda_ask_driver(cuda, out)
    else:
        for pattern in _LIBCUDA_PATTERNS:
            out["libcuda"]["on_disk"].extend(sorted(glob.glob(pattern)))
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8: no metadata, no wheel facts
        return out
    _cuda_distributions(metadata, out)
    _cuda_load_wheels(out)
    _cuda_system_libs(out)
    return out


def _cuda_kernel_driver(out):
    """The kernel driver: its device files and its /proc entry (WSL2 has /dev/dxg instead)."""
    out["dev_nodes"] = sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/dxg"))
    try:
        with open("/proc/driver/nvidia/version") as f:
            out["proc_driver_version"] = f.readline().strip()
    except OSError:
        pass


def _cuda_load_libcuda(lib):
    """The driver's user-space library, loaded as TensorFlow loads it (by soname, through the
    loader), or None; `lib` gets whether it loaded, and why not."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        lib["loaded"] = False
        lib["error"] = str(exc)
        return None
    lib["loaded"] = True
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libcuda.so" in line:
                    lib["path"] = line.split()[-1]
                    break
    except OSError:
        pass
    return cuda


def _cuda_ask_driver(cuda, out):
    """The driver's CUDA version, cuInit's answer and, when it starts, the number of devices."""
    try:
        version = ctypes.c_int(0)
        if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            out["driver_cuda_version"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
        code = int(cuda.cuInit(0))
        name = ctypes.c_char_p()
        if cuda.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            label = name.value.decode("ascii", "replace")
        else:
            label = CU_ERRORS.get(code, f"CUDA error {code}")
        out["cu_init"] = {"code": code, "name": label}
        if code == 0:
            count = ctypes.c_int(0)
            if cuda.cuDeviceGetCount(ctypes.byref(count)) == 0:
                out["device_count"] = count.value
    except (AttributeError, OSError) as exc:  # a library named libcuda.so.1 that is not the driver
        out["cu_init"] = {"code": None, "name": f"not callable: {exc}"}


def _cuda_distributions(metadata, out):
    """The TensorFlow distribution, the CUDA wheels its [and-cuda] extra names, and the CUDA
    wheels installed (each with its libraries' paths in `_paths`, for `_cuda_load_wheels`)."""
    found_tf = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in _TF_NAMES:
            found_tf[name] = dist
        elif name.startswith("nvidia-") and ("cu1" in name or "cuda" in name or "cudnn" in name):
            paths = [
                str(dist.locate_file(f))
                for f in dist.files or []
                if _WHEEL_LIB.match(str(f).replace("\\", "/"))
            ]
            out["wheels"][name] = {
                "version": dist.version,
                "libs": {os.path.basename(p): None for p in paths},
                "_paths": sorted(paths),
            }
    for name in _TF_NAMES:
        if name in found_tf:
            out["tf_distribution"] = {"name": name, "version": found_tf[name].version}
            extra = []
            for req in found_tf[name].requires or []:
                if re.search(r"""extra\s*==\s*["']and[-_]cuda["']""", req):
                    extra.append(re.match(r"[A-Za-z0-9._-]+", req).group(0).lower().replace("_", "-"))
            out["and_cuda"] = sorted(set(extra))
            break


def _cuda_load_wheels(out):
    """Every library of every CUDA wheel, loaded as TensorFlow would: a library that needs another
    one loads on a later pass, once that one is in the process. Each gets its error, or None."""
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


def _cuda_system_libs(out):
    """A wheel TensorFlow wants but does not have: is its library there anyway (a system CUDA)?"""
    for wheel in out["and_cuda"] or []:
        if wheel not in out["wheels"] and wheel in _WHEEL_SONAMES:
            entry = {"soname": _WHEEL_SONAMES[wheel], "error": None}
            try:
                ctypes.CDLL(_WHEEL_SONAMES[wheel])
            except OSError as exc:
                entry["error"] = str(exc)
            out["system_libs"][wheel] = entry

"""`%gpu_doctor`: match TensorFlow GPU failures (exceptions or pasted logs) to cause, fix and a link.

The patterns are the messages TensorFlow, cuDNN, XLA and NCCL print, from
TensorFlow 1.x to 2.x, on Linux and Windows (see tests/kernel/fixtures/doctor/
for the real logs each one was written against, with the issue they came from).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from .render import Card, Fix, Section


@dataclass
class Known:
    """One known failure: how to recognise it and what to do."""

    code: str
    title: str
    patterns: list[str]
    cause: str
    fix: str
    commands: list[str] = field(default_factory=list)
    link: str | None = None

    def search(self, text: str):
        for p in self.patterns:
            m = re.search(p, text, re.IGNORECASE | re.MULTILINE)
            if m:
                return m
        return None


KNOWN: list[Known] = [
    Known(
        "runtime_initialized",
        "GPU settings changed after TensorFlow started",
        [r"(Physical|Virtual|Visible) devices cannot be modified after being initialized"],
        "set_memory_growth, set_logical_device_configuration and set_visible_devices only work before "
        "TensorFlow's runtime starts; in a notebook an earlier cell (any op, model or strategy) already "
        "started it.",
        "Restart the kernel and run the memory settings in the first cell, or set the environment variable "
        "before TensorFlow starts.",
        ["%gpu_memory growth  # first cell after a restart", "%env TF_FORCE_GPU_ALLOW_GROWTH=true"],
        "https://www.tensorflow.org/guide/gpu#limiting_gpu_memory_growth",
    ),
    Known(
        "cudnn_version_mismatch",
        "cuDNN version mismatch",
        [
            r"Loaded runtime CuDNN library:?\s*(\d+(?:\.\d+)*).*?"
            r"but source was compiled with:?\s*(\d+(?:\.\d+)*)",
            r"CuDNN library needs to have matching major version",
            r"CuDNN library major and minor version needs to match",
        ],
        "The cuDNN that got loaded is older than the one TensorFlow was built with: another package "
        "(PyTorch, "
        "a system CUDA, a conda cudnn) put a different libcudnn first on the library path.",
        "Let TensorFlow bring its matching cuDNN and make sure no other libcudnn comes first "
        "(LD_LIBRARY_PATH, conda's cudnn, a torch that pins another nvidia-cudnn wheel).",
        ['pip install -U "tensorflow[and-cuda]"', "pip list | grep -i cudnn", "echo $LD_LIBRARY_PATH"],
        "https://www.tensorflow.org/install/pip#software_requirements",
    ),
    Known(
        "cudnn_handle",
        "cuDNN / cuBLAS failed to initialise",
        [
            r"Could not create cudnn handle",
            r"CUDNN_STATUS_INTERNAL_ERROR",
            r"Failed to get convolution algorithm\. This is probably because cuDNN failed to initialize",
            r"DNN library initialization failed",
            r"failed to create cublas handle",
            r"CUBLAS_STATUS_NOT_INITIALIZED",
        ],
        "cuDNN or cuBLAS could not start, almost always because the GPU had no free memory left for their "
        "workspace (TensorFlow reserved it all, or another notebook holds it); less often a cuDNN that does "
        "not match the build.",
        "Turn on memory growth before TensorFlow starts and free the GPU from other kernels (the GPU panel "
        "shows which notebook holds it); if memory is free, check the cuDNN version with %gpu_check.",
        ["%gpu_memory growth  # first cell after a restart", "%gpu_mem", "%gpu_check"],
        "https://github.com/tensorflow/tensorflow/issues/24496",
    ),
    Known(
        "oom",
        "Out of memory (ResourceExhaustedError)",
        [
            r"ResourceExhaustedError",
            r"OOM when allocating tensor",
            r"RESOURCE_EXHAUSTED:? Out of memory",
            r"Resource exhausted: OOM",
            r"Allocator \(GPU_\d+_bfc\) ran out of memory",
        ],
        "A tensor did not fit in the GPU memory TensorFlow has: the batch or model is too big for this GPU, "
        "or other processes hold part of it.",
        "Lower the batch size, use mixed precision, and free memory held by other kernels; check who holds "
        "the GPU with %gpu_mem and the GPU panel.",
        ["%gpu_mem", "%mixed_precision mixed_float16", "model.fit(..., batch_size=smaller)"],
        "https://www.tensorflow.org/guide/gpu#limiting_gpu_memory_growth",
    ),
    Known(
        "windows_cuda_dll",
        "CUDA DLLs not found on Windows",
        [r"(cudart|cublas|cublasLt|cudnn|cufft|curand|cusolver|cusparse)64_\d+\.dll"],
        "TensorFlow looked for CUDA DLLs on native Windows. Versions after 2.10 have no native Windows GPU "
        "support at all; 2.10 and older need the exact CUDA and cuDNN they were built with on PATH.",
        "Use WSL2 with the Linux GPU build, or TensorFlow 2.10 with CUDA 11.2 and cuDNN 8.1 on PATH.",
        ["wsl --install", 'pip install "tensorflow[and-cuda]"  # inside WSL2'],
        "https://www.tensorflow.org/install/pip#windows-wsl2",
    ),
    Known(
        "missing_cuda_libraries",
        "TensorFlow could not load the CUDA libraries",
        [
            r"Cannot dlopen some GPU libraries",
            r"Could not load dynamic library '(lib[^']+)'",
            r"(lib(?:cudart|cublas|cublasLt|cudnn|cufft|curand|cusolver|cusparse|nvJitLink|nccl)\.so[.\d]*): "
            r"cannot open shared object file",
            r"Could not find cuda drivers on your machine",
            r"Skipping registering GPU devices",
        ],
        "TensorFlow is a CUDA build but could not load CUDA, cuDNN or one of its libraries, so it "
        "registers no "
        "GPU and runs on the CPU.",
        "Install the CUDA wheels that match this TensorFlow (they load without LD_LIBRARY_PATH), then "
        "restart "
        "the kernel; with a system CUDA, its version must match the build exactly.",
        [
            'pip install "tensorflow[and-cuda]"',
            "TF_CPP_MAX_VLOG_LEVEL=3 python -c 'import tensorflow'  # lists each",
        ],
        "https://www.tensorflow.org/install/pip#linux",
    ),
    Known(
        "ptxas_libdevice",
        "XLA can't find ptxas or libdevice",
        [
            r"libdevice not found at",
            r"Can't find libdevice directory",
            r"Couldn't invoke ptxas",
            r"Can't find ptxas binary",
            r"ptxas (?:too old|does not support CC)",
            r"bin/ptxas not found",
        ],
        "XLA (jit_compile, the default for many Keras 3 models) compiles kernels with CUDA's ptxas and "
        "libdevice, which are not part of the runtime libraries.",
        "Install the CUDA compiler wheel (part of tensorflow[and-cuda]) or point XLA at a CUDA toolkit; "
        "or compile the model without XLA.",
        [
            "pip install nvidia-cuda-nvcc-cu12",
            "%env XLA_FLAGS=--xla_gpu_cuda_data_dir=/usr/local/cuda",
            "model.compile(..., jit_compile=False)",
        ],
        "https://github.com/tensorflow/tensorflow/issues/56927",
    ),
    Known(
        "nccl",
        "NCCL all-reduce failed or hangs",
        [
            r"all-reduces with algorithm = nccl",
            r"\bNCCL (?:error|WARN|failure)",
            r"ncclAllReduce|ncclUnhandledCudaError|ncclSystemError|ncclInternalError",
            r"Collective ops is aborted",
        ],
        "Multi-GPU training waits in an NCCL all-reduce that never completes: GPUs can't talk peer to peer "
        "(PCIe ACS / IOMMU, virtualised GPUs), or replicas run different numbers of steps.",
        "Find out with NCCL_DEBUG=INFO; as a workaround turn off peer-to-peer or use a non-NCCL all-reduce.",
        [
            "%env NCCL_DEBUG=INFO",
            "%env NCCL_P2P_DISABLE=1",
            "tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.HierarchicalCopyAllReduce())",
        ],
        "https://github.com/tensorflow/tensorflow/issues/44976",
    ),
    Known(
        "driver_too_old",
        "NVIDIA driver too old for this CUDA",
        [
            r"CUDA driver version is insufficient for CUDA runtime version",
            r"CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
            r"kernel version [\d.]+ does not match DSO version",
            r"CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        ],
        "The CUDA libraries TensorFlow loads are newer than what the installed NVIDIA driver supports.",
        "Update the NVIDIA driver (nvidia-smi shows the CUDA version it supports), or use a TensorFlow built "
        "for an older CUDA.",
        ["nvidia-smi"],
        "https://docs.nvidia.com/deploy/cuda-compatibility/",
    ),
    Known(
        "no_cuda_device",
        "CUDA found no GPU",
        [r"failed call to cuInit: (?:CUDA_ERROR_NO_DEVICE|UNKNOWN ERROR \(\d+\)|CUDA_ERROR_UNKNOWN)"],
        "The CUDA driver started but reported no usable GPU: CUDA_VISIBLE_DEVICES hides them, the container "
        "has no GPU passed in, or the driver is wedged.",
        "Check CUDA_VISIBLE_DEVICES and that nvidia-smi lists the GPU inside this kernel's container.",
        ["%env CUDA_VISIBLE_DEVICES", "!nvidia-smi", "%gpu_check"],
        "https://www.tensorflow.org/guide/gpu",
    ),
]


def diagnose(text: str) -> list[dict[str, Any]]:
    """Known failures found in an error message or log, most specific first (as JSON-able dicts)."""
    found = []
    for k in KNOWN:
        m = k.search(text or "")
        if m:
            found.append(
                {
                    "code": k.code,
                    "title": k.title,
                    "cause": k.cause,
                    "fix": k.fix,
                    "commands": list(k.commands),
                    "link": k.link,
                    "evidence": _line_of(text, m),
                    "details": _details(k.code, m, text),
                }
            )
    return found


def exception_text(exc: BaseException) -> str:
    """The full text of an exception with its chain, as a traceback prints it."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def diagnose_exception(exc: BaseException) -> list[dict[str, Any]]:
    """`diagnose` for a raised exception."""
    return diagnose(exception_text(exc))


def report(text: str, source: str) -> Card:
    """The `%gpu_doctor` card for `text` (an exception or a pasted log)."""
    found = diagnose(text)
    data = {"kind": "gpu_doctor", "source": source, "matches": found}
    if not found:
        return Card(
            "GPU doctor",
            "info",
            "No known TensorFlow GPU failure in this " + source + ".",
            [Section("Tried").add("known failures", [k.title for k in KNOWN])],
            data=data,
        )
    fixes = [
        Fix(f["code"], "error", f"{f['title']}: {f['cause']}", f["fix"], f["commands"], f["link"])
        for f in found
    ]
    sec = Section("Evidence")
    for f in found:
        sec.add(f["code"], f["evidence"])
        for k, v in f["details"].items():
            sec.add(f"  {k}", v)
    return Card("GPU doctor", "error", found[0]["title"] + ".", [sec], fixes, data)


def _line_of(text: str, m: re.Match) -> str:
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    line = text[start : end if end != -1 else len(text)].strip()
    return line if len(line) <= 300 else line[:297] + "..."


_MISSING_LIB = re.compile(
    r"Could not load dynamic library '([^']+)'|(lib[\w.+-]+\.so[.\d]*): cannot open shared object file"
    r"|\b(\w+64_\d+\.dll)\b"
)


def _details(code: str, m: re.Match, text: str) -> dict[str, Any]:
    if code == "cudnn_version_mismatch" and m.lastindex and m.lastindex >= 2:
        return {"loaded_cudnn": m.group(1), "built_with_cudnn": m.group(2)}
    if code == "oom":
        dev = re.search(r"device:((?:GPU|CPU):\d+)", text)
        return {"device": dev.group(1)} if dev else {}
    if code in ("missing_cuda_libraries", "windows_cuda_dll"):
        libs: list[str] = []
        for hit in _MISSING_LIB.finditer(text):
            lib = next(g for g in hit.groups() if g)
            if lib not in libs:
                libs.append(lib)
        return {"missing_libraries": libs} if libs else {}
    return {}

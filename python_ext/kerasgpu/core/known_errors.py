"""Known TensorFlow GPU failures: match an error message or log to cause, fix and a link.

The patterns are the messages TensorFlow, cuDNN, XLA and NCCL print, from TensorFlow 1.x to
2.x, on Linux and Windows (see tests/kernel/fixtures/doctor/ for the real logs each one was
written against, with the issue they came from). Pure: text in, matches out. `%gpu_doctor`
(kerasgpu.kernel.doctor) and the server's TensorFlow probe both use `match_errors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import diagnosis
from .diagnosis.logs import line_of


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
        "strategy_mixing",
        "Model built and trained under different distribution strategies",
        [
            r"Mixing different tf\.distribute\.Strategy objects",
            r"is not created under the same (?:distribution )?strategy scope",
            r"Trying to create optimizer slot variable under the scope for tf\.distribute\.Strategy",
        ],
        "Keras needs a model's variables, its compile and its fit under ONE strategy. Here they met two: "
        "the model was built in one strategy's scope (a `with strategy.scope():` cell, or a new "
        "MirroredStrategy() per cell) and compiled or trained in another cell outside it, or under a "
        "second strategy object.",
        "Use one strategy for the whole notebook: %gpu_distribute (toolbar: Distribute This Notebook) "
        "above the first cell that builds a model, remove the per-cell `with strategy.scope():` wraps, "
        "then restart the kernel and run all.",
        ["%load_ext kerasgpu\n%gpu_distribute  # above the first model cell"],
        "https://www.tensorflow.org/api_docs/python/tf/distribute/experimental_set_strategy",
    ),
    Known(
        "model_not_built",
        "Keras could not build the model by itself",
        [r"Unable to automatically build the model"],
        "Before fit, Keras builds a model that is not built yet by running call() on symbolic inputs. A "
        "subclassed model with its own train_step but no call() (or a call() that fails on symbolic "
        "inputs) cannot be built that way, and under a distribution strategy or mixed precision Keras "
        "always tries.",
        "Give the model a call() that returns its outputs (what its train_step computes from the "
        "inputs), or build it yourself before fit by calling it on one batch.",
        [
            "def call(self, inputs):\n    return ...  # the model's output for inputs",
            "{model}({x}[:1])  # builds it on one sample",
        ],
        "https://keras.io/guides/custom_train_step_in_tensorflow/",
    ),
    Known(
        "uneven_replica_batch",
        "A batch that does not split evenly over the replicas",
        [
            r"Inputs to operation AddN of type AddN must have the same size and shape\.\s+Input 0: \[\d+",
            r"replica_\d+/[\s\S]*Incompatible shapes: \[[\d,]*\] vs\. \[0,",
        ],
        "Under a tf.distribute strategy Keras 3 (TensorFlow 2.21) splits each batch over the replicas; "
        "when a batch of evaluate, validation or predict does not divide evenly, the replicas' pieces "
        "differ in size and adding them fails; a batch smaller than the number of replicas (predict on "
        "one image) leaves a replica with an empty batch.",
        "Make the evaluation set a multiple of the global batch size (trim it, or batch a tf.data "
        "validation set with drop_remainder=True), or use a batch size that divides it; for one sample "
        "call the model directly.",
        [
            "validation_dataset = validation_dataset.batch(batch_size, drop_remainder=True)",
            "n = len({x_val}) // batch_size * batch_size; {x_val}, {y_val} = {x_val}[:n], {y_val}[:n]",
            "{model}({x}[:1], training=False)  # one sample, instead of {model}.predict",
        ],
        "https://www.tensorflow.org/tutorials/distribute/keras",
    ),
    Known(
        "mixed_dtype_op",
        "float16 and float32 tensors in one op (mixed precision)",
        [
            r"(?:cannot compute|could not compute) \w+ as input #\d+\(zero-based\) was expected to be a "
            r"(?:half|bfloat16|float) tensor but is a (?:half|bfloat16|float) tensor",
            r"Tensor conversion requested dtype (?:float16|bfloat16|float32) for Tensor with dtype "
            r"(?:float16|bfloat16|float32)",
            r"Input '\w+' of '\w+' Op has type (?:float16|bfloat16|float32|half) that does not match type "
            r"(?:float16|bfloat16|float32|half)",
            r"Tensors in list passed to '\w+' of '\w+' Op have types \[(?:float16|bfloat16|float32|half), "
            r"(?:float16|bfloat16|float32|half)[^\]]*\] that don't all match",
        ],
        "Under a mixed precision policy layers compute in float16/bfloat16, but some code makes a float32 "
        "tensor (a random op, zeros, ones or a constant without dtype, usually in a custom layer's call()) "
        "and combines it with them; TensorFlow does not convert between the two.",
        "Create such tensors with the layer's compute dtype (dtype=self.compute_dtype, or the input's "
        "dtype), or cast them; %mixed_precision check finds these layers.",
        [
            "keras.random.normal(shape=ops.shape(inputs), dtype=inputs.dtype)  # in the layer's call()",
            "%mixed_precision check",
            "%mixed_precision float32  # policy back to float32, then rebuild the model",
        ],
        "https://keras.io/api/mixed_precision/",
    ),
    Known(
        "index_out_of_vocabulary",
        "Token ids outside the Embedding's vocabulary",
        [r"indices\[[\d,]+\] = (-?\d+) is not in \[0, (\d+)\)"],
        "An Embedding (or a gather) got an id outside [0, vocabulary size). With a mixed precision "
        "policy and a float Input this is rounding: float16 holds integers exactly only up to 2048, so "
        "id 19995 becomes 20000. Otherwise the data has ids the vocabulary does not have.",
        'Give the Input dtype="int32" so ids are never rounded; or make the vocabulary large enough '
        "for the data's ids.",
        ['keras.Input(shape=(sequence_length,), dtype="int32")', "%mixed_precision check"],
        "https://keras.io/api/layers/core_layers/embedding/",
    ),
    Known(
        "no_gpu_index",
        "Code expected a GPU that TensorFlow does not see",
        [
            r"(?:gpus|physical_devices|gpu_devices|devices)\[0\][^\n]*\n(?:.*\n){0,12}?"
            r"IndexError: list index out of range",
        ],
        "The code takes the first GPU of tf.config.list_physical_devices('GPU'), but that list is empty: "
        "TensorFlow in this kernel sees no GPU (a CPU-only build, CUDA libraries it could not load, "
        "CUDA_VISIBLE_DEVICES hiding them, or no driver).",
        "Run %gpu_check: it says why TensorFlow sees no GPU and what to install; guard the code with "
        "`if gpus:` so it also runs on a CPU.",
        ["%gpu_check", 'gpus = tf.config.list_physical_devices("GPU")\nif gpus: ...'],
        "https://www.tensorflow.org/guide/gpu",
    ),
    Known(
        "runtime_initialized",
        "Device settings changed after TensorFlow started",
        [r"(Physical|Virtual|Visible) devices cannot be modified after being initialized"],
        "set_memory_growth, set_logical_device_configuration and set_visible_devices only work before "
        "TensorFlow's runtime starts; in a notebook an earlier cell (any op, model or strategy) already "
        "started it.",
        "Restart the kernel and run the device settings in the first cell, before any other TensorFlow "
        "code; for GPU memory, or set the environment variable before TensorFlow starts.",
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
        ['%pip install -U "tensorflow[and-cuda]"', "%pip show nvidia-cudnn-cu12", "%env LD_LIBRARY_PATH"],
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
            "%pip install nvidia-cuda-nvcc-cu12",
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
]


def match_errors(text: str) -> list[dict[str, Any]]:
    """Known failures found in an error message or log, most specific first (as JSON-able dicts).

    The driver and CUDA-library failures (libcuda.so.1, cuInit, the CUDA runtime wheels) come
    from the shared diagnosis (kerasgpu.core.diagnosis), the one %gpu_check and the server's probe
    use; the blocking ones come first, since they explain every GPU error after them.
    """
    cuda = [cause_match(c) for c in diagnosis.log_causes(text or "") if c.get("evidence")]
    found = [c for c in cuda if c["severity"] == diagnosis.BLOCKING]
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
                    "evidence": line_of(text, m),
                    "details": _details(k.code, m, text),
                }
            )
            _read_evidence(found[-1])
    return found + [c for c in cuda if c["severity"] != diagnosis.BLOCKING]


def cause_match(cause: dict[str, Any]) -> dict[str, Any]:
    """A `diagnosis` cause in the shape of a doctor match."""
    return {
        "code": cause["code"],
        "title": cause["title"],
        "cause": cause["why"] or cause["title"],
        "fix": cause["fix"],
        "commands": list(cause["commands"]),
        "link": cause["link"],
        "evidence": cause.get("evidence") or "this kernel's own check (%gpu_check)",
        "details": cause.get("details") or {},
        "severity": cause["severity"],
    }


def _read_evidence(entry: dict[str, Any]) -> None:
    """Adjusts a match to what its evidence says (an out-of-memory on the CPU is not the GPU's)."""
    if entry["code"] == "oom" and str(entry["details"].get("device", "")).startswith("CPU"):
        entry.update(
            code="oom_cpu",
            title="Out of memory on the CPU (ResourceExhaustedError)",
            cause="The allocation that failed was on the CPU (the message names device CPU:0), in the "
            "machine's RAM, not on a GPU: the tensor is too big for this machine's memory, or TensorFlow "
            "placed the work on the CPU because it sees no GPU.",
            fix="Make the tensor or batch smaller (or stream the data with tf.data instead of loading it "
            "whole); if this should have run on a GPU, %gpu_check says why TensorFlow sees none.",
            commands=["%gpu_check", "model.fit(..., batch_size=smaller)"],
            link="https://www.tensorflow.org/guide/data",
        )


ANSI = re.compile(r"\x1b\[[0-9;]*m")


_MISSING_LIB = re.compile(
    r"Could not load dynamic library '([^']+)'|(lib[\w.+-]+\.so[.\d]*): cannot open shared object file"
    r"|\b(\w+64_\d+\.dll)\b"
)


def _details(code: str, m: re.Match, text: str) -> dict[str, Any]:
    if code == "cudnn_version_mismatch" and m.lastindex and m.lastindex >= 2:
        return {"loaded_cudnn": m.group(1), "built_with_cudnn": m.group(2)}
    if code == "oom":
        dev = re.search(r"(?:device:|\bon /?)((?:GPU|CPU):\d+)", text) or re.search(
            r"by allocator (cpu|mklcpu|GPU_\d+_bfc)", text
        )
        if not dev:
            return {}
        name = dev.group(1)
        if name in ("cpu", "mklcpu"):
            name = "CPU:0"
        elif name.startswith("GPU_"):
            name = "GPU:" + name.split("_")[1]
        return {"device": name}
    if code in ("missing_cuda_libraries", "windows_cuda_dll"):
        libs: list[str] = []
        for hit in _MISSING_LIB.finditer(text):
            lib = next(g for g in hit.groups() if g)
            if lib not in libs:
                libs.append(lib)
        return {"missing_libraries": libs} if libs else {}
    return {}

"""`%gpu_doctor`: match TensorFlow GPU failures (exceptions or pasted logs) to cause, fix and a link.

The patterns are the messages TensorFlow, cuDNN, XLA and NCCL print, from
TensorFlow 1.x to 2.x, on Linux and Windows (see tests/kernel/fixtures/doctor/
for the real logs each one was written against, with the issue they came from).

Any other training error (a shape, label or dtype bug) gets a calm card: not a GPU problem,
the exception, the line of the user's cell that raised it, what the error usually means in
Keras (`TRAINING_RULES`, on the messages Keras 3 and TensorFlow 2.21 print), and fixes
written with the user's own names (read from their `fit` call); the GPU state is one line.
"""

from __future__ import annotations

import ast
import linecache
import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..core import diagnosis
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


def diagnose(text: str) -> list[dict[str, Any]]:
    """Known failures found in an error message or log, most specific first (as JSON-able dicts).

    The driver and CUDA-library failures (libcuda.so.1, cuInit, the CUDA runtime wheels) come
    from the shared diagnosis (kerasgpu.diagnosis), the one %gpu_check and the server's probe
    use; the blocking ones come first, since they explain every GPU error after them.
    """
    cuda = [_cause_match(c) for c in diagnosis.log_causes(text or "") if c.get("evidence")]
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
                    "evidence": _line_of(text, m),
                    "details": _details(k.code, m, text),
                }
            )
            _read_evidence(found[-1])
    return found + [c for c in cuda if c["severity"] != diagnosis.BLOCKING]


def _cause_match(cause: dict[str, Any]) -> dict[str, Any]:
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


def exception_text(exc: BaseException) -> str:
    """The full text of an exception with its chain, as a traceback prints it."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def diagnose_exception(exc: BaseException) -> list[dict[str, Any]]:
    """`diagnose` for a raised exception."""
    return diagnose(exception_text(exc))


def report(text: str, source: str, facts: dict[str, Any] | None = None, ctx: Context | None = None) -> Card:
    """The `%gpu_doctor` card for `text` (an exception or a pasted log).

    Besides what the text shows (`matches`), it names what blocks the GPU in this
    kernel (`kernel`: the shared diagnosis on `facts`, by default gathered here without
    importing anything new), so the doctor and %gpu_check agree on the same kernel;
    `cause` is the first of them all.
    """
    text = _ANSI.sub("", text or "")
    found = diagnose(text)
    ctx = ctx or context_of_text(text)
    if facts is None:
        from .checks import gather_light

        facts = gather_light()
    named = {f["code"] for f in found}
    kernel = [
        _cause_match(c)
        for c in diagnosis.diagnose(facts)
        if c["severity"] == diagnosis.BLOCKING and c["code"] not in named
    ]
    judged = diagnosis.verdict(facts)
    data = {
        "kind": "gpu_doctor",
        "source": source,
        "matches": found,
        "kernel": kernel,
        "cause": (found or kernel or [{"code": None}])[0]["code"],
        # The kernel's verdict as %gpu_check, the panel and the status bar word it.
        "verdict": {k: judged[k] for k in ("headline", "fix_commands", "text")},
    }
    for f in found:
        f["commands"] = _fill(f["commands"], ctx.names)
    if not found and (source == "exception" or explain_training_error(text)):
        data["cause"] = None
        return _not_gpu_card(text, data, kernel, ctx)
    if not found and kernel:
        fixes = [
            Fix(f["code"], "error", f"{f['title']}: {f['cause']}", f["fix"], f["commands"], f["link"])
            for f in kernel
        ]
        card = Card(
            "GPU doctor",
            "error",
            f"No known TensorFlow GPU failure in this {source}, but: {judged['headline']}.",
            [Section("Tried").add("known failures", [k.title for k in KNOWN])],
            fixes,
            data,
        )
        card.order = list(judged["fix_commands"])
        return card
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
        for f in found + kernel
    ]
    sec = Section("Evidence")
    for f in found:
        sec.add(f["code"], f["evidence"])
        for k, v in f["details"].items():
            sec.add(f"  {k}", v)
    return Card("GPU doctor", "error", found[0]["title"] + ".", [sec], fixes, data)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


# ------------------------------------------------------------------ training errors (not the GPU's)


@dataclass
class Context:
    """Where an exception came from in the user's notebook, and the names their call used."""

    cell: str | None = None  # "In [5]"
    lineno: int | None = None
    line: str | None = None  # the line of the user's cell that raised
    names: dict[str, str] = field(default_factory=dict)  # model, x, y, validation_data as written


class _Names(dict):
    """`str.format_map` defaults: the Keras docs' own argument names where the user's are unknown."""

    def __missing__(self, key):
        return {"model": "model", "x": "x", "y": "y", "x_val": "x_val", "y_val": "y_val"}.get(key, key)


def _fill(texts: list[str], names: dict[str, str]) -> list[str]:
    """Commands with {model}, {x}, ... written as the user's own names."""
    out = []
    for t in texts:
        try:
            out.append(t.format_map(_Names(names)))
        except (KeyError, ValueError, IndexError, AttributeError):
            out.append(t)
    return out


_FIT_CALLS = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch")
_SHAPE = r"\([^)]*\)"


def _rule_labels(text: str) -> dict[str, Any] | None:
    m = re.search(r"Received a label value of (-?\d+) which is outside the valid range of \[0, (\d+)\)", text)
    if not m:
        return None
    value, n = int(m.group(1)), int(m.group(2))
    return {
        "code": "labels_out_of_range",
        "evidence": _line_of(text, m),
        "title": "Labels out of range for sparse_categorical_crossentropy",
        "meaning": f"A label is {value}, but the model's output has {n} classes, so the labels must be "
        f"0 to {n - 1}. sparse_categorical_crossentropy takes integer class ids, one per sample.",
        "fix": f"Make the labels 0..{n - 1} (e.g. subtract 1 from labels counted from 1), or give the last "
        f"layer as many units as there are classes ({max(value + 1, n)} or more).",
        "commands": ["print({y}.min(), {y}.max())", "{model}.output_shape"],
        "details": {"label": value, "classes": n},
    }


def _rule_target_shape(text: str) -> dict[str, Any] | None:
    m = re.search(
        rf"Arguments `target` and `output` must have the same (rank \(ndim\)|shape)\. "
        rf"Received: target\.shape=({_SHAPE}), output\.shape=({_SHAPE})",
        text,
    ) or re.search(rf"Shapes ({_SHAPE}) and ({_SHAPE}) are incompatible", text)
    if not m:
        return None
    target, output = m.groups()[-2:]
    return {
        "code": "target_shape",
        "evidence": _line_of(text, m),
        "title": "Targets and model output of different shapes",
        "meaning": f"The loss compares the targets, shape {target}, with the model's output, shape "
        f"{output}. Usual causes: integer labels with categorical_crossentropy (it wants one-hot "
        "rows; sparse_categorical_crossentropy takes integers), one-hot labels with "
        "sparse_categorical_crossentropy, or a last layer with another number of units than the "
        "targets have columns.",
        "fix": "Match the loss to the labels (integers: sparse_categorical_crossentropy; one-hot: "
        "categorical_crossentropy), or the last layer's units to the targets' columns.",
        "commands": ["print({y}.shape, {model}.output_shape)", "{model}.loss"],
        "details": {"target_shape": target, "output_shape": output},
    }


def _rule_input_shape(text: str) -> dict[str, Any] | None:
    layer = expected = found = None
    m = re.search(
        rf"of layer '([^']+)' is incompatible with the layer: expected shape=({_SHAPE}), "
        rf"found shape=({_SHAPE})",
        text,
    )
    if m:
        layer, expected, found = m.groups()
    else:
        m = re.search(
            rf"Input \d+ of layer \"?([\w/.-]+)\"? is incompatible with the layer: (expected .*?), "
            rf"but received input with shape ({_SHAPE})",
            text,
        )
        if m:
            layer, expected, found = m.groups()
    if not m:
        m = re.search(rf"Expected shape ({_SHAPE}), but input has incompatible shape ({_SHAPE})", text)
        if m:  # the model's own Input (Keras names the model's class, not a layer)
            expected, found = m.groups()
    if not m:
        m = re.search(r"(?:Matrix size-incompatible: In\[0\]: (\[[\d,]+\]), In\[1\]: (\[[\d,]+\]))", text)
        m = m or re.search(r"Incompatible shapes: (\[[\d,]+\]) vs\. (\[[\d,]+\])", text)
        if not m:
            return None
        expected, found = m.groups()
    where = f"layer '{layer}'" if layer else "the model's input"
    return {
        "code": "input_shape",
        "evidence": _line_of(text, m),
        "title": f"Data of the wrong shape for {where}",
        "meaning": f"{where[0].upper() + where[1:]} expects inputs of shape {expected} but got {found} "
        "(None or the first number is the batch). Usual causes: the data was not reshaped or "
        "flattened as the model's Input says, a missing channel axis (28, 28) vs (28, 28, 1), "
        "or the Input's shape written for other data.",
        "fix": "Reshape the data to the model's input shape (or change the Input's shape to the data's).",
        "commands": ["print({x}.shape, {model}.input_shape)", "{model}.summary()"],
        "details": {k: v for k, v in (("layer", layer), ("expected", expected), ("found", found)) if v},
    }


def _rule_dtype(text: str) -> dict[str, Any] | None:
    m = (
        re.search(r"Invalid dtype: (\w+)", text)
        or re.search(r"Failed to convert a NumPy array to a Tensor \(Unsupported object type (\w+)\)", text)
        or re.search(r"could not convert (string) to float", text)
        or re.search(r"Cannot convert .{0,80} to EagerTensor of dtype (\w+)", text)
    )
    if not m:
        return None
    dtype = m.group(1)
    return {
        "code": "wrong_dtype",
        "evidence": _line_of(text, m),
        "title": f"Data of a type Keras cannot train on ({dtype})",
        "meaning": f"Some of the data is {dtype}: Keras trains on numbers (float features, integer or "
        "float labels). Strings, Python objects or mixed columns (a DataFrame column read as "
        "object, a list of arrays of different lengths) have to be turned into numbers first.",
        "fix": "Convert the features to float32 and the labels to integers (a StringLookup or "
        "LabelEncoder for text labels; pad sequences to one length).",
        "commands": ["print({x}.dtype, {y}.dtype)", '{x} = np.asarray({x}, dtype="float32")'],
        "details": {"dtype": dtype},
    }


TRAINING_RULES = [_rule_labels, _rule_target_shape, _rule_input_shape, _rule_dtype]


def explain_training_error(text: str) -> dict[str, Any] | None:
    """What a non-GPU training error usually means in Keras (the first rule that matches), or None."""
    for rule in TRAINING_RULES:
        found = rule(text or "")
        if found:
            return found
    return None


def _cell_files() -> dict[str, int]:
    """The filenames IPython compiled the user's cells under, with their execution counts."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return dict(getattr(shell.compile, "_filename_map", {}) or {})
    except Exception:
        return {}


def _is_cell(filename: str, cells: dict[str, int]) -> bool:
    return filename in cells or filename.startswith("<ipython-input-") or "/ipykernel_" in filename


def context_of(exc: BaseException) -> Context:
    """The line of the user's cell that raised `exc` (the last frame in a cell) and its names."""
    cells = _cell_files()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_cell(f.filename, cells)]
    if not frames:
        return Context()
    f = frames[-1]
    n = cells.get(f.filename)
    source = "".join(linecache.getlines(f.filename))
    ctx = Context(f"In [{n}]" if n else "your cell", f.lineno, (f.line or "").strip() or None)
    call = _fit_call(source, f.lineno or 0)
    if call is not None:
        ctx.names = _names_of(call)
    return ctx


def context_of_text(text: str) -> Context:
    """The same from a pasted IPython traceback ("Cell In[5], line 3" ... "----> 3 model.fit(...)")."""
    hits = list(re.finditer(r"Cell In ?\[(\d+)\], line (\d+)\n(?:.*\n){0,12}?-+> ?\d+ ([^\n]+)", text))
    m = hits[-1] if hits else None  # the last one: the user's own line, nearest the error
    if m is None:
        return Context()
    line = m.group(3).strip()
    call = _fit_call(line, 1)
    return Context(f"In [{m.group(1)}]", int(m.group(2)), line, _names_of(call) if call is not None else {})


def _fit_call(source: str, lineno: int) -> ast.Call | None:
    """The model.fit/evaluate/predict call spanning `lineno` in the cell's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    best = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _FIT_CALLS
            and node.lineno <= lineno <= (node.end_lineno or node.lineno)
        ):
            best = node
    return best


def _names_of(call: ast.Call) -> dict[str, str]:
    """model, x, y, x_val, y_val as the user wrote them in the call, where each is a name (or an
    attribute or item of one): an expression such as `x.astype(object)` is not something to
    assign to, so the fix keeps Keras' own word for it."""
    out: dict[str, str] = {}

    def put(key, node):
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
            out[key] = ast.unparse(node)

    put("model", call.func.value)
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    for i, name in enumerate(("x", "y")):
        put(name, call.args[i] if len(call.args) > i else kw.get(name))
    val = kw.get("validation_data")
    if isinstance(val, (ast.Tuple, ast.List)) and len(val.elts) >= 2:
        put("x_val", val.elts[0])
        put("y_val", val.elts[1])
    return out


def _gpu_line(kernel: list[dict[str, Any]]) -> str:
    if not kernel:
        return "nothing found that blocks the GPU in this kernel (%gpu_check for details)"
    return f"{kernel[0]['title']} (not what failed here; %gpu_check for details)"


def report_exception(exc: BaseException, facts: dict[str, Any] | None = None) -> Card:
    """The `%gpu_doctor` card for a raised exception: a GPU failure's card, or for any other error a
    calm one that it is not a GPU problem, with the user's line and what the error usually means."""
    return report(exception_text(exc), "exception", facts, context_of(exc))


def _not_gpu_card(text: str, data: dict[str, Any], kernel: list, ctx: Context) -> Card:
    """The card for an error that matches no GPU failure."""
    last = _last_error_line(text)
    meaning = explain_training_error(text)
    data.update(
        not_gpu=True,
        error=last,
        user_line=ctx.line,
        user_cell=ctx.cell,
        user_lineno=ctx.lineno,
        names=ctx.names,
        explanation=meaning,
    )
    title = meaning["title"] if meaning else (last.split(":", 1)[0] if last else "an error")
    sections = [Section("The error").add("raised", last or "(no message)")]
    if meaning and meaning["evidence"] not in (last or ""):
        sections[0].add("message", meaning["evidence"])
    if ctx.line:
        where = f"{ctx.cell}, line {ctx.lineno}" if ctx.cell else "your code"
        sections.append(Section("Raised by your code").add(where, ctx.line))
    fixes = []
    if meaning:
        sec = Section("What it usually means in Keras").add("meaning", meaning["meaning"])
        for k, v in meaning["details"].items():
            sec.add(k, v)
        sections.append(sec)
        commands = _fill(meaning["commands"], ctx.names)
        fixes.append(Fix(meaning["code"], "info", meaning["title"], meaning["fix"], commands))
    sections.append(Section("GPU", collapsed=True).add("state", _gpu_line(kernel)))
    summary = f"Not a GPU problem: {title[0].lower() + title[1:] if meaning else title}."
    return Card("GPU doctor", "info", summary, sections, fixes, data)


def _last_error_line(text: str) -> str | None:
    """The exception's own line ("ValueError: ..."), its first line of message."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        m = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt)):?(.*)$", lines[i])
        if m:
            head = m.group(0).strip()
            return head if len(head) <= 300 else head[:297] + "..."
    return lines[-1].strip()[:300] if lines else None

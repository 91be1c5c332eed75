"""TensorFlow's log, read as facts: which libraries did not load, what cuInit answered, what the
CUDA stub and the driver diagnostics printed, each with the line that says so."""

from __future__ import annotations

import re
from typing import Any

from ..cudafacts import CU_ERRORS

_CU_CODES = {name: code for code, name in CU_ERRORS.items() if code}

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
_GLOG = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ |[\d-]+ [\d:.]+: [IWEF] )(?:\S+/)?")


def line_of(text: str, m: re.Match) -> str:
    """The whole line of `text` that match `m` stands in, stripped (at most 300 characters)."""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    line = text[start : end if end != -1 else len(text)].strip()
    return line if len(line) <= 300 else line[:297] + "..."


def says(line: str | None) -> str:
    """`TensorFlow says: "<line>"`, without the log's time stamp and thread id."""
    return f'TensorFlow says: "{_GLOG.sub("", (line or "").strip())}"'


def parse_log(text: str) -> dict[str, Any]:
    """What a TensorFlow log says about the driver and CUDA libraries, as facts (with the line of each)."""
    text = text or ""
    out: dict[str, Any] = {"lines": {}, "missing_libraries": []}
    _libraries(text, out)
    m = _LOG["cu_init"].search(text)
    if m:
        said = m.group(1).strip()
        num = re.search(r"\((\d+)\)", said)
        name = re.match(r"CUDA_ERROR_\w+", said)
        code = int(num.group(1)) if num else (_CU_CODES.get(name.group(0)) if name else None)
        out["cu_init"] = {"code": code, "name": CU_ERRORS.get(code, said) if code else said}
        out["lines"]["cu_init"] = line_of(text, m)
    for key in ("cudart_stub", "dlopen_failed", "no_kernel_driver", "driver_too_old", "driver_mismatch"):
        m = _LOG[key].search(text)
        if m:
            out[key] = True
            out["lines"][key] = line_of(text, m)
    return out


def _libraries(text: str, out: dict[str, Any]) -> None:
    """The libraries the log says did not load: libcuda.so.1 (the driver's) apart from the rest."""
    for m in _LOG["dso"].finditer(text):
        lib, err = m.group(1), m.group(2) or ""
        if lib.lower().endswith(".dll"):
            continue  # native Windows: the doctor's own rule
        if lib.startswith("libcuda.so"):
            out["libcuda_error"] = err or f"{lib} could not be loaded"
            out["lines"].setdefault("libcuda", line_of(text, m))
            continue
        out["lines"].setdefault("libraries", line_of(text, m))
        for name in [lib, *_SO.findall(err)]:
            if name not in out["missing_libraries"]:
                out["missing_libraries"].append(name)
    for m in _SO.finditer(text):
        name = m.group(1)
        if not name.startswith("libcuda.so") and name not in out["missing_libraries"]:
            out["missing_libraries"].append(name)
            out["lines"].setdefault("libraries", line_of(text, m))

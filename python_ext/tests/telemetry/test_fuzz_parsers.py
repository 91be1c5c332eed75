"""Property tests (hypothesis) of every conversion from what the driver says to what the API sends:
nvidia-smi's one-shot CSV, its streamed lines, and NVML's values.

Inputs start from real H200 lines (the replay) and get mangled the ways real tools and terminals
mangle them: `[N/A]`, `[Not Supported]`, empty fields, extra or missing commas, `\\r`, bytes that are
not UTF-8, fields longer than csv's limit, `nan` / `inf` / `1e309`. Whatever comes in, the only
exception is a TelemetryError (a status with a reason), and every number that comes out is finite
or None, so the JSON the browser gets never holds NaN or Infinity.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import locale
import math
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kerasgpu.telemetry import errors, smi
from kerasgpu.telemetry.nvml import NvmlBackend
from kerasgpu.telemetry.types import DeviceInfo, GpuProcess, GpuSample, TelemetryError

EXAMPLES = int(os.environ.get("KERASGPU_FUZZ_EXAMPLES", "10000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # leave the tree as it was: no .hypothesis/ folder
    suppress_health_check=list(HealthCheck),
)
GPU_FIELDS = list(dict.fromkeys(smi.DEVICE_FIELDS + smi.SAMPLE_FIELDS))
FAKE_SMI_DIR = Path(__file__).resolve().parents[1] / "fake_nvidia_smi"


def real_output(args: list[str], **fake_env: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVIDIA_SMI")}
    env.update(fake_env)
    return subprocess.run(
        [str(FAKE_SMI_DIR / "nvidia-smi"), *args], env=env, capture_output=True, text=True, check=True
    ).stdout


@functools.cache
def captures() -> dict[str, list[str]]:
    """Real lines of the replay: GPU rows (one-shot fields), streamed rows, compute processes."""
    found: dict[str, set[str]] = {"gpu": set(), "stream": set(), "apps": set()}
    fmt = "--format=csv,noheader,nounits"
    for state, variant in (("idle", "quirky"), ("load", "h200"), ("load", "geforce"), ("multi", "mig")):
        env = {"FAKE_NVIDIA_SMI_STATE": state, "FAKE_NVIDIA_SMI_VARIANT": variant}
        found["gpu"].update(real_output([f"--query-gpu={','.join(GPU_FIELDS)}", fmt], **env).splitlines())
        found["stream"].update(
            real_output([f"--query-gpu={','.join(smi.SAMPLE_FIELDS)}", fmt], **env).splitlines()
        )
        found["apps"].update(
            real_output([f"--query-compute-apps={','.join(smi.PROCESS_FIELDS)}", fmt], **env).splitlines()
        )
    return {kind: sorted(lines) for kind, lines in found.items()}


# What a cell can turn into.
ODD_CELLS = [
    "[N/A]",
    "[Not Supported]",
    "[Unknown Error]",
    "[GPU is lost]",
    "N/A",
    "",
    " ",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "1e309",
    "-1e309",
    "1e308",
    "4.9e-324",
    "99999999999999999999999999",
    "0x1F",
    "1_000",
    "\u0661\u0662",  # Arabic-Indic digits: float() reads them
    '"',
    '"quoted, with comma"',
    "\x00",
    "ERR!",
    "25715 MiB",
    "-1",
]
# Long fields: around the stream's line limit and csv's field limit (131072).
LONG = [100, smi.MAX_LINE - 200, smi.MAX_LINE + 1, 131_072, 131_073, 200_000]
CELLS = st.one_of(
    st.sampled_from(ODD_CELLS),
    st.text(max_size=6),
    st.integers(-(2**80), 2**80).map(str),
    st.floats().map(repr),
    st.sampled_from(LONG).map(lambda n: "7" * n),
)
EDITS = st.lists(
    st.tuples(st.sampled_from(["replace", "insert", "delete", "comma"]), st.integers(0, 40), CELLS),
    max_size=4,
)
JUNK = st.one_of(st.binary(min_size=1, max_size=3), st.sampled_from([b"\r", b"\r\n", b"\xff\xfe", b"\x00"]))
SPLICES = st.lists(st.tuples(st.integers(0, 2**20), JUNK), max_size=1)
SEPARATORS = st.sampled_from([", ", ",", ",  "])
ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r", b""])


def mangle(line: str, edits, sep: str, splices, ending: bytes) -> bytes:
    """A real line with some cells replaced, added or removed, then some bytes spliced in."""
    parts = line.split(", ")
    for what, i, cell in edits:
        i %= len(parts) + 1
        if what == "insert":
            parts.insert(i, cell)
        elif parts:
            i %= len(parts)
            if what == "replace":
                parts[i] = cell
            elif what == "delete":
                del parts[i]
            else:
                parts[i] += ","
    data = sep.join(parts).encode("utf-8", "surrogatepass")
    for at, junk in splices:
        at %= len(data) + 1
        data = data[:at] + junk + data[at:]
    return data + ending


def output(kind: str, lines: int = 2):
    """What one nvidia-smi call prints: a few real lines, most of them mangled."""
    pick = st.integers(0, 2**16).map(lambda i: captures()[kind][i % len(captures()[kind])])
    line = st.one_of(
        st.builds(mangle, pick, EDITS, SEPARATORS, SPLICES, ENDINGS),
        pick.map(lambda s: s.encode() + b"\n"),
    )
    return st.lists(line, max_size=lines).map(b"".join)


def as_text(data: bytes) -> str:
    """Bytes decoded as subprocess.Popen(text=True, errors="replace") decodes nvidia-smi's stdout."""
    return io.TextIOWrapper(
        io.BytesIO(data), encoding=locale.getpreferredencoding(False), errors="replace"
    ).read()


def assert_clean(*records) -> None:
    """Only finite numbers or None in every record, and JSON a browser can parse."""
    for record in records:
        assert isinstance(record, (DeviceInfo, GpuSample, GpuProcess))
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            if isinstance(value, float):
                assert math.isfinite(value), (f.name, value)
        json.dumps(record.to_json(), allow_nan=False)


def stream_backend(gpus: int) -> smi.SmiBackend:
    backend = smi.SmiBackend(stream=True)
    backend._fields = list(smi.SAMPLE_FIELDS)
    backend._devices = [DeviceInfo(i, f"GPU-{i}", "NVIDIA H200", 143771.0, "580.95.05") for i in range(gpus)]
    return backend


def one_shot(data: bytes, apps: bytes) -> None:
    """The one-shot path: `--query-gpu` rows into devices and readings, `--query-compute-apps` rows."""
    try:
        rows = smi.parse_rows(as_text(data), GPU_FIELDS)
        devices, samples = smi.readings(rows, "12.8", 1.0)
        assert_clean(*devices, *samples)
    except TelemetryError as err:
        assert err.code in (errors.MALFORMED, errors.NO_DEVICES, errors.GPU_LOST)
        assert err.reason and len(err.reason) < 600
    try:
        assert_clean(*smi.parse_processes(as_text(apps)))
    except TelemetryError as err:
        assert err.code == errors.MALFORMED and len(err.reason) < 600


def streamed(data: bytes, gpus: int) -> None:
    """The stream path: the reader thread's parsing of `-lms` lines, as decoded from the pipe."""
    backend = stream_backend(gpus)
    stdout = io.TextIOWrapper(io.BytesIO(data), encoding=locale.getpreferredencoding(False), errors="replace")
    backend.read_lines(smi.bounded_lines(stdout))  # raises nothing, whatever the lines
    assert all(isinstance(s, GpuSample) for s in backend._tick)
    assert_clean(*backend._tick)
    if backend._error is not None:
        assert isinstance(backend._error, TelemetryError)
        assert len(backend._error.reason) < 600


# The one-shot and stream paths take the same kind of input: each example goes through both, so
# each path sees every one of the examples.
@FUZZ
@given(gpu=output("gpu"), apps=output("apps", lines=1), stream=output("stream"), gpus=st.integers(1, 3))
def test_nvidia_smi_output_never_crashes_and_gives_only_finite_numbers(gpu, apps, stream, gpus):
    one_shot(gpu, apps)
    streamed(stream, gpus)
    streamed(gpu, gpus)  # the wrong field count is one more way to be malformed


def test_a_line_over_the_stream_limit_is_reported_not_kept():
    backend = stream_backend(1)
    stdout = io.StringIO("7" * (3 * smi.MAX_LINE) + "\n" + captures()["stream"][0] + "\n")
    backend.read_lines(smi.bounded_lines(stdout))
    assert backend._error.code == errors.MALFORMED and "longer than" in backend._error.reason
    assert backend._tick and backend._tick[0].index == 0, "the good line after it still reads"


def test_a_lost_gpu_with_an_absurd_index_field_gets_a_short_message():
    """Found by the fuzzer: a 64 KB index field on a "GPU is lost" row was echoed whole."""
    backend = stream_backend(1)
    cells = next(csv.reader([captures()["stream"][0]], skipinitialspace=True))
    cells[smi.SAMPLE_FIELDS.index("index")] = "7" * 60_000
    cells[-1] = "[GPU is lost]"
    backend.read_lines(iter([", ".join(cells)]))
    assert backend._error.code == errors.GPU_LOST
    assert len(backend._error.reason) < 600 and "stopped responding" in backend._error.reason


# ---------------------------------------------------------------- NVML

NVML_CODES = [getattr(pynvml, n) for n in dir(pynvml) if n.startswith("NVML_ERROR_")]
# Besides plausible values: NVML's "not available" markers, values beyond any GPU, and what a
# broken binding could hand back (floats, nan, bytes, text).
ODD_VALUES = [
    None,
    0,
    -1,
    0xFFFFFFFF,
    2**63,
    2**64 - 1,
    10**400,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    b"\xff\xfe",
    "",
    "P0",
    3.5,
]
nvml_numbers = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(ODD_VALUES))
failures = st.sampled_from(NVML_CODES).map(lambda code: pynvml.NVMLError(code))


def outcome(values):
    """A value, or an NVMLError to raise."""
    return st.one_of(values, failures)


NVML_CONSTANTS = {n: getattr(pynvml, n) for n in dir(pynvml) if n.isupper() or n == "nvmlMemory_v2"}
# What each getter returns, when it returns: structures as the bindings build them.
NVML_ANSWERS = {
    "nvmlDeviceGetUtilizationRates": st.builds(SimpleNamespace, gpu=nvml_numbers, memory=nvml_numbers),
    "nvmlDeviceGetMemoryInfo": st.builds(
        SimpleNamespace, total=nvml_numbers, used=nvml_numbers, reserved=nvml_numbers
    ),
    "nvmlDeviceGetPciInfo": st.builds(SimpleNamespace, busId=st.one_of(st.binary(max_size=16), nvml_numbers)),
    "nvmlDeviceGetCudaComputeCapability": st.one_of(st.tuples(nvml_numbers, nvml_numbers), nvml_numbers),
    "nvmlDeviceGetMigMode": st.one_of(st.tuples(nvml_numbers, nvml_numbers), nvml_numbers),
    "nvmlDeviceGetCount": st.one_of(st.integers(-2, 3), nvml_numbers),
    "nvmlDeviceGetComputeRunningProcesses_v3": st.lists(
        st.builds(
            SimpleNamespace,
            pid=nvml_numbers,
            usedGpuMemory=nvml_numbers,
            gpuInstanceId=nvml_numbers,
            computeInstanceId=nvml_numbers,
        ),
        max_size=3,
    ),
}
NVML_OUTCOMES = {name: outcome(values) for name, values in NVML_ANSWERS.items()}
NUMBER_OUTCOME = outcome(nvml_numbers)


class FakeNvml(SimpleNamespace):
    """A pynvml module whose every answer is drawn by hypothesis."""

    def __init__(self, draw):
        super().__init__(**NVML_CONSTANTS)
        self.NVMLError = pynvml.NVMLError
        self._draw = draw

    def __getattr__(self, name):
        if not name.startswith("nvml"):
            raise AttributeError(name)
        answers = NVML_OUTCOMES.get(name, NUMBER_OUTCOME)

        def call(*args, **kwargs):
            value = self._draw(answers)
            if isinstance(value, pynvml.NVMLError):
                raise value
            return value

        return call


@FUZZ
@given(data=st.data())
def test_nvml_values_never_crash_and_give_only_finite_numbers(data):
    backend = NvmlBackend(module=FakeNvml(data.draw))
    try:
        devices = backend.open()
        assert_clean(*devices)
        assert_clean(*backend.sample())
        assert_clean(*backend.processes())
    except TelemetryError as err:
        assert err.reason
    finally:
        backend.close()


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e309", "NaN", "-1e309"])
def test_non_finite_cells_read_as_missing(text):
    assert smi.to_number(text, "power.draw") is None

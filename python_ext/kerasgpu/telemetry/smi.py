"""The nvidia-smi backend: CSV queries of `nvidia-smi`, run without a shell.

One-shot queries (`query_gpus`, `query_processes`) serve `probe()` and static
details; `SmiBackend` keeps one long-lived `nvidia-smi ... -lms N` process per
sampler and reads its lines, since a spawn costs ~36 ms per call.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator

from . import counters, errors
from .types import DeviceInfo, GpuProcess, GpuSample, TelemetryError, finite

DEFAULT_TIMEOUT = 10.0
# A streamed reading is ~150 characters per GPU: a longer line is not one, and is not kept in memory.
MAX_LINE = 64 * 1024

# Static details (DeviceInfo) and readings (GpuSample), in the query's order.
DEVICE_FIELDS = [
    "index",
    "uuid",
    "name",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "compute_cap",
    "mig.mode.current",
]
SAMPLE_FIELDS = [
    "index",
    "uuid",
    "utilization.gpu",
    "utilization.memory",
    "memory.used",
    "memory.total",
    "memory.reserved",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "clocks.sm",
    "clocks.mem",
    "pstate",
]
# Fields an older driver may not know; dropped (and read as None) when nvidia-smi refuses them.
REQUIRED_FIELDS = {"index", "uuid"}
PROCESS_FIELDS = ["pid", "gpu_uuid", "used_gpu_memory", "process_name"]

_UNIT = re.compile(r"\s*(MiB|GiB|KiB|%|W|MHz|C|us)$")
_BAD_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')


def bounded_lines(stream) -> Iterator[str | None]:
    """The lines of a text stream, each at most MAX_LINE characters; None stands for a longer one
    (skipped to its end, never held whole)."""
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            while True:
                rest = stream.readline(MAX_LINE)
                if not rest or rest.endswith("\n"):
                    break
            yield None
            continue
        yield line


def find_smi(smi_path: str | None = None) -> str:
    """The nvidia-smi executable to run: `smi_path` if given, else the one on PATH."""
    if smi_path:
        if os.path.isfile(smi_path) and os.access(smi_path, os.X_OK):
            return smi_path
        found = shutil.which(smi_path)
        if found:
            return found
        raise errors.smi_not_found(smi_path)
    found = shutil.which("nvidia-smi")
    if not found:
        raise errors.smi_not_found()
    return found


# Every nvidia-smi child of this process (one-shot and stream), so a server that stops can end
# them all, even those in the middle of a hung call.
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    """Starts nvidia-smi in a process group of its own (a wrapper script's children included)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=os.name == "posix", **kwargs)
    with _children_lock:
        _children.add(proc)
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    """Kills `proc` and everything in its process group (a wrapper and the real nvidia-smi)."""
    if os.name == "posix":
        with contextlib.suppress(OSError):  # the whole group is gone already
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


def forget(proc: subprocess.Popen) -> None:
    with _children_lock:
        _children.discard(proc)


def kill_children() -> int:
    """Kills every nvidia-smi this process started that still runs (at server stop); how many."""
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        kill_group(proc)
    return len(procs)


def run_smi(exe: str, args: list[str], timeout: float = DEFAULT_TIMEOUT) -> str:
    """Runs nvidia-smi once (argv list, no shell); its stdout, or a TelemetryError.

    The child runs in its own process group, killed as a group when it does not answer in time.
    """
    try:
        proc = spawn(
            [exe, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise errors.smi_not_found(exe) from None
    except OSError as err:
        raise errors.backend_error(f"nvidia-smi at {exe} could not be run: {err}") from None
    try:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            # A child stuck in the driver may outlive even SIGKILL for a while: don't wait forever.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=2)
            raise errors.timeout("nvidia-smi", timeout) from None
    finally:
        if proc.returncode is None:
            kill_group(proc)
        forget(proc)
    if proc.returncode != 0:
        raise errors.from_smi_output(stdout + "\n" + stderr, proc.returncode)
    return stdout


def is_missing(value: str) -> bool:
    """`[N/A]`, `[Not Supported]`, `[Unknown Error]`, `N/A` or empty: a value the GPU lacks."""
    v = value.strip()
    return not v or v == "N/A" or (v.startswith("[") and v.endswith("]"))


def is_lost(value: str) -> bool:
    """nvidia-smi's marker for a GPU that stopped answering."""
    return value.strip().lower() == "[gpu is lost]"


def to_number(value: str, field: str) -> float | None:
    """A number from a CSV cell (units tolerated); None when the GPU lacks it or it is not finite
    (`nan`, `inf`, `1e309`): JSON has no such numbers, and no GPU reads them."""
    if is_missing(value):
        return None
    text = _UNIT.sub("", value.strip())
    try:
        return finite(float(text))
    except (ValueError, OverflowError):
        raise errors.malformed(f"{field} = {errors.short(repr(value.strip()))} is not a number") from None


def to_text(value: str) -> str | None:
    """A string from a CSV cell, None when the GPU lacks it."""
    return None if is_missing(value) else value.strip()


def split_row(line: str, fields: list[str]) -> dict[str, str]:
    """One CSV line into {field: cell}; a wrong number of cells is malformed output."""
    try:
        cells = next(csv.reader([line], skipinitialspace=True), [])
    except csv.Error as err:  # a field over csv's limit (128 KiB), a NUL byte...
        raise errors.malformed(f"{err}: {errors.short(repr(line.strip()), 120)}") from None
    if len(cells) != len(fields):
        raise errors.malformed(f"expected {len(fields)} values, got {len(cells)}: {line.strip()[:120]!r}")
    return dict(zip(fields, cells, strict=False))


def _index(row: dict[str, str]) -> int:
    try:
        return int(row["index"].strip())
    except ValueError:
        index = errors.short(repr(row["index"].strip()))
        raise errors.malformed(f"GPU index {index} is not a number") from None


def check_lost(row: dict[str, str]) -> None:
    """Raises GPU_LOST when nvidia-smi marks this GPU's readings as lost."""
    if any(is_lost(v) for v in row.values()):
        # nvidia-smi's own fields, shortened: a malformed line must not make a 64 KB message
        index, uuid = (errors.short(row.get(k, d).strip(), 60) for k, d in (("index", "?"), ("uuid", "")))
        raise errors.gpu_lost(f"{index} ({uuid})")


def row_to_sample(row: dict[str, str], timestamp: float) -> GpuSample:
    """A parsed CSV row into a GpuSample (missing fields are None)."""
    check_lost(row)

    def num(field: str) -> float | None:
        return to_number(row[field], field) if field in row else None

    return GpuSample(
        index=_index(row),
        uuid=row["uuid"].strip(),
        timestamp=timestamp,
        utilization_gpu=num("utilization.gpu"),
        utilization_memory=num("utilization.memory"),
        memory_used_mib=num("memory.used"),
        memory_total_mib=num("memory.total"),
        memory_reserved_mib=num("memory.reserved"),
        temperature_c=num("temperature.gpu"),
        power_draw_w=num("power.draw"),
        power_limit_w=num("power.limit"),
        clock_sm_mhz=num("clocks.sm"),
        clock_mem_mhz=num("clocks.mem"),
        pstate=to_text(row["pstate"]) if "pstate" in row else None,
    )


def row_to_device(row: dict[str, str], cuda_driver_version: str | None = None) -> DeviceInfo:
    """A parsed CSV row into a DeviceInfo (missing fields are None)."""

    def text(field: str) -> str | None:
        return to_text(row[field]) if field in row else None

    return DeviceInfo(
        index=_index(row),
        uuid=row["uuid"].strip(),
        name=text("name") or "NVIDIA GPU",
        memory_total_mib=to_number(row["memory.total"], "memory.total") if "memory.total" in row else None,
        driver_version=text("driver_version"),
        pci_bus_id=text("pci.bus_id"),
        cuda_driver_version=cuda_driver_version,
        compute_capability=text("compute_cap"),
        mig_mode=text("mig.mode.current"),
        pcie_throughput_reason=counters.SMI_REASON,
        nvlink_throughput_reason=counters.SMI_REASON,
    )


def query_rows(
    exe: str, fields: list[str], timeout: float = DEFAULT_TIMEOUT, dropped: set[str] | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    """Runs `--query-gpu=<fields>`; drops fields an older driver refuses. (fields used, rows)."""
    fields = [f for f in fields if not dropped or f not in dropped]
    for _ in range(len(fields)):
        try:
            out = run_smi(exe, [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"], timeout)
        except TelemetryError as err:
            bad = _BAD_FIELD.search(err.reason)
            if bad and bad.group(1) in fields and bad.group(1) not in REQUIRED_FIELDS:
                if dropped is not None:
                    dropped.add(bad.group(1))
                fields = [f for f in fields if f != bad.group(1)]
                continue
            raise
        return fields, parse_rows(out, fields)
    raise errors.backend_error("nvidia-smi refused every field that was asked for")


def parse_rows(out: str, fields: list[str]) -> list[dict[str, str]]:
    """`--query-gpu=<fields> --format=csv,noheader,nounits` output as one {field: cell} per GPU."""
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        raise errors.no_devices()
    return [split_row(line, fields) for line in lines]


def readings(
    rows: list[dict[str, str]], cuda: str | None, timestamp: float
) -> tuple[list[DeviceInfo], list[GpuSample]]:
    """Static details and one reading of every GPU from `--query-gpu` rows (GPU_LOST first)."""
    for row in rows:
        check_lost(row)
    return [row_to_device(row, cuda) for row in rows], [row_to_sample(row, timestamp) for row in rows]


def cuda_driver_version(exe: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The CUDA version the driver supports, from `nvidia-smi --version` (None if it does not say)."""
    try:
        out = run_smi(exe, ["--version"], timeout)
    except TelemetryError:
        return None
    m = re.search(r"CUDA Version\s*:\s*(\S+)", out)
    return m.group(1) if m else None


def query_gpus(exe: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[list[DeviceInfo], list[GpuSample]]:
    """Static details and one reading of every GPU, from one `--query-gpu` call."""
    wanted = list(dict.fromkeys(DEVICE_FIELDS + SAMPLE_FIELDS))
    now = time.time()
    _, rows = query_rows(exe, wanted, timeout)
    for row in rows:
        check_lost(row)
    return readings(rows, cuda_driver_version(exe, timeout), now)


def query_processes(
    exe: str, devices: list[DeviceInfo] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[GpuProcess]:
    """The GPUs' compute processes from `--query-compute-apps` (one call)."""
    out = run_smi(
        exe, [f"--query-compute-apps={','.join(PROCESS_FIELDS)}", "--format=csv,noheader,nounits"], timeout
    )
    return parse_processes(out, devices)


def parse_processes(out: str, devices: list[DeviceInfo] | None = None) -> list[GpuProcess]:
    """`--query-compute-apps=pid,gpu_uuid,used_gpu_memory,process_name` output as GpuProcess rows."""
    by_uuid = {d.uuid: d.index for d in devices or []}
    procs = []
    for line in out.splitlines():
        if not line.strip():
            continue
        # The process name is last and may itself hold commas (a path): split the rest only.
        parts = [p.strip() for p in line.split(",", len(PROCESS_FIELDS) - 1)]
        if len(parts) != len(PROCESS_FIELDS):
            raise errors.malformed(f"compute process line {errors.short(repr(line.strip()), 120)}")
        pid_text, uuid, mem, name = parts
        try:
            pid = int(pid_text)
        except ValueError:
            pid = 0
        if not 0 < pid < 2**31:
            raise errors.malformed(f"process id {errors.short(repr(pid_text))} is not a process id")
        procs.append(
            GpuProcess(
                pid=pid,
                gpu_uuid=uuid,
                used_memory_mib=to_number(mem, "used_gpu_memory"),
                name=to_text(name),
                gpu_index=by_uuid.get(uuid),
            )
        )
    return procs


class SmiBackend:
    """Reads GPUs through nvidia-smi.

    With `stream=True` (the sampler's mode) it keeps ONE `nvidia-smi --query-gpu=...
    --format=csv,noheader,nounits -lms N` process whose lines a reader thread parses;
    `sample()` waits for the next complete reading and raises TelemetryError when the
    process dies or stays silent longer than `stall_timeout` (then it is killed; the
    sampler re-opens the backend to restart it). With `stream=False` each `sample()`
    is one `--query-gpu` call.
    """

    name = "smi"

    def __init__(
        self,
        smi_path: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        stream: bool = True,
        interval_ms: int = 1000,
        stall_timeout: float | None = None,
    ):
        self.smi_path = smi_path
        self.timeout = timeout
        self.paced = stream  # True: sample() itself waits for the next reading
        self.interval_ms = int(interval_ms)
        self.stall_timeout = stall_timeout if stall_timeout else max(5.0, 5 * self.interval_ms / 1000.0)
        self._exe: str | None = None
        self._devices: list[DeviceInfo] = []
        self._dropped: set[str] = set()
        self._fields: list[str] = []
        self._first: list[GpuSample] | None = None
        self._proc: subprocess.Popen | None = None
        self._cond = threading.Condition()
        self._tick: list[GpuSample] = []
        self._tick_seq = 0
        self._seen_seq = 0
        self._error: TelemetryError | None = None
        self._closing = False

    # ------------------------------------------------------------ lifecycle

    def open(self) -> list[DeviceInfo]:
        """Reads static details with one CSV query (and `--version`), then starts the stream."""
        self._exe = find_smi(self.smi_path)
        wanted = list(dict.fromkeys(DEVICE_FIELDS + SAMPLE_FIELDS))
        now = time.time()
        _, rows = query_rows(self._exe, wanted, self.timeout, self._dropped)
        for row in rows:
            check_lost(row)
        self._devices, self._first = readings(rows, cuda_driver_version(self._exe, self.timeout), now)
        self._fields = [f for f in SAMPLE_FIELDS if f not in self._dropped]
        if self.paced:
            self._start_stream()
        return list(self._devices)

    def _start_stream(self) -> None:
        argv = [
            self._exe,
            f"--query-gpu={','.join(self._fields)}",
            "--format=csv,noheader,nounits",
            "-lms",
            str(self.interval_ms),
        ]
        with self._cond:
            self._error = None
            self._closing = False
        try:
            proc = spawn(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as err:
            raise errors.backend_error(f"nvidia-smi at {self._exe} could not be run: {err}") from None
        self._proc = proc
        threading.Thread(target=self._read, args=(proc,), name="kerasgpu-smi-reader", daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        """Reader thread: parses each streamed line; a full set of GPUs is one reading.

        Nothing nvidia-smi prints ends this thread: a line it cannot read becomes an error
        for `sample()` to raise, and the thread reads on until the process ends.
        """
        text: deque[str] = deque(maxlen=20)  # the last lines, for the error when it exits
        assert proc.stdout is not None
        try:
            self.read_lines(bounded_lines(proc.stdout), text)
        except (OSError, ValueError):  # the pipe went away under us (process killed)
            pass
        except Exception as err:  # a bug must not leave sample() waiting for a dead thread
            self._publish_error(errors.unexpected(err, self.name))
        finally:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        rc = proc.wait()
        forget(proc)
        with self._cond:
            if self._closing or self._proc is not proc:
                return
        if rc != 0:
            err = errors.from_smi_output("".join(text), rc)
        else:
            err = errors.backend_error("nvidia-smi stopped streaming readings")
        self._publish_error(err)

    def read_lines(self, lines: Iterable[str | None], text: deque[str] | None = None) -> None:
        """Parses streamed lines (None: a line over MAX_LINE); publishes readings and errors."""
        n = max(1, len(self._devices))
        pending: dict[int, GpuSample] = {}
        for line in lines:
            if line is not None and not line.strip():
                continue
            try:
                if line is None:
                    raise errors.malformed(f"a line longer than {MAX_LINE} characters")
                sample = row_to_sample(split_row(line, self._fields), time.time())
            except Exception as err:
                if text is not None and line is not None:
                    text.append(line[:2000])
                err = errors.unexpected(err, self.name)
                if err.code == errors.MALFORMED and line is not None:
                    known = errors.from_smi_output(line[:2000], 0)
                    if known.code != errors.BACKEND_ERROR:
                        err = known
                self._publish_error(err)
                pending.clear()
                continue
            if sample.index in pending:  # a new round began before the last one completed
                pending.clear()
            pending[sample.index] = sample
            if len(pending) >= n:
                tick = [pending[i] for i in sorted(pending)]
                pending.clear()
                with self._cond:
                    self._tick = tick
                    self._tick_seq += 1
                    self._cond.notify_all()

    def _publish_error(self, err: TelemetryError) -> None:
        with self._cond:
            if self._error is None:
                self._error = err
            self._cond.notify_all()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if proc.returncode is None:
            kill_group(proc)  # a wrapper script's nvidia-smi too
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # the reader thread closes stdout when it sees the end
        forget(proc)

    def close(self) -> None:
        """Stops the stream process (if any)."""
        self._kill()

    # ------------------------------------------------------------ readings

    def devices(self) -> list[DeviceInfo]:
        """Static details read at `open()`."""
        return list(self._devices)

    def sample(self) -> list[GpuSample]:
        """The next reading of every GPU (streaming: waits for it, up to `stall_timeout`)."""
        if self._exe is None:
            raise errors.backend_error("the nvidia-smi backend is not open")
        if self._first is not None and not self.paced:
            first, self._first = self._first, None
            return first
        if not self.paced:
            now = time.time()
            _, rows = query_rows(self._exe, self._fields or SAMPLE_FIELDS, self.timeout, self._dropped)
            return [row_to_sample(row, now) for row in rows]
        deadline = time.monotonic() + self.stall_timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._tick_seq > self._seen_seq:
                    self._seen_seq = self._tick_seq
                    return list(self._tick)
                if self._closing or self._proc is None:
                    raise errors.backend_error("the nvidia-smi backend was closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        self._publish_error(errors.timeout("nvidia-smi", self.stall_timeout))
        self._kill()
        raise errors.timeout("nvidia-smi", self.stall_timeout)

    def processes(self) -> list[GpuProcess]:
        """Compute processes from one `--query-compute-apps` call (~25 ms: callers cache it)."""
        if self._exe is None:
            raise errors.backend_error("the nvidia-smi backend is not open")
        return query_processes(self._exe, self._devices, self.timeout)

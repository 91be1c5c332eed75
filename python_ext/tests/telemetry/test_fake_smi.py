"""The fake nvidia-smi answers like the real one did in the captures (so tests of it mean something)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia"


def smi(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=timeout)


def all_fields() -> str:
    return ",".join((FIXTURES / "h200-all" / "query-gpu-fields.txt").read_text().split())


def without_timestamp(text: str) -> list[list[str]]:
    rows = [line.split(", ") for line in text.splitlines() if line.strip()]
    return [row[1:] for row in rows]  # timestamp is the first field


def test_every_field_replays_the_capture_in_both_formats(fake_smi):
    for state in ("idle", "load"):
        fake_smi.set(state=state)
        for fmt, suffix in (("csv", ""), ("csv,noheader,nounits", "-nounits")):
            got = smi(f"--query-gpu={all_fields()}", f"--format={fmt}")
            assert got.returncode == 0, got.stdout
            want = (FIXTURES / "h200-all" / f"query-gpu-all-{state}{suffix}.csv").read_text()
            assert without_timestamp(got.stdout) == without_timestamp(want)


def test_header_uses_printed_names_and_aliases_resolve(fake_smi):
    got = smi("--query-gpu=gpu_name,clocks.sm,memory.used", "--format=csv")
    assert got.stdout.splitlines()[0] == "name, clocks.current.sm [MHz], memory.used [MiB]"
    assert got.stdout.splitlines()[1] == "NVIDIA H200, 345 MHz, 0 MiB"


def test_unknown_field_is_refused_like_nvidia_smi(fake_smi):
    got = smi("--query-gpu=bogus.field", "--format=csv")
    want = (FIXTURES / "h200-all" / "error-bad-field.txt").read_text().strip()
    assert (got.returncode, got.stdout.strip()) == (2, want)


def test_bad_index_says_no_devices(fake_smi):
    got = smi("-i", "7", "--query-gpu=name", "--format=csv")
    assert (got.returncode, got.stdout.strip()) == (6, "No devices were found")


def test_list_version_and_xml(fake_smi):
    fake_smi.set(gpus=2)
    listed = smi("-L").stdout.splitlines()
    assert listed[0] == "GPU 0: NVIDIA H200 (UUID: GPU-2cc6da62-3a1f-977c-8ec3-06eda63b09f3)"
    assert listed[1].startswith("GPU 1: NVIDIA H200 (UUID: GPU-") and listed[1] != listed[0]
    assert "CUDA Version        : 13.0" in smi("--version").stdout
    xml = smi("-q", "-x").stdout
    assert xml.count("<gpu id=") == 2 and "<attached_gpus>2</attached_gpus>" in xml
    assert "GPU-2cc6da62-3a1f-977c-8ec3-06eda63b09f3" in xml


def test_replicated_gpus_are_distinct(fake_smi):
    fake_smi.set(state="load", gpus=4)
    got = smi("--query-gpu=index,uuid,pci.bus_id,count", "--format=csv,noheader")
    rows = [line.split(", ") for line in got.stdout.splitlines()]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert len({r[1] for r in rows}) == 4 and len({r[2] for r in rows}) == 4
    assert {r[3] for r in rows} == {"4"}
    apps = smi("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits")
    assert {line.split(", ")[1] for line in apps.stdout.splitlines()} == {r[1] for r in rows}


def test_compute_apps_idle_load_multi_and_override(fake_smi):
    fields = "--query-compute-apps=pid,process_name,used_gpu_memory"
    assert smi(fields, "--format=csv,noheader,nounits").stdout == ""
    assert smi(fields, "--format=csv").stdout.strip() == "pid, process_name, used_gpu_memory [MiB]"
    fake_smi.set(state="load")
    assert smi(fields, "--format=csv,noheader").stdout.strip() == "542, python3, 25706 MiB"
    fake_smi.set(state="multi")
    pids = [line.split(", ")[0] for line in smi(fields, "--format=csv,noheader").stdout.splitlines()]
    assert pids == ["418", "419", "417", "476"]
    fake_smi.set(procs=[{"pid": 4242, "used_mib": 2048, "name": "python", "gpu": 0}])
    assert smi(fields, "--format=csv,noheader,nounits").stdout.strip() == "4242, python, 2048"


def test_failures_print_nvidia_smis_messages_and_exit_codes(fake_smi):
    cases = {
        "no_driver": (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
        "mismatch": (18, "Failed to initialize NVML: Driver/library version mismatch"),
        "no_devices": (6, "No devices were found"),
        "gpu_lost": (15, "Unable to determine the device handle for GPU 00000000:00:06.0: GPU is lost."),
    }
    for fail, (code, message) in cases.items():
        fake_smi.set(fail=fail)
        for args in (["--query-gpu=name", "--format=csv"], ["-L"]):
            got = smi(*args)
            assert got.returncode == code, (fail, args, got.stdout)
            assert got.stdout.startswith(message)


def test_hang_never_answers(fake_smi):
    fake_smi.set(fail="hang")
    try:
        smi("-L", timeout=1.5)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("the hanging fake answered")


def read_stream(proc: subprocess.Popen, lines: int) -> list[str]:
    out = []
    while len(out) < lines:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line.rstrip("\n"))
    return out


def test_stream_prints_header_once_then_a_line_per_gpu_each_tick(fake_smi):
    fake_smi.set(state="load", gpus=2)
    argv = ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used", "--format=csv", "-lms", "100"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            lines = read_stream(proc, 7)
        finally:
            proc.kill()
    assert lines[0] == "index, utilization.gpu [%], memory.used [MiB]"
    assert lines[1:] == ["0, 100 %, 25715 MiB", "1, 100 %, 25715 MiB"] * 3


def test_running_stream_follows_the_state_file_and_lost_after(fake_smi):
    fake_smi.set(fail="lost_after=2")
    argv = ["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits", "-lms", "100"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            lines = read_stream(proc, 3)
            fake_smi.set(fail="", state="load")
            fake_smi.reset_counter()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                line = read_stream(proc, 1)[0]
                if line == "0, 25715":
                    break
            else:
                raise AssertionError("the stream did not pick up the new state")
        finally:
            proc.kill()
    assert lines == ["0, 0", "0, 0", "0, [GPU is lost]"]


def test_trace_state_replays_the_training_run(fake_smi):
    fake_smi.set(state="trace")
    argv = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "1"]
    seen = set()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            for _ in range(250):
                seen.add(int(read_stream(proc, 1)[0]))
        finally:
            proc.kill()
    assert 0 in seen and max(seen) >= 90  # idle first, then the healthy training phase

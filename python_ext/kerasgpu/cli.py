"""`kerasgpu status [--json] [--backend auto|nvml|smi]`: the GPUs, one reading and their processes.

Runs the same code as the server (`kerasgpu.telemetry.probe`). Exits 0 when the
GPUs were read, 1 when they could not be (the reason and what to do are printed),
2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .telemetry import BACKENDS, probe
from .telemetry.smi import DEFAULT_TIMEOUT
from .telemetry.types import Snapshot

GIB = 1024.0


def _gib(mib: float | None) -> str:
    return "n/a" if mib is None else f"{mib / GIB:.1f} GiB"


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def format_snapshot(snap: Snapshot) -> str:
    """The human-readable report `kerasgpu status` prints."""
    st = snap.status
    lines = []
    if st.state != "ok":
        what = "No GPU can be used" if st.state == "unavailable" else "The GPUs could not be read"
        lines.append(f"{what} ({st.code}, backend: {st.backend}).")
        lines.append(f"Reason: {st.reason}")
        if st.hint:
            lines.append(f"What to do: {st.hint}")
        return "\n".join(lines)
    dev0 = snap.devices[0] if snap.devices else None
    n = len(snap.devices)
    lines.append(f"{n} NVIDIA GPU{'s' if n != 1 else ''} (backend: {st.backend})")
    if dev0 is not None:
        lines.append(f"Driver {dev0.driver_version or 'n/a'}, CUDA {dev0.cuda_driver_version or 'n/a'}")
    samples = {s.index: s for s in snap.samples}
    for d in snap.devices:
        lines.append("")
        extra = [d.uuid]
        if d.pci_bus_id:
            extra.append(f"PCI {d.pci_bus_id}")
        if d.compute_capability:
            extra.append(f"compute capability {d.compute_capability}")
        if d.mig_mode:
            extra.append(f"MIG {d.mig_mode}")
        lines.append(f"GPU {d.index}: {d.name} ({', '.join(extra)})")
        s = samples.get(d.index)
        if s is None:
            lines.append("  no reading")
            continue
        total = s.memory_total_mib if s.memory_total_mib is not None else d.memory_total_mib
        pct = ""
        if s.memory_used_mib is not None and total:
            pct = f" ({100.0 * s.memory_used_mib / total:.1f} %)"
        reserved = f", {_gib(s.memory_reserved_mib)} reserved" if s.memory_reserved_mib is not None else ""
        lines.append(f"  memory       {_gib(s.memory_used_mib)} used of {_gib(total)}{pct}{reserved}")
        lines.append(
            f"  utilization  {_num(s.utilization_gpu, ' %')} GPU, {_num(s.utilization_memory, ' %')} memory"
        )
        power = _num(s.power_draw_w, " W", 1)
        if s.power_limit_w is not None:
            power += f" of {_num(s.power_limit_w, ' W', 1)}"
        lines.append(
            f"  temperature  {_num(s.temperature_c, ' C')}, power {power}, pstate {s.pstate or 'n/a'}"
        )
        lines.append(
            f"  clocks       SM {_num(s.clock_sm_mhz, ' MHz')}, memory {_num(s.clock_mem_mhz, ' MHz')}"
        )
    lines.append("")
    if snap.processes:
        lines.append("Processes using the GPUs:")
        for p in snap.processes:
            where = f"GPU {p.gpu_index}" if p.gpu_index is not None else p.gpu_uuid
            if p.gpu_instance_id is not None:
                where += f" (MIG GI {p.gpu_instance_id}, CI {p.compute_instance_id})"
            lines.append(f"  pid {p.pid:<8} {_gib(p.used_memory_mib):>10}  {where}  {p.name or '?'}")
    else:
        lines.append("No process is using the GPUs.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The `kerasgpu` command line."""
    parser = argparse.ArgumentParser(prog="kerasgpu", description="NVIDIA GPUs for Keras / TensorFlow users.")
    sub = parser.add_subparsers(dest="command")
    status = sub.add_parser("status", help="show the GPUs, one reading and the processes using them")
    status.add_argument(
        "--json", action="store_true", help="print JSON (status, devices, samples, processes)"
    )
    status.add_argument(
        "--backend",
        choices=[b for b in BACKENDS if b != "none"],
        default=None,
        help="how to read the GPUs (default: KERASGPU_BACKEND, else auto: NVML, then nvidia-smi)",
    )
    status.add_argument("--smi-path", default=None, help="the nvidia-smi to run (default: the one on PATH)")
    status.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for nvidia-smi (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kerasgpu` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "status":
        parser.print_help(sys.stderr)
        return 2
    try:
        snap = probe(backend=args.backend, smi_path=args.smi_path, timeout=args.timeout)
    except ValueError as err:  # KERASGPU_BACKEND names no backend
        print(f"kerasgpu: {err}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(snap.to_json(), indent=2) if args.json else format_snapshot(snap), flush=True)
    except BrokenPipeError:  # `kerasgpu status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if snap.status.state == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

"""Which of this server's kernels (and notebooks) hold GPU memory.

The GPU's compute processes (pids from NVML / nvidia-smi) are matched to the
kernel manager's local kernels by pid: a kernel's own process or any of its
descendants (a DataLoader worker, a subprocess) counts as that kernel.
Processes of other users, containers or servers are listed without a kernel
and can't be acted on.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import psutil

from ..telemetry import GpuProcess


def kernel_pid(kernel_manager: Any, kernel_id: str) -> int | None:
    """The OS pid of a local kernel, or None (remote kernels, kernels being started or gone)."""
    try:
        km = kernel_manager.get_kernel(kernel_id)
    except KeyError:
        return None
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    if pid is None:
        process = getattr(provisioner, "process", None)
        pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def kernel_owners(kernel_manager: Any, pids: list[int]) -> dict[int, str]:
    """Which of `pids` belong to one of this server's kernels (the kernel or a descendant) -> kernel id.

    Walks each pid's ancestors (a few /proc reads per GPU process), not every kernel's whole
    process tree. Blocks on /proc reads: call it from an executor.
    """
    kernels: dict[int, str] = {}
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        pid = kernel_pid(kernel_manager, kernel_id)
        if pid is not None:
            kernels[pid] = kernel_id
    owners: dict[int, str] = {}
    if not kernels:
        return owners
    for pid in pids:
        if pid in kernels:
            owners[pid] = kernels[pid]
            continue
        try:
            for parent in psutil.Process(pid).parents():
                if parent.pid in kernels:
                    owners[pid] = kernels[parent.pid]
                    break
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return owners


# A command line longer than this is cut (with an ellipsis): a row, not a log.
CMDLINE_MAX = 300


def _program(name: str | None) -> str:
    """A program's name for comparing: base name, without a version ("python3.11" -> "python")."""
    words = (name or "").strip().split()
    # NVML can give a whole command line (programs that rewrite their argv): the program is its first word.
    base = (words[0] if words else "").rsplit("/", 1)[-1].lower()
    return re.sub(r"[\d.]+$", "", base) or base


def same_program(gpu_name: str | None, p: psutil.Process) -> bool:
    """Whether the local process `p` runs the program the GPU tool named. In a container the
    driver reports host pids: the same number here can be another program, whose details
    would be shown as the GPU process's. Unknown on either side counts as the same."""
    want = _program(gpu_name)
    if not want:
        return True
    seen = set()
    with contextlib.suppress(psutil.Error):
        seen.add(_program(p.name()))
    with contextlib.suppress(psutil.Error):
        seen.add(_program(p.exe()))
    with contextlib.suppress(psutil.Error):
        cmd = p.cmdline()
        if cmd:
            seen.add(_program(cmd[0]))
    seen.discard("")
    return not seen or want in seen


def process_details(pids: list[int]) -> dict[int, dict[str, Any]]:
    """User, start time (epoch seconds) and command line of each pid this host can see, as nvitop
    shows them; pids of other containers or hidden by permissions are left out. Reads /proc:
    call it from an executor."""
    out: dict[int, dict[str, Any]] = {}
    for pid in set(pids):
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                info: dict[str, Any] = {"user": None, "started": None, "cmdline": None}
                # (KeyError: a uid with no name in this container)
                with contextlib.suppress(KeyError, psutil.AccessDenied):
                    info["user"] = p.username()
                info["started"] = p.create_time()
                try:
                    cmd = " ".join(p.cmdline())
                    info["cmdline"] = cmd if len(cmd) <= CMDLINE_MAX else cmd[: CMDLINE_MAX - 1] + "…"
                except psutil.AccessDenied:
                    pass
            out[pid] = info
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            continue
    return out


def local_view(
    kernel_manager: Any, pids: list[int], names: dict[int, str | None]
) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """(kernel owners, details) of the GPU processes that are this host's.

    In a container the driver reports host pids: the same number here can be another program.
    A pid that runs here another program than `names` (pid -> the GPU tool's process name) says
    belongs to another namespace: no kernel of ours (no "Shut down kernel"), no user or command
    line (they would be the wrong process's). Reads /proc: call it from an executor.
    """
    local = []
    for pid in pids:
        try:
            if same_program(names.get(pid), psutil.Process(pid)):
                local.append(pid)
        except psutil.NoSuchProcess:
            continue
        except (psutil.AccessDenied, ValueError):
            local.append(pid)  # not ours to judge: the lookups below say what they can
    return kernel_owners(kernel_manager, local), process_details(local)


def attribute(
    processes: list[GpuProcess],
    owners: dict[int, str],
    kernels: dict[str, dict[str, Any]],
    sessions: dict[str, list[dict[str, Any]]],
    details: dict[int, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """GPU processes as the API shows them: with their kernel and notebooks when they are ours.

    `kernels`: kernel id -> {"name": kernelspec name, ...}; `sessions`: kernel id -> the
    sessions (notebooks, consoles) that use it.
    """
    rows = []
    for proc in processes:
        row = proc.to_json()
        row.update((details or {}).get(proc.pid) or {"user": None, "started": None, "cmdline": None})
        kernel_id = owners.get(proc.pid)
        if kernel_id is None:
            row.update(kernel=None, sessions=[], can_shutdown=False)
        else:
            info = kernels.get(kernel_id, {})
            row.update(
                kernel={
                    "id": kernel_id,
                    "name": info.get("name"),
                    "execution_state": info.get("execution_state"),
                },
                sessions=[
                    {"path": s.get("path"), "name": s.get("name"), "type": s.get("type")}
                    for s in sessions.get(kernel_id, [])
                ],
                can_shutdown=True,
            )
        rows.append(row)
    return rows

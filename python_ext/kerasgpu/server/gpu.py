"""GET devices, history and processes; POST processes/<pid>/shutdown.

Reads come from the server's one `Sampler`; calls that may run nvidia-smi or read /proc go to
an executor, never the event loop.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import tornado
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized

from ..telemetry import Sampler
from . import processes as procs
from .base import BaseHandler, dumps, run_blocking

# Linux pids are at most 2**22 (pid_max); anything longer than this many digits is no pid.
MAX_PID = 2**31 - 1


class SamplerHandler(BaseHandler):
    """A handler that reads the server's sampler."""

    def initialize(self, sampler: Sampler) -> None:
        self.sampler = sampler


class DevicesHandler(SamplerHandler):
    """GET devices: the GPUs, their latest reading and compute processes, or why there are none."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        snap = await run_blocking(self.sampler.snapshot)
        data = snap.to_json()
        data["interval_ms"] = self.sampler.interval_ms
        self.finish(dumps(data))


class HistoryHandler(SamplerHandler):
    """GET history?seconds=N: every reading of the last N seconds, oldest first."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        limit = self.sampler.history_seconds
        raw = self.get_query_argument("seconds", str(limit))
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not (0 <= seconds <= limit):
            raise tornado.web.HTTPError(
                400,
                f"seconds must be a number from 0 to {limit:g} (the server keeps that much); "
                f"got {raw[:40]!r}" + ("..." if len(raw) > 40 else ""),
            )
        sampler = self.sampler
        status = await run_blocking(sampler.status)
        samples = sampler.history(seconds)
        self.finish(
            dumps(
                {
                    "status": status.to_json(),
                    "interval_ms": sampler.interval_ms,
                    "seconds": seconds,
                    "samples": [s.to_json() for s in samples],
                }
            )
        )


class ProcessesHandler(SamplerHandler):
    """GET processes: GPU compute processes, with this server's kernel and notebooks when they are ours."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(dumps({"processes": await attributed_processes(self, self.sampler)}))


class ShutdownHandler(BaseHandler):
    """POST processes/<pid>/shutdown: shuts down the kernel of this server that holds that GPU process."""

    @tornado.web.authenticated
    @authorized(action="write", resource="kernels")
    async def post(self, raw: str):
        pid = parse_pid(raw)
        owners = await run_blocking(procs.kernel_owners, self.kernel_manager, [pid])
        kernel_id = owners.get(pid)
        if kernel_id is None:
            raise tornado.web.HTTPError(
                404,
                f"Process {pid} is not a kernel of this Jupyter server (or has ended); "
                "only this server's kernels can be shut down from here.",
            )
        await ensure_async(self.kernel_manager.shutdown_kernel(kernel_id))
        self.finish(dumps({"pid": pid, "kernel_id": kernel_id, "shutdown": True}))


def parse_pid(raw: str) -> int:
    """A process id from the URL, or a 400 that says what a pid looks like."""
    shown = raw if len(raw) <= 40 else f"{raw[:20]}... ({len(raw)} characters)"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_PID))) or not 0 < int(raw) <= MAX_PID:
        raise tornado.web.HTTPError(
            400, f"{shown!r} is not a process id: a pid is a whole number from 1 to {MAX_PID}."
        )
    return int(raw)


async def attributed_processes(handler: BaseHandler, sampler: Sampler) -> list[dict[str, Any]]:
    """The GPU processes, each with its kernel and sessions when it belongs to this server."""
    gpu_procs, devices = await asyncio.gather(run_blocking(sampler.processes), run_blocking(sampler.devices))
    pids = [p.pid for p in gpu_procs]
    names = {p.pid: p.name for p in gpu_procs}
    owners, details = await run_blocking(procs.local_view, handler.kernel_manager, pids, names)
    kernels = {}
    for kernel_id in set(owners.values()):
        try:
            kernels[kernel_id] = handler.kernel_manager.kernel_model(kernel_id)
        except KeyError:
            continue
    sessions: dict[str, list[dict]] = {}
    for session in await ensure_async(handler.session_manager.list_sessions()):
        kernel = session.get("kernel") or {}
        sessions.setdefault(kernel.get("id"), []).append(session)
    index_of = {d.uuid: d.index for d in devices}
    for proc in gpu_procs:
        if proc.gpu_index is None:
            proc.gpu_index = index_of.get(proc.gpu_uuid)
    return procs.attribute(gpu_procs, owners, kernels, sessions, details)

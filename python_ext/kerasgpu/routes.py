"""HTTP and websocket handlers under <base_url>/kerasgpu/. Every one is authenticated and authorized.

One `Sampler` per server reads the GPUs on its own thread; the `Broadcaster`
subscribes to it while at least one websocket is open and fans each reading
out to every client, encoded once. Nothing here blocks the event loop: calls
that may run nvidia-smi or read /proc go to an executor.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any

import tornado
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from . import processes as procs
from .telemetry import GpuSample, Sampler, smi
from .telemetry.types import json_safe

if TYPE_CHECKING:
    from .server import KerasGPU

AUTH_RESOURCE = "kerasgpu"
API = "kerasgpu/api/v1"
# Prometheus' text exposition format (what its scrapers ask for; Prometheus 3 refuses JSON).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Linux pids are at most 2**22 (pid_max); anything longer than this many digits is no pid.
MAX_PID = 2**31 - 1


def dumps(data: Any) -> str:
    """JSON for clients: never NaN or Infinity (browsers' JSON.parse rejects them)."""
    return json.dumps(json_safe(data), allow_nan=False)


class State:
    """Per-server state shared by the handlers: the one sampler and the websocket fan-out."""

    def __init__(self, config: KerasGPU):
        self.config = config
        self.sampler = Sampler(
            backend=config.resolved_backend(),
            interval_ms=config.interval_ms,
            history_seconds=config.history_seconds,
            timeout=config.smi_timeout,
        )
        self.broadcaster = Broadcaster(self.sampler)

    async def run(self, func, *args):
        """Runs a blocking call (nvidia-smi, /proc) in the default executor."""
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    def close(self) -> None:
        """Closes every websocket, then `shutdown()` (on the event loop's thread)."""
        self.broadcaster.close()
        self.shutdown()

    def shutdown(self, wait: float = 2.0) -> None:
        """Stops the sampler and kills every nvidia-smi child still running (idempotent).

        Safe without an event loop (atexit): it touches no websocket.
        """
        self.sampler.stop(wait=0)
        smi.kill_children()  # unblocks a sampler or probe thread waiting on a hung call
        self.sampler.stop(wait=wait)
        smi.kill_children()  # one spawned while the thread was stopping


class Broadcaster:
    """Fans the sampler's readings out to every open websocket, encoded once per reading.

    Subscribes to the sampler with the first client and leaves with the last, so
    the sampler thread runs only while someone watches.
    """

    # A client that has this many messages unsent is too slow: it is dropped, not buffered.
    MAX_PENDING = 16
    # Clients written to per event-loop turn.
    BATCH = 8

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.clients: set[StreamHandler] = set()
        self._unsubscribe = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, client: StreamHandler) -> None:
        self.clients.add(client)
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = self.sampler.subscribe(self._on_samples, self._on_status)

    def remove(self, client: StreamHandler) -> None:
        self.clients.discard(client)
        if not self.clients and self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            # Stopping joins the sampler thread: not on the event loop.
            asyncio.get_running_loop().run_in_executor(None, unsubscribe)

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # The sampler calls these on its thread: hop to the event loop.
    def _on_samples(self, samples: list[GpuSample]) -> None:
        message = dumps({"type": "samples", "samples": [s.to_json() for s in samples]})
        self._post(message)

    def _on_status(self, status) -> None:
        message = dumps(
            {
                "type": "status",
                "status": status.to_json(),
                "devices": [d.to_json() for d in self.sampler.devices()] if status.state == "ok" else [],
            }
        )
        self._post(message)

    def _post(self, message: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._send_all, message)

    def _send_all(self, message: str) -> None:
        self._send_batch(message, list(self.clients), 0)

    def _send_batch(self, message: str, clients: list[StreamHandler], start: int) -> None:
        # A write costs ~60 us: a few clients per turn of the event loop, so 50 clients
        # never stall other requests for milliseconds (bench/stream.py).
        end = start + self.BATCH
        for client in clients[start:end]:
            if client in self.clients:
                client.send(message, self.MAX_PENDING)
        if end < len(clients):
            asyncio.get_running_loop().call_soon(self._send_batch, message, clients, end)


class BaseHandler(APIHandler):
    """Common state for the REST handlers."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, state: State) -> None:
        self.state = state


class DevicesHandler(BaseHandler):
    """GET devices: the GPUs, their latest reading and compute processes, or why there are none."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        snap = await self.state.run(self.state.sampler.snapshot)
        data = snap.to_json()
        data["interval_ms"] = self.state.sampler.interval_ms
        self.finish(dumps(data))


class HistoryHandler(BaseHandler):
    """GET history?seconds=N: every reading of the last N seconds, oldest first."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        limit = self.state.sampler.history_seconds
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
        sampler = self.state.sampler
        status = await self.state.run(sampler.status)
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


class ProcessesHandler(BaseHandler):
    """GET processes: GPU compute processes, with this server's kernel and notebooks when they are ours."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(dumps({"processes": await attributed_processes(self)}))


class ShutdownHandler(BaseHandler):
    """POST processes/<pid>/shutdown: shuts down the kernel of this server that holds that GPU process."""

    @tornado.web.authenticated
    @authorized(action="write", resource="kernels")
    async def post(self, raw: str):
        pid = parse_pid(raw)
        owners = await self.state.run(procs.kernel_owners, self.kernel_manager, [pid])
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


class NotFoundHandler(BaseHandler):
    """Any other path under kerasgpu/api/v1: a JSON 404 (not Jupyter's HTML page) that says what exists."""

    def initialize(self, state: State, endpoints: list[str]) -> None:
        super().initialize(state)
        self.endpoints = endpoints

    @tornado.web.authenticated
    @authorized
    async def get(self, path: str):
        shown = path if len(path) <= 80 else path[:80] + "..."
        raise tornado.web.HTTPError(
            404, f"No kerasgpu endpoint {shown!r}; the API has {', '.join(self.endpoints)}."
        )

    post = put = patch = delete = get


async def attributed_processes(handler: JupyterHandler) -> list[dict[str, Any]]:
    """The GPU processes, each with its kernel and sessions when it belongs to this server."""
    state: State = handler.state
    gpu_procs, devices = await asyncio.gather(
        state.run(state.sampler.processes), state.run(state.sampler.devices)
    )
    pids = [p.pid for p in gpu_procs]
    names = {p.pid: p.name for p in gpu_procs}
    owners, details = await state.run(procs.local_view, handler.kernel_manager, pids, names)
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


class MetricsHandler(BaseHandler):
    """GET /kerasgpu/metrics: Prometheus text, a gauge per metric labelled by GPU index, uuid and name."""

    GAUGES = (
        ("utilization_gpu", "kerasgpu_utilization_gpu_percent", "GPU utilization (%)"),
        ("utilization_memory", "kerasgpu_utilization_memory_percent", "Memory controller utilization (%)"),
        ("memory_used_mib", "kerasgpu_memory_used_bytes", "GPU memory used (bytes)"),
        ("memory_total_mib", "kerasgpu_memory_total_bytes", "GPU memory total (bytes)"),
        ("temperature_c", "kerasgpu_temperature_celsius", "GPU temperature (degrees C)"),
        ("power_draw_w", "kerasgpu_power_draw_watts", "Power draw (W)"),
        ("power_limit_w", "kerasgpu_power_limit_watts", "Power limit (W)"),
        ("clock_sm_mhz", "kerasgpu_clock_sm_hertz", "SM clock (Hz)"),
        ("clock_mem_mhz", "kerasgpu_clock_memory_hertz", "Memory clock (Hz)"),
        # NVML's byte counters only: absent with nvidia-smi, which cannot measure them.
        ("pcie_rx_mib_s", "kerasgpu_pcie_rx_bytes_per_second", "PCIe traffic received by the GPU (bytes/s)"),
        ("pcie_tx_mib_s", "kerasgpu_pcie_tx_bytes_per_second", "PCIe traffic sent by the GPU (bytes/s)"),
        ("nvlink_rx_mib_s", "kerasgpu_nvlink_rx_bytes_per_second", "NVLink data received (bytes/s)"),
        ("nvlink_tx_mib_s", "kerasgpu_nvlink_tx_bytes_per_second", "NVLink data sent (bytes/s)"),
    )
    SCALE = {
        "pcie_rx_mib_s": 1024 * 1024,
        "pcie_tx_mib_s": 1024 * 1024,
        "nvlink_rx_mib_s": 1024 * 1024,
        "nvlink_tx_mib_s": 1024 * 1024,
        "memory_used_mib": 1024 * 1024,
        "memory_total_mib": 1024 * 1024,
        "clock_sm_mhz": 1e6,
        "clock_mem_mhz": 1e6,
    }

    @tornado.web.authenticated
    @authorized
    async def get(self):
        sampler = self.state.sampler
        samples, status, devices = await self.state.run(
            lambda: (sampler.latest(), sampler.status(), sampler.devices())
        )
        names = {d.uuid: d.name for d in devices}
        registry = CollectorRegistry()
        registry.register(_Collector(self, samples, names, status.state == "ok"))
        # APIHandler.finish would set application/json.
        self.finish(generate_latest(registry), set_content_type=METRICS_CONTENT_TYPE)


class _Collector:
    def __init__(self, handler: MetricsHandler, samples, names, up: bool):
        self.handler, self.samples, self.names, self.up = handler, samples, names, up

    def collect(self):
        up = GaugeMetricFamily("kerasgpu_up", "1 when the GPUs can be read, else 0")
        up.add_metric([], 1.0 if self.up else 0.0)
        yield up
        for field, name, doc in self.handler.GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["gpu", "uuid", "name"])
            scale = self.handler.SCALE.get(field, 1)
            for s in self.samples:
                value = getattr(s, field)
                if value is not None:  # a value the GPU lacks is absent, never 0
                    gauge.add_metric([str(s.index), s.uuid, self.names.get(s.uuid, "")], value * scale)
            yield gauge


class StreamHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """WS stream: a hello with status and devices, then every new reading; status changes as they happen."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, state: State) -> None:
        self.state = state
        self._pending = 0

    def set_default_headers(self):
        """Websockets don't take JupyterHandler's default headers."""

    def skip_check_origin(self) -> bool:
        """Always check the Origin, even for token-authenticated requests: a page on a foreign
        origin never gets the stream (unless allowed by the server's allow_origin settings).
        Scripts send no Origin header and are not affected."""
        return False

    async def pre_get(self):
        user = self.current_user
        allowed = await ensure_async(self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE))
        if not allowed:
            raise tornado.web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args, **kwargs):
        await self.pre_get()
        await super().get(*args, **kwargs)

    async def open(self, *args, **kwargs):
        super().open()
        sampler = self.state.sampler
        # Status, devices and the latest reading may take a probe (nvidia-smi): off the loop.
        status, devices, latest = await self.state.run(
            lambda: (sampler.status(), sampler.devices(), sampler.latest() if sampler.running else [])
        )
        hello = {
            "type": "hello",
            "interval_ms": sampler.interval_ms,
            "history_seconds": sampler.history_seconds,
            "status": status.to_json(),
            "devices": [d.to_json() for d in devices],
            "samples": [s.to_json() for s in latest],
        }
        self.send(dumps(hello), Broadcaster.MAX_PENDING)
        # Readings follow the hello, never precede it.
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.state.broadcaster.add(self)

    def on_message(self, message):
        """Clients have nothing to say; pings are handled by the mixin."""

    def on_close(self):
        self.state.broadcaster.remove(self)

    def send(self, message: str, max_pending: int) -> None:
        """Queues a message; a client with `max_pending` unsent messages is dropped."""
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self._pending >= max_pending:
            self.log.warning("kerasgpu: dropping a GPU stream client that does not keep up")
            self.close(code=1013, reason="too slow: reconnect")
            return
        try:
            future = self.write_message(message)
        except WebSocketClosedError:
            return
        self._pending += 1
        future.add_done_callback(self._sent)

    def _sent(self, future) -> None:
        self._pending -= 1
        future.exception()  # consume a closed-socket error


def setup_handlers(web_app, config: KerasGPU) -> State:
    """Registers every kerasgpu route on the server's tornado application."""
    base_url = web_app.settings["base_url"]
    state = State(config)
    kwargs = {"state": state}
    handlers = [
        (url_path_join(base_url, API, "devices"), DevicesHandler, kwargs),
        (url_path_join(base_url, API, "history"), HistoryHandler, kwargs),
        (url_path_join(base_url, API, "processes"), ProcessesHandler, kwargs),
        # Any pid-shaped segment reaches the handler, which answers a bad one with a JSON 400.
        (url_path_join(base_url, API, r"processes/([^/]*)/shutdown"), ShutdownHandler, kwargs),
        (url_path_join(base_url, API, "stream"), StreamHandler, kwargs),
        (url_path_join(base_url, "kerasgpu", "metrics"), MetricsHandler, kwargs),
    ]
    from .handlers_tf import tf_routes  # imports this module: not at the top

    handlers.extend(tf_routes(base_url, state))
    from .handlers_notebook import notebook_routes

    handlers.extend(notebook_routes(base_url, state))
    from .handlers_fleet import fleet_routes

    handlers.extend(fleet_routes(base_url, state))
    prefix = url_path_join(base_url, API) + "/"
    endpoints = [
        pattern[len(prefix) :].replace("([^/]*)", "<pid>")
        for pattern, *_ in handlers
        if pattern.startswith(prefix)
    ]
    not_found = {**kwargs, "endpoints": endpoints}
    handlers.append((url_path_join(base_url, API, "(.*)"), NotFoundHandler, not_found))  # last: the rest
    web_app.add_handlers(".*$", handlers)
    web_app.settings["kerasgpu_state"] = state
    return state

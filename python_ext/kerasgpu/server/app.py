"""The Jupyter server extension app: creates the services and registers the one route table.

`KerasGPUApp` is the jupyter_server `ExtensionApp`: its `initialize_handlers` builds the
`Services` (the one sampler, the websocket fan-out, the TensorFlow probe and the fleet query)
from `c.KerasGPU.*` and lists every route in `route_table`, handing each handler the services
it uses as `initialize` keyword arguments. The server calls its `stop_extension` when it stops,
which ends the sampler and every nvidia-smi it started.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from dataclasses import dataclass

from jupyter_server.extension.application import ExtensionApp

from ..telemetry import Sampler, smi
from . import tfprobe
from .base import API, NotFoundHandler
from .config import KerasGPU, resolved_seconds
from .fleet import FleetHandler, FleetQuery
from .gpu import DevicesHandler, HistoryHandler, ProcessesHandler, ShutdownHandler
from .metrics import MetricsHandler
from .notebook import NotebookToolPlanHandler, SnippetsHandler
from .stream import Broadcaster, StreamHandler
from .tensorflow import TensorFlowHandler


@dataclass
class Services:
    """The per-server services the handlers share (web_app.settings["kerasgpu_state"] holds them)."""

    config: KerasGPU
    sampler: Sampler
    broadcaster: Broadcaster
    probe: tfprobe.TFProbe
    fleet: FleetQuery

    @classmethod
    def create(cls, config: KerasGPU) -> Services:
        sampler = Sampler(
            backend=config.resolved_backend(),
            interval_ms=config.interval_ms,
            history_seconds=config.history_seconds,
            timeout=config.smi_timeout,
        )
        probe = tfprobe.TFProbe(
            timeout=resolved_seconds(config, "tf_probe_timeout", tfprobe.PROBE_TIMEOUT_S),
            ttl=resolved_seconds(config, "tf_probe_ttl", tfprobe.CACHE_TTL_S),
        )
        return cls(config, sampler, Broadcaster(sampler), probe, FleetQuery(config))

    def shutdown(self, wait: float = 2.0) -> None:
        """Stops the sampler and kills every nvidia-smi child still running (idempotent).

        Safe without an event loop (atexit): it touches no websocket.
        """
        self.sampler.stop(wait=0)
        smi.kill_children()  # unblocks a sampler or probe thread waiting on a hung call
        self.sampler.stop(wait=wait)
        smi.kill_children()  # one spawned while the thread was stopping


def route_table(services: Services) -> list[tuple]:
    """Every kerasgpu route (relative to the server's base_url), with the services each handler uses."""
    sampler = {"sampler": services.sampler}
    handlers: list[tuple] = [
        (f"{API}/devices", DevicesHandler, sampler),
        (f"{API}/history", HistoryHandler, sampler),
        (f"{API}/processes", ProcessesHandler, sampler),
        # Any pid-shaped segment reaches the handler, which answers a bad one with a JSON 400.
        (f"{API}/processes/([^/]*)/shutdown", ShutdownHandler, {}),
        (f"{API}/stream", StreamHandler, {**sampler, "broadcaster": services.broadcaster}),
        ("kerasgpu/metrics", MetricsHandler, sampler),
        (f"{API}/snippets", SnippetsHandler, {}),
        (f"{API}/tensorflow", TensorFlowHandler, {**sampler, "probe": services.probe}),
        (f"{API}/notebook-tools/plan", NotebookToolPlanHandler, {}),
        (f"{API}/fleet", FleetHandler, {"fleet_query": services.fleet}),
    ]
    prefix = f"{API}/"
    endpoints = [
        pattern[len(prefix) :].replace("([^/]*)", "<pid>")
        for pattern, *_ in handlers
        if pattern.startswith(prefix)
    ]
    # Last: any other path under the API is a JSON 404 that lists the endpoints.
    handlers.append((f"{API}/(.*)", NotFoundHandler, {"endpoints": endpoints}))
    return handlers


class KerasGPUApp(ExtensionApp):
    """The kerasgpu server extension: REST, websocket and metrics handlers around one sampler."""

    name = "kerasgpu"
    load_other_extensions = True

    state: Services | None = None

    def initialize_handlers(self) -> None:
        """Creates the extension's services and lists its routes (the server adds its base_url)."""
        config = KerasGPU(parent=self.serverapp)  # c.KerasGPU.* from the server's configuration
        self.state = Services.create(config)
        self.handlers = route_table(self.state)
        self.serverapp.web_app.settings["kerasgpu_state"] = self.state
        # The stop hook does not run when the server ends by an uncaught KeyboardInterrupt
        # (SIGINT without a terminal): the nvidia-smi children must not outlive it then either.
        # threading's exit hooks run before Python joins the executor's threads, one of which may
        # wait on a hung nvidia-smi; atexit's run after (and stay as the fallback).
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(self.state.shutdown)
        atexit.register(self.state.shutdown)
        self.log.info("kerasgpu: server extension loaded (backend %s)", config.resolved_backend())

    async def stop_extension(self) -> None:
        """Stops the sampler and kills every nvidia-smi (and its wrapper) still running."""
        if self.state is not None:
            self.state.broadcaster.close()
            # Kill first (signals only, no waiting): executor threads stuck on a hung nvidia-smi
            # are freed, so the executor can run the rest. Joining the sampler thread blocks:
            # not on the event loop.
            smi.kill_children()
            await asyncio.get_running_loop().run_in_executor(None, self.state.shutdown)

"""HTTP and websocket handlers under <base_url>/kerasgpu/. Every one is authenticated and authorized."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from . import telemetry

if TYPE_CHECKING:
    from .server import KerasGPU

AUTH_RESOURCE = "kerasgpu"
API = "kerasgpu/api/v1"


class BaseHandler(APIHandler):
    """Common state: the extension's configuration and its telemetry."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, state: State) -> None:
        self.state = state


class State:
    """Per-server state shared by the handlers."""

    # A one-shot probe is cheap for NVML but ~36 ms for nvidia-smi: several
    # panels refreshing at once share one answer for this long.
    PROBE_TTL_S = 0.5

    def __init__(self, config: KerasGPU):
        self.config = config
        self._probe: tuple[float, dict] | None = None
        self._probe_lock = asyncio.Lock()

    async def snapshot(self) -> dict:
        """A fresh (or just-taken) look at the GPUs, taken off the event loop."""
        async with self._probe_lock:
            now = time.monotonic()
            if self._probe and now - self._probe[0] < self.PROBE_TTL_S:
                return self._probe[1]
            backend = self.config.resolved_backend()
            snap = await asyncio.get_running_loop().run_in_executor(
                None, lambda: telemetry.probe(backend=backend, timeout=self.config.smi_timeout)
            )
            data = snap.to_json()
            self._probe = (time.monotonic(), data)
            return data


class DevicesHandler(BaseHandler):
    """GET /kerasgpu/api/v1/devices: the GPUs and their latest reading, or why there are none."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(json.dumps(await self.state.snapshot()))


def setup_handlers(web_app, config: KerasGPU) -> State:
    """Registers every kerasgpu route on the server's tornado application."""
    base_url = web_app.settings["base_url"]
    state = State(config)
    kwargs = {"state": state}
    handlers = [
        (url_path_join(base_url, API, "devices"), DevicesHandler, kwargs),
    ]
    web_app.add_handlers(".*$", handlers)
    return state

"""The GPU stream: one websocket per client, fed by the server's one sampler.

The `Broadcaster` subscribes to the sampler while at least one websocket is open and fans
each reading out to every client, encoded once.
"""

from __future__ import annotations

import asyncio

import tornado
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..telemetry import GpuSample, Sampler
from .base import AUTH_RESOURCE, dumps, run_blocking


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


class StreamHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """WS stream: a hello with status and devices, then every new reading; status changes as they happen."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, sampler: Sampler, broadcaster: Broadcaster) -> None:
        self.sampler = sampler
        self.broadcaster = broadcaster
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
        sampler = self.sampler
        # Status, devices and the latest reading may take a probe (nvidia-smi): off the loop.
        status, devices, latest = await run_blocking(
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
            self.broadcaster.add(self)

    def on_message(self, message):
        """Clients have nothing to say; pings are handled by the mixin."""

    def on_close(self):
        self.broadcaster.remove(self)

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

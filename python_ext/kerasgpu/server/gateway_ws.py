"""A kernel websocket to a Jupyter Enterprise Gateway that does not leak its upstream socket.

With a gateway (`--gateway-url`), jupyter_server 2.x relays each browser kernel websocket to
the gateway's. When the browser drops its socket while the relay's own handshake with the
gateway is still under way, `GatewayWebSocketConnection.disconnect()` cancels the handshake's
future, which Tornado cannot do: the upstream socket opens anyway, nobody reads or closes it,
and the gateway keeps it until its ping timeout (90 s). Chromium drops the first socket of every
gateway kernel (it offers the `v1.kernel.websocket.jupyter.org` subprotocol, the relay answers
with none, and Chromium fails such a handshake; JupyterLab then reconnects without one), and
Enterprise Gateway (jupyter_server 1.x) makes the reconnect, same session id, wait until the
leaked "stale connection" closes: the notebook's kernel answers nothing for ~95 s.

This class closes the upstream socket as soon as its handshake ends when the browser has left
by then, so the gateway drops it at once. Use it with

    c.ServerApp.kernel_websocket_connection_class = "kerasgpu.server.gateway_ws.GatewayWebSocketConnection"

(`kerasgpu.gateway_ws.GatewayWebSocketConnection`, its earlier name, still works.)
"""

from __future__ import annotations

import contextlib

from jupyter_server.gateway.connections import GatewayWebSocketConnection as _Base


def _close_when_open(future) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    with contextlib.suppress(Exception):
        future.result().close()


class GatewayWebSocketConnection(_Base):
    """jupyter_server's gateway relay, closing an upstream socket that opens after the browser left."""

    def disconnect(self):
        future = self.ws_future
        if self.ws is None and future is not None and not future.done():
            # Not `future.cancel()`: the handshake goes on regardless; close its socket when done.
            self.disconnected = True
            future.add_done_callback(_close_when_open)
            return
        super().disconnect()

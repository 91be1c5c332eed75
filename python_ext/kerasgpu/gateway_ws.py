"""The earlier home of `GatewayWebSocketConnection` (now `kerasgpu.server.gateway_ws`).

Kept so that `c.ServerApp.kernel_websocket_connection_class =
"kerasgpu.gateway_ws.GatewayWebSocketConnection"` in existing configurations still works.
"""

from __future__ import annotations

from .server.gateway_ws import GatewayWebSocketConnection

__all__ = ["GatewayWebSocketConnection"]

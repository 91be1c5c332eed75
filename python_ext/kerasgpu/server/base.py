"""What every kerasgpu handler shares: the API prefix, the JSON encoder and the base handler.

Every handler is authenticated and authorized (resource "kerasgpu"); every answer is encoded
by `dumps`, which never writes NaN or Infinity. Services (the sampler, the probe, ...) reach a
handler through its `initialize` keyword arguments in the route table (`app.route_table`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

from ..telemetry.types import json_safe

AUTH_RESOURCE = "kerasgpu"
API = "kerasgpu/api/v1"


def dumps(data: Any) -> str:
    """JSON for clients: never NaN or Infinity (browsers' JSON.parse rejects them)."""
    return json.dumps(json_safe(data), allow_nan=False)


async def run_blocking(func, *args):
    """Runs a blocking call (nvidia-smi, /proc, a big parse) in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class BaseHandler(APIHandler):
    """An authenticated REST handler of the kerasgpu resource."""

    auth_resource = AUTH_RESOURCE


class NotFoundHandler(BaseHandler):
    """Any other path under kerasgpu/api/v1: a JSON 404 (not Jupyter's HTML page) that says what exists."""

    def initialize(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints

    @tornado.web.authenticated
    @authorized
    async def get(self, path: str):
        shown = path if len(path) <= 80 else path[:80] + "..."
        raise tornado.web.HTTPError(
            404, f"No kerasgpu endpoint {shown!r}; the API has {', '.join(self.endpoints)}."
        )

    post = put = patch = delete = get

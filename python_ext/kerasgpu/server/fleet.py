"""GET /kerasgpu/api/v1/fleet: every GPU host a Prometheus scrapes, sorted by where a job fits now.

`FleetQuery` asks the one Prometheus of `c.KerasGPU.prometheus_url` (nothing in a request
chooses a host; credentials stay here) with one PromQL selector per round, at most one
round per `fleet_interval` whatever the number of clients: concurrent requests share the
round in flight, later ones its cached answer. The HTTP call is tornado's async client
with connect and request timeouts, and the answer is parsed in an executor, so neither a
slow Prometheus nor a big fleet holds up the event loop. Failures are answers too:
{status: off | unreachable | error, reason}, never an error page.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import tornado
from jupyter_server.auth.decorator import authorized
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError

from ..core import fleet
from .base import BaseHandler, dumps

if TYPE_CHECKING:
    from .config import KerasGPU

OFF_REASON = (
    "No Prometheus is configured: set c.KerasGPU.prometheus_url = 'http://<prometheus>:9090' "
    "in jupyter_server_config.py (and have Prometheus scrape kerasgpu's /kerasgpu/metrics, "
    "NVIDIA's DCGM exporter or the nvidia-smi exporter on each GPU host)."
)
_OFF_ANSWER = {"status": "off", "reason": OFF_REASON, "hosts": []}
OFF = (_OFF_ANSWER, dumps(_OFF_ANSWER))


def safe_url(url: str) -> str:
    """The URL without user or password, for messages."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class FleetQuery:
    """The server's one view of the fleet: cached per interval, refreshed by at most one round at a time."""

    def __init__(self, config: KerasGPU):
        self.url = config.prometheus_url
        self.interval = config.fleet_interval
        self.timeout = config.prometheus_timeout
        self._headers = {"Accept": "application/json"}
        if config.prometheus_token:
            self._headers["Authorization"] = f"Bearer {config.prometheus_token}"
        elif config.prometheus_username:
            pair = f"{config.prometheus_username}:{config.prometheus_password}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._ca_certs = config.prometheus_ca_certs or None
        self._answer: tuple[dict[str, Any], str] | None = None  # the answer and its JSON
        self._started = -float("inf")
        self._round: asyncio.Future | None = None
        self.rounds = 0  # query rounds sent so far (benchmarks and tests read it)

    async def get(self) -> dict[str, Any]:
        """The fleet: the cached answer while it is fresh, else the (one) round in flight."""
        return (await self._get())[0]

    async def encoded(self) -> str:
        """`get()` as JSON, encoded once per round (not once per client)."""
        return (await self._get())[1]

    async def _get(self) -> tuple[dict[str, Any], str]:
        if not self.url:
            return OFF
        if self._answer is not None and time.monotonic() - self._started < self.interval:
            return self._answer
        if self._round is None:
            self._started = time.monotonic()
            self._round = asyncio.ensure_future(self._query())
            self._round.add_done_callback(self._finished)
        # A client that goes away does not cancel the round the others wait for.
        return await asyncio.shield(self._round)

    def _finished(self, future: asyncio.Future) -> None:
        self._round = None
        if not future.cancelled() and future.exception() is None:
            self._answer = future.result()

    def _request(self) -> HTTPRequest:
        query = urllib.parse.urlencode({"query": fleet.QUERY, "timeout": f"{self.timeout:g}s"})
        return HTTPRequest(
            f"{self.url.rstrip('/')}/api/v1/query?{query}",
            method="GET",
            headers=self._headers,
            connect_timeout=self.timeout,
            request_timeout=self.timeout,
            follow_redirects=False,  # only the configured URL, never where it points
            ca_certs=self._ca_certs,
        )

    async def _query(self) -> tuple[dict[str, Any], str]:
        answer = await self._ask()
        if answer["status"] == "ok":
            return answer, answer.pop("encoded")
        return answer, dumps(answer)

    async def _ask(self) -> dict[str, Any]:
        self.rounds += 1
        where = safe_url(self.url)
        answer: dict[str, Any] = {
            "prometheus": where,
            "interval": self.interval,
            "checked_at": time.time(),
            "hosts": [],
        }
        try:
            response = await AsyncHTTPClient().fetch(self._request(), raise_error=False)
            error = response.error if response.code == 599 else None
        except Exception as exc:  # refused, timed out, DNS, TLS set-up, a bad CA file
            error = exc
        if error is not None:
            if isinstance(error, HTTPTimeoutError) or str(error).startswith("Timeout"):
                reason = f"Prometheus at {where} did not answer within {self.timeout:g} s"
            else:
                reason = f"Prometheus at {where} cannot be reached: {error}"
            return {**answer, "status": "unreachable", "reason": reason}
        if response.code in (401, 403):
            return {
                **answer,
                "status": "error",
                "reason": f"Prometheus at {where} refused the query (HTTP {response.code}): check "
                "c.KerasGPU.prometheus_token or prometheus_username / prometheus_password",
            }
        if response.code != 200:
            try:  # Prometheus's error JSON says why (a bad query, an overloaded server)
                fleet.parse_response(response.body[:65536] if response.body else b"")
                said = ""
            except fleet.FleetError as exc:
                said = f": {exc}"
            reason = f"Prometheus at {where} answered HTTP {response.code}{said}"
            return {**answer, "status": "error", "reason": reason[:500]}
        try:
            # Parsing and encoding a large fleet takes milliseconds: not on the event loop.
            return await asyncio.get_running_loop().run_in_executor(
                None, _ok_answer, answer, response.body or b""
            )
        except Exception as exc:  # FleetError says what Prometheus said; anything else is a bug here
            reason = f"{exc} (from {where})"
            return {**answer, "status": "error", "reason": reason[:500]}


def _ok_answer(answer: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The answer with the hosts of Prometheus's `body`, and its JSON under "encoded" (executor).

    Prometheus's answer for 100 hosts of 8 GPUs is ~650 KiB of JSON: ~80,000 short-lived
    objects, whose allocation made Python run full (generation 2) collections of the whole
    server's heap, 130-190 ms each with the GIL held, stalling the event loop (bench/fleet.py).
    The cyclic collector is paused while they live; reference counting frees them all (there
    are no cycles), and only the answer, a few thousand objects, outlives the pause.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        result = {**answer, "status": "ok", "hosts": fleet.parse_response(body)}
        result["encoded"] = dumps(result)
    finally:
        if enabled:
            gc.enable()
    return result


class FleetHandler(BaseHandler):
    """GET fleet: {status, reason?, hosts: [{host, source, gpus: [...]}]}, best place for a job first."""

    def initialize(self, fleet_query: FleetQuery) -> None:
        self.fleet_query = fleet_query

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(await self.fleet_query.encoded())

"""A benchmark-only Jupyter server extension: measures the server's own event-loop lag.

Loaded by bench/stream.py (with bench/ on PYTHONPATH) through
`c.ServerApp.jpserver_extensions = {"lagprobe": True}`; never shipped.

A task on the server's asyncio loop sleeps PERIOD again and again; each time it
wakes, how late it woke is one lag sample (scheduling delay: everything else
that ran on the loop meanwhile). `GET <base_url>/kerasgpu-bench/lag?reset=1`
(authenticated like any Jupyter API) answers the samples' percentiles since the
last reset, in milliseconds, and those of kerasgpu's fan-out (Broadcaster._send_all,
wrapped here to time it: one reading written to every client).
"""

from __future__ import annotations

import asyncio
import json
import time

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

PERIOD = 0.005  # seconds between probes

_lags: list[float] = []
_fanouts: list[float] = []


def _time_fanout() -> None:
    """Times kerasgpu's Broadcaster._send_all (one reading to every client) by wrapping it here."""
    from kerasgpu.server.stream import Broadcaster

    send_all = Broadcaster._send_all
    if getattr(send_all, "_lagprobe", False):
        return

    def timed(self, message):
        t0 = time.perf_counter()
        send_all(self, message)
        _fanouts.append(time.perf_counter() - t0)

    timed._lagprobe = True
    Broadcaster._send_all = timed


async def _probe() -> None:
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(PERIOD)
        _lags.append(time.perf_counter() - t0 - PERIOD)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class LagHandler(APIHandler):
    @tornado.web.authenticated
    def get(self):
        lags, fanouts = list(_lags), list(_fanouts)
        if self.get_query_argument("reset", "0") == "1":
            _lags.clear()
            _fanouts.clear()
        ms = [1000 * v for v in lags]
        fan = [1000 * v for v in fanouts]
        self.finish(
            json.dumps(
                {
                    "n": len(ms),
                    "p50_ms": _pct(ms, 0.50),
                    "p99_ms": _pct(ms, 0.99),
                    "max_ms": max(ms) if ms else float("nan"),
                    "fanouts": len(fan),
                    "fanout_p50_ms": _pct(fan, 0.50),
                    "fanout_p99_ms": _pct(fan, 0.99),
                }
            )
        )


def _jupyter_server_extension_points():
    return [{"module": "lagprobe"}]


def _load_jupyter_server_extension(serverapp) -> None:
    web_app = serverapp.web_app
    route = url_path_join(web_app.settings["base_url"], "kerasgpu-bench", "lag")
    web_app.add_handlers(".*$", [(route, LagHandler)])
    _time_fanout()
    # The loop is not running yet: start the probe with it.
    tornado.ioloop.IOLoop.current().add_callback(lambda: asyncio.ensure_future(_probe()))
    serverapp.log.info("lagprobe: measuring event-loop lag every %g ms", 1000 * PERIOD)

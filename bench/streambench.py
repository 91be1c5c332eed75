"""What the stream benchmarks (bench/stream.py, bench/soak.py) share: a free loopback port, stopping
their server process, and a websocket client of /kerasgpu/api/v1/stream that counts what it receives."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from typing import Protocol

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_process(proc: subprocess.Popen, sig: int, grace: float) -> None:
    """Sends `sig`; kills the process if it has not exited `grace` seconds later."""
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Server(Protocol):
    port: int
    token: str


class StreamClient:
    """One stream client that reads every message."""

    def __init__(self):
        self.received = 0
        self.closed_by_server = False
        self.conn = None
        self.task = None

    async def connect(self, server: _Server) -> None:
        url = f"ws://127.0.0.1:{server.port}/kerasgpu/api/v1/stream"
        req = HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
        self.conn = await websocket_connect(req)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.conn.read_message()
            if msg is None:
                self.closed_by_server = True
                return
            self.received += 1

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.conn is not None:
            self.conn.close()

"""Reading the kerasgpu stream in tests."""

from __future__ import annotations

import asyncio
import json


async def next_message(ws, kind: str, timeout: float = 15.0, where=None) -> dict:
    """The next message of type `kind` (and matching `where`, if given) from a stream socket."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"no {kind!r} message within {timeout} s")
        raw = await asyncio.wait_for(ws.read_message(), left)
        assert raw is not None, "the server closed the stream"
        message = json.loads(raw)
        if message["type"] == kind and (where is None or where(message)):
            return message

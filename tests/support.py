"""Helpers shared by the test folders: bounded polling, leader agreement, a raw relay client.

Nothing here asserts on timing: waits are for conditions, and every timeout is only a guard
so that a bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import webraft

GUARD = 10.0  # seconds; a hang guard, not a timing expectation


async def until(predicate: Callable[[], Any], timeout: float = GUARD, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what or predicate}")
        await asyncio.sleep(0.002)


def stable_leader(nodes: Iterable[webraft.RaftInterface]) -> webraft.RaftInterface | None:
    """The one leader every given node follows in one term, or None."""
    nodes = list(nodes)
    leaders = [n for n in nodes if n.is_leader]
    if len(leaders) != 1:
        return None
    lead = leaders[0]
    if all(n.leader == lead.address and n.term == lead.term for n in nodes):
        return lead
    return None


class RawClient:
    """A test-side relay client speaking raw JSON frames, with close codes."""

    def __init__(self, ws: Any, guard: float = GUARD) -> None:
        self.ws = ws
        self.guard = guard

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(self.guard):
            frame = json.loads(await self.ws.recv())
        assert isinstance(frame, dict)
        return frame

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Receive the next frame and check its type and the given fields."""
        frame = await self.recv()
        assert frame["type"] == kind, frame
        for key, value in fields.items():
            assert frame.get(key) == value, (key, frame)
        return frame

    async def hello(self, room: str, address: str, **extra: Any) -> None:
        await self.send(type="hello", v=1, room=room, address=address, **extra)

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait until the connection is closed; return the (code, reason) received."""
        from websockets.exceptions import ConnectionClosed

        async with asyncio.timeout(self.guard):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed:
                pass
            await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()


def write_files(files: Mapping[Path, str]) -> None:
    """Write each text at its path, making the directories on the way."""
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

"""Helpers for the transport tests: relays, fast RelayRaft nodes, raw WebSocket clients.

Nodes are tuned with a NodeConfig (:data:`FAST`); the only subclass records what they saw.

Nothing here asserts on timing: tests wait for conditions with :func:`until`, whose timeout is
only a guard so that a bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any

from support import RawClient, stable_leader, until
from websockets.asyncio.client import connect

import webraft
from webraft.transport import RelayRaft
from webraft_relay import Relay, RelayConfig

GUARD = 10.0  # seconds; a hang guard, not a timing expectation


#: Small timeouts: the tests wait for elections, not for production timing.
FAST = webraft.NodeConfig(heartbeat_frequency=0.02, heartbeat_timeout=0.15,
                          election_timeout=(0.15, 0.3))


class Recorded(webraft.RaftInterface):
    """Mixed in before a node class: :data:`FAST` unless given another config, and a record
    of what the node applied, reported and saw join or leave (whatever its transport)."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        kwargs.setdefault("config", FAST)
        super().__init__(address, **kwargs)
        self.applied: list[tuple[int, Any]] = []
        self.errors: list[BaseException] = []
        self.seen: list[tuple[str, str]] = []  # ("join" | "leave", address)
        self.listen("apply", self._on_apply)
        self.listen("error", self.errors.append)
        self.listen("join", lambda a: self.seen.append(("join", a)))
        self.listen("leave", lambda a: self.seen.append(("leave", a)))

    def _on_apply(self, entry: webraft.Entry, index: int, cb: Callable[..., None]) -> None:
        self.applied.append((index, entry.command))
        cb()


class FastRelayRaft(Recorded, RelayRaft):
    """A recorded RelayRaft that also keeps every message it received."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        self.received: list[tuple[str, Any]] = []
        super().__init__(address, **kwargs)

    def got_data(self, address: str, payload: Any) -> None:
        self.received.append((address, payload))
        super().got_data(address, payload)


class Net:
    """Relays, nodes and raw clients of one test; :meth:`aclose` stops them all."""

    def __init__(self) -> None:
        self.relays: list[Relay] = []
        self.nodes: list[FastRelayRaft] = []
        self.raws: list[RawClient] = []
        self.fakes: list[FakeRelay] = []

    async def relay(self, **overrides: Any) -> Relay:
        """A relay on 127.0.0.1 (a free port unless ``port`` is given), no static routes."""
        settings: dict[str, Any] = {"port": 0, "static_dir": None, "pyodide_dir": None,
                                    "dist_dir": None}
        settings.update(overrides)
        relay = Relay(RelayConfig(**settings))
        await relay.start()
        self.relays.append(relay)
        return relay

    async def fake(self) -> FakeRelay:
        fake = await FakeRelay().start()
        self.fakes.append(fake)
        return fake

    def node(self, address: str, relay: Relay | FakeRelay, *, room: str = "demo",
             members: Iterable[str] = ("a", "b", "c"), start: bool = True,
             **kwargs: Any) -> FastRelayRaft:
        kwargs.setdefault("storage", webraft.MemoryStorage())
        node = FastRelayRaft(address, url=relay.ws_url, room=room, members=list(members),
                             **kwargs)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    async def raw(self, relay: Relay, room: str = "demo", address: str | None = None,
                  **hello: Any) -> tuple[RawClient, dict[str, Any] | None]:
        """A raw client; with ``address``, joined to ``room`` (returns its welcome too)."""
        async with asyncio.timeout(GUARD):
            ws = await connect(relay.ws_url, compression=None)
        raw = RawClient(ws)
        self.raws.append(raw)
        if address is None:
            return raw, None
        await raw.send(type="hello", v=1, room=room, address=address, **hello)
        return raw, await raw.expect("welcome")

    async def leader(self, nodes: Iterable[FastRelayRaft]) -> FastRelayRaft:
        nodes = list(nodes)
        return await until(lambda: stable_leader(nodes), what="a stable leader")

    async def aclose(self) -> None:
        for node in self.nodes:
            await node.close()
        for raw in self.raws:
            await raw.ws.close()
        for relay in self.relays:
            await relay.stop()
        for fake in self.fakes:
            await fake.stop()


class FakeRelay:
    """A WebSocket server the test drives by hand, to play a relay that misbehaves.

    Each accepted connection is put in :attr:`accepted`; the test reads the hello and sends
    whatever frames (or close codes) it wants. A connection stays open until the test closes
    it or the client goes away.
    """

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[FakeConn] = asyncio.Queue()
        self._server: Any = None
        self.ws_url = ""

    async def start(self) -> FakeRelay:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        port = self._server.sockets[0].getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        return self

    async def _handle(self, ws: Any) -> None:
        conn = FakeConn(ws)
        await self.accepted.put(conn)
        await ws.wait_closed()

    async def next(self) -> FakeConn:
        """The next connection, with its hello already read (in ``conn.hello``)."""
        async with asyncio.timeout(GUARD):
            conn = await self.accepted.get()
            conn.hello = json.loads(await conn.ws.recv())
        return conn

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class FakeConn:
    """One connection to a :class:`FakeRelay`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def welcome(self, *peers: str) -> None:
        await self.send({"type": "welcome", "v": 1, "room": self.hello["room"],
                         "address": self.hello["address"], "peers": list(peers)})

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(GUARD):
            return json.loads(await self.ws.recv())

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def closed(self) -> int | None:
        """Wait until the client closes; the code it sent."""
        async with asyncio.timeout(GUARD):
            await self.ws.wait_closed()
        return self.ws.close_code

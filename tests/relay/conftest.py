"""Fixtures for the relay tests: an in-process relay on a free port and real WebSocket clients.

Every wait below is on an event (a frame, a close); the timeouts are only a guard so that a bug
fails the test instead of hanging the suite, never a measurement.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support import RawClient as Client
from websockets.asyncio.client import connect

from webraft_relay import Relay, RelayConfig
from webraft_relay.protocol import stats_token

GUARD = 5.0  # seconds; a hang guard, not a timing expectation





class ManualClock:
    """A clock that moves only when the test says so (for the rate limiter)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """Starts relays and clients, and stops everything at the end of the test."""

    def __init__(self) -> None:
        self.relays: list[Relay] = []
        self.clients: list[Client] = []

    async def start(self, clock: Callable[[], float] | None = None, **overrides: Any) -> Relay:
        """A relay on 127.0.0.1:<free port>; no static routes unless a test asks for them."""
        settings: dict[str, Any] = {
            "port": 0,
            "static_dir": None,
            "pyodide_dir": None,
            "dist_dir": None,
        }
        settings.update(overrides)
        relay = Relay(RelayConfig(**settings), **({"clock": clock} if clock else {}))
        await relay.start()
        self.relays.append(relay)
        return relay

    async def connect(self, relay: Relay, **kwargs: Any) -> Client:
        kwargs.setdefault("compression", None)
        async with asyncio.timeout(GUARD):
            ws = await connect(relay.ws_url, **kwargs)
        client = Client(ws, GUARD)
        self.clients.append(client)
        return client

    async def join(
        self, relay: Relay, room: str, address: str, **hello: Any
    ) -> tuple[Client, dict[str, Any]]:
        """Connect and say hello; returns the client and its welcome frame."""
        client = await self.connect(relay)
        await client.hello(room, address, **hello)
        welcome = await client.expect("welcome", room=room, address=address)
        return client, welcome

    async def members(self, relay: Relay, room: str, *addresses: str) -> list[Client]:
        """Join addresses in order, consuming the join notices so every client is quiet."""
        joined: list[Client] = []
        for address in addresses:
            client, _ = await self.join(relay, room, address)
            for earlier in joined:
                await earlier.expect("join", address=address)
            joined.append(client)
        return joined

    async def http(
        self, relay: Relay, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One plain HTTP request (http.client: no redirect following, unlike urllib)."""

        def request() -> tuple[int, dict[str, str], bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=GUARD)
            try:
                conn.request(method, path, headers=headers or {})
                response = conn.getresponse()
                body = response.read()
                return response.status, dict(response.getheaders()), body
            finally:
                conn.close()

        return await asyncio.to_thread(request)

    async def stats(self, relay: Relay) -> dict[str, Any]:
        """``/stats``, with the bearer token it needs when the relay has a secret."""
        secret = relay.config.secret
        auth = {} if secret is None else {"Authorization": f"Bearer {stats_token(secret)}"}
        status, _, body = await self.http(relay, "/stats", headers=auth)
        assert status == 200
        return json.loads(body)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.ws.close()
        for relay in self.relays:
            await relay.stop()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        await h.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def relay(harness: Harness) -> Relay:
    """A relay with default limits."""
    return await harness.start()

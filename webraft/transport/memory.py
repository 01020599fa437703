"""In-process transport: nodes of one event loop reach each other through a shared hub.

Owns :class:`MemoryHub` and :class:`MemoryTransport`, for tests, examples and several nodes in
one process. Imports only the runtime's port; no I/O.

Delivery mimics a network: a payload is copied through JSON (so no object is ever shared
between nodes) and handed over on a later turn of the loop, with every payload sent to one peer
in one turn arriving together, as one frame would.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..runtime.port import TransportHandler

__all__ = ["MemoryHub", "MemoryTransport"]



class MemoryHub:
    """The shared medium: who is attached, and which pairs are cut off from each other."""

    def __init__(self) -> None:
        self._attached: dict[str, MemoryTransport] = {}
        self._cut: set[tuple[str, str]] = set()  # (sender, receiver) pairs that drop

    def transport(self, address: str) -> MemoryTransport:
        """A transport for the node at ``address`` (attached once it starts)."""
        return MemoryTransport(self, address)

    def cut(self, a: str, b: str, *, both_ways: bool = True) -> None:
        """Drop everything ``a`` sends to ``b`` (and ``b`` to ``a`` unless one-way)."""
        self._cut.add((a, b))
        if both_ways:
            self._cut.add((b, a))

    def heal(self) -> None:
        """Undo every :meth:`cut`."""
        self._cut.clear()

    def _attach(self, transport: MemoryTransport) -> None:
        previous = self._attached.get(transport.address)
        if previous is not None and previous is not transport:
            raise ValueError(f"address {transport.address!r} is attached already")
        self._attached[transport.address] = transport
        for other in self._attached.values():
            if other is not transport:
                other._peer_joined(transport.address)
                transport._peer_joined(other.address)

    def _detach(self, transport: MemoryTransport) -> None:
        if self._attached.get(transport.address) is transport:
            del self._attached[transport.address]
            for other in self._attached.values():
                other._peer_left(transport.address)

    def _route(self, sender: str, to: str, frame: str) -> None:
        target = self._attached.get(to)
        if target is not None and (sender, to) not in self._cut:
            target._receive(sender, frame)


class MemoryTransport:
    """One node's side of a :class:`MemoryHub`; implements the runtime's ``Transport``."""

    max_command_bytes: int | None = None

    def __init__(self, hub: MemoryHub, address: str) -> None:
        self.hub = hub
        self.address = address
        self._handler: TransportHandler | None = None
        self._outgoing: dict[str, list[Any]] = {}
        self._flushing: asyncio.Handle | None = None

    def start(self, handler: TransportHandler) -> None:
        self._handler = handler
        self.hub._attach(self)

    def send(self, to: str, payload: dict[str, Any]) -> None:
        if self._handler is None:
            return
        self._outgoing.setdefault(to, []).append(payload)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    async def close(self) -> None:
        if self._flushing is not None:
            self._flushing.cancel()
            self._flush()
        self.hub._detach(self)
        self._handler = None

    def _flush(self) -> None:
        self._flushing = None
        outgoing, self._outgoing = self._outgoing, {}
        for to, payloads in outgoing.items():
            self.hub._route(self.address, to, json.dumps(payloads))

    def _receive(self, sender: str, frame: str) -> None:
        asyncio.get_running_loop().call_soon(self._deliver, sender, frame)

    def _deliver(self, sender: str, frame: str) -> None:
        if self._handler is not None:
            self._handler.got_messages(sender, json.loads(frame))

    def _peer_joined(self, address: str) -> None:
        if self._handler is not None:
            self._handler.join(address)

    def _peer_left(self, address: str) -> None:
        if self._handler is not None:
            self._handler.leave(address)

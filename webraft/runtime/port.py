"""The transport port: the small interface through which a node reaches its peers.

Owns the two protocols, :class:`Transport` (what a node holds) and :class:`TransportHandler`
(what the node offers its transport), and :class:`Observed`, the pass-through that observers
of a node's traffic build on. Must not import any transport or anything with I/O:
transports import this, never the other way round.

A node *holds* its transport, as python-websockets' connection holds its protocol: adding a
way to reach peers (a relay, direct TCP links, a tab's BroadcastChannel, a simulated network,
a combinator that picks a link per peer) is a new object, never a new subclass of the node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class TransportHandler(Protocol):
    """What a transport reports to (a :class:`~webraft.RaftInterface`). Each method returns
    quickly and never raises; the node treats everything it is given as untrusted."""

    def join(self, address: str) -> None:
        """Peer ``address`` became reachable."""

    def leave(self, address: str) -> None:
        """Peer ``address`` became unreachable."""

    def got_messages(self, address: str, payloads: Iterable[Any]) -> None:
        """Payloads that arrived together from ``address`` (one frame, one read). The
        transport must make sure they really come from that peer."""

    def transport_error(self, exc: Exception) -> None:
        """Something the application should know (a malformed frame, a refused link, a
        terminal close): the node emits it as an ``error`` event."""


class Transport(Protocol):
    """What a node holds to reach its peers: best-effort delivery of JSON-able payloads.

    Raft retries whatever matters, so a transport may drop, duplicate or reorder; it must
    never deliver a payload as coming from a peer that did not send it.
    """

    @property
    def max_command_bytes(self) -> int | None:
        """Largest command that fits in one message of this transport with its envelopes,
        or None when it has no frame limit; the node never accepts a larger command."""

    def start(self, handler: TransportHandler) -> None:
        """Begin delivering to ``handler`` (called once, from a running event loop)."""

    def send(self, to: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` to peer ``to`` (best effort; never raises for a lost peer)."""

    async def close(self) -> None:
        """Stop, after flushing what was sent; called once, when the node closes."""


class Observed:
    """A transport holding ``transport`` and passing everything through, both ways, with a
    look at each payload on its way (:meth:`sent`, :meth:`received`, no-ops here).

    The one base of the node's traffic observers (the member's metrics, the demo's cluster
    view): give the node this in place of the real transport, before it starts.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.handler: TransportHandler | None = None

    def sent(self, to: str, payload: dict[str, Any]) -> None:
        """``payload`` leaves for ``to`` (it must not be changed)."""

    def received(self, address: str, payloads: list[Any] | tuple[Any, ...]) -> None:
        """``payloads`` arrived from ``address``, before the node sees them (untrusted)."""

    # -- Transport, for the node

    @property
    def max_command_bytes(self) -> int | None:
        return self.transport.max_command_bytes

    def start(self, handler: TransportHandler) -> None:
        self.handler = handler
        self.transport.start(self)

    def send(self, to: str, payload: dict[str, Any]) -> None:
        self.sent(to, payload)
        self.transport.send(to, payload)

    async def close(self) -> None:
        await self.transport.close()

    # -- TransportHandler, for the real transport: passed on to the node

    def join(self, address: str) -> None:
        if self.handler is not None:
            self.handler.join(address)

    def leave(self, address: str) -> None:
        if self.handler is not None:
            self.handler.leave(address)

    def got_messages(self, address: str, payloads: Iterable[Any]) -> None:
        if self.handler is None:
            return
        batch = payloads if isinstance(payloads, list | tuple) else list(payloads)
        self.received(address, batch)
        self.handler.got_messages(address, batch)

    def transport_error(self, exc: Exception) -> None:
        if self.handler is not None:
            self.handler.transport_error(exc)

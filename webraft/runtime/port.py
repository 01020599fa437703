"""The transport port: the small interface through which a node reaches its peers.

Owns the two protocols only, :class:`Transport` (what a node holds) and
:class:`TransportHandler` (what the node offers its transport). Must not import any transport
or anything with I/O: transports import this, never the other way round.

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

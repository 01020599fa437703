"""A transport that picks a link per peer: the relay room for presence, a faster link when up.

Owns :class:`LinkedTransport` and the :class:`PeerLink` protocol its links implement. Imports
the relay transport and the runtime's port; never a link's I/O (TCP, a BroadcastChannel):
a link is handed in, so that a tab can use this without sockets.

The room stays the truth about membership: peers join and leave as the relay says, whatever
links are up. A link only carries messages: each message to a peer takes the first link that
is up to it, else the relay; what arrives on a link is the node's like what the relay
brings. Direct TCP links offered through the relay (:class:`~webraft.transport.offers.
OfferedLinks`) are one kind of link; a BroadcastChannel between tabs of one browser is
another, added the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..runtime.port import TransportHandler
from .node import InRoom, RelayTransport
from .relay import RelayClosed

__all__ = ["LinkedTransport", "PeerLink"]

logger = logging.getLogger("webraft.transport")


class PeerLink(Protocol):
    """A way to reach some of a room's members without the relay's two hops."""

    def start(self, room: LinkedTransport) -> None:
        """Begin (from a running loop): deliver what arrives through ``room.deliver`` and
        report errors through ``room.report``; ``room.relay`` carries any signalling."""

    def send(self, peer: str, payload: dict[str, Any]) -> bool:
        """Write ``payload`` to ``peer`` now; False if this link cannot (then the next link,
        or the relay, carries it)."""

    def peer_joined(self, peer: str) -> None:
        """``peer`` entered the room (the node knows already)."""

    def peer_left(self, peer: str) -> None:
        """``peer`` left the room: whatever linked to it under that name is void."""

    def room_ended(self) -> None:
        """The relay ended this member for good: no longer a member, so no longer linked."""

    async def close(self) -> None:
        """Close every link; called once, after the relay closed."""


class LinkedTransport(InRoom):
    """The :class:`~webraft.transport.node.RelayTransport` ``relay`` with ``links`` that
    carry messages to the peers they reach (see the module doc).

    It is the relay's handler: the room's ``join``\\ s and ``leave``\\ s reach the node first,
    then the links; a terminal close of the relay ends the links too.
    """

    def __init__(self, relay: RelayTransport[Any], links: Sequence[PeerLink]) -> None:
        self.relay = relay
        self.links = tuple(links)
        self._handler: TransportHandler | None = None

    @property
    def max_command_bytes(self) -> int | None:
        """The relay's: every message must still fit in a relay frame when no link is up."""
        return self.relay.max_command_bytes

    def start(self, handler: TransportHandler) -> None:
        if self._handler is not None:
            return
        self._handler = handler
        for link in self.links:
            link.start(self)
        self.relay.start(self)

    def send(self, to: str, payload: dict[str, Any]) -> None:
        for link in self.links:
            if link.send(to, payload):
                return
        self.relay.send(to, payload)

    async def close(self) -> None:
        """Close the relay connection, then every link."""
        await self.relay.close()
        for link in self.links:
            await link.close()

    # ------------------------------------------------------------------ for the links

    def deliver(self, peer: str, payloads: Iterable[Any]) -> None:
        """Messages that arrived together on a link from ``peer``."""
        if self._handler is not None:
            self._handler.got_messages(peer, payloads)

    def report(self, exc: Exception) -> None:
        """Something about a link the application should know (a refused link)."""
        if self._handler is not None:
            self._handler.transport_error(exc)

    # ------------------------------------------------------------------ the relay's handler

    def join(self, address: str) -> None:
        assert self._handler is not None
        self._handler.join(address)
        for link in self.links:
            link.peer_joined(address)

    def leave(self, address: str) -> None:
        assert self._handler is not None
        self._handler.leave(address)
        for link in self.links:
            link.peer_left(address)

    def got_messages(self, address: str, payloads: Iterable[Any]) -> None:
        self.deliver(address, payloads)

    def transport_error(self, exc: Exception) -> None:
        self.report(exc)
        if isinstance(exc, RelayClosed):
            # Out of the room for good (replaced by another process under our session, or
            # refused): no longer a member, so no longer linked to any, in either direction.
            for link in self.links:
                link.room_ended()

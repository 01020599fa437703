"""Direct TCP links between relay members that listen, offered through the relay.

Owns :class:`OfferedLinks`, a :class:`~webraft.transport.linked.PeerLink`: it listens, offers
each room member (through the relay, so only that member reads it) its address and a key
only that member gets, and dials the members whose offers it receives. Imports the TCP links
and the relay transport; never a node. See ``docs/direct-links.md``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from .node import is_wildcard, link_host, link_offer
from .tcp import TLS, DirectLinks

if TYPE_CHECKING:
    from .linked import LinkedTransport

__all__ = ["OfferedLinks"]

logger = logging.getLogger("webraft.transport")


class OfferedLinks:
    """Links of the member at ``address`` in ``room``, accepted on ``listen=(host, port)``.

    ``advertise`` is the host peers dial (needed when ``host`` is a wildcard such as
    ``0.0.0.0``). Members that listen too link to each other; a link carries our messages to
    that peer while it is up, and the relay carries them otherwise. ``tls`` encrypts the
    links as on direct links (the dialer checks the acceptor's certificate against the host
    it was offered, ``advertise``); the relay then only ever sees the offers.
    """

    def __init__(self, address: str, *, room: str, listen: tuple[str, int],
                 advertise: str | None = None, tls: TLS | None = None) -> None:
        if advertise is not None:
            host = link_host(advertise)
            if host is None:
                raise ValueError(f"advertise must be a host name or an address (no "
                                 f"port), got {advertise!r:.80}")
            advertise = host
        elif is_wildcard(listen[0]):
            raise ValueError(f"listening on {listen[0]!r} needs advertise=HOST: the "
                             "address peers can reach this node at")
        self.address = address
        self._listen = listen
        self._advertise = advertise
        #: The key we offered each peer, while it stays in the room.
        self.keys: dict[str, str] = {}
        self.links = DirectLinks(address, self, room=room, token=self.keys.get, tls=tls)
        self._room: LinkedTransport | None = None
        self._listening: asyncio.Task[tuple[str, int]] | None = None
        self._unlinking: asyncio.Task[None] | None = None  # the relay ended us

    async def listening(self) -> tuple[str, int]:
        """Wait until this member accepts links; returns where (raises the OSError if it
        cannot: the relay then still carries everything; RuntimeError if the links closed
        first, with the node or because the relay ended it)."""
        if self._listening is None:
            raise RuntimeError("start() a node made with listen= first")
        return await asyncio.shield(self._listening)

    def status(self) -> dict[str, Any]:
        """Where we listen, whether our link to each room member is up, and the last link
        refused or broken (see :meth:`~webraft.transport.tcp.DirectLinks.status`)."""
        peers = self._room.relay.peers if self._room is not None else ()
        return self.links.status(peers)

    # ------------------------------------------------------------------ PeerLink

    def start(self, room: LinkedTransport) -> None:
        if self._room is not None:
            return
        self._room = room
        room.relay.on_link_offer = self._offered
        self._listening = asyncio.get_running_loop().create_task(self._start_links())
        # Reported as an error already; nobody has to await it.
        self._listening.add_done_callback(lambda t: t.cancelled() or t.exception())

    def send(self, peer: str, payload: dict[str, Any]) -> bool:
        return self.links.send(peer, payload)

    def peer_joined(self, peer: str) -> None:
        self._offer(peer)

    def peer_left(self, peer: str) -> None:
        """Stop dialing ``peer``, and void its key and the links proven with it, so that
        whoever held that name meanwhile cannot link as it once the name is another
        member's (a member that comes back is offered a new key)."""
        self.links.forget(peer)
        self.keys.pop(peer, None)
        self.links.disconnect(peer)

    def room_ended(self) -> None:
        if self._unlinking is None:
            logger.warning("%s: the relay ended this member; closing its direct links",
                           self.address)
            self._unlinking = asyncio.get_running_loop().create_task(self.links.close())

    async def close(self) -> None:
        if self._unlinking is not None:
            await asyncio.wait([self._unlinking])
        await self.links.close()
        if self._listening is not None and not self._listening.done():
            self._listening.cancel()

    # ------------------------------------------------------------------ offers

    async def _start_links(self) -> tuple[str, int]:
        try:
            bound = await self.links.listen(*self._listen)
        except OSError as exc:
            logger.error("%s: cannot accept links on %s:%s: %r", self.address, *self._listen,
                         exc)
            self.direct_error(exc)
            raise
        assert self._room is not None
        for peer in sorted(self._room.relay.peers):
            self._offer(peer)
        return bound

    def _offer(self, peer: str) -> None:
        """Tell ``peer`` where and how to link to us (through the relay: only it reads it)."""
        bound = self.links.bound
        if bound is None or self._room is None:
            return  # _start_links offers to every peer once listening
        key = self.keys.setdefault(peer, secrets.token_hex(16))
        host = self._advertise if self._advertise is not None else bound[0]
        self._room.relay.send(peer, link_offer(host, bound[1], key))

    def _offered(self, sender: str, host: str, port: int, key: str) -> None:
        """``sender`` accepts direct links at ``host:port`` from us, proven with ``key``."""
        if self.links.dial(sender, host, port, token=key):
            # A new offer may come from a new process under the same relay session (no leave
            # or join for us to offer on), which knows none of our keys: offer ours again. An
            # offer we have already is not answered, so two members never ping-pong.
            self._offer(sender)

    # ------------------------------------------------------------------ DirectListener

    def direct_up(self, peer: str) -> None:
        logger.info("%s: linked to %s directly", self.address, peer)

    def direct_down(self, peer: str) -> None:
        logger.info("%s: the link to %s is down; the relay carries its messages", self.address,
                    peer)

    def direct_data(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        if self._room is not None:
            self._room.deliver(peer, payloads)

    def direct_error(self, exc: Exception) -> None:
        if self._room is not None:
            self._room.report(exc)

"""Direct links as a node's only transport, and :class:`DirectRaft`, the node built on them.

Owns :class:`DirectTransport` (a :class:`~webraft.runtime.port.Transport` holding
:class:`~webraft.transport.tcp.DirectLinks`) and the thin constructor :class:`DirectRaft`.
For clusters of processes that can reach each other (servers), with no relay: a peer
``join``\\ s when our link to it is up and ``leave``\\ s when it drops, like a relay room's
members. Imports the TCP links and the runtime; nothing imports this but users.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..runtime import NodeConfig, RaftInterface, TransportHandler
from ..storage import Storage
from .direct import DEFAULT_MAX_LINE_BYTES
from .relay import DEFAULT_MAX_FRAME_BYTES, Backoff, check_name
from .tcp import MAX_BUFFERED_BYTES, TLS, DirectLinks, check_endpoint

__all__ = ["DirectRaft", "DirectTransport"]

logger = logging.getLogger("webraft.transport")


class DirectTransport:
    """Reaches each of ``peers`` (address -> where it accepts links) over our link to it,
    and accepts theirs on ``listen`` (``("127.0.0.1", 0)`` picks a free port; see
    :attr:`bound`). ``room`` and ``token`` must be the same on every member: a link is
    accepted only with a proof of the token. ``max_line_bytes``, ``max_buffered_bytes``,
    ``backoff`` and ``tls`` (:class:`~webraft.transport.tcp.TLS`: encrypted links) are passed
    to :class:`~webraft.transport.tcp.DirectLinks`.
    """

    #: Every Raft message fits in a line (checked below), so commands keep the default limit.
    max_command_bytes: int | None = None

    def __init__(self, address: str, *, listen: tuple[str, int],
                 peers: Mapping[str, tuple[str, int]], room: str = "webraft",
                 token: str | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_buffered_bytes: int = MAX_BUFFERED_BYTES,
                 backoff: Callable[[], Backoff] = Backoff, tls: TLS | None = None) -> None:
        if token is not None and not isinstance(token, str):
            raise ValueError("token must be a string")
        if max_line_bytes < DEFAULT_MAX_FRAME_BYTES:
            # Every Raft message fits in a relay frame (commands, appends and snapshot chunks
            # are sized for it); a message that fits in no line would be refused forever.
            raise ValueError(f"max_line_bytes must be at least {DEFAULT_MAX_FRAME_BYTES}")
        self.links = DirectLinks(address, self, room=room, token=token,
                                 max_line_bytes=max_line_bytes,
                                 max_buffered_bytes=max_buffered_bytes, backoff=backoff,
                                 tls=tls)
        self.address = address
        self.peers: dict[str, tuple[str, int]] = {}
        for peer, (host, port) in peers.items():
            self.peers[check_name(peer, "peer")] = check_endpoint(host, port)
        self._listen = listen
        self._listening: asyncio.Task[tuple[str, int]] | None = None
        self._handler: TransportHandler | None = None

    @property
    def room(self) -> str:
        return self.links.room

    @property
    def bound(self) -> tuple[str, int] | None:
        """Where this node accepts links, once it does."""
        return self.links.bound

    @property
    def connected(self) -> bool:
        """True while this node accepts links (peers come and go as ``join``/``leave``)."""
        return self.links.bound is not None

    def start(self, handler: TransportHandler) -> None:
        """Start listening and dialing (needs a running loop)."""
        if self._listening is not None:
            return
        self._handler = handler
        self._listening = asyncio.get_running_loop().create_task(
            self.links.listen(*self._listen), name=f"listen {self.address}")
        self._listening.add_done_callback(self._listen_done)
        for peer, (host, port) in self.peers.items():
            self.links.dial(peer, host, port)

    def _listen_done(self, task: asyncio.Task[tuple[str, int]]) -> None:
        """Say so when this node cannot accept links (a port in use), awaited or not."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        logger.error("%s: cannot accept links on %s:%s: %r", self.address, *self._listen, exc)
        if isinstance(exc, Exception):
            self.direct_error(exc)

    async def listening(self) -> tuple[str, int]:
        """Wait until this node accepts links; returns where (raises if it cannot listen)."""
        if self._listening is None:
            raise RuntimeError("start() the node first")
        return await asyncio.shield(self._listening)

    def status(self) -> dict[str, Any]:
        """Where we listen, each peer's link address and whether our link to it is up, and
        the last link refused or broken (see :meth:`DirectLinks.status`)."""
        return self.links.status(self.peers, self.peers)

    def add_peer(self, address: str, host: str, port: int) -> None:
        """Link to ``address`` at ``host:port`` from now on (also to move a peer)."""
        check_name(address, "peer")
        self.peers[address] = check_endpoint(host, port)
        if self._listening is not None:
            self.links.dial(address, host, port)

    def remove_peer(self, address: str) -> None:
        """Stop linking to ``address``."""
        self.peers.pop(address, None)
        self.links.forget(address)

    def send(self, to: str, payload: dict[str, Any]) -> None:
        self.links.send(to, payload)

    async def close(self) -> None:
        """Stop listening, then close the links (after what is written went out)."""
        listening = self._listening
        if listening is not None and not listening.done():
            listening.cancel()
            await asyncio.wait([listening])  # never raises: its outcome is not ours to raise
        await self.links.close()

    # ------------------------------------------------------------------ DirectListener

    def direct_up(self, peer: str) -> None:
        if self._handler is not None:
            self._handler.join(peer)

    def direct_down(self, peer: str) -> None:
        if self._handler is not None:
            self._handler.leave(peer)

    def direct_data(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        if self._handler is not None:
            self._handler.got_messages(peer, payloads)

    def direct_error(self, exc: Exception) -> None:
        if self._handler is not None:
            self._handler.transport_error(exc)


class DirectRaft(RaftInterface):
    """A Raft node that links straight to its peers over TCP: no relay, no browser tabs.

    A plain :class:`~webraft.RaftInterface` holding a :class:`DirectTransport` (see it for
    ``listen``, ``peers``, ``room``, ``token``, ``max_line_bytes``, ``max_buffered_bytes``,
    ``backoff`` and ``tls``); ``members`` defaults to this node and its peers. Use :meth:`add_peer`
    and :meth:`remove_peer` when membership changes bring new machines.

    ``async with DirectRaft(...) as node`` starts it and waits until it listens; after a bare
    :meth:`start`, ``await node.listening()`` does the same (a node that cannot listen reports
    it as an ``error`` event too).
    """

    def __init__(self, address: str, *, listen: tuple[str, int],
                 peers: Mapping[str, tuple[str, int]], room: str = "webraft",
                 token: str | None = None, members: Iterable[str] | None = None,
                 storage: Storage | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_buffered_bytes: int = MAX_BUFFERED_BYTES,
                 backoff: Callable[[], Backoff] = Backoff, tls: TLS | None = None,
                 config: NodeConfig | None = None) -> None:
        self.direct = DirectTransport(address, listen=listen, peers=peers, room=room,
                                      token=token, max_line_bytes=max_line_bytes,
                                      max_buffered_bytes=max_buffered_bytes, backoff=backoff,
                                      tls=tls)
        if members is None:
            members = [address, *peers]
        super().__init__(address, members=members, storage=storage, transport=self.direct,
                         config=config)

    @property
    def links(self) -> DirectLinks:
        return self.direct.links

    @property
    def peers(self) -> dict[str, tuple[str, int]]:
        """Where each peer accepts links."""
        return self.direct.peers

    @property
    def room(self) -> str:
        return self.direct.room

    @property
    def bound(self) -> tuple[str, int] | None:
        """Where this node accepts links, once it does."""
        return self.direct.bound

    @property
    def connected(self) -> bool:
        """True while this node accepts links (peers come and go as ``join``/``leave``)."""
        return self.direct.connected

    async def listening(self) -> tuple[str, int]:
        """Wait until this node accepts links; returns where (raises if it cannot listen)."""
        return await self.direct.listening()

    async def __aenter__(self) -> DirectRaft:
        self.start()
        try:
            await self.listening()
        except BaseException:  # no ``async with`` body, so no __aexit__: stop what started
            await self.close()
            raise
        return self

    def add_peer(self, address: str, host: str, port: int) -> None:
        """Link to ``address`` at ``host:port`` from now on (also to move a peer)."""
        self.direct.add_peer(address, host, port)

    def remove_peer(self, address: str) -> None:
        """Stop linking to ``address``."""
        self.direct.remove_peer(address)

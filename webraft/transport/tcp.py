"""Direct links over TCP (asyncio), and :class:`DirectRaft`, a node whose peers are reached
that way.

A thin asyncio layer around the sans-I/O :mod:`webraft.transport.direct`:

* :class:`DirectLinks` listens for links from peers and keeps one link to every peer it was
  told to dial (reconnecting with jittered back-off), and writes messages into them. A link is
  one-way (the dialer writes, the acceptor reads), so each pair of members has two.
* :class:`DirectRaft` is a :class:`~webraft.runtime.RaftInterface` on such links, for clusters
  of processes that can reach each other (servers), with no relay: a peer ``join``\\ s when our
  link to it is up and ``leave``\\ s when it drops, like a relay room's members.

Nothing the network sends can crash a node: malformed messages are dropped with a log line
and an ``error`` event, a broken or refused conversation closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ..runtime import NodeInstance, RaftInterface
from ..storage import Storage
from .direct import (
    DEFAULT_MAX_LINE_BYTES,
    Accepted,
    Acceptor,
    Data,
    Dialer,
    LinkBroken,
    LinkRejected,
)
from .relay import Backoff, check_name

__all__ = ["DirectLinks", "DirectListener", "DirectPeer", "DirectRaft"]

logger = logging.getLogger("webraft.transport")

#: Seconds a connection may take to complete the handshake, on either side.
HANDSHAKE_TIMEOUT = 5.0
#: Bytes a link may have waiting in its socket buffer before new messages are dropped (Raft
#: retransmits what matters); bounds memory while a peer is slow or gone silent.
MAX_BUFFERED_BYTES = 16 << 20


class DirectListener(Protocol):
    """What :class:`DirectLinks` reports to; every method must return quickly."""

    def direct_up(self, peer: str) -> None:
        """Our link to ``peer`` is established: messages to it can be sent."""

    def direct_down(self, peer: str) -> None:
        """Our link to ``peer`` was lost (it is being re-dialed)."""

    def direct_data(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        """Messages from ``peer``: all those one read of its link to us completed."""

    def direct_error(self, exc: Exception) -> None:
        """Something the application should know (a refused link, a malformed message)."""


def _keepalive(transport: asyncio.BaseTransport) -> None:
    """Notice a peer whose machine vanished within seconds, not the kernel's two hours."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class _Incoming(asyncio.Protocol):
    """An accepted connection: the handshake, then the peer's messages."""

    def __init__(self, links: DirectLinks) -> None:
        self.links = links
        self.acceptor = Acceptor(links.room, links.address, token=links.token,
                                 allow=links.allow, max_line_bytes=links.max_line_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = ""  # once proven
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _keepalive(transport)
        self.links._incoming.add(self)
        transport.write(self.acceptor.data_to_send())
        self._deadline = asyncio.get_running_loop().call_later(
            HANDSHAKE_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        logger.info("%s: closed a connection that sent no valid hello in %.0f s",
                    self.links.address, HANDSHAKE_TIMEOUT)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            events = self.acceptor.receive(data)
        except LinkBroken as exc:
            transport.write(self.acceptor.data_to_send())
            logger.warning("%s: refused or broke a link from %s: %s", self.links.address,
                           self.acceptor.peer or transport.get_extra_info("peername"), exc)
            transport.close()
            self.links._report(exc)
            return
        links = self.links
        payloads = []
        for event in events:
            if type(event) is Data:
                payloads.append(event.payload)
            elif type(event) is Accepted:
                self.peer = event.peer
                transport.write(self.acceptor.data_to_send())
                if self._deadline is not None:
                    self._deadline.cancel()
                logger.debug("%s: accepted a link from %s", links.address, event.peer)
            else:
                logger.warning("%s: dropped a message from %s: %s", links.address,
                               self.peer, event.error)
                links._report(event.error)
        if payloads:
            links._deliver(self.peer, payloads)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.links._incoming.discard(self)


class _Outgoing(asyncio.Protocol):
    """A dialed connection: the handshake, then our messages to the peer."""

    def __init__(self, links: DirectLinks, peer: str) -> None:
        self.links = links
        self.peer = peer
        self.dialer = Dialer(links.room, links.address, peer, token=links.token,
                             max_line_bytes=links.max_line_bytes)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.rejected: LinkRejected | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _keepalive(transport)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            events = self.dialer.receive(data)
        except LinkBroken as exc:
            if isinstance(exc, LinkRejected):
                self.rejected = exc
            transport.close()
            return
        out = self.dialer.data_to_send()
        if out:
            transport.write(out)
        if events:
            self.links._up(self.peer, self)

    def send(self, payload: Any) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        line = self.dialer.encode(payload)
        if transport.get_write_buffer_size() + len(line) > self.links.max_buffered_bytes:
            self.links.dropped += 1
            return False
        transport.write(line)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.links._down(self.peer, self)
        if not self.closed.done():
            self.closed.set_result(None)


class DirectLinks:
    """The links of the member at ``address`` in ``room`` (see the module doc).

    ``token`` is the room's shared secret (the relay's room token, if the members also use a
    relay); ``allow(peer)`` may restrict who can link to us. :meth:`listen` and :meth:`dial`
    need a running loop; :meth:`send` never blocks.
    """

    def __init__(self, address: str, listener: DirectListener, *, room: str = "webraft",
                 token: str | None = None, allow: Callable[[str], bool] | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_buffered_bytes: int = MAX_BUFFERED_BYTES,
                 backoff: Callable[[], Backoff] = Backoff) -> None:
        self.address = check_name(address, "address")
        self.room = check_name(room, "room")
        if token is not None and not isinstance(token, str):
            raise ValueError("token must be a string")
        self.token = token
        self.listener = listener
        self.allow = allow
        self.max_line_bytes = max_line_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self._backoff = backoff
        #: Messages not sent because a link's buffer was full.
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._endpoints: dict[str, tuple[str, int]] = {}
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._links: dict[str, _Outgoing] = {}  # established outgoing links, by peer
        self._incoming: set[_Incoming] = set()
        self._closed = False

    @property
    def bound(self) -> tuple[str, int] | None:
        """Where :meth:`listen` accepts links (the real port if it was 0), once it does."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def is_up(self, peer: str) -> bool:
        """True while our link to ``peer`` is established."""
        return peer in self._links

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Accept links on ``host:port`` (port 0: any free one); returns the bound address."""
        if self._server is None:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _Incoming(self), host, port)
        bound = self.bound
        assert bound is not None
        return bound

    def dial(self, peer: str, host: str, port: int) -> None:
        """Keep a link to ``peer`` at ``host:port`` up until :meth:`forget` or :meth:`close`.

        Dialing a peer again with another endpoint moves the link there.
        """
        check_name(peer, "peer")
        if self._closed or peer == self.address:
            return
        endpoint = (host, port)
        if self._endpoints.get(peer) == endpoint and peer in self._dialers:
            return
        self.forget(peer)
        self._endpoints[peer] = endpoint
        self._dialers[peer] = asyncio.get_running_loop().create_task(
            self._dial_loop(peer), name=f"link {self.address}->{peer}")

    def forget(self, peer: str) -> None:
        """Stop dialing ``peer`` and close our link to it."""
        self._endpoints.pop(peer, None)
        task = self._dialers.pop(peer, None)
        if task is not None:
            task.cancel()
        link = self._links.get(peer)
        if link is not None and link.transport is not None:
            link.transport.close()

    def send(self, peer: str, payload: Any) -> bool:
        """Write ``payload`` to ``peer`` now; False if no link is up or its buffer is full.

        Raises ValueError (not JSON) or MessageTooLarge, like a socket would.
        """
        link = self._links.get(peer)
        return link is not None and link.send(payload)

    async def close(self) -> None:
        """Stop listening and dialing, close every link (what is written still goes out)."""
        self._closed = True
        for peer in list(self._dialers):
            self.forget(peer)
        if self._server is not None:
            self._server.close()
        for incoming in list(self._incoming):
            if incoming.transport is not None:
                incoming.transport.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    # ------------------------------------------------------------------ internals

    async def _dial_loop(self, peer: str) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._backoff()
        reported: str | None = None
        while not self._closed:
            host, port = self._endpoints[peer]
            link: _Outgoing | None = None
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    _, link = await loop.create_connection(
                        lambda: _Outgoing(self, peer), host, port)
                await link.closed
            except (OSError, TimeoutError) as exc:
                logger.debug("%s: cannot link to %s at %s:%s: %r", self.address, peer, host,
                             port, exc)
                if link is not None and link.transport is not None:
                    link.transport.close()
            if link is not None and link.dialer.established:
                backoff.reset()
                reported = None
            rejected = link.rejected if link is not None else None
            if rejected is not None and reported != rejected.code:  # once per kind
                reported = rejected.code
                logger.error("%s: %s at %s:%s refused our link: %s", self.address, peer,
                             host, port, rejected)
                self._report(rejected)
            await asyncio.sleep(backoff.next())

    def _up(self, peer: str, link: _Outgoing) -> None:
        if self._closed or self._endpoints.get(peer) is None:
            if link.transport is not None:
                link.transport.close()
            return
        self._links[peer] = link
        logger.debug("%s: linked to %s", self.address, peer)
        self._call(self.listener.direct_up, peer)

    def _down(self, peer: str, link: _Outgoing) -> None:
        if self._links.get(peer) is link:
            del self._links[peer]
            logger.debug("%s: lost the link to %s", self.address, peer)
            self._call(self.listener.direct_down, peer)

    def _deliver(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        try:
            self.listener.direct_data(peer, payloads)
        except Exception as exc:  # a listener bug must not break the connection
            logger.exception("%s: handling a message from %s failed", self.address, peer)
            self._report(exc)

    def _call(self, method: Callable[[str], None], peer: str) -> None:
        try:
            method(peer)
        except Exception as exc:
            logger.exception("%s: link listener failed", self.address)
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        try:
            self.listener.direct_error(exc)
        except Exception:
            logger.exception("%s: link error listener failed", self.address)


class DirectPeer(NodeInstance):
    """A peer reached through our direct link to it."""

    raft: DirectRaft

    def write(self, payload: dict[str, Any]) -> None:
        self.raft.links.send(self.address, payload)


class DirectRaft(RaftInterface):
    """A Raft node that links straight to its peers over TCP: no relay, no browser tabs.

    ``listen`` is where this node accepts links (``("127.0.0.1", 0)`` picks a free port; see
    :attr:`bound`), ``peers`` where the others accept theirs. ``room`` and ``token`` must be
    the same on every member: a link is accepted only with a proof of the token. Use
    :meth:`add_peer` and :meth:`remove_peer` when membership changes bring new machines.

    ``async with DirectRaft(...) as node`` starts it and waits until it listens; after a bare
    :meth:`start`, ``await node.listening()`` does the same.
    """

    def __init__(self, address: str, *, listen: tuple[str, int],
                 peers: Mapping[str, tuple[str, int]], room: str = "webraft",
                 token: str | None = None, members: Iterable[str] | None = None,
                 storage: Storage | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if members is None:
            members = [address, *peers]
        super().__init__(address, members=members, storage=storage)
        self.links = DirectLinks(address, self, room=room, token=token,
                                 max_line_bytes=max_line_bytes)
        self.peers: dict[str, tuple[str, int]] = {}
        for peer, (host, port) in peers.items():
            check_name(peer, "peer")
            self.peers[peer] = (host, port)
        self._listen = listen
        self._listening: asyncio.Task[tuple[str, int]] | None = None

    @property
    def bound(self) -> tuple[str, int] | None:
        """Where this node accepts links, once it does."""
        return self.links.bound

    @property
    def connected(self) -> bool:
        """True while this node accepts links (peers come and go as ``join``/``leave``)."""
        return self.links.bound is not None

    def create_instance(self, address: str) -> DirectPeer:
        return DirectPeer(address, self)

    def start(self) -> None:
        """Start Raft, listening and dialing (needs a running loop)."""
        if self._listening is not None:
            return
        super().start()
        self._listening = asyncio.get_running_loop().create_task(
            self.links.listen(*self._listen))
        for peer, (host, port) in self.peers.items():
            self.links.dial(peer, host, port)

    async def listening(self) -> tuple[str, int]:
        """Wait until this node accepts links; returns where (raises if it cannot listen)."""
        if self._listening is None:
            raise RuntimeError("start() the node first")
        return await asyncio.shield(self._listening)

    async def __aenter__(self) -> DirectRaft:
        self.start()
        await self.listening()
        return self

    def add_peer(self, address: str, host: str, port: int) -> None:
        """Link to ``address`` at ``host:port`` from now on (also to move a peer)."""
        self.peers[check_name(address, "peer")] = (host, port)
        if self._listening is not None:
            self.links.dial(address, host, port)

    def remove_peer(self, address: str) -> None:
        """Stop linking to ``address``."""
        self.peers.pop(address, None)
        self.links.forget(address)

    async def close(self) -> None:
        """Close Raft, then the links (after what is written went out)."""
        await super().close()
        await self.links.close()
        if self._listening is not None and not self._listening.done():
            self._listening.cancel()

    # ------------------------------------------------------------------ DirectListener

    def direct_up(self, peer: str) -> None:
        self.join(peer)

    def direct_down(self, peer: str) -> None:
        self.leave(peer)

    def direct_data(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        self.got_messages(peer, payloads)

    def direct_error(self, exc: Exception) -> None:
        self.emit("error", exc)

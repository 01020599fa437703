"""The CPython relay connection: a webraft node talking to the relay over ``websockets``.

Owns :class:`RelayConnection` and :class:`RelayRaft`. Imports the transports below it, the
storage interface and the runtime (for the constructor); never ``js``.

Owns :class:`RelayConnection` (the I/O) and the thin constructor :class:`RelayRaft`. This is
the only module of ``webraft`` that imports ``websockets`` (the browser wheel has none,
so ``import webraft`` never loads it). It is a thin asyncio layer around the sans-I/O
:class:`~webraft.transport.relay.RelayClient`:

* :class:`RelayConnection` keeps one WebSocket to the relay open for as long as it runs: it
  says hello, feeds every frame to the client and hands the resulting events to a
  :class:`RelayListener`, reconnects after any disconnect with jittered exponential back-off,
  and stops for good only on the close codes after which retrying cannot help (4001, 4008,
  4009, and 4002 unless a token provider can renew the token), reporting them. A token
  provider is asked for a fresh token before each attempt. Outgoing messages are batched:
  the first write of a loop turn wakes the writer task, which runs after the rest of that
  turn's callbacks and sends everything written meanwhile as one frame.
* :func:`relay_transport` builds the transport a node holds on such a connection (a
  :class:`~webraft.transport.node.RelayTransport`, shared with the browser, combined with
  direct links when the node listens), and :class:`RelayRaft` is the plain node holding it.

Nothing raised by the network or by a malformed frame escapes into the event loop: failures
are logged, reported through the node's ``error`` event where they concern the application,
and turned into a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.uri import parse_uri

from ..runtime import NodeConfig, RaftInterface, Transport
from ..storage import Storage
from .linked import LinkedTransport
from .node import InRoom, RelayListener, RelayTransport, receive_frame, renew_token
from .offers import OfferedLinks
from .relay import Backoff, OutgoingBuffer, RelayClient, TokenProvider, Welcome
from .tcp import TLS, DirectLinks
from .wire import WS_PATH

__all__ = ["RelayConnection", "RelayRaft", "relay_transport"]

logger = logging.getLogger("webraft.transport")

#: Options passed to :func:`websockets.asyncio.client.connect` unless overridden.
#: No compression (Raft messages are small, the relay does not negotiate it by default);
#: ``max_size`` is above the relay's own 1 MiB because a frame that is not in webraft's compact
#: layout is re-encoded with ``\\uXXXX`` escapes, which can make what it delivers larger than
#: what was sent.
DEFAULT_CONNECT_OPTIONS: Mapping[str, Any] = {
    "compression": None,
    "open_timeout": 5.0,
    "close_timeout": 2.0,
    "max_size": 8 << 20,
}


def relay_url(url: str) -> str:
    """Check a relay URL (``ws://`` or ``wss://``); a URL without a path gets ``/ws``.

    Raises ValueError for anything websockets could not connect to, at construction time
    rather than as an endless series of failed reconnects.
    """
    try:
        parsed = parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a relay URL (ws://HOST:PORT/ws): {url!r}: {exc}") from None
    if parsed.resource_name == "/":
        url = url.rstrip("/") + WS_PATH
    return url


class RelayConnection:
    """Keeps a :class:`RelayClient` connected to the relay at ``url`` (see the module doc).

    ``url`` may be a list: relays that serve the same rooms (``webraft-relay --redis``).
    The connection uses one at a time and moves to the next after every failed attempt or
    lost connection, so the members of a relay that dies come back through the others.

    :meth:`start` needs a running loop; :meth:`send` may be called at any time after it and
    never blocks (messages wait in the client's bounded buffer while disconnected);
    :meth:`close` sends what is buffered, closes the WebSocket and stops reconnecting.
    ``connect_options`` override :data:`DEFAULT_CONNECT_OPTIONS`.
    """

    def __init__(self, url: str | Sequence[str], client: RelayClient,
                 listener: RelayListener | None = None,
                 *, connect_options: Mapping[str, Any] | None = None) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("a RelayConnection needs at least one relay URL")
        #: Every relay this connection may use, in the order it tries them.
        self.urls = tuple(relay_url(u) for u in urls)
        self._next = 0
        self.client = client
        #: Who hears the room's events (a :class:`~webraft.transport.node.RelayTransport`
        #: sets itself); needed before :meth:`start`.
        self.listener = listener
        self._options = {**DEFAULT_CONNECT_OPTIONS, **(connect_options or {})}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._closing = False
        #: Failed attempts and lost connections since the last welcome (for logs and status).
        self.failures = 0
        #: Completed connections (welcomes received) so far.
        self.connections = 0

    @property
    def url(self) -> str:
        """The relay this connection uses now (or tries next)."""
        return self.urls[self._next]

    @property
    def connected(self) -> bool:
        """True while a connection is open and joined to the room."""
        return self._ws is not None and self.client.joined

    @property
    def running(self) -> bool:
        """True until :meth:`close` or a terminal close code ended reconnecting."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start connecting (and reconnecting); idempotent."""
        if self._task is not None or self._closing:
            return
        if self.listener is None:
            raise RuntimeError("a RelayConnection needs a listener before it starts")
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"relay {self.client.address}")

    def send(self, to: str, data: Any) -> None:
        """Queue ``data`` for ``to``; it leaves with everything else written this loop turn.

        Raises ValueError (not JSON) or MessageTooLarge synchronously, like a socket would.
        """
        self.client.send(to, data)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            # The writer's next step is queued behind every callback already due in this
            # turn, so whatever they write joins the same frame.
            wakeup.set_result(None)

    async def close(self) -> None:
        """Flush the buffer if connected, close the WebSocket (1000) and stop; idempotent."""
        if self._closing:
            return
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._options["close_timeout"]):
                    for frame in self.client.take_frames():
                        await ws.send(frame)
            with contextlib.suppress(Exception):
                await ws.close()
        task = self._task
        if task is not None and not task.done():
            if ws is None:
                task.cancel()  # sleeping between attempts, or connecting
            try:
                async with asyncio.timeout(self._options["close_timeout"]):
                    await asyncio.shield(task)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        try:
            while not self._closing:
                code: int | None = None
                reason = ""
                try:
                    code, reason = await self._connect_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # refused, timed out, bad handshake, or a bug
                    self._failed(exc)
                if self._closing:
                    return
                self._next = (self._next + 1) % len(self.urls)
                delay = self.client.connection_lost(code, reason)
                if delay is None:
                    stopped = self.client.stopped
                    logger.error("%s: %s", self.client.address, stopped)
                    if stopped is not None:
                        self._report(stopped)
                    return
                logger.debug("%s: reconnecting in %.3f s", self.client.address, delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            if not self._closing:
                raise
        except Exception as exc:  # pragma: no cover - a bug; report, never crash the loop
            logger.exception("%s: relay connection loop failed", self.client.address)
            self._report(exc)

    async def _connect_once(self) -> tuple[int | None, str]:
        """One connection's life; returns the close code and reason the relay sent."""
        await renew_token(self.client)
        ws = await connect(self.url, **self._options)
        if self._closing:
            await ws.close()
            return None, ""
        self._ws = ws
        writer: asyncio.Task[None] | None = None
        try:
            await ws.send(self.client.connection_made())
            writer = asyncio.get_running_loop().create_task(self._write_loop(ws))
            async for raw in ws:
                if not self._on_frame(raw):
                    await ws.close(1002, "unexpected first frame")
                    break
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self.client.joined = False
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        await ws.wait_closed()
        code = ws.close_code
        reason = ws.close_reason or ""
        if not self._closing:
            level = logging.WARNING if self.failures == 0 else logging.DEBUG
            logger.log(level, "%s: relay connection closed (%s %s); reconnecting",
                       self.client.address, code, reason)
            self.failures += 1
        return code, reason

    def _failed(self, exc: Exception) -> None:
        level = logging.WARNING if self.failures == 0 else logging.DEBUG
        logger.log(level, "%s: cannot reach the relay at %s: %r", self.client.address,
                   self.url, exc)
        self.failures += 1

    async def _write_loop(self, ws: ClientConnection) -> None:
        """Send whatever the client has ready; sleep until :meth:`send` or a welcome."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                frames = self.client.take_frames()
                if not frames:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                for frame in frames:
                    await ws.send(frame)
        except ConnectionClosed:
            pass
        except Exception as exc:  # pragma: no cover - a bug: drop the connection, reconnect
            logger.exception("%s: relay writer failed", self.client.address)
            self._report(exc)
            await ws.close(1011, "writer failed")
        finally:
            self._wakeup = None

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _on_frame(self, raw: str | bytes) -> bool:
        """Handle one frame; False means the connection is unusable (bad first frame)."""
        assert self.listener is not None  # checked by start()
        outcome = receive_frame(self.client, self.listener, raw)
        if outcome is Welcome:
            self.failures = 0
            self.connections += 1
            logger.info("%s: joined room %s at %s", self.client.address, self.client.room,
                        self.url)
            self._wake()  # send what waited for the connection
        return outcome is not None

    def _report(self, exc: Exception) -> None:
        if self.listener is None:
            return
        try:
            self.listener.relay_error(exc)
        except Exception:
            logger.exception("%s: relay error listener failed", self.client.address)


class RelayRaft(InRoom, RaftInterface):
    """A Raft node whose peers are the other members of a relay room, over ``websockets``.

    A plain :class:`~webraft.RaftInterface` holding a :class:`~webraft.transport.node.
    RelayTransport` on a :class:`RelayConnection`. ``url`` is the relay's WebSocket URL
    (``ws://HOST:PORT/ws``), or several relays serving the same rooms (see
    :class:`RelayConnection`); ``room``, ``token``, ``session``, ``buffer`` and ``backoff`` go
    to the :class:`~webraft.transport.relay.RelayClient`; ``connect_options`` override
    :data:`DEFAULT_CONNECT_OPTIONS`. The events are the transport's (see it).

    ``listen=(host, port)`` also accepts direct links (see ``docs/direct-links.md``): the
    node then holds a :class:`~webraft.transport.linked.LinkedTransport` with
    :class:`~webraft.transport.offers.OfferedLinks`, which offers each peer, through the
    relay, its link address (``advertise``, needed when ``host`` is a wildcard such as
    ``0.0.0.0``) and a key only that peer receives. Members that listen too link to each
    other and send through their links, saving the relay's two hops; everything else
    (browser tabs, a peer whose link is down) still goes through the relay, whose room stays
    the truth about who is a peer. ``tls`` runs those links over TLS (see
    :class:`~webraft.transport.tcp.TLS`).
    """

    relay: RelayTransport[RelayConnection]

    def __init__(self, address: str, *, url: str | Sequence[str], room: str,
                 members: Iterable[str] | None = None, storage: Storage | None = None,
                 token: str | TokenProvider | None = None, session: str | None = None,
                 buffer: OutgoingBuffer | None = None, backoff: Backoff | None = None,
                 connect_options: Mapping[str, Any] | None = None,
                 listen: tuple[str, int] | None = None, advertise: str | None = None,
                 tls: TLS | None = None, config: NodeConfig | None = None) -> None:
        self.relay, self.offered, transport = relay_transport(
            address, url=url, room=room, token=token, session=session, buffer=buffer,
            backoff=backoff, connect_options=connect_options, listen=listen,
            advertise=advertise, tls=tls)
        super().__init__(address, members=members, storage=storage, transport=transport,
                         config=config)

    @property
    def client(self) -> RelayClient:
        """The room, this node's address there, the room token and the session secret."""
        return self.relay.client

    @property
    def connection(self) -> RelayConnection:
        return self.relay.connection

    @property
    def links(self) -> DirectLinks | None:
        """The direct links, when ``listen`` was given."""
        return self.offered.links if self.offered is not None else None

    async def listening(self) -> tuple[str, int]:
        """With ``listen``: wait until this node accepts links (see
        :meth:`~webraft.transport.offers.OfferedLinks.listening`)."""
        if self.offered is None:
            raise RuntimeError("start() a node made with listen= first")
        return await self.offered.listening()


def relay_transport(address: str, *, url: str | Sequence[str], room: str,
                    token: str | TokenProvider | None = None,
                    session: str | None = None, buffer: OutgoingBuffer | None = None,
                    backoff: Backoff | None = None,
                    connect_options: Mapping[str, Any] | None = None,
                    listen: tuple[str, int] | None = None, advertise: str | None = None,
                    tls: TLS | None = None
                    ) -> tuple[RelayTransport[RelayConnection], OfferedLinks | None, Transport]:
    """The transport a relay member at ``address`` holds (see :class:`RelayRaft` for the
    arguments): the relay itself, its direct links when ``listen`` is given, and what the
    node holds (the relay, or both combined)."""
    client = RelayClient(room, address, session=session, token=token, buffer=buffer,
                         backoff=backoff)
    relay = RelayTransport(RelayConnection(url, client, connect_options=connect_options))
    if listen is None:
        if tls is not None:
            raise ValueError("tls is for the direct links: give listen= too")
        return relay, None, relay
    offered = OfferedLinks(address, room=room, listen=listen, advertise=advertise, tls=tls)
    return relay, offered, LinkedTransport(relay, [offered])

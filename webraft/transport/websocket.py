"""The CPython transport: a webraft node talking to the relay over ``websockets``.

This is the only module of ``webraft`` that imports ``websockets`` (the browser wheel has none,
so ``import webraft`` never loads it). It is a thin asyncio layer around the sans-I/O
:class:`~webraft.transport.relay.RelayClient`:

* :class:`RelayConnection` keeps one WebSocket to the relay open for as long as it runs: it
  says hello, feeds every frame to the client and hands the resulting events to a
  :class:`RelayListener`, reconnects after any disconnect with jittered exponential back-off,
  and stops for good only on the close codes after which retrying cannot help (4001, 4008,
  4009), reporting them. Outgoing messages are batched: the first write of a loop turn wakes
  the writer task, which runs after the rest of that turn's callbacks and sends everything
  written meanwhile as one frame.
* :class:`RelayRaft` is a :class:`~webraft.transport.node.RelayNode` (the room's members
  as peers, shared with the browser transport) on such a connection.

Nothing raised by the network or by a malformed frame escapes into the event loop: failures
are logged, reported through the node's ``error`` event where they concern the application,
and turned into a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.uri import parse_uri

from ..storage import Storage
from .node import (
    RelayListener,
    RelayNode,
    RelayPeer,
    is_wildcard,
    link_host,
    link_offer,
    receive_frame,
)
from .relay import Backoff, OutgoingBuffer, RelayClient, RelayClosed, Welcome
from .tcp import DirectLinks
from .wire import WS_PATH

__all__ = ["LinkedPeer", "RelayConnection", "RelayListener", "RelayPeer", "RelayRaft"]

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

    :meth:`start` needs a running loop; :meth:`send` may be called at any time after it and
    never blocks (messages wait in the client's bounded buffer while disconnected);
    :meth:`close` sends what is buffered, closes the WebSocket and stops reconnecting.
    ``connect_options`` override :data:`DEFAULT_CONNECT_OPTIONS`.
    """

    def __init__(self, url: str, client: RelayClient, listener: RelayListener, *,
                 connect_options: Mapping[str, Any] | None = None) -> None:
        self.url = relay_url(url)
        self.client = client
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
        outcome = receive_frame(self.client, self.listener, raw)
        if outcome is Welcome:
            self._failures = 0
            self.connections += 1
            logger.info("%s: joined room %s at %s", self.client.address, self.client.room,
                        self.url)
            self._wake()  # send what waited for the connection
        return outcome is not None

    def _report(self, exc: Exception) -> None:
        try:
            self.listener.relay_error(exc)
        except Exception:
            logger.exception("%s: relay error listener failed", self.client.address)


class RelayRaft(RelayNode):
    """A Raft node whose peers are the other members of a relay room, over ``websockets``.

    ``url`` is the relay's WebSocket URL (``ws://HOST:PORT/ws``); see
    :class:`~webraft.transport.node.RelayNode` for ``room``, ``token``, ``session`` and the
    events. ``connect_options`` override :data:`DEFAULT_CONNECT_OPTIONS`.

    ``listen=(host, port)`` also accepts direct links (see ``docs/direct-links.md``): this
    node offers each peer, through the relay, its link address (``advertise``, needed when
    ``host`` is a wildcard such as ``0.0.0.0``) and a key only that peer receives. Members that
    listen too link to each other and send through their links, saving the relay's two hops;
    everything else (browser tabs, a peer whose link is down) still goes through the relay,
    whose room stays the truth about who is a peer.
    """

    def __init__(self, address: str, *, url: str, room: str,
                 members: Iterable[str] | None = None, storage: Storage | None = None,
                 token: str | None = None, session: str | None = None,
                 buffer: OutgoingBuffer | None = None, backoff: Backoff | None = None,
                 connect_options: Mapping[str, Any] | None = None,
                 listen: tuple[str, int] | None = None, advertise: str | None = None) -> None:
        client = RelayClient(room, address, session=session, token=token, buffer=buffer,
                             backoff=backoff)
        super().__init__(client, members=members, storage=storage)
        self.connection = RelayConnection(url, client, self, connect_options=connect_options)
        #: The direct links, when ``listen`` was given.
        self.links: DirectLinks | None = None
        self._listen = listen
        self._advertise = advertise
        self._listening: asyncio.Task[tuple[str, int]] | None = None
        self._unlinking: asyncio.Task[None] | None = None  # closing links: the relay ended us
        self._link_keys: dict[str, str] = {}  # peer -> the key we offered it, while it stays
        if listen is not None:
            if advertise is not None:
                host = link_host(advertise)
                if host is None:
                    raise ValueError(f"advertise must be a host name or an address (no "
                                     f"port), got {advertise!r:.80}")
                self._advertise = host
            elif is_wildcard(listen[0]):
                raise ValueError(f"listening on {listen[0]!r} needs advertise=HOST: the "
                                 "address peers can reach this node at")
            self.links = DirectLinks(address, self, room=room, token=self._link_keys.get)

    def create_instance(self, address: str) -> RelayPeer:
        return LinkedPeer(address, self) if self.links is not None else RelayPeer(address, self)

    def start(self) -> None:
        """Start Raft, the relay connection and, with ``listen``, accepting links."""
        super().start()
        if self.links is not None and self._listening is None and self._listen is not None:
            self._listening = asyncio.get_running_loop().create_task(self._start_links())
            # Reported as an error event already; nobody has to await it.
            self._listening.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def close(self) -> None:
        """Close Raft, the relay connection and the links."""
        await super().close()
        if self._unlinking is not None:
            await asyncio.wait([self._unlinking])
        if self.links is not None:
            await self.links.close()
        if self._listening is not None and not self._listening.done():
            self._listening.cancel()

    async def listening(self) -> tuple[str, int]:
        """With ``listen``: wait until this node accepts links; returns where (raises the
        OSError if it cannot: the relay then still carries everything; RuntimeError if the
        links closed first, with the node or because the relay ended it)."""
        if self._listening is None:
            raise RuntimeError("start() a node made with listen= first")
        return await asyncio.shield(self._listening)

    async def _start_links(self) -> tuple[str, int]:
        assert self.links is not None and self._listen is not None
        try:
            bound = await self.links.listen(*self._listen)
        except OSError as exc:
            logger.error("%s: cannot accept links on %s:%s: %r", self.address, *self._listen,
                         exc)
            self.emit("error", exc)
            raise
        for peer in self.nodes:
            self._offer(peer)
        return bound

    def _offer(self, peer: str) -> None:
        """Tell ``peer`` where and how to link to us (through the relay: only it reads it)."""
        bound = self.links.bound if self.links is not None else None
        if bound is None:
            return  # _start_links offers to every peer once listening
        key = self._link_keys.setdefault(peer, secrets.token_hex(16))
        host = self._advertise if self._advertise is not None else bound[0]
        self.connection.send(peer, link_offer(host, bound[1], key))

    # ------------------------------------------------------------------ RelayListener

    def relay_join(self, address: str) -> None:
        super().relay_join(address)
        self._offer(address)

    def relay_leave(self, address: str) -> None:
        """``address`` left the room: stop dialing it, and void its key and the links proven
        with it, so that whoever held that name meanwhile cannot link as it once the name is
        another member's (a member that comes back is offered a new key)."""
        super().relay_leave(address)
        if self.links is not None and not self._relay_closed:
            self.links.forget(address)
            self._link_keys.pop(address, None)
            self.links.disconnect(address)

    def relay_error(self, exc: Exception) -> None:
        super().relay_error(exc)
        if isinstance(exc, RelayClosed) and self.links is not None and self._unlinking is None:
            # Out of the room for good (replaced by another process under our session, or
            # refused): no longer a member, so no longer linked to any, in either direction.
            logger.warning("%s: the relay ended this member; closing its direct links",
                           self.address)
            self._unlinking = asyncio.get_running_loop().create_task(self.links.close())

    def relay_link_offer(self, sender: str, host: str, port: int, key: str) -> None:
        if self.links is None or self._relay_closed:
            return
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
        self.got_messages(peer, payloads)

    def direct_error(self, exc: Exception) -> None:
        self.emit("error", exc)


class LinkedPeer(RelayPeer):
    """A relay peer that we may also have a direct link to: writes take the link when up."""

    raft: RelayRaft

    def write(self, payload: dict[str, Any]) -> None:
        links = self.raft.links
        if links is None or not links.send(self.address, payload):
            self.raft.connection.send(self.address, payload)

"""The relay process: websockets glue around :mod:`.rooms` and :mod:`.protocol`.

Owns :class:`Relay` and its connections. Of webraft, imports only :mod:`webraft.transport.wire`;
besides the relay's modules, only ``websockets``.

One asyncio task per connection reads frames and routes them synchronously (decode, look up,
enqueue) without ever awaiting another connection. Each connection also owns a writer task that
drains its outbox into the socket. This split is the whole point of the design: a tab that stops
reading (frozen, paused in a debugger, on a dead network) only fills its *own* outbox, which is
bounded in bytes; once full, messages to it are dropped and counted, exactly like a lossy
network, which Raft tolerates by design. Its sender and the rest of the room carry on.

Fairness in the other direction comes from pacing the reader: a connection that sends more
bytes per second than ``byte_rate`` is not read again until it is back under, so its frames
wait in TCP (not in the relay) and are never decoded only to be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from webraft.transport.wire import PROTOCOL_VERSION, WS_PATH, CloseCode

from .config import RelayConfig
from .limits import AcceptErrorFilter, TokenBucket, connection_cap, raise_fd_limit
from .metrics import close_label
from .protocol import (
    PONG,
    Batch,
    Broadcast,
    ErrorCode,
    Frame,
    Hello,
    Ping,
    ProtocolError,
    Send,
    TokenProblem,
    batch_frame,
    check_token,
    error_frame,
    join_frame,
    leave_frame,
    msg_frame,
    parse_frame,
    parse_hello,
    stats_token,
    welcome_frame,
)
from .redis_bus import Claim, RedisBus
from .rooms import JoinOutcome, Registry
from .web import FileResponse, Site, target_path

__all__ = ["Buffered", "Peer", "Relay", "wire_size"]

log = logging.getLogger("relay")

# How often a rate-limited client is told about it: once is informative, every drop is a flood.
RATE_NOTICE_INTERVAL = 1.0
# Frames websockets may hold for a connection that is not being read before it stops reading
# the socket: with pacing, this (times max_message_size) bounds a paced sender's memory.
RECV_QUEUE = 4


def wire_size(frame: str) -> int:
    """Bytes ``frame`` takes in a WebSocket text frame (UTF-8), which is what fills buffers.

    Not ``len(frame)``: ``data`` is forwarded as its sender wrote it, so a character can be up
    to 4 bytes. ``isascii`` is a flag check in CPython, so ASCII frames (all that webraft's
    own clients send) are never encoded here.
    """
    return len(frame) if frame.isascii() else len(frame.encode())


class Buffered:
    """Bytes queued in every outbox of the relay, against ``max_buffered_bytes``.

    Each outbox is bounded, but ten thousand of them at 8 MiB is 80 GiB: this is the bound
    on their sum, so that slow receivers together cannot take the relay's memory.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class Peer:
    """One joined connection: its address, its outbox and its writer task.

    ``deliver`` is synchronous and never blocks: it is called from *other* connections'
    handlers, so it must not wait for this one.
    """

    __slots__ = (
        "_queue",
        "_queued_bytes",
        "_waiter",
        "_writer",
        "address",
        "bucket",
        "buffered",
        "closed",
        "inbound",
        "last_notice",
        "limited",
        "max_outbound_bytes",
        "room",
        "ws",
    )

    def __init__(
        self,
        ws: ServerConnection,
        room: str,
        address: str,
        config: RelayConfig,
        clock: Callable[[], float] = time.monotonic,
        buffered: Buffered | None = None,
    ) -> None:
        self.ws = ws
        self.buffered = Buffered(config.max_buffered_bytes) if buffered is None else buffered
        self.room = room
        self.address = address
        self.bucket = TokenBucket(config.rate, config.burst, clock)
        # The real clock, not ``clock``: the debt is paid by really sleeping.
        self.inbound = TokenBucket(config.byte_rate, config.byte_burst)
        self.last_notice = -RATE_NOTICE_INTERVAL
        self.limited = False  # went over the message rate at least once
        self.max_outbound_bytes = config.max_outbound_bytes
        self.closed = False
        self._queue: deque[tuple[str, int]] = deque()  # frames and their sizes in bytes
        self._queued_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start draining the outbox (frames delivered before this wait in it, in order)."""
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def deliver(self, frame: str) -> bool:
        """Queue ``frame`` for this peer; ``False`` means dropped (see :meth:`offer`)."""
        return self.offer(frame) is None

    def offer(self, frame: str) -> str | None:
        """Queue ``frame`` for this peer, or say why it is dropped: ``"outbound_full"`` (this
        outbox, or it is closed) or ``"memory_full"`` (all outboxes together).

        An empty outbox always accepts one frame, so a message up to max_message_size gets
        through even when max_outbound_bytes is set lower; the relay-wide budget has no such
        allowance (it is at least max_message_size).
        """
        if self.closed:
            return "outbound_full"  # as before: a receiver on its way out takes nothing more
        size = wire_size(frame)
        if self._queued_bytes and self._queued_bytes + size > self.max_outbound_bytes:
            return "outbound_full"
        if self.buffered.used + size > self.buffered.limit:
            return "memory_full"
        self._enqueue(frame, size)
        return None

    def notify(self, frame: str) -> None:
        """Queue a ``join`` or ``leave`` notice past both byte bounds.

        A dropped message is retried by Raft, but a dropped notice would leave this member
        wrong about the room for good. Notices are a few dozen bytes, one per arrival or
        departure, and a member that reads nothing is closed by the keepalive.
        """
        if not self.closed:
            self._enqueue(frame, wire_size(frame))

    def _enqueue(self, frame: str, size: int) -> None:
        self._queue.append((frame, size))
        self._queued_bytes += size
        self.buffered.used += size
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _write_loop(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                while queue:
                    frame, size = queue.popleft()
                    self._queued_bytes -= size
                    self.buffered.used -= size
                    # Awaits only when the socket's write buffer is above websockets'
                    # write_limit; then frames pile up in this outbox, not in the sender.
                    await self.ws.send(frame)
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except ConnectionClosed:
            pass
        finally:
            self._release()

    def _release(self) -> None:
        """Close the outbox and give its bytes back to the relay-wide budget."""
        self.closed = True
        self._queue.clear()
        self.buffered.used -= self._queued_bytes
        self._queued_bytes = 0

    async def stop(self) -> None:
        """End the writer; called when the connection's handler exits."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._release()


class Relay:
    """A relay server bound to ``config.host:config.port``.

    Use as ``async with Relay(config) as relay:`` or call :meth:`start` / :meth:`stop`.
    After :meth:`start`, :attr:`port` is the bound port (useful with ``port=0``).
    ``clock`` drives rate limiting only; tests pass a manual one to make it deterministic.
    """

    def __init__(self, config: RelayConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self.rooms: Registry[Peer] = Registry(config.max_room_size)
        self.port: int | None = None
        self.dropped: Counter[str] = Counter()  # messages, by reason
        self.refused: Counter[str] = Counter()  # connections, by reason
        self.messages_routed = 0
        self.bytes_routed = 0
        self.paced = 0  # times a connection was not read for a while: over its byte_rate
        self.rate_limited_clients = 0  # connections that went over the message rate
        self.closes: Counter[str] = Counter()  # connections ended, by close code label
        self._open = 0
        self.max_connections = config.max_connections  # lowered to the descriptors at start
        self.buffered = Buffered(config.max_buffered_bytes)
        self._per_ip: Counter[str] = Counter()
        self._accept_filter = AcceptErrorFilter()
        self._started = time.monotonic()
        self._server: Server | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # With Redis, other relays serve the same rooms; this relay is the bus's listener.
        self.bus = None if config.redis is None else RedisBus(config.redis, config.redis_ttl, self)
        self._entering: Counter[str] = Counter()  # hellos waiting on Redis, by room
        self.site = Site(
            static_dir=config.static_dir,
            pyodide_dir=config.pyodide_dir,
            dist_dir=config.dist_dir,
            library_dir=config.library_dir,
            allow_origins=config.allow_origins,
            stats=self.stats,
            private_token=None if config.secret is None else stats_token(config.secret),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Raise the descriptor limit, cap connections to it, bind and start accepting."""
        cfg = self.config
        fd_limit = raise_fd_limit()
        self.max_connections = connection_cap(cfg.max_connections, fd_limit)
        log.log(
            logging.WARNING if self.max_connections < cfg.max_connections else logging.INFO,
            "max connections: %d (asked %d; %d file descriptors)",
            self.max_connections,
            cfg.max_connections,
            fd_limit,
        )
        logging.getLogger("asyncio").addFilter(self._accept_filter)
        if self.bus is not None:
            await self.bus.start()
        tls = None
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        self._server = await serve(
            self._handle,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            ssl=tls,
            # None in the list: clients that send no Origin (not browsers) are always allowed.
            origins=[*map(Origin, cfg.allow_origins), None] if cfg.allow_origins else None,
            compression="deflate" if cfg.compression else None,
            # Until the welcome; raised to max_message_size once the hello is accepted.
            max_size=min(cfg.max_hello_size, cfg.max_message_size),
            max_queue=RECV_QUEUE,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            close_timeout=cfg.close_timeout,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        log.info("relay protocol v%d listening on %s", PROTOCOL_VERSION, self.url)

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and wait for the handlers to end."""
        if self._server is None:
            return
        self._server.close(code=CloseCode.GOING_AWAY, reason="going away")
        await self._server.wait_closed()
        for task in list(self._background):
            task.cancel()
        if self.bus is not None:
            await self.bus.stop()
        self._server = None
        logging.getLogger("asyncio").removeFilter(self._accept_filter)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base HTTP URL, e.g. ``http://127.0.0.1:8765/`` (``https://`` with TLS)."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "http" if self.config.tls_cert is None else "https"
        return f"{scheme}://{host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        """WebSocket URL clients connect to (``wss://`` with TLS)."""
        return "ws" + self.url.removeprefix("http").removesuffix("/") + WS_PATH

    def stats(self) -> dict[str, Any]:
        """Counters for ``/stats``: cheap to compute, so taken fresh on every request."""
        return {
            "rooms": self.rooms.room_count,
            "members": self.rooms.member_count,
            "connections": self._open,
            "messages_routed": self.messages_routed,
            "bytes_routed": self.bytes_routed,
            "paced": self.paced,
            "rate_limited_clients": self.rate_limited_clients,
            "buffered_bytes": self.buffered.used,
            "downloads": self.site.streaming,
            "closes": dict(self.closes),
            "dropped": dict(self.dropped),
            "refused": dict(self.refused),
            "uptime": round(time.monotonic() - self._started, 3),
            "version": PROTOCOL_VERSION,
            **({} if self.bus is None else {"redis": {"up": self.bus.up, **self.bus.counts}}),
        }

    # -- HTTP --------------------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if target_path(request.path) == WS_PATH:
            return None  # let websockets perform (or refuse) the upgrade
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return connection.respond(404, f"the WebSocket endpoint is {WS_PATH}\n")
        response = await self.site.respond(request)
        if isinstance(response, FileResponse):
            return await self.site.stream(connection, response)
        return response

    # -- WebSocket ---------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            await self._serve(ws)
        finally:
            self.closes[close_label(ws.close_code)] += 1

    async def _serve(self, ws: ServerConnection) -> None:
        if self._open >= self.max_connections:
            self.refused["server_full"] += 1
            await ws.close(CloseCode.TRY_AGAIN_LATER, "try again later")
            return
        ip = str(ws.remote_address[0]) if ws.remote_address else ""
        per_ip = self.config.max_connections_per_ip
        if per_ip and self._per_ip[ip] >= per_ip:
            self.refused["ip_full"] += 1
            await ws.close(CloseCode.TRY_AGAIN_LATER, "too many connections from your address")
            return
        self._open += 1
        self._per_ip[ip] += 1
        try:
            hello = await self._receive_hello(ws)
            if hello is None:
                return
            admitted = self._admit(ws, hello) if self.bus is None else await self._join_shared(
                ws, hello
            )
            if not isinstance(admitted, Peer):
                code, reason = admitted
                self.refused[reason.replace(" ", "_")] += 1
                await ws.close(code, reason)
                return
            peer = admitted
            peer.start()
            try:
                async for raw in ws:
                    size = len(raw) if isinstance(raw, bytes) else wire_size(raw)
                    wait = peer.inbound.charge(size)
                    if wait > 0:
                        # Not reading is the back-pressure: websockets stops reading the
                        # socket once RECV_QUEUE frames wait, and the sender's TCP stalls.
                        self.paced += 1
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(wait):
                                await ws.wait_closed()  # a close ends the pause early
                    self._on_frame(peer, raw)
            except ConnectionClosed:
                pass
            finally:
                await self._depart(peer)
        finally:
            self._open -= 1
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]

    async def _receive_hello(self, ws: ServerConnection) -> Hello | None:
        """Wait for a valid hello; on anything else close the connection and return ``None``."""
        try:
            async with asyncio.timeout(self.config.hello_timeout):
                raw = await ws.recv()
        except TimeoutError:
            self.refused["hello_timeout"] += 1
            await ws.close(CloseCode.PROTOCOL_ERROR, "hello timeout")
            return None
        except ConnectionClosed:
            return None
        try:
            if isinstance(raw, bytes):
                raise ProtocolError(ErrorCode.BINARY_FRAME, "frames must be text")
            hello = parse_hello(raw)
        except ProtocolError as exc:
            self.refused["bad_hello"] += 1
            await ws.close(CloseCode.PROTOCOL_ERROR, _reason(f"{exc.code}: {exc.message}"))
            return None
        secret = self.config.secret
        if secret is None:
            return hello
        problem = check_token(secret, hello.token or "", hello.room, hello.address, time.time())
        if problem is not None:
            self.refused[problem.replace(" ", "_")] += 1
            code = (CloseCode.TOKEN_EXPIRED if problem is TokenProblem.EXPIRED
                    else CloseCode.UNAUTHORIZED)
            await ws.close(code, str(problem))
            return None
        return hello

    def _admit(self, ws: ServerConnection, hello: Hello) -> Peer | tuple[CloseCode, str]:
        """Seat the connection, or say how to refuse it.

        Synchronous on purpose: the welcome is queued before any other connection can route
        a message to the newcomer, and the room hears ``join`` before any message from it.
        """
        peer = Peer(ws, hello.room, hello.address, self.config, self._clock, self.buffered)
        elsewhere = [] if self.bus is None else self.bus.elsewhere(hello.room)
        moved = hello.address in elsewhere  # taken over from another relay: the room knows it
        if moved:
            elsewhere.remove(hello.address)
        result = self.rooms.join(hello.room, hello.address, hello.session, peer, len(elsewhere))
        if result.outcome is JoinOutcome.ADDRESS_IN_USE:
            return CloseCode.ADDRESS_IN_USE, "address in use"
        if result.outcome is JoinOutcome.ROOM_FULL:
            return CloseCode.ROOM_FULL, "room full"
        # Clients send nothing but the hello before the welcome, so the next frame is parsed
        # with this limit. (websockets reads the attribute before each frame.)
        ws.protocol.max_message_size = self.config.max_message_size
        peer.deliver(welcome_frame(hello.room, hello.address, result.peers + elsewhere))
        if self.bus is not None:
            joined = result.outcome is JoinOutcome.JOINED and not moved
            self.bus.seated(hello.room, hello.address, hello.session, announce=joined)
        if result.outcome is JoinOutcome.REPLACED:
            old = result.replaced
            assert old is not None
            log.debug("room %s: %s reconnected", hello.room, hello.address)
            self._spawn(old.ws.close(CloseCode.REPLACED, "replaced"))
        elif not moved:
            log.debug("room %s: %s joined", hello.room, hello.address)
            frame = join_frame(hello.address)
            for other in self.rooms.others(hello.room, hello.address):
                other.notify(frame)
        return peer

    async def _depart(self, peer: Peer) -> None:
        # Leave the registry first (synchronously) so nobody routes to a peer being torn down.
        others = self.rooms.leave(peer.room, peer.address, peer)
        if others is not None:  # None: replaced by the same session, so not a departure
            log.debug("room %s: %s left", peer.room, peer.address)
            frame = leave_frame(peer.address)
            for other in others:
                other.notify(frame)
            if self.bus is not None:
                self.bus.release(peer.room, peer.address)
        self._leave_bus(peer.room)
        await peer.stop()

    # -- several relays on Redis (see redis_bus) ----------------------------------------------

    async def _join_shared(
        self, ws: ServerConnection, hello: Hello
    ) -> Peer | tuple[CloseCode, str]:
        """Ask Redis for the address (it may be held on another relay), then seat the
        connection by the local rules, as :meth:`_admit` does on a relay of its own."""
        assert self.bus is not None
        room, address = hello.room, hello.address
        self._entering[room] += 1
        try:
            await self.bus.enter(room)
            claim = (
                Claim.LOCAL if self.rooms.get(room, address) is not None
                else await self.bus.claim(room, address, hello.session)
            )
        finally:
            self._entering[room] -= 1
            if not self._entering[room]:
                del self._entering[room]
        if claim is Claim.IN_USE:
            self._leave_bus(room)
            return CloseCode.ADDRESS_IN_USE, "address in use"
        admitted = self._admit(ws, hello)
        if not isinstance(admitted, Peer):
            if claim in (Claim.OWNED, Claim.TAKEN_OVER) and self.rooms.get(room, address) is None:
                self.bus.abandon(room, address, hello.session)
            self._leave_bus(room)
        return admitted

    def _leave_bus(self, room: str) -> None:
        """Stop hearing about ``room`` once no member or hello here needs it."""
        if self.bus is not None and not self.rooms.size(room) and not self._entering[room]:
            self.bus.forget(room)

    def remote_joined(self, room: str, address: str) -> None:
        """A member of ``room`` joined on another relay: tell ours."""
        if self.rooms.get(room, address) is None:
            frame = join_frame(address)
            for other in self.rooms.others(room, address):
                other.notify(frame)

    def remote_left(self, room: str, address: str) -> None:
        """A member of ``room`` on another relay left (or its relay died): tell ours."""
        if self.rooms.get(room, address) is None:
            frame = leave_frame(address)
            for other in self.rooms.others(room, address):
                other.notify(frame)

    def remote_delivery(self, room: str, to: str | None, frame: str, count: int) -> None:
        """A message from another relay (checked by the bus) for ``to``, or for everyone."""
        if to is None:
            for other in self.rooms.others(room, ""):
                self._count(other.offer(frame), frame, 1)
            return
        target = self.rooms.get(room, to)
        if target is None:
            self.dropped["unknown_peer"] += count
            return
        self._count(target.offer(frame), frame, count)

    def claim_lost(self, room: str, address: str, same_session: bool) -> None:
        """Another connection, on another relay, holds ``address`` now: close ours, and tell
        nobody it left (the address lives on)."""
        peer = self.rooms.get(room, address)
        if peer is None:
            return
        self.rooms.leave(room, address, peer)
        code, reason = (
            (CloseCode.REPLACED, "replaced") if same_session
            else (CloseCode.ADDRESS_IN_USE, "address in use")
        )
        self._spawn(peer.ws.close(code, reason))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- routing (synchronous: never awaits another connection) ------------------------------

    def _on_frame(self, peer: Peer, raw: str | bytes) -> None:
        try:
            if isinstance(raw, bytes):
                raise ProtocolError(ErrorCode.BINARY_FRAME, "frames must be text (JSON)")
            frame = parse_frame(raw, max_batch=self.config.max_batch)
        except ProtocolError as exc:
            self.dropped["malformed"] += 1
            if peer.bucket.take(1):
                peer.deliver(error_frame(exc.code, exc.message))
            else:
                self._rate_limited(peer, 0)
            return
        self._dispatch(peer, frame)

    def _dispatch(self, peer: Peer, frame: Frame) -> None:
        match frame:
            case Send(to=to, data=data):
                if not peer.bucket.take(1):
                    self._rate_limited(peer, 1)
                    return
                self._route(peer, to, msg_frame(peer.address, data), 1)
            case Batch(msgs=msgs):
                if not peer.bucket.take(len(msgs) or 1):
                    self._rate_limited(peer, len(msgs))
                    return
                groups: dict[str, list[str]] = {}
                for to, data in msgs:
                    groups.setdefault(to, []).append(data)
                for to, datas in groups.items():
                    self._route(peer, to, batch_frame(peer.address, datas), len(datas))
            case Broadcast(data=data):
                if not peer.bucket.take(1):
                    self._rate_limited(peer, 1)
                    return
                out = msg_frame(peer.address, data, broadcast=True)
                for other in self.rooms.others(peer.room, peer.address):
                    self._count(other.offer(out), out, 1)
                if self.bus is not None:
                    self.bus.broadcast(peer.room, peer.address, out)
            case Ping():
                peer.deliver(PONG)
            case Hello():
                self.dropped["malformed"] += 1
                peer.deliver(error_frame(ErrorCode.ALREADY_JOINED, "hello was already accepted"))

    def _route(self, peer: Peer, to: str, out: str, count: int) -> None:
        target = self.rooms.get(peer.room, to)
        if target is None and self.bus is not None and self.bus.is_remote(peer.room, to):
            if not self.bus.forward(peer.room, to, peer.address, out):
                self.dropped["redis_unavailable"] += count
            return
        if target is None:
            self.dropped["unknown_peer"] += count
            peer.deliver(
                error_frame(ErrorCode.UNKNOWN_PEER, f"no {to!r} in room {peer.room!r}", to=to)
            )
            return
        self._count(target.offer(out), out, count)

    def _count(self, dropped: str | None, out: str, count: int) -> None:
        if dropped is None:
            self.messages_routed += count
            self.bytes_routed += wire_size(out)
        else:
            self.dropped[dropped] += count

    def _rate_limited(self, peer: Peer, count: int) -> None:
        if not peer.limited:
            peer.limited = True
            self.rate_limited_clients += 1
        if count:
            self.dropped["rate_limited"] += count
        now = self._clock()
        if now - peer.last_notice >= RATE_NOTICE_INTERVAL:
            peer.last_notice = now
            peer.deliver(
                error_frame(
                    ErrorCode.RATE_LIMITED,
                    f"over {self.config.rate:g} messages/s; messages are being dropped",
                )
            )


def _reason(text: str) -> str:
    """Close reasons are limited to 123 bytes by RFC 6455."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."

"""A small Redis client: the RESP2 wire format and one pipelined asyncio connection.

Owns :class:`RespParser`, :func:`encode_command`, :class:`RedisConnection` and
:func:`parse_redis_url`. Imports only the standard library: nothing of webraft or of the relay.

Why our own client rather than redis-py: the relay routes synchronously (a frame is decoded,
looked up and queued without awaiting anything, see :mod:`.server`), so a message for a member
on another relay must be *queued* for Redis without awaiting its reply. Here
:meth:`RedisConnection.send` appends the command to a buffer flushed once per loop turn (many
``SPUBLISH`` in one write, replies counted as they come back), which is what the relay needs
and what redis-py's awaitable commands are not. The relay uses a dozen commands, all of them
plain RESP2 arrays of bulk strings, and sharded pub/sub (``SSUBSCRIBE``, Redis >= 7) is only
two more of them; owning the reconnect policy also keeps Redis outages inside the relay's
own logic. Everything read from Redis is untrusted: malformed replies raise
:class:`RespProtocolError`, never anything else, and sizes are bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = [
    "RedisConnection",
    "RedisError",
    "RedisUnavailable",
    "RedisUrl",
    "Reply",
    "RespParser",
    "RespProtocolError",
    "encode_command",
    "parse_redis_url",
]

log = logging.getLogger("relay.redis")

#: Largest bulk string or array accepted from Redis: far above any frame the relay publishes
#: (1 MiB by default), far below what would hurt the relay's memory.
MAX_BULK: Final = 64 << 20
MAX_ARRAY: Final = 1 << 20
MAX_DEPTH: Final = 8
#: Bytes of commands waiting to be written before :meth:`RedisConnection.send` refuses more:
#: a stalled Redis must cost the relay a bounded amount of memory, like a stalled client.
MAX_PENDING_WRITE: Final = 32 << 20


class RedisError(Exception):
    """An error reply (``-ERR ...``): the command was refused, the connection is fine."""


class RespProtocolError(Exception):
    """What Redis sent is not RESP2 (or is beyond the size bounds): the connection is dropped."""


class RedisUnavailable(Exception):
    """The connection is closed or its write buffer is full; the command was not sent."""


Reply = bytes | int | None | list["Reply"] | RedisError


class _Incomplete(Exception):
    pass


class RespParser:
    """Turns bytes from Redis into replies (sans-I/O: fed by :meth:`feed`, drained by
    :meth:`replies`)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def replies(self) -> list[Reply]:
        """Every complete reply fed so far, in order; raises RespProtocolError on garbage."""
        out: list[Reply] = []
        while True:
            start = self._pos
            try:
                out.append(self._reply(0))
            except _Incomplete:
                self._pos = start
                break
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        return out

    def _line(self) -> bytes:
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            if len(self._buf) - self._pos > 64 * 1024:
                raise RespProtocolError("a RESP line longer than 64 KiB")
            raise _Incomplete
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 2
        return line

    def _int(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RespProtocolError(f"not an integer: {text[:40]!r}") from None

    def _reply(self, depth: int) -> Reply:
        if depth > MAX_DEPTH:
            raise RespProtocolError("RESP arrays nested too deep")
        line = self._line()
        if not line:
            raise RespProtocolError("empty RESP line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return self._int(rest)
        if kind == b"$":
            size = self._int(rest)
            if size == -1:
                return None
            if not 0 <= size <= MAX_BULK:
                raise RespProtocolError(f"bulk string of {size} bytes")
            end = self._pos + size
            if len(self._buf) < end + 2:
                raise _Incomplete
            if self._buf[end : end + 2] != b"\r\n":
                raise RespProtocolError("bulk string not followed by CRLF")
            data = bytes(self._buf[self._pos : end])
            self._pos = end + 2
            return data
        if kind == b"*":
            count = self._int(rest)
            if count == -1:
                return None
            if not 0 <= count <= MAX_ARRAY:
                raise RespProtocolError(f"array of {count} items")
            return [self._reply(depth + 1) for _ in range(count)]
        raise RespProtocolError(f"unknown RESP type {kind!r}")


def encode_command(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class RedisUrl:
    """Where Redis is: ``redis://[[user]:password@]host[:port][/db]``."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisUrl:
    """Parse a ``redis://`` URL; raises ValueError for anything else (TLS ``rediss://`` is not
    supported: run Redis on a private network, or tunnel it)."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a redis:// URL: {url!r}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database in a Redis URL is a number: {url!r}")
    return RedisUrl(
        host=parts.hostname,
        port=parts.port or 6379,
        db=int(path or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class RedisConnection(asyncio.Protocol):
    """One pipelined connection to Redis.

    Commands are written in order and Redis answers in order, so each reply resolves the
    oldest waiting slot: a future for :meth:`call`, nothing for :meth:`send` (an error reply is
    logged). Writes made during one loop turn leave in one ``write``. With ``on_push`` the
    connection is a subscriber: every reply (``ssubscribe`` confirmations and ``smessage``
    pushes) goes to it instead, and only :meth:`send` may be used.
    """

    def __init__(self, on_push: Callable[[Reply], None] | None = None) -> None:
        self._on_push = on_push
        self._parser = RespParser()
        self._waiting: deque[asyncio.Future[Reply] | None] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._transport: asyncio.Transport | None = None
        self._flush_scheduled = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls, url: RedisUrl, *, timeout: float, on_push: Callable[[Reply], None] | None = None
    ) -> RedisConnection:
        """Connect, authenticate and select the database (raises OSError, TimeoutError,
        RedisError)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(lambda: cls(), url.host, url.port)
            try:
                if url.password is not None:
                    auth = [url.username, url.password] if url.username else [url.password]
                    _check(await conn.call("AUTH", *auth))
                if url.db:
                    _check(await conn.call("SELECT", url.db))
            except BaseException:
                conn.close()
                raise
        conn._on_push = on_push
        return conn

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            replies = self._parser.replies()
        except RespProtocolError as exc:
            log.warning("redis: malformed reply, dropping the connection: %s", exc)
            self.close()
            return
        for reply in replies:
            if self._on_push is not None:
                self._on_push(reply)
                continue
            if not self._waiting:
                log.warning("redis: a reply nobody asked for; dropping the connection")
                self.close()
                return
            slot = self._waiting.popleft()
            if slot is None:
                if isinstance(reply, RedisError):
                    log.warning("redis: command refused: %s", reply)
            elif not slot.done():
                slot.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        while self._waiting:
            slot = self._waiting.popleft()
            if slot is not None and not slot.done():
                slot.set_exception(RedisUnavailable("the Redis connection was lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- commands -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, *args: bytes | str | int) -> None:
        """Queue a command whose reply nobody waits for; raises RedisUnavailable when it cannot
        be sent (closed, or :data:`MAX_PENDING_WRITE` already waiting)."""
        self._write(encode_command(*args))
        if self._on_push is None:
            self._waiting.append(None)

    async def call(self, *args: bytes | str | int) -> Reply:
        """Send a command and wait for its reply (a RedisError reply is returned, not raised)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._write(encode_command(*args))
        self._waiting.append(future)
        return await future

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise RedisUnavailable("not connected to Redis")
        if self._out_bytes + transport.get_write_buffer_size() > MAX_PENDING_WRITE:
            raise RedisUnavailable("Redis is not keeping up")
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is not None and self._out:
            self._transport.write(b"".join(self._out))
        self._out.clear()
        self._out_bytes = 0

    def close(self) -> None:
        """Close after writing what is queued (asyncio's close drains its own buffer)."""
        if self._transport is not None:
            self._flush()
            self._transport.close()


def _check(reply: Reply) -> Reply:
    if isinstance(reply, RedisError):
        raise reply
    return reply

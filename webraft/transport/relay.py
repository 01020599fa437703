"""The relay protocol from a node's side, without I/O (no sockets, no asyncio, no websockets).

Owns :class:`RelayClient`, its frames and events, :class:`OutgoingBuffer` and :class:`Backoff`.
Imports :mod:`.wire` and :mod:`webraft.errors` only; never the runtime, asyncio, ``websockets``
or ``js``.

What both ends of the relay share (version, names, close codes, strict JSON) is not here but
in :mod:`webraft.transport.wire`; this module owns what only a client does with it.

Browser tabs cannot accept connections, so nodes reach each other through the WebSocket relay
described in ``docs/relay-protocol.md``. Everything about that conversation that does not
depend on *how* bytes move lives here, so that the CPython transport
(:mod:`webraft.transport.websocket`) and a browser transport (Pyodide, on the page's own
``WebSocket``) drive exactly the same code, in the way python-websockets' I/O layers drive its
sans-I/O protocol:

* :func:`hello_frame` builds the first frame of every connection;
* :func:`parse_frame` turns a relay frame into one small typed event (:class:`Welcome`,
  :class:`Joined`, :class:`Left`, :class:`Message`, :class:`Batch`, :class:`Rejected`,
  :class:`Pong`). Relay frames are untrusted input: anything malformed raises
  :class:`FrameError` (a :class:`~webraft.errors.MessageError`), never anything else;
* :class:`OutgoingBuffer` collects the payloads written during one turn of the event loop and
  turns them into as few frames as possible: **one** ``batch`` frame (or a ``send`` frame for a
  single message). The relay's cost is per frame, so this is what makes it fast. While
  disconnected the buffer keeps collecting, bounded in messages and bytes; beyond that it drops
  the oldest and counts the drops (Raft retransmits whatever matters);
* :class:`Backoff` is the jittered exponential reconnect delay;
* :class:`RelayClient` ties them together for one node across all its connections: the hello
  with a session kept for the client's life (so a reconnect takes its own address back), the
  check that a connection starts with the right welcome, and what a close code means
  (:func:`should_retry`).
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ..errors import MessageError, WebraftError
from .wire import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_FRAME_BYTES,
    MAX_NAME_LENGTH,
    PROTOCOL_VERSION,
    TERMINAL_CLOSES,
    CloseCode,
    check_name,
    dumps,
    is_name,
    is_version,
    loads,
)

__all__ = [
    "Backoff",
    "Batch",
    "Event",
    "FrameError",
    "Joined",
    "Left",
    "Message",
    "MessageTooLarge",
    "OutgoingBuffer",
    "Pong",
    "Rejected",
    "RelayClient",
    "RelayClosed",
    "RelayRejected",
    "TokenProvider",
    "TransportError",
    "Welcome",
    "hello_frame",
    "parse_frame",
    "ping_frame",
    "should_retry",
]


def should_retry(code: int | None) -> bool:
    """Whether to reconnect after a close with ``code`` (None: no close frame, or no connection
    at all); see :data:`~webraft.transport.wire.TERMINAL_CLOSES`."""
    return code not in TERMINAL_CLOSES


# ---------------------------------------------------------------------------------- errors


class TransportError(WebraftError):
    """Base class of the transport's errors (all are also :class:`WebraftError`\\ s)."""


class FrameError(TransportError, MessageError):
    """A frame from the relay is malformed or out of place; it was ignored.

    ``code`` says what was wrong, in the relay's own vocabulary where one exists
    (``bad_json``, ``not_object``, ``unknown_type``, ``bad_field``, ``binary_frame``,
    ``unsupported_version``) plus ``unexpected_frame`` for a frame that is well formed but not
    allowed at this point of the conversation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class MessageTooLarge(TransportError, ValueError):
    """A payload cannot fit in one relay frame; it was not sent (the relay would disconnect
    a client that sent it)."""


class RelayRejected(TransportError):
    """The relay refused something this node sent (an ``error`` frame); the connection lives."""

    def __init__(self, code: str, message: str, to: str | None = None) -> None:
        super().__init__(f"relay rejected a frame: {code}: {message}")
        self.code = code
        self.to = to


class RelayClosed(TransportError):
    """The relay closed the connection for good (4001, 4008 or 4009): no more reconnecting."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"relay closed the connection with {code} ({reason or 'no reason'})"
                         "; not reconnecting")
        self.code = code
        self.reason = reason


# ---------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Welcome:
    """The hello was accepted; ``peers`` are the other members of the room right now."""

    room: str
    address: str
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Joined:
    """``address`` entered the room."""

    address: str


@dataclass(frozen=True, slots=True)
class Left:
    """``address`` left the room (a reconnect with the same session is not a leave)."""

    address: str


@dataclass(frozen=True, slots=True)
class Message:
    """One message from ``sender`` (stamped by the relay, so it cannot be forged)."""

    sender: str
    data: Any
    broadcast: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """Several messages from ``sender`` that travelled in one frame, in sending order."""

    sender: str
    messages: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    """The relay did not accept something we sent (``unknown_peer``, ``rate_limited``, ...)."""

    code: str
    message: str
    to: str | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to :func:`ping_frame`."""


Event = Welcome | Joined | Left | Message | Batch | Rejected | Pong


# ---------------------------------------------------------------------------------- frames


_MISSING: Final = object()


def hello_frame(room: str, address: str, session: str = "", token: str | None = None) -> str:
    """The first frame of a connection: join ``room`` as ``address``."""
    frame: dict[str, Any] = {"type": "hello", "v": PROTOCOL_VERSION,
                             "room": check_name(room, "room"),
                             "address": check_name(address, "address")}
    if session:
        frame["session"] = session
    if token is not None:
        frame["token"] = token
    return dumps(frame)


def ping_frame() -> str:
    """An application-level ping; the relay answers with ``pong``."""
    return '{"type":"ping"}'


def _name(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not is_name(value):
        raise FrameError("bad_field", f"{key!r} must be a room/address name, got {value!r:.60}")
    return value


def _field(obj: dict[str, Any], key: str) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise FrameError("bad_field", f"{obj.get('type')} frame has no {key!r}")
    return value


def parse_frame(text: str | bytes) -> Event:
    """Validate one frame received from the relay and return its event.

    Raises :class:`FrameError` for anything else: a binary frame, text that is not a JSON
    object, an unknown ``type``, a missing or mistyped field. Fields the protocol does not
    define are ignored, as the protocol asks.
    """
    if not isinstance(text, str):
        raise FrameError("binary_frame", "relay frames are text")
    try:
        obj = loads(text)
    except ValueError as exc:
        raise FrameError("bad_json", f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError("not_object", "frame must be a JSON object")
    kind = obj.get("type")
    if kind == "msg":
        return Message(_name(obj, "from"), _field(obj, "data"), obj.get("broadcast") is True)
    if kind == "batch":
        msgs = _field(obj, "msgs")
        if not isinstance(msgs, list):
            raise FrameError("bad_field", "'msgs' must be a list")
        return Batch(_name(obj, "from"), tuple(msgs))
    if kind == "join":
        return Joined(_name(obj, "address"))
    if kind == "leave":
        return Left(_name(obj, "address"))
    if kind == "welcome":
        v = obj.get("v")
        if not is_version(v):
            raise FrameError("unsupported_version",
                             f"welcome is for protocol {v!r:.20}, we speak {PROTOCOL_VERSION}")
        peers = _field(obj, "peers")
        if not isinstance(peers, list):
            raise FrameError("bad_field", "'peers' must be a list")
        names = tuple(dict.fromkeys(_name({"peer": p}, "peer") for p in peers))
        return Welcome(_name(obj, "room"), _name(obj, "address"), names)
    if kind == "error":
        code, message, to = obj.get("code"), obj.get("message", ""), obj.get("to")
        if not isinstance(code, str) or not isinstance(message, str):
            raise FrameError("bad_field", "error frame needs string 'code' and 'message'")
        return Rejected(code, message, to if isinstance(to, str) else None)
    if kind == "pong":
        return Pong()
    raise FrameError("unknown_type", f"unknown frame type {kind!r:.40}")


# ---------------------------------------------------------------------------------- sending

# A queued message is kept as the inside of its JSON object, '"to":"b","data":...', so that it
# can become either a send frame or a batch entry without being encoded again.
_SEND_HEAD: Final = '{"type":"send",'
_BATCH_HEAD: Final = '{"type":"batch","msgs":['
_BATCH_TAIL: Final = "]}"

#: What ``token=`` may be instead of a string: called before each connection, it returns the
#: token, or an awaitable of it (a browser's Promise included).
TokenProvider = Callable[[], Any]
_ENTRY_SEPARATOR: Final = '},{"to":"'


class OutgoingBuffer:
    """Messages waiting to be sent, turned into as few frames as the relay allows.

    ``add`` encodes a payload at once (so a payload that is not JSON fails the caller, as a
    socket would, and sizes are exact); ``take_frames`` empties the buffer into frames: a
    ``send`` frame when only one message waits, otherwise ``batch`` frames of at most
    ``max_batch`` messages and ``max_frame_bytes`` bytes each, in order.

    Bounds: at most ``max_messages`` messages and ``max_bytes`` bytes wait at any time. These
    matter while the connection is down (or the socket is backed up); a message that would
    exceed them pushes out the oldest ones, which are counted in :attr:`dropped`. Raft treats
    that as message loss and retransmits what still matters, which is also why dropping the
    *oldest* is right: newer messages carry newer terms and commit indexes.

    ``max_frame_bytes`` and ``max_batch`` must not exceed the relay's ``--max-message-size``
    and ``--max-batch`` (the defaults match the relay's defaults).
    """

    def __init__(self, *, max_batch: int = DEFAULT_MAX_BATCH,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 max_messages: int = 10_000, max_bytes: int = 8 << 20) -> None:
        if max_batch < 1 or max_messages < 1:
            raise ValueError("max_batch and max_messages must be at least 1")
        if max_frame_bytes < 64:
            raise ValueError("max_frame_bytes must be at least 64")
        if max_bytes < max_frame_bytes:
            raise ValueError("max_bytes must be at least max_frame_bytes (one full frame)")
        self.max_batch = max_batch
        self.max_frame_bytes = max_frame_bytes
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        #: Messages pushed out by the bounds since this buffer was created.
        self.dropped = 0
        self._items: deque[str] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        """Bytes of JSON waiting (the messages' own encoding, without frame envelopes)."""
        return self._bytes

    def add(self, to: str, data: Any) -> None:
        """Queue ``data`` for ``to``.

        Raises ValueError if ``to`` is not a name the relay accepts (the relay would refuse
        the whole frame, losing the other messages in it) or ``data`` is not strict JSON, and
        :class:`MessageTooLarge` if it cannot fit in one frame (nothing is queued then).
        """
        if not is_name(to):
            raise ValueError(f"cannot send to {to!r:.60}: not a relay address")
        item = '"to":"' + to + '","data":' + dumps(data)
        size = len(item)
        if len(_SEND_HEAD) + size + 1 > self.max_frame_bytes:
            raise MessageTooLarge(f"a {size}-byte message to {to!r} does not fit in a "
                                  f"{self.max_frame_bytes}-byte relay frame")
        items = self._items
        items.append(item)
        self._bytes += size
        while len(items) > self.max_messages or self._bytes > self.max_bytes:
            self._bytes -= len(items.popleft())
            self.dropped += 1

    def clear(self) -> None:
        """Forget everything waiting (not counted as dropped)."""
        self._items.clear()
        self._bytes = 0

    def take_frames(self) -> list[str]:
        """Empty the buffer into frames, in order (an empty list if nothing waits)."""
        items = self._items
        if not items:
            return []
        if len(items) == 1:
            frames = [_SEND_HEAD + items[0] + "}"]
        else:
            frames = []
            chunk: list[str] = []
            size = len(_BATCH_HEAD) + len(_BATCH_TAIL)
            for item in items:
                cost = len(item) + 3  # '{' item '}' and a comma
                if _ENTRY_SEPARATOR in item:
                    # Alone in a send frame: in a batch it would look like two entries to
                    # the relay's fast path, which would then decode the frame in full.
                    if chunk:
                        frames.append(_frame(chunk))
                        chunk = []
                        size = len(_BATCH_HEAD) + len(_BATCH_TAIL)
                    frames.append(_frame([item]))
                    continue
                if chunk and (len(chunk) == self.max_batch
                              or size + cost > self.max_frame_bytes):
                    frames.append(_frame(chunk))
                    chunk = []
                    size = len(_BATCH_HEAD) + len(_BATCH_TAIL)
                chunk.append(item)
                size += cost
            frames.append(_frame(chunk))
        items.clear()
        self._bytes = 0
        return frames


def _frame(chunk: list[str]) -> str:
    if len(chunk) == 1:
        return _SEND_HEAD + chunk[0] + "}"
    return _BATCH_HEAD + "{" + "},{".join(chunk) + "}" + _BATCH_TAIL


# ---------------------------------------------------------------------------------- reconnecting


class Backoff:
    """Reconnect delays: ``initial`` doubling (``factor``) up to ``maximum``, each randomized
    by ±``jitter`` (a fraction) so that the nodes of a room do not all reconnect at once
    after the relay restarts."""

    def __init__(self, initial: float = 0.05, maximum: float = 5.0, *, factor: float = 2.0,
                 jitter: float = 0.5, rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        if factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need factor >= 1 and 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._base = initial

    def next(self) -> float:
        """The delay before the next attempt; each call without :meth:`reset` waits longer."""
        base = self._base
        self._base = min(base * self.factor, self.maximum)
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """A connection succeeded: the next failure starts again from ``initial``."""
        self._base = self.initial


class RelayClient:
    """One node's side of the relay protocol, across all the connections it opens.

    The I/O layer calls :meth:`connection_made` when a WebSocket opens (and sends the hello it
    returns), :meth:`receive` for every frame, :meth:`take_frames` to get what to send, and
    :meth:`connection_lost` when the WebSocket closes or cannot be opened (which says whether
    and when to try again). :meth:`send` may be called at any time: messages wait in the
    buffer until a connection is joined.

    ``session`` defaults to a random secret kept for the life of this object: reconnecting
    with it makes the relay hand our address back to us (closing a stale connection of ours
    with 4009) instead of refusing it with 4008. ``token`` is the room's access token, if the
    relay requires one: a string, or a provider (a callable returning the token, or an
    awaitable of it) that the I/O layer asks before each connection (see :attr:`token_provider`).
    With a provider, a token the relay found expired (4002) leads to a reconnect with a fresh
    one instead of a stop.
    """

    def __init__(self, room: str, address: str, *, session: str | None = None,
                 token: str | TokenProvider | None = None,
                 buffer: OutgoingBuffer | None = None,
                 backoff: Backoff | None = None) -> None:
        self.room = check_name(room, "room")
        self.address = check_name(address, "address")
        if session is None:
            session = os.urandom(16).hex()
        if not isinstance(session, str) or len(session) > MAX_NAME_LENGTH:
            raise ValueError(f"session must be a string of at most {MAX_NAME_LENGTH} characters")
        #: Asked for a fresh :attr:`token` before each connection, when given.
        self.token_provider: TokenProvider | None = None
        if callable(token):
            self.token_provider, token = token, None
        elif token is not None and not isinstance(token, str):
            raise ValueError("token must be a string or a callable returning one")
        self.session = session
        #: The token the next hello carries.
        self.token: str | None = token
        self.buffer = buffer if buffer is not None else OutgoingBuffer()
        self.backoff = backoff if backoff is not None else Backoff()
        #: True once the current connection got its welcome, until it is lost.
        self.joined = False
        #: Why this client stopped reconnecting, once it did.
        self.stopped: RelayClosed | None = None

    def connection_made(self) -> str:
        """A WebSocket to the relay is open: returns the hello to send as its first frame."""
        self.joined = False
        return hello_frame(self.room, self.address, self.session, self.token)

    def receive(self, text: str | bytes) -> Event:
        """Parse a frame of the current connection; raises :class:`FrameError`.

        The first frame must be our welcome: a :class:`FrameError` while :attr:`joined` is
        still false means the connection is unusable and should be closed.
        """
        event = parse_frame(text)
        if not self.joined:
            if not isinstance(event, Welcome):
                raise FrameError("unexpected_frame",
                                 f"expected a welcome first, got {type(event).__name__}")
            if event.room != self.room or event.address != self.address:
                raise FrameError("unexpected_frame", f"welcome to {event.room}/{event.address}"
                                 f", but we said hello to {self.room}/{self.address}")
            self.joined = True
            self.backoff.reset()
        elif isinstance(event, Welcome):
            raise FrameError("unexpected_frame", "a second welcome on one connection")
        return event

    def send(self, to: str, data: Any) -> None:
        """Queue ``data`` for ``to`` (see :meth:`OutgoingBuffer.add` for what it raises)."""
        self.buffer.add(to, data)

    def take_frames(self) -> list[str]:
        """Frames to send now: everything buffered, once the connection is joined."""
        return self.buffer.take_frames() if self.joined else []

    def connection_lost(self, code: int | None = None, reason: str = "") -> float | None:
        """The connection closed with ``code`` (None: abruptly, or it never opened).

        Returns the seconds to wait before reconnecting, or None when reconnecting cannot help
        (then :attr:`stopped` holds the :class:`RelayClosed` to report).
        """
        self.joined = False
        if self.stopped is not None:
            return None
        renewable = code == CloseCode.TOKEN_EXPIRED and self.token_provider is not None
        if not should_retry(code) and not renewable:
            self.stopped = RelayClosed(code, reason)
            return None
        return self.backoff.next()

    def renew_token(self, token: object) -> None:
        """Take what :attr:`token_provider` gave for the next hello; ValueError if it is not
        a string (the I/O layer then counts the attempt as failed and backs off)."""
        if not isinstance(token, str):
            raise ValueError(f"the token provider returned {type(token).__name__}, not a string")
        self.token = token

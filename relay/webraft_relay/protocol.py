"""The relay's side of protocol v1: the frames it reads and writes, and their validation.

Owns the relay's frames, their parsing and its tokens. Of webraft, imports only
:mod:`webraft.transport.wire`; no sockets, no asyncio.

Pure (no sockets, no asyncio), so the format can be read and tested in one place. What the
relay and its clients share (version, path, names, close codes, strict JSON) is imported from
:mod:`webraft.transport.wire`, never redefined here; ``docs/relay-protocol.md`` is the prose
version of both.

Every frame is one JSON object in one WebSocket *text* frame, with a ``type`` field:

client -> relay
    ``hello`` (first frame, exactly once), ``send``, ``broadcast``, ``batch``, ``ping``
relay -> client
    ``welcome``, ``join``, ``leave``, ``msg``, ``batch``, ``pong``, ``error``

The relay never looks inside ``data``: it only needs it to be one JSON value, and it forwards
that value's text. Frames laid out exactly as webraft's transports write them (compact, keys in
the order ``type``, ``to``, ``data``) take a fast path that checks each ``data`` and forwards it
verbatim, without building or re-encoding the frame; anything else is decoded in full.
Unknown extra fields are ignored, so later minor additions stay compatible; a breaking change
bumps :data:`~webraft.transport.wire.PROTOCOL_VERSION`.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from typing import Any, Final

from webraft.transport.wire import (
    DECODER,
    ENCODER,
    MAX_NAME_LENGTH,
    NAME,
    NAME_RULE,
    PROTOCOL_VERSION,
    is_name,
    is_version,
    loads,
)

__all__ = [
    "PONG",
    "Batch",
    "Broadcast",
    "ErrorCode",
    "Frame",
    "Hello",
    "Ping",
    "ProtocolError",
    "Send",
    "TokenProblem",
    "batch_frame",
    "check_token",
    "encode",
    "error_frame",
    "issue_token",
    "join_frame",
    "leave_frame",
    "msg_frame",
    "parse_frame",
    "parse_hello",
    "room_token",
    "stats_token",
    "welcome_frame",
]


class ErrorCode(StrEnum):
    """``code`` values of ``error`` frames, sent after the hello (the connection stays open)."""

    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_TYPE = "unknown_type"
    BAD_FIELD = "bad_field"
    BINARY_FRAME = "binary_frame"
    ALREADY_JOINED = "already_joined"
    UNKNOWN_PEER = "unknown_peer"
    RATE_LIMITED = "rate_limited"
    # Only used to reject a hello; the relay closes with 4000 and this as the reason prefix.
    BAD_HELLO = "bad_hello"
    UNSUPPORTED_VERSION = "unsupported_version"


class ProtocolError(Exception):
    """A frame the relay cannot accept; ``code`` is an :class:`ErrorCode` value."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of a connection: which room to join and under which address."""

    room: str
    address: str
    session: str
    token: str | None


@dataclass(frozen=True, slots=True)
class Send:
    """One message to one member of the sender's room (``data``: its JSON text)."""

    to: str
    data: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One message to every other member of the sender's room (``data``: its JSON text)."""

    data: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Many addressed messages in one frame: ``(to, data text)`` pairs in sending order."""

    msgs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Ping:
    """Application-level liveness probe, answered with ``pong`` (never rate limited)."""


Frame = Hello | Send | Broadcast | Batch | Ping

_MISSING: Final = object()


def encode(frame: dict[str, Any]) -> str:
    """Serialise an outgoing frame compactly (one place, so every frame uses the same codec)."""
    return ENCODER.encode(frame)


def _decode_object(text: str) -> dict[str, Any]:
    try:
        value = loads(text)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.NOT_OBJECT, "frame must be a JSON object")
    return value


def _name(obj: dict[str, Any], key: str, code: ErrorCode = ErrorCode.BAD_FIELD) -> str:
    value = obj.get(key)
    if not is_name(value):
        raise ProtocolError(code, f"{key!r} must be {NAME_RULE}")
    return value


def parse_hello(text: str) -> Hello:
    """Validate the first frame of a connection.

    Raises :class:`ProtocolError` for anything that is not a well-formed v1 hello; the caller
    closes the connection with :attr:`CloseCode.PROTOCOL_ERROR` because nothing has been agreed yet.
    """
    obj = _decode_object(text)
    if obj.get("type") != "hello":
        raise ProtocolError(ErrorCode.BAD_HELLO, "first frame must be a hello")
    if not is_version(obj.get("v")):
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"unsupported protocol version {obj.get('v')!r}; this relay speaks {PROTOCOL_VERSION}",
        )
    room = _name(obj, "room", ErrorCode.BAD_HELLO)
    address = _name(obj, "address", ErrorCode.BAD_HELLO)
    session = obj.get("session", "")
    if not isinstance(session, str) or len(session) > MAX_NAME_LENGTH:
        raise ProtocolError(
            ErrorCode.BAD_HELLO, f"'session' must be a string of at most {MAX_NAME_LENGTH} chars"
        )
    token = obj.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError(ErrorCode.BAD_HELLO, "'token' must be a string")
    return Hello(room=room, address=address, session=session, token=token)


def _data(obj: dict[str, Any], where: str) -> str:
    data = obj.get("data", _MISSING)
    if data is _MISSING:
        raise ProtocolError(ErrorCode.BAD_FIELD, f"{where} needs a 'data' field")
    try:
        return ENCODER.encode(data)
    except RecursionError:
        # Nesting that decoded just below the interpreter's limit but cannot be encoded
        # again (numbers beyond floats were refused while decoding): garbage.
        raise ProtocolError(ErrorCode.BAD_JSON, f"{where} data cannot be forwarded") from None


def parse_frame(text: str, *, max_batch: int) -> Frame:
    """Validate a frame received after the hello.

    A ``hello`` is returned as such (the caller answers ``already_joined``) so that this
    function stays a pure description of the format.
    """
    fast = _parse_compact(text, max_batch)
    if fast is not None:
        return fast
    obj = _decode_object(text)
    kind = obj.get("type")
    if kind == "send":
        return Send(to=_name(obj, "to"), data=_data(obj, "send"))
    if kind == "batch":
        msgs = obj.get("msgs")
        if not isinstance(msgs, list):
            raise ProtocolError(ErrorCode.BAD_FIELD, "'msgs' must be a list")
        if len(msgs) > max_batch:
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"batch of {len(msgs)} messages; at most {max_batch}"
            )
        pairs = []
        for item in msgs:
            if not isinstance(item, dict):
                raise ProtocolError(ErrorCode.BAD_FIELD, "each batch entry must be an object")
            pairs.append((_name(item, "to"), _data(item, "batch entry")))
        return Batch(msgs=tuple(pairs))
    if kind == "broadcast":
        return Broadcast(data=_data(obj, "broadcast"))
    if kind == "ping":
        return Ping()
    if kind == "hello":
        return parse_hello(text)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind!r}")


# The layout of the send and batch frames webraft's transports write.
_SEND_HEAD: Final = '{"type":"send","to":"'
_BATCH_HEAD: Final = '{"type":"batch","msgs":['
_ENTRY_HEAD: Final = '{"to":"'
_DATA_KEY: Final = '","data":'


def _parse_compact(text: str, max_batch: int) -> Send | Batch | None:
    """The fast path: a send or batch frame in exactly the layout webraft writes, with each
    ``data`` checked to be one JSON value and kept as the text it was sent as.

    None means "not in that layout" (or not valid): :func:`parse_frame` then decodes the frame
    in full and decides. Names cannot hold quotes or escapes, so a valid name between the
    fixed pieces is exactly the frame's field; a ``data`` text must be a JSON value that ends
    where the layout says, so it cannot smuggle extra fields (such as a forged ``from``) into
    the frame the relay builds around it.
    """
    try:
        if text.startswith(_SEND_HEAD):
            start = len(_SEND_HEAD)
            end = text.find(_DATA_KEY, start)
            if end < 0 or text[-1] != "}" or NAME.fullmatch(text, start, end) is None:
                return None
            data = text[end + len(_DATA_KEY):-1]
            DECODER.decode(data)  # one JSON value and nothing else (whitespace aside)
            return Send(text[start:end], data)
        if not text.startswith(_BATCH_HEAD):
            return None
        pairs: list[tuple[str, str]] = []
        pos = len(_BATCH_HEAD)
        scan = DECODER.raw_decode
        while len(pairs) < max_batch and text.startswith(_ENTRY_HEAD, pos):
            start = pos + len(_ENTRY_HEAD)
            end = text.find(_DATA_KEY, start)
            if end < 0 or NAME.fullmatch(text, start, end) is None:
                return None
            begin = end + len(_DATA_KEY)
            stop = scan(text, begin)[1]  # where the value that starts at begin ends
            pairs.append((text[start:end], text[begin:stop]))
            if text.startswith("},", stop):
                pos = stop + 2
            elif text.startswith("}]}", stop) and stop + 3 == len(text):
                return Batch(tuple(pairs))
            else:
                return None
    except (ValueError, RecursionError):
        return None
    return None  # more than max_batch messages, or an empty batch: the full parser decides


# Outgoing frames. Built as dicts and encoded once: for a broadcast the same string goes to
# every receiver.

PONG: Final = encode({"type": "pong"})


def welcome_frame(room: str, address: str, peers: list[str]) -> str:
    """Accepted hello: the joiner learns who is already there (sorted, for stable output)."""
    return encode(
        {
            "type": "welcome",
            "v": PROTOCOL_VERSION,
            "room": room,
            "address": address,
            "peers": sorted(peers),
        }
    )


def join_frame(address: str) -> str:
    """Told to the rest of the room when a new address arrives."""
    return encode({"type": "join", "address": address})


def leave_frame(address: str) -> str:
    """Told to the rest of the room when an address is gone for good (not when replaced)."""
    return encode({"type": "leave", "address": address})


def msg_frame(sender: str, data: str, *, broadcast: bool = False) -> str:
    """One delivered message (``data``: its JSON text); ``from`` always comes from the relay,
    never from the client (a valid name needs no escaping, so it is spliced in as is)."""
    tail = ',"broadcast":true}' if broadcast else "}"
    return '{"type":"msg","from":"' + sender + '","data":' + data + tail


def batch_frame(sender: str, datas: list[str]) -> str:
    """All messages of one incoming ``batch`` for one receiver (JSON texts), in their
    original order."""
    return '{"type":"batch","from":"' + sender + '","msgs":[' + ",".join(datas) + "]}"


def error_frame(code: ErrorCode, message: str, **extra: Any) -> str:
    """A non-fatal complaint about something the client sent; the connection stays open."""
    return encode({"type": "error", "code": str(code), "message": message, **extra})


def room_token(secret: str | bytes, room: str) -> str:
    """The access token for ``room`` under ``secret``: hex HMAC-SHA256(secret, room).

    A token per room (rather than the secret itself) lets an operator hand out access to one
    room without revealing the others, and keeps the secret out of browser storage.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, room.encode(), sha256).hexdigest()


class TokenProblem(StrEnum):
    """Why :func:`check_token` refuses a hello's token."""

    UNAUTHORIZED = "unauthorized"  # missing, forged, for another room or another address
    EXPIRED = "token expired"  # genuine, but past its expiry


# t1~<expiry, unix seconds, or empty>~<address, or empty>~<hex MAC>: "~" is in no name.
_TOKEN: Final = re.compile(r"t1~([0-9]{0,12})~([A-Za-z0-9_.:@-]{0,128})~([0-9a-f]{64})")


def _claims(room: str, expires: str, address: str) -> str:
    return f"t1\n{room}\n{expires}\n{address}"


def issue_token(
    secret: str | bytes, room: str, *, expires: int | None = None, address: str | None = None
) -> str:
    """A hello token for ``room``, valid until ``expires`` (unix seconds) and only for the
    member ``address`` when they are given; with neither, the plain :func:`room_token`.

    The claims travel in the token, signed with the room, so the relay stores nothing: a
    token cannot be moved to another room, extended or given to another address.
    """
    if expires is None and address is None:
        return room_token(secret, room)
    when = "" if expires is None else str(int(expires))
    who = address or ""
    return f"t1~{when}~{who}~{room_token(secret, _claims(room, when, who))}"


def check_token(
    secret: str | bytes, token: str, room: str, address: str, now: float
) -> TokenProblem | None:
    """``None`` if ``token`` lets ``address`` join ``room`` at time ``now`` (unix seconds).

    The signature is checked (in constant time) before the expiry, so only the holder of a
    genuine token learns that it has expired.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        expected = room_token(secret, room)
        return None if hmac.compare_digest(token.encode(), expected.encode()) else (
            TokenProblem.UNAUTHORIZED
        )
    when, who, mac = match.groups()
    if not hmac.compare_digest(mac, room_token(secret, _claims(room, when, who))):
        return TokenProblem.UNAUTHORIZED
    if who and who != address:
        return TokenProblem.UNAUTHORIZED
    if when and int(when) <= now:
        return TokenProblem.EXPIRED
    return None


def stats_token(secret: str | bytes) -> str:
    """The bearer token for ``/stats`` and ``/metrics`` under ``secret``.

    A token for the scope ``/stats``, which no room can be named (``/`` is not in the name
    charset), so no room's token opens the counters and this one opens no room.
    """
    return room_token(secret, "/stats")

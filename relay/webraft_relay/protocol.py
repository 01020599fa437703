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

The relay never decodes ``data`` if it can help it: it only needs it to be one JSON value,
and it forwards that value's text. Send, broadcast and batch frames laid out as webraft's
transports (or ``json.dumps``) write them take a fast path that checks each ``data``'s
structure with C-speed bytes operations (:func:`one_value`) and forwards it verbatim; other
layouts, and data the check cannot settle, are decoded in full.
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
    "one_value",
    "parse_frame",
    "parse_full",
    "parse_hello",
    "parse_layout",
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


# Everything but the bytes that give JSON text its structure (UTF-8 continuation bytes are
# never ASCII, so the check can run on bytes).
_NOT_STRUCTURE: Final = bytes(set(range(256)) - set(b'"[]{},:'))
_ONE_BRACKET: Final = bytes.maketrans(b"{}", b"[]")
#: Passes of the bracket check before :func:`one_value` gives up and decodes instead; each
#: removes one level of nesting everywhere, so most data needs one to four.
_PASSES: Final = 4


def _structure_is_one_value(raw: bytes) -> bool | None:
    """The cheap check: a few passes of C-speed bytes operations over ``raw``, never
    building a value. ``None`` when it cannot tell in :data:`_PASSES` passes (deep nesting,
    strings holding brackets, commas or colons)."""
    if b"\\" in raw:  # escapes, paired left to right as a JSON lexer pairs them
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = raw.translate(None, _NOT_STRUCTURE)
    if b'"' in skeleton:
        # In valid JSON no string is next to another, so '""' is always one whole string
        # with no structure inside.
        skeleton = skeleton.replace(b'""', b"")
        if b'"' in skeleton:
            return None
    if not skeleton:
        return True  # a scalar: nothing in it can end the value early
    if skeleton[0] not in b"[{" or skeleton[-1] not in b"]}":
        return False
    # The first bracket must close at the end: everything between balances. Which bracket
    # closes which does not matter here (a mismatch is invalid JSON for every receiver).
    inner = skeleton.translate(_ONE_BRACKET, b",:")[1:-1]
    for _ in range(_PASSES):
        if not inner:
            return True
        inner = inner.replace(b"[]", b"")
    return True if not inner else None


def _shaped_as_one_value(data: str) -> bool:
    """A container that ends with its own kind of bracket, or a scalar with no ``,`` or
    ``:``: what one value looks like from its ends (an honest client's extra field after
    ``data`` fails this and is decoded instead)."""
    head = data.lstrip()[:1]
    if head in ("[", "{"):
        return data.rstrip()[-1:] == ("]" if head == "[" else "}")
    return head != "" and "," not in data and ":" not in data


def _spells_no_relay_key(text: str) -> bool:
    """No escapes, brackets that balance in number, and none of the keys a receiver reads in
    a ``msg`` or ``batch`` frame besides ``data`` (the only ones a forged field could matter
    under): memchr-speed scans, run once over a whole batch."""
    return (
        "\\" not in text
        and '"from"' not in text
        and '"type"' not in text
        and '"broadcast"' not in text
        and '"msgs"' not in text
        and text.count("[") == text.count("]")
        and text.count("{") == text.count("}")
    )


def _cannot_forge(data: str) -> bool:
    """The quickest accept: whatever ``data`` shaped as one value and spelling no key the
    relay sets does to the frame around it, it cannot give it another ``type``, ``from`` or
    ``broadcast``, nor another sender's messages; at worst (``[1],"x":[2]``) an unknown field
    travels along, which receivers ignore."""
    return _shaped_as_one_value(data) and _spells_no_relay_key(data)


def one_value(data: str) -> bool:
    """Whether ``data`` can be spliced into a frame after ``"data":`` and forwarded.

    What the relay's promises need is that ``data`` cannot add a field of its own (a forged
    ``from``) to the frame it is put in. Three checks, cheapest first, each settling what it
    can: :func:`_cannot_forge`; then a structural check that never decodes (outside strings,
    brackets balance and nothing follows the value); then strict decoding, as before. A 1 MiB
    ``[{},{},...]`` frame is parsed in ~3 ms of CPU instead of 23-90. Lexical errors the first
    two let through (``NaN``, ``1e999``, ``[1 2]``) make the whole frame invalid JSON, which
    the receiver refuses whole, so they cannot change what a frame means.
    """
    if _cannot_forge(data):
        return True
    if not data or data.isspace():
        return False
    quick = _structure_is_one_value(data.encode(errors="surrogatepass"))
    if quick is not None:
        return quick
    try:
        DECODER.decode(data)
    except (ValueError, RecursionError):
        return False
    return True


def parse_frame(text: str, *, max_batch: int) -> Frame:
    """Validate a frame received after the hello.

    A ``hello`` is returned as such (the caller answers ``already_joined``) so that this
    function stays a pure description of the format.
    """
    fast = parse_layout(text, max_batch)
    return fast if fast is not None else parse_full(text, max_batch=max_batch)


def parse_full(text: str, *, max_batch: int) -> Frame:
    """Decode a frame in full: any layout, fields in any order (decoding costs far more per
    byte than :func:`one_value`, which the usual layouts get)."""
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


# The layouts of send, broadcast and batch frames that skip decoding: fields in the order
# below, either compact (as webraft and JSON.stringify write) or with ", " and ": " (as
# Python's json.dumps writes by default).
_SEND: Final = re.compile(r'\{"type": ?"send", ?"to": ?"(' + NAME.pattern + r')", ?"data": ?')
_BROADCAST: Final = re.compile(r'\{"type": ?"broadcast", ?"data": ?')
_BATCH: Final = re.compile(r'\{"type": ?"batch", ?"msgs": ?\[\{"to": ?"')
_ENTRY: Final = re.compile(r'(' + NAME.pattern + r')", ?"data": ?')


def parse_layout(text: str, max_batch: int) -> Send | Broadcast | Batch | None:
    """The fast path: a send, broadcast or batch frame in one of the layouts above, each
    ``data`` kept as the text it was sent as and checked with :func:`one_value`.

    None means "not in these layouts" or "some data fails the check" (a client's extra field
    after ``data`` does): :func:`parse_full` then decides. Names cannot hold
    quotes or escapes, so a valid name between the fixed pieces is exactly the frame's field.
    A batch is split at its entry separator; if that also occurs inside a ``data`` value
    (where webraft's clients never batch it), the pieces fail :func:`one_value` and the
    frame goes the full way.
    """
    if not text.endswith("}"):
        return None
    if (head := _SEND.match(text)) is not None:
        data = text[head.end():-1]
        return Send(head[1], data) if one_value(data) else None
    if (head := _BROADCAST.match(text)) is not None:
        data = text[head.end():-1]
        return Broadcast(data) if one_value(data) else None
    if (head := _BATCH.match(text)) is None or not text.endswith("}]}"):
        return None
    spaced = head[0].endswith(' "')
    pieces = text[head.end():-3].split('}, {"to": "' if spaced else '},{"to":"', max_batch)
    if len(pieces) > max_batch:
        return None  # the full parser gives the error
    # One scan of the whole batch stands for each data's, which then only needs its shape.
    clean = _spells_no_relay_key(text[head.end():-3])
    pairs: list[tuple[str, str]] = []
    for piece in pieces:
        entry = _ENTRY.match(piece)
        if entry is None:
            return None
        data = piece[entry.end():]
        if not (clean and _shaped_as_one_value(data)) and not one_value(data):
            return None
        pairs.append((entry[1], data))
    return Batch(tuple(pairs))


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

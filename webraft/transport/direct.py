"""Direct links between members that can accept connections, without I/O.

Owns the links' handshake and line framing (:class:`Dialer`, :class:`Acceptor`). Imports
:mod:`.wire` and :mod:`.relay`'s errors only; no I/O, never the runtime or ``js``.

Browser tabs need the relay, but two CPython members can talk straight to each other and save
the relay's two extra hops per message (see ``docs/direct-links.md``). A *link* is one-way: the
dialer writes Raft messages, the acceptor reads them, so every member dials each of its peers
and there is never a question of which of two crossing connections to keep. The conversation
is newline-delimited compact JSON (JSON text never holds a raw newline):

1. the acceptor sends a challenge: ``{"v":1,"challenge":"<32 hex>"}``;
2. the dialer answers with a hello: ``{"v":1,"room":R,"from":A,"to":B,"proof":"<64 hex>"}``
   where ``proof`` is HMAC-SHA256 of room, from, to and the challenge, keyed by the room token
   (an empty key when there is none), so the token never crosses the wire and a recorded
   hello cannot be replayed;
3. the acceptor says ``{"welcome":true}``, or ``{"error":CODE,"message":...}`` and closes;
4. from then on every line from the dialer is one Raft message (a JSON object); the acceptor
   writes nothing more, except an error line just before it closes a broken link (a line
   beyond its limit), so that the dialer can say why.

:class:`Acceptor` and :class:`Dialer` are the two sides as sans-I/O state machines, in the
manner of h11: the I/O layer feeds them the bytes it reads (:meth:`receive`), sends the bytes
they produce (:meth:`data_to_send`), and acts on the typed events they return. Everything
read is untrusted: a malformed line is a :class:`FrameError`; a broken conversation
(handshake out of order, a line beyond the size limit) is a :class:`LinkBroken` after which
the connection must be closed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .relay import FrameError, MessageTooLarge, TransportError
from .wire import PROTOCOL_VERSION, check_name, dumps, is_version, loads

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "Accepted",
    "Acceptor",
    "Data",
    "Dialer",
    "Established",
    "LinkBroken",
    "LinkRejected",
    "Malformed",
    "Token",
    "encode_line",
    "proof",
]

#: Longest line either side accepts: a snapshot chunk of 1 MiB characters, escaped, fits.
DEFAULT_MAX_LINE_BYTES: Final = 8 << 20
#: Longest handshake line: a hello with two 128-character names is far below it.
_MAX_HANDSHAKE_BYTES: Final = 4096
#: A challenge the dialer signs: hex (ours are 32 digits), so that it always encodes.
_CHALLENGE: Final = re.compile(r"[0-9a-f]{16,128}")

#: A room token, or a function giving the key a given peer must prove (see :class:`Acceptor`).
Token = str | Callable[[str], str | None] | None


class LinkBroken(TransportError):
    """The conversation on a link cannot go on (``code`` says why); close the connection."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


class LinkRejected(LinkBroken):
    """The acceptor refused our hello: ``unauthorized`` (wrong token), ``wrong_room``,
    ``wrong_address`` (we dialed a member under another name), ``unknown_peer`` (it does not
    take links from us) or ``bad_hello``; or it closed the link after one of our lines
    (``line_too_long``: its limit is lower than ours)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """Acceptor side: ``peer`` proved itself; its messages follow."""

    peer: str


@dataclass(frozen=True, slots=True)
class Established:
    """Dialer side: the acceptor welcomed us; :meth:`Dialer.encode` may be sent now."""


@dataclass(frozen=True, slots=True)
class Data:
    """Acceptor side: one message from the peer."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Malformed:
    """Acceptor side: a line that is not a JSON object was dropped."""

    error: FrameError


def proof(token: str | None, room: str, sender: str, receiver: str, challenge: str) -> str:
    """The hello's proof of knowing ``token`` for this challenge (hex HMAC-SHA256)."""
    key = (token or "").encode()
    text = "\n".join((room, sender, receiver, challenge)).encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def encode_line(value: Any) -> bytes:
    """One line of compact ASCII JSON; raises ValueError if ``value`` is not strict JSON."""
    return (dumps(value) + "\n").encode()


class _Lines:
    """Splits a byte stream into lines of at most ``limit`` bytes (newline excluded).

    The limit may change between two lines (the handshake's is smaller than the messages'),
    so lines are taken one at a time. A line arriving in many reads is scanned once: the
    buffer remembers how far it holds no newline.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # the buffer's first bytes known to hold no newline

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> bytes | None:
        """The next complete line, or None; raises LinkBroken for a line beyond the limit,
        even one still incomplete (it would only grow)."""
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            if self._scanned > self.limit:
                raise LinkBroken("line_too_long", f"a line is longer than {self.limit} bytes")
            return None
        if end > self.limit:
            raise LinkBroken("line_too_long", f"a line is longer than {self.limit} bytes")
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]  # cheap: a bytearray drops its head without copying
        self._scanned = 0
        return line


def _object(line: bytes) -> dict[str, Any]:
    """Parse one line as a JSON object; raises FrameError."""
    try:
        value = loads(line)
    except ValueError as exc:
        raise FrameError("bad_json", f"a line is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FrameError("not_object", f"a line must be a JSON object, not "
                         f"{type(value).__name__}")
    return value


class _Side:
    """What both sides share: the lines read, the bytes to send, and staying broken once a
    :class:`LinkBroken` ended the conversation."""

    def __init__(self, out: list[bytes]) -> None:
        self._lines = _Lines(_MAX_HANDSHAKE_BYTES)
        self._out = out
        self._broken: LinkBroken | None = None

    def data_to_send(self) -> bytes:
        """Bytes to write now."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _read(self, data: bytes, on_line: Callable[[bytes], None]) -> None:
        """Feed ``data`` and hand each complete line to ``on_line``; once it raised
        :class:`LinkBroken`, every later call raises the same error."""
        if self._broken is not None:
            raise self._broken
        self._lines.feed(data)
        try:
            while (line := self._lines.next()) is not None:
                on_line(line)
        except LinkBroken as exc:
            self._broke(exc)
            raise

    def _broke(self, exc: LinkBroken) -> None:
        self._broken = exc


class Acceptor(_Side):
    """The accepting side of one link, for a member at ``address`` in ``room``.

    ``token`` is the key every dialer proves (None: the empty key), or a function giving the
    key a given peer must prove, None for a peer that has none (refused: ``unauthorized``).
    ``allow(peer)`` says whether a proven peer may link to us (default: anyone who knows the
    token). Events: :class:`Accepted` once, then :class:`Data` per message (or :class:`Malformed`).
    """

    def __init__(self, room: str, address: str, *, token: Token = None,
                 allow: Callable[[str], bool] | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.room = check_name(room, "room")
        self.address = check_name(address, "address")
        self.token = token
        self.allow = allow
        self.challenge = secrets.token_hex(16)
        #: The proven peer, once the hello was accepted.
        self.peer: str | None = None
        self._max_line_bytes = max_line_bytes
        super().__init__([encode_line({"v": PROTOCOL_VERSION, "challenge": self.challenge})])

    def receive(self, data: bytes) -> list[Accepted | Data | Malformed]:
        """Feed bytes read from the dialer; returns the events they complete, in order.

        Raises :class:`LinkBroken` (send :meth:`data_to_send`, then close) for a refused hello
        or a line beyond the limit. A malformed message is a :class:`Malformed` event: the
        framing is intact, so the messages after it still count. Once broken, every later
        call raises the same error: nothing more is read from that connection.
        """
        events: list[Accepted | Data | Malformed] = []

        def on_line(line: bytes) -> None:
            if self.peer is None:
                events.append(self._hello(line))
                # The lines after the hello, even in this same read, are messages.
                self._lines.limit = self._max_line_bytes
                return
            try:
                events.append(Data(_object(line)))
            except FrameError as exc:
                events.append(Malformed(exc))

        self._read(data, on_line)
        return events

    def _broke(self, exc: LinkBroken) -> None:
        # The dialer learns why (a refused hello, a line beyond our limit) before we close.
        self._out.append(encode_line({"error": exc.code, "message": exc.detail}))
        super()._broke(exc)

    def _hello(self, line: bytes) -> Accepted:
        try:
            hello = _object(line)
        except FrameError as exc:
            raise LinkBroken("bad_hello", str(exc)) from None
        sender, given = hello.get("from"), hello.get("proof")
        if not is_version(hello.get("v")) or not isinstance(sender, str) \
                or not isinstance(given, str):
            raise LinkBroken("bad_hello", "a hello needs v=1, from and proof")
        try:
            check_name(sender, "from")
        except ValueError as exc:
            raise LinkBroken("bad_hello", str(exc)) from None
        if hello.get("room") != self.room:
            raise LinkBroken("wrong_room", f"this member is in room {self.room!r}")
        if hello.get("to") != self.address:
            raise LinkBroken("wrong_address", f"this member is {self.address!r}")
        if callable(self.token):
            key = self.token(sender)
            if key is None:  # not the empty key: that would let anyone in
                raise LinkBroken("unauthorized", f"no key for {sender!r}")
        else:
            key = self.token
        expected = proof(key, self.room, sender, self.address, self.challenge)
        # compare_digest refuses non-ASCII text (TypeError): such a proof is simply wrong.
        if not given.isascii() or not hmac.compare_digest(expected, given):
            raise LinkBroken("unauthorized", "wrong room token")
        if sender == self.address or (self.allow is not None and not self.allow(sender)):
            raise LinkBroken("unknown_peer", f"{sender!r} may not link to {self.address!r}")
        self.peer = sender
        self._out.append(encode_line({"welcome": True}))
        return Accepted(sender)


class Dialer(_Side):
    """The dialing side of one link from ``address`` to ``peer`` in ``room``.

    Events: :class:`Established` once the acceptor welcomed us. A refusal raises
    :class:`LinkRejected`; anything else out of place raises :class:`LinkBroken`.
    """

    def __init__(self, room: str, address: str, peer: str, *, token: str | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.room = check_name(room, "room")
        self.address = check_name(address, "address")
        self.peer = check_name(peer, "peer")
        self.token = token
        self.max_line_bytes = max_line_bytes
        #: True once the acceptor welcomed us.
        self.established = False
        self._challenged = False
        super().__init__([])

    def receive(self, data: bytes) -> list[Established]:
        """Feed bytes read from the acceptor (only the handshake ever comes this way).

        Raises :class:`LinkRejected` for an error line (a refused hello, or why the acceptor
        closes an established link) and :class:`LinkBroken` for anything else out of place;
        once broken, every later call raises the same error.
        """
        events: list[Established] = []

        def on_line(line: bytes) -> None:
            if self._handshake_line(line):
                events.append(Established())

        self._read(data, on_line)
        return events

    def _handshake_line(self, line: bytes) -> bool:
        """Act on one line from the acceptor; True for the welcome."""
        try:
            obj = _object(line)
        except FrameError as exc:
            raise LinkBroken(exc.code, str(exc)) from None
        if "error" in obj:  # a refused hello, or (after the welcome) why it closes the link
            code, message = obj.get("error"), obj.get("message")
            if isinstance(code, str) and isinstance(message, str):
                raise LinkRejected(code[:64], message[:300])
            raise LinkBroken("unexpected_frame", "an error line needs string error and message")
        if self.established:
            raise LinkBroken("unexpected_frame", "the acceptor wrote after its welcome")
        if not self._challenged:
            challenge = obj.get("challenge")
            if not is_version(obj.get("v")) or not isinstance(challenge, str):
                raise LinkBroken("unexpected_frame", "expected a challenge first")
            if _CHALLENGE.fullmatch(challenge) is None:
                raise LinkBroken("bad_challenge", "a challenge is 16-128 hex digits")
            self._challenged = True
            self._out.append(encode_line({
                "v": PROTOCOL_VERSION, "room": self.room, "from": self.address,
                "to": self.peer,
                "proof": proof(self.token, self.room, self.address, self.peer, challenge),
            }))
            return False
        if obj.get("welcome") is True:
            self.established = True
            return True
        raise LinkBroken("unexpected_frame", "expected a welcome or an error")

    def encode(self, payload: Any) -> bytes:
        """One message as a line; raises ValueError (not JSON) or MessageTooLarge."""
        line = encode_line(payload)
        if len(line) > self.max_line_bytes:
            raise MessageTooLarge(f"a {len(line)}-byte message does not fit in a "
                                  f"{self.max_line_bytes}-byte line")
        return line

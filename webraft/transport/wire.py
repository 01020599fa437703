"""The relay wire spec that both ends share: version, path, names, close codes, strict JSON.

Owns every fact the relay server (``webraft_relay``) and the clients (CPython, Pyodide, direct
links) must agree on; it imports the standard library only, so that it loads in Pyodide and in
a relay without the rest of webraft's runtime. ``docs/relay-protocol.md`` is its prose version,
and ``tests/transport/test_wire_agreement.py`` checks that both ends keep to it.
"""

from __future__ import annotations

import json
import math
import re
from enum import IntEnum
from typing import Any, Final, TypeGuard

__all__ = [
    "DECODER",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_FRAME_BYTES",
    "ENCODER",
    "MAX_NAME_LENGTH",
    "NAME",
    "NAME_RULE",
    "PROTOCOL_VERSION",
    "TERMINAL_CLOSES",
    "WS_PATH",
    "CloseCode",
    "check_name",
    "dumps",
    "is_name",
    "is_version",
    "loads",
]

#: Version of the relay protocol (``v`` in hello and welcome, and in the direct links'
#: handshake); a breaking change bumps it.
PROTOCOL_VERSION: Final = 1


def is_version(value: object) -> bool:
    """``value`` is :data:`PROTOCOL_VERSION` itself: an integer, not ``true`` or ``1.0``."""
    return type(value) is int and value == PROTOCOL_VERSION


#: Path of the relay's WebSocket endpoint.
WS_PATH: Final = "/ws"

#: Longest room or address name.
MAX_NAME_LENGTH: Final = 128
#: A room or address name. Names end up in logs, stats and close reasons, and are spliced into
#: frames unescaped: a small charset keeps them printable, unambiguous and free of anything a
#: shell, a browser console or a JSON string would interpret.
NAME: Final = re.compile(rf"[A-Za-z0-9_.:@-]{{1,{MAX_NAME_LENGTH}}}")
#: The name rule in words, for error messages.
NAME_RULE: Final = f"1-{MAX_NAME_LENGTH} characters from A-Z a-z 0-9 - _ . : @"

#: The relay's default largest frame (``--max-message-size``) and longest batch
#: (``--max-batch``); a client must not build frames beyond the relay's actual values.
DEFAULT_MAX_FRAME_BYTES: Final = 1 << 20
DEFAULT_MAX_BATCH: Final = 1000


class CloseCode(IntEnum):
    """WebSocket close codes of the relay protocol (4000-4999 are free for applications).

    Codes below 4000 are standard ones that ``websockets`` or the relay send for
    transport-level reasons. :data:`TERMINAL_CLOSES` says which ones a client must not retry.
    """

    GOING_AWAY = 1001  # relay shutting down
    INVALID_DATA = 1007  # a text frame that is not UTF-8 (sent by websockets itself)
    MESSAGE_TOO_BIG = 1009  # frame above max_message_size (sent by websockets itself)
    INTERNAL_ERROR = 1011  # also websockets' "keepalive ping timeout"
    TRY_AGAIN_LATER = 1013  # relay at max_connections
    PROTOCOL_ERROR = 4000  # bad or missing hello (including the hello timeout)
    UNAUTHORIZED = 4001  # secret configured and token missing or wrong
    TOKEN_EXPIRED = 4002  # a genuine token past its expiry: the client needs a new one
    ADDRESS_IN_USE = 4008  # address held by a connection with another session
    REPLACED = 4009  # the same session connected again; the old connection is closed
    ROOM_FULL = 4013  # room at max_room_size


#: Closes after which reconnecting as is cannot help: a wrong or expired token, an address
#: held by another session, or our own session taken over by a newer connection (which is the
#: live one). Every other close, including an abrupt one, is a network event and is retried.
TERMINAL_CLOSES: Final = frozenset(
    {CloseCode.UNAUTHORIZED, CloseCode.TOKEN_EXPIRED, CloseCode.ADDRESS_IN_USE,
     CloseCode.REPLACED}
)


def is_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a room or address name the relay accepts."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid room or address name, else raise ValueError.

    Checked up front so that a typo fails at construction rather than as a refused hello.
    """
    if not is_name(value):
        raise ValueError(f"{what} must be {NAME_RULE}, got {value!r:.60}")
    return value


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity: Python accepts them, but browsers' ``JSON.parse`` does not."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """Refuse numbers beyond floats (``1e999``): they decode to infinity, which no JSON can
    carry on, so every end calls them bad JSON."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


#: Strict JSON: what a browser's ``JSON.parse`` accepts and what can be encoded again. Use
#: :func:`loads`; the relay's fast path also needs ``DECODER.raw_decode``. Raises ValueError,
#: or RecursionError for absurdly deep nesting.
DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
#: Compact strict JSON. ASCII output: a decoded value may hold lone surrogates ("\ud800"),
#: which cannot be encoded as UTF-8, and it makes ``len(text)`` the size in bytes.
ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def loads(text: str | bytes) -> Any:
    """Decode one strict JSON value (bytes as UTF-8); ValueError for anything else, nesting
    too deep to decode included."""
    try:
        return DECODER.decode(text if isinstance(text, str) else text.decode())
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps(value: Any) -> str:
    """Encode ``value`` with :data:`ENCODER`; ValueError if it is not strict JSON (NaN, a
    type JSON lacks, nesting too deep to encode)."""
    try:
        return ENCODER.encode(value)
    except RecursionError:
        raise ValueError("value is nested too deeply to encode") from None
    except TypeError as exc:
        raise ValueError(f"value is not JSON-serializable: {exc}") from None

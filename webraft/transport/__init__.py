"""Transports: how a node's messages reach its peers.

* :mod:`webraft.transport.relay` — the relay protocol without I/O (frames, typed events,
  the batching outgoing buffer, reconnect back-off); shared by every relay transport and
  importable anywhere, Pyodide included.
* :mod:`webraft.transport.node` — a Raft node whose peers are a relay room's members, for
  any I/O layer (no ``websockets``);
* :mod:`webraft.transport.direct` — direct links between members that accept connections
  (servers), without I/O: the handshake and the line framing;
* :mod:`webraft.transport.tcp` — those links over asyncio TCP, and :class:`DirectRaft`, a
  node whose peers are reached that way (no relay);
* :mod:`webraft.transport.websocket` — the CPython transport on ``websockets``
  (:class:`RelayRaft`). Imported lazily: this package never imports ``websockets`` until
  ``RelayRaft`` (or another name from that module) is asked for, because the browser wheel
  has no ``websockets``. The TCP names are lazy too: a tab has no use for sockets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .direct import LinkBroken, LinkRejected
from .relay import (
    Backoff,
    FrameError,
    MessageTooLarge,
    OutgoingBuffer,
    RelayClient,
    RelayClosed,
    RelayRejected,
    TransportError,
)

if TYPE_CHECKING:
    from .tcp import DirectLinks, DirectRaft
    from .websocket import RelayConnection, RelayPeer, RelayRaft

__all__ = [
    "Backoff",
    "DirectLinks",
    "DirectRaft",
    "FrameError",
    "LinkBroken",
    "LinkRejected",
    "MessageTooLarge",
    "OutgoingBuffer",
    "RelayClient",
    "RelayClosed",
    "RelayConnection",
    "RelayPeer",
    "RelayRaft",
    "RelayRejected",
    "TransportError",
]

_LAZY = {"RelayConnection": "websocket", "RelayPeer": "websocket", "RelayRaft": "websocket",
         "DirectLinks": "tcp", "DirectRaft": "tcp"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

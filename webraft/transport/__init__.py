"""Transports: how a node's messages reach its peers.

* :mod:`webraft.transport.relay` — the relay protocol without I/O (frames, typed events,
  the batching outgoing buffer, reconnect back-off); shared by every relay transport and
  importable anywhere, Pyodide included.
* :mod:`webraft.transport.node` — a Raft node whose peers are a relay room's members, for
  any I/O layer (no ``websockets``);
* :mod:`webraft.transport.websocket` — the CPython transport on ``websockets``
  (:class:`RelayRaft`). Imported lazily: this package never imports ``websockets`` until
  ``RelayRaft`` (or another name from that module) is asked for, because the browser wheel
  has no ``websockets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    from .websocket import RelayConnection, RelayPeer, RelayRaft

__all__ = [
    "Backoff",
    "FrameError",
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

_LAZY = frozenset({"RelayConnection", "RelayPeer", "RelayRaft"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import websocket

        return getattr(websocket, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Transports: how a node's messages reach its peers.

Owns the implementations of the runtime's port (:mod:`webraft.runtime.port`) that need no
browser. Transports import that port, the storage interface and the errors; never ``js``
(the browser's transport is :mod:`webraft.browser.transport`). The constructors ``RelayRaft``
and ``DirectRaft`` also import the node.

* :mod:`webraft.transport.wire` — the wire spec that the relay server and every client share
  (version, path, names, close codes, strict JSON); standard library only;
* :mod:`webraft.transport.relay` — the relay protocol without I/O (frames, typed events,
  the batching outgoing buffer, reconnect back-off); shared by every relay transport and
  importable anywhere, Pyodide included;
* :mod:`webraft.transport.node` — :class:`RelayTransport`, the transport a node holds to
  reach a relay room's members, for any I/O layer (no ``websockets``);
* :mod:`webraft.transport.memory` — nodes of one process on a shared hub;
* :mod:`webraft.transport.direct` — direct links between members that accept connections
  (servers), without I/O: the handshake and the line framing;
* :mod:`webraft.transport.tcp` — those links over asyncio TCP (:class:`DirectLinks`);
* :mod:`webraft.transport.direct_raft` — :class:`DirectTransport`, direct links as a node's
  only transport (no relay), and :class:`DirectRaft`, the node built on it;
* :mod:`webraft.transport.linked` — :class:`LinkedTransport`, the relay for presence with
  links that carry messages to the peers they reach; :mod:`webraft.transport.offers` — the
  direct links offered through the relay, one such link;
* :mod:`webraft.transport.websocket` — the CPython relay connection on ``websockets``
  (:class:`RelayConnection`, :class:`RelayRaft`). Imported lazily: this package never imports
  ``websockets`` until ``RelayRaft`` (or another name from that module) is asked for, because
  the browser wheel has no ``websockets``. The TCP names are lazy too: a tab has no use for
  sockets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .direct import LinkBroken, LinkRejected
from .linked import LinkedTransport, PeerLink
from .memory import MemoryHub, MemoryTransport
from .node import RelayTransport
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
    from .direct_raft import DirectRaft, DirectTransport
    from .offers import OfferedLinks
    from .tcp import DirectLinks
    from .websocket import RelayConnection, RelayRaft

__all__ = [
    "Backoff",
    "DirectLinks",
    "DirectRaft",
    "DirectTransport",
    "FrameError",
    "LinkBroken",
    "LinkRejected",
    "LinkedTransport",
    "MemoryHub",
    "MemoryTransport",
    "MessageTooLarge",
    "OfferedLinks",
    "OutgoingBuffer",
    "PeerLink",
    "RelayClient",
    "RelayClosed",
    "RelayConnection",
    "RelayRaft",
    "RelayRejected",
    "RelayTransport",
    "TransportError",
]

_LAZY = {"RelayConnection": "websocket", "RelayRaft": "websocket", "DirectLinks": "tcp",
         "DirectRaft": "direct_raft", "DirectTransport": "direct_raft", "OfferedLinks": "offers"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

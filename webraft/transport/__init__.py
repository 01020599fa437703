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
  (:class:`RelayConnection`, :class:`RelayRaft`).

Every name is imported when first asked for (:mod:`webraft._lazy`): this package never imports
``websockets`` until ``RelayRaft`` (or another name from that module) is asked for, because the
browser wheel has no ``websockets``; and a tab, which uses the relay and linked transports,
loads neither the direct links, their sockets nor the in-memory hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .direct import LinkBroken, LinkRejected
    from .direct_raft import DirectRaft, DirectTransport
    from .linked import LinkedTransport, PeerLink
    from .memory import MemoryHub, MemoryTransport
    from .node import RelayTransport
    from .offers import OfferedLinks
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

__getattr__, __dir__ = lazy_names(__name__, {
    **dict.fromkeys(["LinkBroken", "LinkRejected"], ".direct"),
    **dict.fromkeys(["DirectRaft", "DirectTransport"], ".direct_raft"),
    **dict.fromkeys(["LinkedTransport", "PeerLink"], ".linked"),
    **dict.fromkeys(["MemoryHub", "MemoryTransport"], ".memory"),
    "RelayTransport": ".node",
    "OfferedLinks": ".offers",
    **dict.fromkeys(["Backoff", "FrameError", "MessageTooLarge", "OutgoingBuffer", "RelayClient",
                     "RelayClosed", "RelayRejected", "TransportError"], ".relay"),
    "DirectLinks": ".tcp",
    **dict.fromkeys(["RelayConnection", "RelayRaft"], ".websocket"),
})

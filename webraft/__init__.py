"""webraft: Raft consensus in pure Python, for CPython processes and browser tabs alike.

Owns the public names. Imports the core, the runtime, the storages and the errors; never a
transport, so ``import webraft`` loads no ``websockets``, no sockets and no ``js``.

The layers, each in its own package:

* :mod:`webraft.core` — Raft as a pure state machine (no I/O, no clock);
* :mod:`webraft.runtime` — the asyncio runtime with the seed's API
  (:class:`RaftInterface`, :class:`NodeInstance`);
* :mod:`webraft.storage` — where term, vote and log are kept;
* :mod:`webraft.sim` — a deterministic simulator that checks Raft's safety properties.
"""

from .core.messages import Entry
from .errors import (
    InvalidCommand,
    LeadershipLost,
    MembershipChangeError,
    MessageError,
    NoLeaderError,
    NotLeaderError,
    ProposalError,
    ProposalTimeout,
    RaftClosed,
    SessionExpired,
    SnapshotNotLoaded,
    StorageError,
    WebraftError,
)
from .runtime import (
    EventEmitter,
    NodeConfig,
    NodeInstance,
    RaftInterface,
    Snapshot,
    Transport,
    TransportHandler,
)
from .storage import MemoryStorage, Storage

__version__ = "0.1.0"

__all__ = [
    "Entry",
    "EventEmitter",
    "InvalidCommand",
    "LeadershipLost",
    "MembershipChangeError",
    "MemoryStorage",
    "MessageError",
    "NoLeaderError",
    "NodeConfig",
    "NodeInstance",
    "NotLeaderError",
    "ProposalError",
    "ProposalTimeout",
    "RaftClosed",
    "RaftInterface",
    "SessionExpired",
    "Snapshot",
    "SnapshotNotLoaded",
    "Storage",
    "StorageError",
    "Transport",
    "TransportHandler",
    "WebraftError",
]

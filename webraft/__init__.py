"""webraft: Raft consensus in pure Python, for CPython processes and browser tabs alike.

Owns the public names. Imports the errors, and the core, the runtime and the storages only when
one of their names is first asked for (:mod:`webraft._lazy`); never a transport, so ``import
webraft`` loads no ``websockets``, no sockets and no ``js``.

The layers, each in its own package:

* :mod:`webraft.core` — Raft as a pure state machine (no I/O, no clock);
* :mod:`webraft.runtime` — the asyncio runtime with the seed's API
  (:class:`RaftInterface`, :class:`NodeInstance`);
* :mod:`webraft.storage` — where term, vote and log are kept;
* :mod:`webraft.sim` — a deterministic simulator that checks Raft's safety properties.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_names
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

if TYPE_CHECKING:
    from .core.messages import Entry
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

# The node's names are imported when first asked for: a module that needs only part of webraft
# (the relay's wire spec, the errors) does not load the core, the runtime and the storages.
__getattr__, __dir__ = lazy_names(__name__, {
    "Entry": ".core.messages",
    **dict.fromkeys(["EventEmitter", "NodeConfig", "NodeInstance", "RaftInterface", "Snapshot",
                     "Transport", "TransportHandler"], ".runtime"),
    **dict.fromkeys(["MemoryStorage", "Storage"], ".storage"),
})

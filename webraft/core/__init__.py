"""The sans-I/O Raft core: messages in, a :class:`Ready` of work out. No I/O, no clock.

Owns the core's public names. The core imports nothing of webraft but :mod:`webraft.errors`: no
runtime, storage or transport, no asyncio.
"""

from .events import ConfigChanged, CoreEvent, ElectionStarted, ElectionTimeout, RoleChanged
from .messages import COMMAND, CONFIG, NOOP, Entry, Message, decode, encode
from .raft import CoreConfig, ProposalResult, RaftCore, Ready
from .state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from .status import PeerStatus, Status

__all__ = [
    "COMMAND",
    "CONFIG",
    "NOOP",
    "ClusterConfig",
    "ConfigChanged",
    "CoreConfig",
    "CoreEvent",
    "ElectionStarted",
    "ElectionTimeout",
    "Entry",
    "HardState",
    "Message",
    "PeerStatus",
    "ProposalResult",
    "RaftCore",
    "Ready",
    "RoleChanged",
    "SnapshotMeta",
    "Status",
    "StorageUpdate",
    "StoredState",
    "decode",
    "encode",
]

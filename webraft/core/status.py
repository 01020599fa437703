"""The one read-only window into a core: :class:`Status`, a frozen copy of what it knows
(etcd-io/raft's ``Status``). Only records here; imports nothing outside the core.

Whoever shows or acts on a node's state (the runtime, the browser bridge, a member's
``/status``) reads a :class:`Status` rather than the log or the progress tracker, so the core
can change how it keeps them without breaking its readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .state import ClusterConfig, SnapshotMeta

__all__ = ["PeerStatus", "Status"]


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """How far a leader has replicated to one peer: ``match`` is the newest index known to be
    in its log, ``next`` the next one to send, ``state`` ``"probe"``, ``"replicate"`` or
    ``"snapshot"`` (see :mod:`webraft.core.progress`)."""

    match: int
    next: int
    state: str


@dataclass(frozen=True, slots=True)
class Status:
    """A node's state at one moment; it does not change as the core moves on.

    ``role`` is the public role (``"follower"``, ``"candidate"`` or ``"leader"``), ``leader``
    the leader this node follows (itself when it leads; None when unknown). ``config`` is the
    newest configuration in the log (committed or not), appended at ``config_index``.
    ``transferee`` is the voter leadership is being handed to. ``progress`` maps every other
    member to its replication state, and is empty unless this node leads.
    """

    id: str
    role: str
    term: int
    vote: str | None
    leader: str | None
    commit_index: int
    last_index: int
    snapshot: SnapshotMeta
    config_index: int
    config: ClusterConfig
    transferee: str | None
    progress: Mapping[str, PeerStatus]

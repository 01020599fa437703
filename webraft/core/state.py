"""The records that storage keeps for the core: hard state, configuration, snapshot metadata.

Owns :class:`HardState`, :class:`ClusterConfig`, :class:`SnapshotMeta` and the storage records.
Imports the core's messages and :mod:`webraft.errors` only; never a storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import StorageError
from .messages import Entry, check_config


@dataclass(frozen=True, slots=True)
class HardState:
    """What must survive a crash before a node answers anyone (Raft Figure 2, "persistent state").

    ``commit`` is persisted too (as in etcd): it lets a restarted node know which entries are
    committed without waiting for a leader, never more than the log it has stored.
    """

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Who votes and who only learns. Voters decide elections and commitment."""

    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"voters": list(self.voters), "learners": list(self.learners)}

    @classmethod
    def from_json(cls, data: Any, where: str = "config", bootstrap: bool = False,
                  ) -> ClusterConfig:
        """Validate (raises :class:`~webraft.errors.MessageError`) and build.

        ``bootstrap``: also accept :data:`OUTSIDE`, the configuration of a node that was
        started outside any cluster (only a stored bootstrap snapshot may hold it).
        """
        if bootstrap and data == OUTSIDE.to_json():
            return OUTSIDE
        voters, learners = check_config(data, where)
        return cls(voters, learners)

    @property
    def members(self) -> tuple[str, ...]:
        return self.voters + self.learners


#: The configuration of a node outside any cluster (``members=[]``): it waits to be added.
OUTSIDE = ClusterConfig(())


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where the compacted prefix of the log ends, and the configuration in force there.

    A brand-new node starts from the *bootstrap snapshot* at index 0, term 0 holding the
    initial members: every node of a new cluster has the same one, so logs match from index 1.
    """

    index: int
    term: int
    config: ClusterConfig


@dataclass(slots=True)
class StoredState:
    """Everything a node loads from storage on start.

    ``entries`` are consecutive. They may begin at or before ``snapshot.index`` (a tail kept
    for slow followers) but never after ``snapshot.index + 1``. ``snapshot_data`` is the JSON
    text of the application's state at ``snapshot.index``; only the bootstrap snapshot
    (index 0) has none.
    """

    hard: HardState
    snapshot: SnapshotMeta
    entries: list[Entry] = field(default_factory=list)
    snapshot_data: str | None = None

    @classmethod
    def bootstrap(cls, members: list[str] | tuple[str, ...]) -> StoredState:
        """The state of a brand-new node of a cluster whose voters are ``members``."""
        return cls(HardState(), SnapshotMeta(0, 0, ClusterConfig(tuple(members))))

    def check(self) -> None:
        """Refuse a loaded state that no correct node could have written.

        Raises :class:`~webraft.errors.StorageError`: starting from a corrupt log could make
        this node vote or acknowledge wrongly, so it is better not to start at all.
        """
        snap = self.snapshot
        if snap.term > self.hard.term:
            raise StorageError("stored snapshot is newer than the stored term")
        if snap.index > 0 and self.snapshot_data is None:
            raise StorageError(f"stored snapshot at {snap.index} has no data")
        if not self.entries:
            return
        first, last = self.entries[0].index, self.entries[-1].index
        if first > snap.index + 1 or last < snap.index:
            raise StorageError(f"stored entries {first}..{last} do not reach the snapshot at "
                               f"{snap.index}")
        expected = first - 1
        prev_term = 0
        for entry in self.entries:
            expected += 1
            if entry.index != expected or entry.term < prev_term or entry.term > self.hard.term:
                raise StorageError(f"stored log is inconsistent at index {expected}")
            if entry.index == snap.index and entry.term != snap.term:
                raise StorageError(f"stored entry {expected} contradicts the snapshot")
            if entry.index > snap.index and entry.term < snap.term:
                raise StorageError(f"stored entry {expected} is older than the snapshot")
            prev_term = entry.term


@dataclass(frozen=True, slots=True)
class StorageUpdate:
    """One atomic write: storage applies all of it or none of it, in this order:

    1. ``snapshot`` (with ``snapshot_data`` when given) replaces the stored snapshot;
    2. every stored entry at or below ``compact_to`` is deleted (compaction, or a follower
       discarding a log that a snapshot from its leader replaces);
    3. ``entries`` replace every stored entry whose index is at or after
       ``entries[0].index`` (a follower truncating a conflicting suffix), then are appended;
    4. ``hard`` replaces the hard state.
    """

    hard: HardState | None = None
    entries: tuple[Entry, ...] = ()
    #: Snapshot metadata to record (the bootstrap configuration on a node's first save).
    snapshot: SnapshotMeta | None = None
    #: The application's state at ``snapshot.index``, as JSON text; None leaves it unchanged.
    snapshot_data: str | None = None
    compact_to: int = 0

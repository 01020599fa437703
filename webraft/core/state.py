"""The records that storage keeps for the core: hard state, configuration, snapshot metadata."""

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
    def from_json(cls, data: Any, where: str = "config") -> ClusterConfig:
        """Validate (raises :class:`~webraft.errors.MessageError`) and build."""
        voters, learners = check_config(data, where)
        return cls(voters, learners)

    @property
    def members(self) -> tuple[str, ...]:
        return self.voters + self.learners


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
    """Everything a node loads from storage on start."""

    hard: HardState
    snapshot: SnapshotMeta
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def bootstrap(cls, members: list[str] | tuple[str, ...]) -> StoredState:
        """The state of a brand-new node of a cluster whose voters are ``members``."""
        return cls(HardState(), SnapshotMeta(0, 0, ClusterConfig(tuple(members))))

    def check(self) -> None:
        """Refuse a loaded state that no correct node could have written.

        Raises :class:`~webraft.errors.StorageError`: starting from a corrupt log could make
        this node vote or acknowledge wrongly, so it is better not to start at all.
        """
        expected = self.snapshot.index
        prev_term = self.snapshot.term
        for entry in self.entries:
            expected += 1
            if entry.index != expected or entry.term < prev_term or entry.term > self.hard.term:
                raise StorageError(f"stored log is inconsistent at index {expected}")
            prev_term = entry.term
        if self.snapshot.term > self.hard.term:
            raise StorageError("stored snapshot is newer than the stored term")


@dataclass(frozen=True, slots=True)
class StorageUpdate:
    """One atomic write: storage applies all of it or none of it.

    ``entries`` replace every stored entry whose index is at or after ``entries[0].index``
    (a follower truncating a conflicting suffix), then are appended.
    """

    hard: HardState | None = None
    entries: tuple[Entry, ...] = ()
    #: Snapshot metadata to record (the bootstrap configuration on a node's first save).
    snapshot: SnapshotMeta | None = None

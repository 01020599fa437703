"""A storage in process memory: for tests, the simulator, and nodes that may forget."""

from __future__ import annotations

from ..core.messages import Entry
from ..core.state import HardState, SnapshotMeta, StorageUpdate, StoredState


class MemoryStorage:
    """Keeps the state in memory. It survives a node's ``close()`` and a new node built on
    the same object (a "restart"), but not the process."""

    def __init__(self) -> None:
        self.hard: HardState | None = None
        self.snapshot: SnapshotMeta | None = None
        self.entries: list[Entry] = []

    def load(self) -> StoredState | None:
        if self.snapshot is None:
            return None
        return StoredState(self.hard or HardState(), self.snapshot, list(self.entries))

    def save(self, update: StorageUpdate) -> None:
        """Apply ``update`` at once (memory needs no waiting, so nothing is returned)."""
        self.write(update)

    def write(self, update: StorageUpdate) -> None:
        """The body of :meth:`save`, also called directly by the simulator."""
        if update.snapshot is not None:
            self.snapshot = update.snapshot
            self.entries = [e for e in self.entries if e.index > update.snapshot.index]
        if update.entries:
            base = self.snapshot.index if self.snapshot else 0
            del self.entries[update.entries[0].index - base - 1:]
            self.entries.extend(update.entries)
        if update.hard is not None:
            self.hard = update.hard

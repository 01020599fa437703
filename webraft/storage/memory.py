"""A storage in process memory: for tests, the simulator, and nodes that may forget.

Owns :class:`MemoryStorage`. Imports the core's records only; never the runtime or a transport.
"""

from __future__ import annotations

from ..core.messages import Entry
from ..core.state import HardState, SnapshotMeta, StorageUpdate, StoredState


class MemoryStorage:
    """Keeps the state in memory. It survives a node's ``close()`` and a new node built on
    the same object (a "restart"), but not the process."""

    def __init__(self) -> None:
        self.hard: HardState | None = None
        self.snapshot: SnapshotMeta | None = None
        self.snapshot_data: str | None = None
        self.entries: list[Entry] = []

    def load(self) -> StoredState | None:
        if self.snapshot is None:
            return None
        return StoredState(self.hard or HardState(), self.snapshot, list(self.entries),
                           self.snapshot_data)

    def save(self, update: StorageUpdate) -> None:
        """Apply ``update`` at once (memory needs no waiting, so nothing is returned)."""
        self.write(update)

    def write(self, update: StorageUpdate) -> None:
        """The body of :meth:`save`, also called directly by the simulator."""
        if update.snapshot is not None:
            self.snapshot = update.snapshot
            if update.snapshot_data is not None:
                self.snapshot_data = update.snapshot_data
        entries = self.entries
        if update.compact_to and entries and entries[0].index <= update.compact_to:
            del entries[:update.compact_to - entries[0].index + 1]
        if update.entries:
            first = update.entries[0].index
            if entries:
                del entries[max(0, first - entries[0].index):]
            entries.extend(update.entries)
        if update.hard is not None:
            self.hard = update.hard

"""The storage protocol the runtime uses."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..core.state import StorageUpdate, StoredState


@runtime_checkable
class Storage(Protocol):
    """Durable home of a node's Raft state (see the package docstring for the contract).

    ``load`` is synchronous because a node needs its state to exist at all; backends whose
    medium is asynchronous (IndexedDB) read everything in an async factory first. ``save`` is
    asynchronous so that such backends, and SQLite in a worker thread, can wait for the disk
    without blocking the event loop.
    """

    def load(self) -> StoredState | None:
        """Everything saved so far, or None if nothing was ever saved."""
        ...

    async def save(self, update: StorageUpdate) -> None:
        """Apply ``update`` atomically and durably."""
        ...

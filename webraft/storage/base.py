"""The storage protocol the runtime uses."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, runtime_checkable

from ..core.state import StorageUpdate, StoredState


@runtime_checkable
class Storage(Protocol):
    """Durable home of a node's Raft state (see the package docstring for the contract).

    ``load`` is synchronous because a node needs its state to exist at all; backends whose
    medium is asynchronous (IndexedDB) read everything in an async factory first.

    ``save`` either finishes before returning (and returns None: memory, localStorage) or
    returns an awaitable that finishes when the update is durable (IndexedDB, SQLite in a
    worker thread). The synchronous form lets the runtime complete a whole Ready round
    without a trip through the event loop, which is most of the cost of a commit.
    """

    def load(self) -> StoredState | None:
        """Everything saved so far, or None if nothing was ever saved."""
        ...

    def save(self, update: StorageUpdate) -> Awaitable[None] | None:
        """Apply ``update`` atomically and durably (see above for the two forms)."""
        ...

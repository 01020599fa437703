"""The storage protocol the runtime uses.

Owns the :class:`Storage` protocol and the helpers every backend shares. Imports the core's
records and :mod:`webraft.errors` only; never the runtime or a transport.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Protocol, runtime_checkable

from ..core.state import StorageUpdate, StoredState
from ..errors import StorageError

_SURROGATE = re.compile("[\ud800-\udfff]")


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


def plan_update(snap_index: int | None, first: int | None, last: int | None,
          update: StorageUpdate) -> tuple[int, int | None, int | None]:
    """Where the snapshot index and the stored log ``first..last`` (None: empty) stand after
    ``update``, from where they stand now; raise StorageError for an update no correct node
    makes (the checks every backend shares, before it writes anything)."""
    snap = update.snapshot
    if snap is None:
        if update.snapshot_data is not None:
            raise StorageError("snapshot data without its snapshot metadata")
        if snap_index is None:
            raise StorageError("the first save to a new storage must record the snapshot "
                               "metadata")
    else:
        if snap_index is not None and snap.index < snap_index:
            raise StorageError(f"snapshot at index {snap.index} is older than the stored one "
                               f"at {snap_index}")
        if update.snapshot_data is None and snap.index > 0 and snap.index != snap_index:
            raise StorageError(f"snapshot at index {snap.index} comes without its data")
        snap_index = snap.index
    compact_to = update.compact_to
    if first is not None and last is not None and compact_to >= first:
        first, last = (None, None) if compact_to >= last else (compact_to + 1, last)
    entries = update.entries
    if entries:
        lo, hi = entries[0].index, entries[-1].index
        if hi != lo + len(entries) - 1:
            raise StorageError("entries of one update must have consecutive indexes")
        if last is not None and lo > last + 1:
            raise StorageError(f"entries starting at index {lo} leave a gap after the log "
                               f"{first}..{last}")
        if first is None or lo < first:
            first = lo
        last = hi
    if first is not None and last is not None and (first > snap_index + 1
                                                   or last < snap_index):
        raise StorageError(f"the update would leave entries {first}..{last}, which do not "
                           f"reach the snapshot at {snap_index}")
    return snap_index, first, last


def portable_json(text: str) -> str:
    """JSON ``text`` with any lone surrogate written as its escape: neither UTF-8 (SQLite) nor
    a JavaScript string crossing from Python (localStorage) can hold one, and in JSON text a
    lone surrogate can only be inside a string, where its escape means the same."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text

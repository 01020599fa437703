"""Shared by the SQLite storage tests and by the child process of the crash test.

:func:`crash_update` is a deterministic update sequence: update ``n`` depends only on ``n`` and
on the state the updates before it produced (a :class:`MemoryStorage` replaying them), so the
parent of the crash test can rebuild exactly what any acknowledged prefix must have left.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from webraft.storage import MemoryStorage, SQLiteStorage

MEMBERS = ClusterConfig(("a", "b", "c"))


def canon(state: StoredState | None) -> Any:
    """A comparable form of a loaded state that also tells 1, 1.0 and True apart."""
    if state is None:
        return None
    return (state.hard, state.snapshot,
            [(e.index, e.term, e.kind, json.dumps(e.command)) for e in state.entries])


def crash_update(n: int, model: MemoryStorage) -> StorageUpdate:
    """Update number ``n`` (from 1) given the state after updates ``1 .. n-1``."""
    if n == 1:
        return StorageUpdate(HardState(1, "a", 1), (Entry(1, 1, NOOP, None),),
                             SnapshotMeta(0, 0, MEMBERS))
    assert model.snapshot is not None
    snap = model.snapshot
    last = snap.index + len(model.entries)
    new_snap = None
    if n % 7 == 0 and len(model.entries) >= 2:  # compact all but the last entry
        new_snap = SnapshotMeta(last - 1, model.entries[-2].term, MEMBERS)
        snap = new_snap
    start = last + 1
    if n % 5 == 0:  # a follower replacing a conflicting suffix
        start = max(snap.index + 1, last - 2)
    entries = []
    for i in range(1 + n % 4):
        if i == 0 and n % 3 == 0:
            entries.append(Entry(n, start + i, NOOP, None))
        elif i == 0 and n % 11 == 0:
            entries.append(Entry(n, start + i, CONFIG, {"voters": ["a", "b", "c"],
                                                        "learners": [f"l{n}"]}))
        else:
            entries.append(Entry(n, start + i, COMMAND,
                                 {"n": n, "i": i, "pad": "x" * (n % 50), "list": [n, [i]]}))
    return StorageUpdate(HardState(n, "a" if n % 2 else "b", n), tuple(entries), new_snap)


def replay(upto: int) -> MemoryStorage:
    """The state after updates ``1 .. upto``."""
    model = MemoryStorage()
    for n in range(1, upto + 1):
        model.save(crash_update(n, model))
    return model


def crash_child(path: str, threaded: bool, limit: int) -> None:
    """Child process body: continue the sequence from what the database holds, printing
    ``ack N`` after save ``N`` returned, until killed (or ``limit`` saves)."""
    storage = SQLiteStorage(path, threaded=threaded)
    state = storage.load()
    done = state.hard.commit if state is not None else 0
    model = replay(done)
    updates = range(done + 1, done + 1 + limit)
    if not threaded:
        for n in updates:
            update = crash_update(n, model)
            storage.save(update)
            model.save(update)
            print(f"ack {n}", flush=True)
        return

    import asyncio

    async def run() -> None:
        for n in updates:
            update = crash_update(n, model)
            pending = storage.save(update)
            assert pending is not None
            await pending
            model.save(update)
            print(f"ack {n}", flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    crash_child(sys.argv[1], sys.argv[2] == "threaded", int(sys.argv[3]))

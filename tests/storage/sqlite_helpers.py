"""Shared by the SQLite storage tests and by the child process of the crash test.

:func:`crash_update` is a deterministic update sequence: update ``n`` depends only on ``n`` and
on the state the updates before it produced (a :class:`~storage_model.Model` replaying them), so
the parent of the crash test can rebuild exactly what any acknowledged prefix must have left.
The sequence appends, truncates, takes snapshots (with data, keeping a tail or not) and
installs snapshots past the end of the log.
"""

from __future__ import annotations

import sys

from storage_model import Model, canon

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import SQLiteStorage

MEMBERS = ClusterConfig(("a", "b", "c"))

__all__ = ["MEMBERS", "canon", "crash_update", "replay"]


def crash_update(n: int, model: Model) -> StorageUpdate:
    """Update number ``n`` (from 1) given the state after updates ``1 .. n-1``."""
    if n == 1:
        return StorageUpdate(HardState(1, "a", 1), (Entry(1, 1, NOOP, None),),
                             SnapshotMeta(0, 0, MEMBERS))
    assert model.snapshot is not None
    snap = model.snapshot
    last = model.last
    new_snap, data, compact_to = None, None, 0
    if n % 13 == 0:  # install a leader's snapshot past the end of the log: the log goes
        new_snap = SnapshotMeta(last + 2, n - 1, MEMBERS)
        data, compact_to = _data(n), last + 2
        snap, last = new_snap, last + 2
    elif n % 7 == 0 and last - snap.index >= 2:  # a snapshot at last - 1, keeping n % 3
        index = last - 1
        term = model.term_at(index)
        assert term is not None
        new_snap = SnapshotMeta(index, term, MEMBERS)
        data, compact_to = _data(n), max(0, index - n % 3)
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
    return StorageUpdate(HardState(n, "a" if n % 2 else "b", n), tuple(entries), new_snap,
                         data, compact_to)


def _data(n: int) -> str:
    return f'{{"applied":{n},"pad":"{"é" * (n * 37 % 3000)}"}}'


def replay(upto: int) -> Model:
    """The state after updates ``1 .. upto``."""
    model = Model()
    for n in range(1, upto + 1):
        model.apply(crash_update(n, model))
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
            model.apply(update)
            print(f"ack {n}", flush=True)
        return

    import asyncio

    async def run() -> None:
        for n in updates:
            update = crash_update(n, model)
            pending = storage.save(update)
            assert pending is not None
            await pending
            model.apply(update)
            print(f"ack {n}", flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    crash_child(sys.argv[1], sys.argv[2] == "threaded", int(sys.argv[3]))

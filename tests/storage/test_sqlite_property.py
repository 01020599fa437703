"""Property: after any valid sequence of updates, SQLiteStorage loads what MemoryStorage holds,
also after closing and reopening the database in between."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_helpers import canon

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import MemoryStorage, SQLiteStorage

ADDRESSES = st.sampled_from(["a", "b", "c", "d", "node-\u00e9"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=4),
    max_leaves=12)
#: A RAM file system where there is one: the same code, without waiting for the disk's fsync.
TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@st.composite
def configs(draw: st.DrawFn) -> ClusterConfig:
    members = draw(st.lists(ADDRESSES, min_size=1, max_size=4, unique=True))
    n_voters = draw(st.integers(1, len(members)))
    return ClusterConfig(tuple(members[:n_voters]), tuple(members[n_voters:]))


def term_at(mem: MemoryStorage, index: int) -> int | None:
    assert mem.snapshot is not None
    offset = index - mem.snapshot.index
    if offset == 0:
        return mem.snapshot.term
    if 0 < offset <= len(mem.entries):
        return mem.entries[offset - 1].term
    return None


def draw_update(draw: st.DrawFn, mem: MemoryStorage) -> StorageUpdate:
    """An update a correct node could make to the state ``mem`` holds."""
    stored_hard = mem.hard or HardState()
    hard = None
    term = stored_hard.term
    if mem.snapshot is None or draw(st.booleans()):
        term += draw(st.integers(0, 2))
        hard = HardState(term, draw(st.none() | ADDRESSES), draw(st.integers(0, 30)))
    # Snapshot: the first update records one; later ones may compact (never backwards).
    snap = mem.snapshot
    new_snap = None
    if snap is None:
        new_snap = SnapshotMeta(0, 0, draw(configs()))
    elif draw(st.integers(0, 4)) == 0:
        last = snap.index + len(mem.entries)
        index = draw(st.integers(snap.index, last + 3))
        known = term_at(mem, index)
        last_term = mem.entries[-1].term if mem.entries else snap.term
        snap_term = known if known is not None else draw(st.integers(last_term, term))
        new_snap = SnapshotMeta(index, snap_term, draw(configs()))
    base = new_snap or snap
    assert base is not None
    # Entries: from anywhere after the (new) snapshot up to the end of the log.
    entries: list[Entry] = []
    kept = [e for e in mem.entries if e.index > base.index] if snap is not None else []
    last = base.index + len(kept)
    if draw(st.booleans()):
        start = draw(st.integers(base.index + 1, last + 1))
        prev = base.term if start == base.index + 1 else kept[start - base.index - 2].term
        for i in range(draw(st.integers(1, 6))):
            prev = draw(st.integers(prev, max(prev, term)))
            kind = draw(st.sampled_from([COMMAND, COMMAND, NOOP, CONFIG]))
            command: Any = None
            if kind == COMMAND:
                command = draw(JSON)
            elif kind == CONFIG:
                command = draw(configs()).to_json()
            entries.append(Entry(prev, start + i, kind, command))
    return StorageUpdate(hard, tuple(entries), new_snap)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_sqlite_matches_memory(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:
        path = Path(tmp) / "node.db"
        mem = MemoryStorage()
        disk = SQLiteStorage(path)
        try:
            for _ in range(data.draw(st.integers(1, 10), label="updates")):
                update = draw_update(data.draw, mem)
                assert disk.save(update) is None
                mem.save(update)
                expected = mem.load()
                assert expected is not None
                expected.check()  # the generator only makes valid states
                assert canon(disk.load()) == canon(expected)
                if data.draw(st.integers(0, 3), label="reopen") == 0:
                    disk.close()
                    disk = SQLiteStorage(path)
                    assert canon(disk.load()) == canon(expected)
        finally:
            disk.close()
        with SQLiteStorage(path) as again:
            assert canon(again.load()) == canon(mem.load())

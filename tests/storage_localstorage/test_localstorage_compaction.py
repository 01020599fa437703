"""Compaction gives localStorage space back: a node that snapshots and compacts runs for ever
within a quota its log alone would overflow many times."""

from __future__ import annotations

import json

import pytest
from lsfake import FakeWebStorage, chars

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.errors import StorageError
from webraft.storage import LocalStorage

NS = "webraft/room/a/"
CONFIG = ClusterConfig(("a", "b", "c"))
BOOT = SnapshotMeta(0, 0, CONFIG)


def command(i: int) -> dict[str, object]:
    return {"op": "set", "key": f"k{i % 50}", "value": "v" * 60 + str(i)}


def test_usage_shrinks_after_compaction() -> None:
    store = FakeWebStorage({"other": "x" * 100})
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1, "a", 0), (), BOOT))
    local.save(StorageUpdate(HardState(1, "a", 500),
                             tuple(Entry(1, i, COMMAND, command(i)) for i in range(1, 501))))
    full = local.usage()
    assert full > 500 * 80
    state = json.dumps({f"k{i % 50}": command(i)["value"] for i in range(1, 501)})
    local.save(StorageUpdate(None, (), SnapshotMeta(500, 1, CONFIG), state, 490))
    compacted = local.usage()
    entry_keys = [k for k in store.data if k.startswith(NS + "e:")]
    # The tail 491..500, written again as a run of its own (the rest of its run went).
    assert entry_keys == [NS + "e:0:491"]
    assert len(json.loads(store.data[NS + "e:0:491"])) == 10
    tail = sum(chars(k) + chars(store.data[k]) for k in entry_keys)
    meta = chars(NS + "meta") + chars(store.data[NS + "meta"])
    assert compacted == tail + meta + chars(NS + "d:0:0") + chars(state)
    assert compacted < full / 5
    # Dropping the tail too, and replacing the data with a smaller one, shrinks it further.
    local.save(StorageUpdate(None, (), SnapshotMeta(500, 1, CONFIG), "{}", 500))
    meta = chars(NS + "meta") + chars(store.data[NS + "meta"])
    assert local.usage() == meta + chars(NS + "d:1:0") + len("{}")
    assert set(store.data) == {"other", NS + "meta", NS + "d:1:0"}


def run(store: FakeWebStorage, entries: int, snapshot_every: int | None, tail: int,
        batch: int = 7) -> tuple[int, int]:
    """A leader's storage for ``entries`` commands (saved ``batch`` at a time, each save
    with the commit index), snapshotting its key-value state every ``snapshot_every``
    entries, keeping ``tail``; return (peak usage seen after a save, final usage)."""
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1, "a", 0), (), BOOT))
    kv: dict[str, object] = {}
    last_snapshot = 0
    peak = 0
    for first in range(1, entries + 1, batch):
        batch_entries = tuple(Entry(1, i, COMMAND, command(i))
                              for i in range(first, min(first + batch, entries + 1)))
        index = batch_entries[-1].index
        local.save(StorageUpdate(HardState(1, "a", index), batch_entries))
        for e in batch_entries:
            kv[e.command["key"]] = e.command["value"]
        if snapshot_every and index - last_snapshot >= snapshot_every:
            local.save(StorageUpdate(None, (), SnapshotMeta(index, 1, CONFIG),
                                     json.dumps(kv), max(0, index - tail)))
            last_snapshot = index
        if first % 50 == 1:
            peak = max(peak, local.usage())
    state = LocalStorage(NS, store).load()
    assert state is not None and state.entries[-1].index == entries
    if snapshot_every:
        assert json.loads(state.snapshot_data or "null") == kv or state.snapshot.index < entries
    return peak, local.usage()


def test_a_long_running_node_stays_within_the_quota() -> None:
    quota = 120_000
    # The log alone: 6000 entries of ~110 characters (key included) is 5.5 quotas.
    with pytest.raises(StorageError, match="quota exceeded"):
        run(FakeWebStorage(quota=quota), 6000, None, 0)
    store = FakeWebStorage(quota=quota)
    peak, final = run(store, 6000, snapshot_every=300, tail=50)
    # Bounded by the log between snapshots, its tail and two copies of the state.
    assert peak < 60_000 and final < 60_000
    assert store.used() == final


def test_snapshot_that_does_not_fit_rolls_back_and_compaction_frees_room() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1, "a", 0), (), BOOT))
    local.save(StorageUpdate(HardState(1, "a", 300),
                             tuple(Entry(1, i, COMMAND, command(i)) for i in range(1, 301))))
    used = store.used()
    big = json.dumps(["x" * 1000] * 20)  # ~20 K characters of state
    store.quota = used + len(big) // 2  # no room for the data while the log is there
    before = dict(store.data)
    with pytest.raises(StorageError, match="quota exceeded"):
        local.save(StorageUpdate(None, (), SnapshotMeta(300, 1, CONFIG), big, 300))
    assert store.data == before
    # A smaller state fits; its compaction gives back the log's room, and then the big one
    # fits too.
    local.save(StorageUpdate(None, (), SnapshotMeta(300, 1, CONFIG), "{}", 300))
    assert store.used() < used / 10
    local.save(StorageUpdate(None, (), SnapshotMeta(300, 1, CONFIG), big, 300))
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot_data == big and state.entries == []

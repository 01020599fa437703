"""LocalStorage against the reference MemoryStorage, the documented key layout, write costs."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsfake import FakeWebStorage, chars, draw_update

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage, MemoryStorage, Storage

NS = "webraft/room/a/"
BOOT = SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))


def own_keys(store: FakeWebStorage, ns: str = NS) -> set[str]:
    return {k for k in store.data if k.startswith(ns)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_update_sequences_match_memory_storage(data: st.DataObject) -> None:
    store = FakeWebStorage({"foreign": "x", "webraft/room/b/meta": "{}"})
    local = LocalStorage(NS, store)
    mem = MemoryStorage()
    assert local.load() is None
    for _ in range(data.draw(st.integers(1, 12))):
        update = draw_update(data, mem)
        mem.save(update)
        assert local.save(update) is None
        expected = mem.load()
        assert expected is not None
        expected.check()
        assert local.load() == expected
        # A restart: a new object on the same store sees the same state.
        assert LocalStorage(NS, store).load() == expected
        # No garbage after clean saves: the meta plus one key per entry.
        assert len(own_keys(store)) == 1 + len(expected.entries)
        assert local.usage() == sum(chars(k) + chars(store.data[k]) for k in own_keys(store))
    assert store.data["foreign"] == "x" and store.data["webraft/room/b/meta"] == "{}"


def test_is_a_storage() -> None:
    assert isinstance(LocalStorage(NS, FakeWebStorage()), Storage)


def test_key_layout_and_meta_format() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    e = [Entry(1, 1, NOOP), Entry(1, 2, COMMAND, {"x": [1, "é"]}), Entry(1, 3, COMMAND, 3)]
    local.save(StorageUpdate(HardState(1, "a", 0), tuple(e), BOOT))
    assert set(store.data) == {NS + "meta", NS + "e:0:1", NS + "e:0:2", NS + "e:0:3"}
    assert store.data[NS + "e:0:2"] == '[1,0,{"x":[1,"é"]}]'  # compact, non-ASCII kept
    assert store.data[NS + "e:0:1"] == "[1,1,null]"
    # A truncation at 2 starts generation 1 there; the old suffix is removed after the meta.
    local.save(StorageUpdate(HardState(2, None, 1), (Entry(2, 2, CONFIG, {"voters": ["a"]}),)))
    assert set(store.data) == {NS + "meta", NS + "e:0:1", NS + "e:1:2"}
    meta = json.loads(store.data[NS + "meta"])
    assert meta == {"v": 1, "term": 2, "vote": None, "commit": 1,
                    "snapshot": {"index": 0, "term": 0,
                                 "config": {"voters": ["a", "b", "c"], "learners": []}},
                    "last": 2, "segments": [[1, 0], [2, 1]]}
    assert ": " not in store.data[NS + "meta"] and ", " not in store.data[NS + "meta"]
    # A snapshot at 1 drops generation 0 entirely.
    local.save(StorageUpdate(snapshot=SnapshotMeta(1, 1, ClusterConfig(("a",)))))
    assert set(store.data) == {NS + "meta", NS + "e:1:2"}
    assert json.loads(store.data[NS + "meta"])["segments"] == [[2, 1]]
    state = LocalStorage(NS, store).load()
    assert state is not None
    assert state.entries == [Entry(2, 2, CONFIG, {"voters": ["a"]})]
    # A snapshot past the log empties it; the next append starts a fresh segment.
    local.save(StorageUpdate(snapshot=SnapshotMeta(5, 2, ClusterConfig(("a",)))))
    assert set(store.data) == {NS + "meta"}
    assert json.loads(store.data[NS + "meta"])["segments"] == []
    local.save(StorageUpdate(entries=(Entry(2, 6, COMMAND, "x"),)))
    assert set(store.data) == {NS + "meta", NS + "e:0:6"}


def test_writes_per_save() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1), (), BOOT))
    store.sets = store.removes = 0
    local.save(StorageUpdate(entries=tuple(Entry(1, i, COMMAND, i) for i in range(1, 11))))
    assert (store.sets, store.removes) == (11, 0)  # one per entry, one meta
    store.sets = 0
    local.save(StorageUpdate(HardState(1, "a", 3)))
    assert (store.sets, store.removes) == (1, 0)
    store.sets = 0
    local.save(StorageUpdate(snapshot=BOOT))  # what a restarted core re-saves: no change
    assert (store.sets, store.removes) == (0, 0)
    local.save(StorageUpdate(HardState(2, "a", 3), (Entry(2, 5, COMMAND, "y"),)))
    assert (store.sets, store.removes) == (2, 6)  # entry + meta; 5..10 of gen 0 removed


def test_unicode_and_lone_surrogates_round_trip() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    commands = ["😀 ünï", "\ud800 lone", {"k\udfff": ["\u2028"]}]
    entries = tuple(Entry(1, i + 1, COMMAND, c) for i, c in enumerate(commands))
    local.save(StorageUpdate(HardState(1), entries, BOOT))
    assert store.data[NS + "e:0:1"] == '[1,0,"😀 ünï"]'
    for key in store.data:  # every stored value can be encoded, i.e. handed to JavaScript
        store.data[key].encode("utf-8")
    state = LocalStorage(NS, store).load()
    assert state is not None and [e.command for e in state.entries] == commands
    # usage counts UTF-16 code units: the emoji counts twice.
    assert local.usage() == sum(chars(k) + chars(v) for k, v in store.data.items())
    assert local.usage() > sum(len(k) + len(v) for k, v in store.data.items())


def test_clear_removes_the_namespace_only() -> None:
    store = FakeWebStorage({"x": "1", NS + "note": "mine, but not a webraft key"})
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1), (Entry(1, 1),), BOOT))
    assert local.usage() > 0
    local.clear()
    assert store.data == {"x": "1", NS + "note": "mine, but not a webraft key"}
    assert local.usage() == 0
    assert local.load() is None
    local.save(StorageUpdate(HardState(3), (), BOOT))  # usable again after clear()
    assert LocalStorage(NS, store).load() is not None

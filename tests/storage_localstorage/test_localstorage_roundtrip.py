"""LocalStorage against the reference model of the contract, the documented key layout (entries,
snapshot data, segments after compaction), write costs."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsfake import FakeWebStorage, chars
from storage.storage_model import Model, updates

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage, Storage

NS = "webraft/room/a/"
BOOT = SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))


def own_keys(store: FakeWebStorage, ns: str = NS) -> set[str]:
    return {k for k in store.data if k.startswith(ns)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_update_sequences_match_the_model(data: st.DataObject) -> None:
    store = FakeWebStorage({"foreign": "x", "webraft/room/b/meta": "{}"})
    local = LocalStorage(NS, store)
    local.data_chunk = data.draw(st.sampled_from([7, 64, LocalStorage.data_chunk]))
    model = Model()
    assert local.load() is None
    for _ in range(data.draw(st.integers(1, 14))):
        update = data.draw(updates(model))
        model.apply(update)
        assert local.save(update) is None
        expected = model.state()
        assert expected is not None
        expected.check()
        assert local.load() == expected
        # A restart: a new object on the same store sees the same state.
        assert LocalStorage(NS, store).load() == expected
        # No garbage after clean saves: a new tab's load, which removes every key the meta
        # does not reference, finds nothing to remove; the meta, the data's chunks and at
        # least one entry per run remain.
        kept = dict(store.data)
        LocalStorage(NS, store).load()
        assert store.data == kept
        chunks = -(-len(model.data) // local.data_chunk) if model.data else 0
        assert 1 + chunks + min(1, len(expected.entries)) <= len(own_keys(store)) <= (
            1 + len(expected.entries) + chunks)
        assert local.usage() == sum(chars(k) + chars(store.data[k]) for k in own_keys(store))
    assert store.data["foreign"] == "x" and store.data["webraft/room/b/meta"] == "{}"


def test_is_a_storage() -> None:
    assert isinstance(LocalStorage(NS, FakeWebStorage()), Storage)


def test_key_layout_and_meta_format() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    e = [Entry(1, 1, NOOP), Entry(1, 2, COMMAND, {"x": [1, "é"]}), Entry(1, 3, COMMAND, 3)]
    local.save(StorageUpdate(HardState(1, "a", 0), tuple(e), BOOT))
    # The three entries of one save are one run, keyed by the first index.
    assert set(store.data) == {NS + "meta", NS + "e:0:1"}
    # compact, non-ASCII kept
    assert store.data[NS + "e:0:1"] == '[[1,1,null],[1,0,{"x":[1,"é"]}],[1,0,3]]'
    # A truncation at 2 starts generation 1 there; the old run still holds entry 1.
    local.save(StorageUpdate(HardState(2, None, 1), (Entry(2, 2, CONFIG, {"voters": ["a"]}),)))
    assert set(store.data) == {NS + "meta", NS + "e:0:1", NS + "e:1:2"}
    meta = json.loads(store.data[NS + "meta"])
    assert meta == {"v": 4, "term": 2, "vote": None, "commit": 1,
                    "snapshot": {"index": 0, "term": 0,
                                 "config": {"voters": ["a", "b", "c"], "learners": []}},
                    "last": 2, "segments": [[1, 0], [2, 1]], "data": None, "tail": []}
    assert ": " not in store.data[NS + "meta"] and ", " not in store.data[NS + "meta"]
    # A snapshot at 1 with its data: the data goes to d:0:*; the log stays whole (a tail).
    local.data_chunk = 4
    local.save(StorageUpdate(snapshot=SnapshotMeta(1, 1, ClusterConfig(("a",))),
                             snapshot_data='{"k":"é"}'))
    assert set(store.data) == {NS + "meta", NS + "e:0:1", NS + "e:1:2", NS + "d:0:0",
                               NS + "d:0:1", NS + "d:0:2"}
    assert [store.data[f"{NS}d:0:{k}"] for k in range(3)] == ['{"k"', ':"é"', "}"]
    meta = json.loads(store.data[NS + "meta"])
    assert meta["segments"] == [[1, 0], [2, 1]] and meta["data"] == [0, 3, 9]
    # Compacting to 1 drops generation 0 entirely.
    local.save(StorageUpdate(compact_to=1))
    assert set(store.data) == {NS + "meta", NS + "e:1:2", NS + "d:0:0", NS + "d:0:1",
                               NS + "d:0:2"}
    assert json.loads(store.data[NS + "meta"])["segments"] == [[2, 1]]
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot_data == '{"k":"é"}'
    assert state.entries == [Entry(2, 2, CONFIG, {"voters": ["a"]})]
    # A snapshot past the log, compacting everything: the next data gen replaces the data,
    # the log is empty; the next append starts a fresh segment.
    local.save(StorageUpdate(None, (), SnapshotMeta(5, 2, ClusterConfig(("a",))), "[5]", 5))
    assert set(store.data) == {NS + "meta", NS + "d:1:0"}
    meta = json.loads(store.data[NS + "meta"])
    assert (meta["segments"], meta["last"], meta["data"]) == ([], 5, [1, 1, 3])
    local.save(StorageUpdate(entries=(Entry(2, 6, COMMAND, "x"),)))
    assert set(store.data) == {NS + "meta", NS + "d:1:0", NS + "e:0:6"}
    # A tail: the first segment may start at or before the snapshot.
    local.save(StorageUpdate(None, (Entry(2, 7, COMMAND, "y"),), SnapshotMeta(
        6, 2, ClusterConfig(("a",))), "[6]"))
    assert json.loads(store.data[NS + "meta"])["segments"] == [[6, 0]]
    state = LocalStorage(NS, store).load()
    assert state is not None and [e.index for e in state.entries] == [6, 7]
    assert state.snapshot.index == 6 and state.snapshot_data == "[6]"


def test_writes_per_save() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1), (), BOOT))
    store.sets = store.removes = 0
    local.save(StorageUpdate(entries=tuple(Entry(1, i, COMMAND, i) for i in range(1, 11))))
    assert (store.sets, store.removes) == (2, 0)  # one run, one meta
    store.sets = 0
    local.save(StorageUpdate(HardState(1, "a", 3)))
    assert (store.sets, store.removes) == (1, 0)
    store.sets = 0
    local.save(StorageUpdate(snapshot=BOOT))  # what a restarted core re-saves: no change
    assert (store.sets, store.removes) == (0, 0)
    local.save(StorageUpdate(HardState(2, "a", 3), (Entry(2, 5, COMMAND, "y"),)))
    # entry + meta; gen 0's run 1..10 still holds 1..4: kept, read up to 4
    assert (store.sets, store.removes) == (2, 0)
    store.sets = store.removes = 0
    local.data_chunk = 100
    snap = SnapshotMeta(3, 1, BOOT.config)
    local.save(StorageUpdate(None, (), snap, "[" + "1," * 100 + "1]", 2))
    # 203 characters; 3..4 of the run 1..10 again, from 3 on (it held the compacted 1, 2 and
    # the truncated 5..10); meta; the run 1..10 removed
    assert (store.sets, store.removes) == (3 + 1 + 1, 1)
    assert store.data[NS + "e:0:3"] == "[[1,0,3],[1,0,4]]"
    store.sets = store.removes = 0
    local.save(StorageUpdate(snapshot=snap))  # re-recorded without data: no change
    assert (store.sets, store.removes) == (0, 0)


@pytest.mark.parametrize("chunk", [1, 5, 1 << 18])
def test_snapshot_data_round_trips_in_any_chunk_size(chunk: int) -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.data_chunk = chunk
    texts = ['{"a":"😀 ünï"}', "", "x" * 1000, '["\\ud800"]', '"\u2028"', "{}"]
    local.save(StorageUpdate(HardState(1), (Entry(1, 1, COMMAND, 1),), BOOT))
    for n, text in enumerate(texts, start=1):
        local.save(StorageUpdate(None, (Entry(1, n + 1, COMMAND, n),),
                                 SnapshotMeta(n, 1, BOOT.config), text, n - 1))
        state = LocalStorage(NS, store).load()
        assert state is not None and state.snapshot_data == text
        data_keys = {k for k in store.data if k.startswith(NS + "d:")}
        assert data_keys == {f"{NS}d:{n - 1}:{k}" for k in range(-(-len(text) // chunk))}


def test_lone_surrogates_in_snapshot_data_are_escaped() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.data_chunk = 3
    local.save(StorageUpdate(HardState(1), (Entry(1, 1, COMMAND, 1),), BOOT))
    data = '["\ud800 raw", "\U0001f600"]'
    local.save(StorageUpdate(None, (), SnapshotMeta(1, 1, BOOT.config), data, 1))
    for value in store.data.values():  # every value can be handed to JavaScript
        value.encode("utf-8")
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot_data == '["\\ud800 raw", "\U0001f600"]'
    assert json.loads(state.snapshot_data) == json.loads(data)


def test_unicode_and_lone_surrogates_round_trip() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    commands = ["😀 ünï", "\ud800 lone", {"k\udfff": ["\u2028"]}]
    entries = tuple(Entry(1, i + 1, COMMAND, c) for i, c in enumerate(commands))
    local.save(StorageUpdate(HardState(1), entries, BOOT))
    assert store.data[NS + "e:0:1"].startswith('[[1,0,"😀 ünï"],[1,0,"\\ud800 lone"],')
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


def test_a_deferred_commit_index_is_written_by_flush_or_the_next_save() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    scheduled: list[int] = []
    local.defer_commits(lambda: scheduled.append(1))
    local.save(StorageUpdate(HardState(1, "a", 0), (Entry(1, 1, COMMAND, 1),
                                                    Entry(1, 2, COMMAND, 2)), BOOT))
    assert scheduled == []
    store.sets = 0
    local.save(StorageUpdate(HardState(1, "a", 1)))  # the commit index alone: later
    assert store.sets == 0 and scheduled == [1]
    assert json.loads(store.data[NS + "meta"])["commit"] == 0
    local.flush()
    assert store.sets == 1 and json.loads(store.data[NS + "meta"])["commit"] == 1
    local.flush()  # nothing pending any more
    assert store.sets == 1
    # The next save comes first: it writes the commit index with its entry.
    local.save(StorageUpdate(HardState(1, "a", 2)))
    local.save(StorageUpdate(None, (Entry(1, 3, COMMAND, 3),)))
    assert json.loads(store.data[NS + "meta"])["commit"] == 2
    store.sets = 0
    local.flush()
    assert store.sets == 0
    # A new term or vote is never deferred.
    local.save(StorageUpdate(HardState(2, None, 2)))
    state = LocalStorage(NS, store).load()
    assert state is not None and state.hard == HardState(2, None, 2)
    assert [e.index for e in state.entries] == [1, 2, 3]

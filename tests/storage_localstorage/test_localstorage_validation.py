"""Namespaces, jsnull, the default store, untrusted (corrupt or concurrent) contents, and
namespaces written by schema 1 (before snapshots had data)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Callable

import pytest
from lsfake import FakeWebStorage, JsNull
from storage.storage_model import Model

from webraft.core.messages import COMMAND, CONFIG, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.errors import StorageError
from webraft.storage import LocalStorage

NS = "webraft/room/a/"
BOOT = SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))
UPDATES = [
    StorageUpdate(HardState(1, "a", 0), (Entry(1, 1), Entry(1, 2), Entry(1, 3)), BOOT),
    StorageUpdate(HardState(2, "b", 2), (Entry(2, 3, CONFIG, {"voters": ["a", "b"]}),
                                         Entry(2, 4, COMMAND, [1]))),
]


def filled(store: FakeWebStorage | None = None, ns: str = NS) -> FakeWebStorage:
    """UPDATES saved an entry at a time: each entry in a key of its own (a run of one), the
    layout the corruption cases below edit."""
    store = store if store is not None else FakeWebStorage()
    local = LocalStorage(ns, store)
    for update in UPDATES:
        for k, entry in enumerate(update.entries):
            local.save(StorageUpdate(update.hard, (entry,), update.snapshot) if k == 0
                       else StorageUpdate(None, (entry,)))
    return store


def expected():
    mem = Model()
    for update in UPDATES:
        mem.apply(update)
    return mem.state()


# ---------------------------------------------------------------------- namespaces


def test_namespaces_are_isolated_even_when_one_prefixes_the_other() -> None:
    foreign = {"x": "1", NS + "notes": "{", NS + "e:01:1": "[", NS + "e:zz": "]",
               NS + "e:1:2:3": "?", NS + "metadata": "!", "webraft/room/": "?"}
    store = FakeWebStorage(foreign)
    a, ab = LocalStorage(NS, store), LocalStorage(NS + "b/", store)
    assert a.load() is None and ab.load() is None
    for update in UPDATES:
        a.save(update)
    ab.save(StorageUpdate(HardState(7, "z", 0), (Entry(7, 1, COMMAND, "other"),), BOOT))
    a.save(StorageUpdate(HardState(3), (Entry(3, 2),)))  # a truncation, with removals
    mem = Model()
    for update in [*UPDATES, StorageUpdate(HardState(3), (Entry(3, 2),))]:
        mem.apply(update)
    assert LocalStorage(NS, store).load() == mem.state()
    other = LocalStorage(NS + "b/", store).load()
    assert other is not None and other.hard == HardState(7, "z", 0)
    assert [e.command for e in other.entries] == ["other"]
    assert all(store.data[k] == v for k, v in foreign.items())
    own = {k for k in store.data
           if k.startswith(NS) and k not in foreign and not k.startswith(NS + "b/")}
    assert own == {NS + "meta", NS + "e:0:1", NS + "e:2:2"}
    assert a.usage() == sum(len(k) + len(store.data[k]) for k in own)
    a.clear()
    assert LocalStorage(NS + "b/", store).load() == other
    assert all(store.data[k] == v for k, v in foreign.items())
    assert not [k for k in store.data if k.startswith(NS) and k not in foreign
                and not k.startswith(NS + "b/")]


def test_jsnull_means_missing() -> None:
    store = FakeWebStorage({"foreign": "1"}, null=JsNull())
    local = LocalStorage(NS, store)
    assert local.load() is None
    filled(store)
    assert LocalStorage(NS, store).load() == expected()
    # A missing entry reads as jsnull too, and is reported as missing.
    del store.data[NS + "e:1:4"]
    with pytest.raises(StorageError, match=r"entry 4 .* is missing"):
        LocalStorage(NS, store).load()


def test_default_store_is_js_local_storage_resolved_lazily(monkeypatch) -> None:
    code = ("import sys, webraft, webraft.storage.localstorage\n"
            "assert 'js' not in sys.modules and 'pyodide' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.delitem(sys.modules, "js", raising=False)
    with pytest.raises(StorageError, match="no localStorage"):
        LocalStorage(NS)  # CPython: there is no js module
    fake_js = types.ModuleType("js")
    fake_js.localStorage = FakeWebStorage(null=JsNull())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "js", fake_js)
    local = LocalStorage(NS)
    assert local.store is fake_js.localStorage  # type: ignore[attr-defined]
    assert local.load() is None
    filled(local.store)
    assert LocalStorage(NS).load() == expected()
    with pytest.raises(ValueError):
        LocalStorage("", FakeWebStorage())


# ---------------------------------------------------------------------- invalid updates


def test_invalid_updates_are_refused_before_any_write() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    with pytest.raises(StorageError, match="first save"):
        local.save(StorageUpdate(HardState(1), (Entry(1, 1),)))
    with pytest.raises(StorageError, match="without its data"):
        local.save(StorageUpdate(HardState(1), (), SnapshotMeta(2, 1, BOOT.config)))
    assert store.data == {}
    filled(store)
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(snapshot=SnapshotMeta(0, 0, BOOT.config)))  # fine: the same one
    local.save(StorageUpdate(None, (), SnapshotMeta(2, 1, BOOT.config), "[2]"))
    data = dict(store.data)
    bad = {
        "a gap after the log": (StorageUpdate(None, (Entry(2, 6),)), "gap"),
        "a gap inside": (StorageUpdate(None, (Entry(2, 5), Entry(2, 7))), "consecutive"),
        "not JSON": (StorageUpdate(None, (Entry(2, 5, COMMAND, object()),)), "JSON"),
        "an older snapshot": (StorageUpdate(snapshot=SnapshotMeta(1, 1, BOOT.config)),
                              "older"),
        "a newer snapshot without data": (StorageUpdate(snapshot=SnapshotMeta(
            3, 2, BOOT.config)), "without its data"),
        "data without a snapshot": (StorageUpdate(HardState(3), (), None, "[]"),
                                    "without its snapshot"),
        "compaction past the snapshot": (StorageUpdate(compact_to=3), "do not reach"),
        "a snapshot past the log, log kept": (StorageUpdate(None, (), SnapshotMeta(
            6, 2, BOOT.config), "[6]"), "do not reach"),
        "a suffix cut before the snapshot": (StorageUpdate(None, (Entry(1, 1),)),
                                             "do not reach"),
    }
    for name, (update, message) in bad.items():
        with pytest.raises(StorageError, match=message):
            local.save(update)
        assert store.data == data, name
    local.save(StorageUpdate(HardState(3), (Entry(3, 5, COMMAND, "ok"),)))  # still usable


class Holds:
    """A page's ``holdsIn(store)`` (``webraft.js``): compares where the text lives and hands
    back only the verdict; counts the questions."""

    def __init__(self, store: FakeWebStorage) -> None:
        self.store = store
        self.asked = 0

    def __call__(self, key: str, text: str) -> bool:
        self.asked += 1
        return bool(self.store.data.get(key) == text)


@pytest.mark.parametrize("compare", ["read back", "in the page"])
def test_a_second_writer_on_the_namespace_is_detected(compare: str) -> None:
    store = filled()
    holds = Holds(store) if compare == "in the page" else None
    first = LocalStorage(NS, store, holds=holds)
    second = LocalStorage(NS, store, holds=holds)
    assert first.load() == second.load()
    reads = store.reads
    first.save(StorageUpdate(HardState(5, "a", 2)))
    data = dict(store.data)
    with pytest.raises(StorageError, match="changed by someone else"):
        second.save(StorageUpdate(HardState(5, "b", 2)))  # would be a second vote in term 5
    assert store.data == data
    if holds is not None:  # asked, rather than the meta read back into Python
        assert holds.asked == 2 and store.reads == reads
    second.load()  # after reading it again, it may write
    second.save(StorageUpdate(HardState(6, "b", 2)))
    state = LocalStorage(NS, store).load()
    assert state is not None and state.hard == HardState(6, "b", 2)


# ---------------------------------------------------------------------- corrupt contents


def set_meta(**changes: object) -> Callable[[dict[str, str]], None]:
    def mutate(data: dict[str, str]) -> None:
        meta = json.loads(data[NS + "meta"])
        for key, value in changes.items():
            if value is DELETE:
                del meta[key]
            else:
                meta[key] = value
        data[NS + "meta"] = json.dumps(meta)
    return mutate


def set_key(key: str, value: str | None) -> Callable[[dict[str, str]], None]:
    def mutate(data: dict[str, str]) -> None:
        if value is None:
            del data[NS + key]
        else:
            data[NS + key] = value
    return mutate


DELETE = object()
SNAP = {"index": 0, "term": 0, "config": {"voters": ["a"], "learners": []}}
CORRUPT = {
    "meta not JSON": (set_key("meta", "{not json"), "not valid JSON"),
    "meta not an object": (set_key("meta", "[1, 2]"), "not a JSON object"),
    "newer schema": (set_meta(v=5), "newer webraft"),
    "no data field": (set_meta(data=DELETE), "lacks"),
    "no schema version": (set_meta(v=DELETE), "schema version"),
    "schema version a string": (set_meta(v="1"), "schema version"),
    "term a string": (set_meta(term="2"), "term"),
    "term negative": (set_meta(term=-1), "term"),
    "term a bool": (set_meta(term=True), "term"),
    "term too large": (set_meta(term=2**60), "term"),
    "commit missing": (set_meta(commit=DELETE), "lacks"),
    "vote not a string": (set_meta(vote=5), "vote"),
    "vote empty": (set_meta(vote=""), "vote"),
    "vote a list": (set_meta(vote=["a"]), "vote"),
    "snapshot not an object": (set_meta(snapshot=[0, 0]), "snapshot"),
    "snapshot config empty": (set_meta(snapshot={**SNAP, "config": {"voters": []}}), "voters"),
    "snapshot index a float": (set_meta(snapshot={**SNAP, "index": 0.0}), "snapshot index"),
    "snapshot past the term": (set_meta(snapshot={**SNAP, "term": 9}, segments=[], last=0),
                               "newer than the stored term"),
    "last before snapshot": (set_meta(snapshot={**SNAP, "index": 5}, last=4), "precedes"),
    "segments not a list": (set_meta(segments={"1": 0}), "not a list"),
    "segment not a pair": (set_meta(segments=[[1]]), "pairs"),
    "segment gen a string": (set_meta(segments=[[1, "0"], [3, 1]]), "segment gen"),
    "segments start late": (set_meta(segments=[[2, 0], [3, 1]]), "do not start"),
    "segments out of order": (set_meta(segments=[[1, 0], [3, 1], [3, 2]]), "overlap"),
    "segment past last": (set_meta(segments=[[1, 0], [3, 1], [9, 2]]), "run past"),
    "segments share a gen": (set_meta(segments=[[1, 0], [3, 0]]), "share a gen"),
    "segments end before they start": (set_meta(last=0), "run past the log"),
    "no segments": (set_meta(segments=[]), "index 4 for an empty log"),
    "tail in schema 1": (set_meta(v=1, snapshot={**SNAP, "index": 1, "term": 1}), "start"),
    "last beyond the entries": (set_meta(last=6), "entry 5 .* missing"),
    "entry missing (gap)": (set_key("e:0:2", None), "entry 2 .* missing"),
    "entry not JSON": (set_key("e:0:1", "[1,0,"), "entry 1 is not valid JSON"),
    "entry not a list": (set_key("e:0:1", '{"term":1}'), r"\[term, kind, command\]"),
    "entry too short": (set_key("e:0:1", "[1,0]"), r"\[term, kind, command\]"),
    "run empty": (set_key("e:0:1", "[]"), r"entry 1 is not \[term, kind, command\]"),
    "run with a short entry": (set_key("e:0:1", "[[1,0,null],[1,0]]"),
                               r"entry 2 is not \[term, kind, command\]"),
    "run with an entry not a list": (set_key("e:0:1", '[[1,0,null],"x"]'),
                                     r"entry 2 is not \[term, kind, command\]"),
    "run terms decrease": (set_key("e:1:3", '[[2,2,{"voters":["a"]}],[1,0,[1]]]'),
                           "inconsistent at index 4"),
    "entry kind unknown": (set_key("e:0:1", "[1,7,null]"), "unknown kind"),
    "malformed session entry": (set_key("e:0:1", "[1,3,[1,2]]"), "session"),
    "entry term a string": (set_key("e:0:1", '["1",0,null]'), "entry 1 term"),
    "entry config invalid": (set_key("e:1:3", '[2,2,{"voters":"a"}]'), "voters"),
    "entry term beyond hard term": (set_key("e:1:4", "[3,0,1]"), "inconsistent at index 4"),
    "entry terms decrease": (set_key("e:0:1", "[2,0,null]"), "inconsistent at index 2"),
    "deeply nested entry": (set_key("e:0:1", "[1,0," + "[" * 100000 + "]" * 100000 + "]"),
                            "not valid JSON"),
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_contents_raise_storage_error(name: str) -> None:
    mutate, message = CORRUPT[name]
    store = filled()
    assert json.loads(store.data[NS + "meta"])["segments"] == [[1, 0], [3, 1]]
    mutate(store.data)
    data = dict(store.data)
    with pytest.raises(StorageError, match=message):
        LocalStorage(NS, store).load()
    assert store.data == data  # a failed load removes nothing: the evidence stays
    with pytest.raises(StorageError):  # a first save loads first, and refuses as well
        LocalStorage(NS, store).save(StorageUpdate(HardState(9)))
    assert store.data == data


def test_non_string_values_raise_storage_error() -> None:
    store = filled()
    store.data[NS + "meta"] = 42  # type: ignore[assignment]
    with pytest.raises(StorageError, match="not text"):
        LocalStorage(NS, store).load()


def test_unreferenced_entry_keys_are_collected_on_load() -> None:
    store = filled()
    clean = dict(store.data)
    garbage = {NS + "e:0:3": "[1,0,null]", NS + "e:1:9": "junk", NS + "e:7:1": "[",
               NS + "e:0:0": "x"}
    store.data.update(garbage)
    assert LocalStorage(NS, store).load() == expected()
    assert store.data == clean


# ---------------------------------------------------------------------- snapshot data

DATA = '{"state":"0123456789abcdef","n":1}'  # 34 characters: 5 chunks of 8


def snapped() -> FakeWebStorage:
    store = filled()
    local = LocalStorage(NS, store)
    local.data_chunk = 8
    local.save(StorageUpdate(None, (), SnapshotMeta(3, 2, BOOT.config), DATA, 2))
    meta = json.loads(store.data[NS + "meta"])
    assert meta["data"] == [0, 5, 34] and meta["segments"] == [[3, 1]]
    return store


CORRUPT_DATA = {
    "chunk missing": (set_key("d:0:1", None), r"chunk 1 .* is missing"),
    "chunk shortened": (set_key("d:0:4", "}"), "has 33 characters, its meta says 34"),
    "chunk not text": (set_key("d:0:2", 5), "not text"),  # type: ignore[arg-type]
    "fewer chunks in meta": (set_meta(data=[0, 4, 34]), "has 32 characters"),
    "data reference not a list": (set_meta(data={"gen": 0}), r"null or \[gen, chunks"),
    "data reference too short": (set_meta(data=[0, 5]), r"null or \[gen, chunks"),
    "data gen a string": (set_meta(data=["0", 5, 34]), "snapshot data gen"),
    "data length negative": (set_meta(data=[0, 5, -1]), "snapshot data length"),
    "data gone": (set_meta(data=None), "snapshot at 3 has no data"),
    "tail contradicts the snapshot": (
        set_meta(snapshot={"index": 3, "term": 1, "config": {"voters": ["a"]}}),
        "contradicts the snapshot"),
    "log ends before the snapshot": (
        set_meta(snapshot={"index": 4, "term": 2, "config": {"voters": ["a"]}}, last=3,
                 segments=[[3, 1]]), "last log index 3 precedes the snapshot"),
}


@pytest.mark.parametrize("name", list(CORRUPT_DATA))
def test_corrupt_snapshot_data_raises_storage_error(name: str) -> None:
    mutate, message = CORRUPT_DATA[name]
    store = snapped()
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot_data == DATA
    mutate(store.data)
    data = dict(store.data)
    with pytest.raises(StorageError, match=message):
        LocalStorage(NS, store).load()
    assert store.data == data  # the evidence stays
    with pytest.raises(StorageError):
        LocalStorage(NS, store).save(StorageUpdate(HardState(9)))
    assert store.data == data


def test_unreferenced_data_keys_are_collected_on_load() -> None:
    store = snapped()
    clean = dict(store.data)
    garbage = {NS + "d:1:0": "{", NS + "d:0:5": "x", NS + "d:7:0": ""}
    foreign = {NS + "d:01:0": "not ours", NS + "d:0": "nor this", NS + "d:0:0:0": "?"}
    store.data.update(garbage | foreign)
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot_data == DATA
    assert store.data == clean | foreign


# ---------------------------------------------------------------------- schema 1

#: A namespace exactly as schema 1 (webraft before snapshots) wrote it: UPDATES saved.
SCHEMA_1 = {
    NS + "meta": '{"v":1,"term":2,"vote":"b","commit":2,"snapshot":{"index":0,"term":0,'
                 '"config":{"voters":["a","b","c"],"learners":[]}},"last":4,'
                 '"segments":[[1,0],[3,1]]}',
    NS + "e:0:1": "[1,0,null]",
    NS + "e:0:2": "[1,0,null]",
    NS + "e:1:3": '[2,2,{"voters":["a","b"]}]',
    NS + "e:1:4": "[2,0,[1]]",
}


def test_schema_1_namespace_loads_and_the_next_save_upgrades_it() -> None:
    store = FakeWebStorage(SCHEMA_1)
    assert LocalStorage(NS, store).load() == expected()
    assert filled().data == {k: v.replace('"v":1', '"v":4').replace(
        "]]}", ']],"data":null,"tail":[]}') for k, v in SCHEMA_1.items()}  # the same layout
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(None, (Entry(2, 5, COMMAND, "five"),), SnapshotMeta(
        4, 2, BOOT.config), '{"applied":4}', 3))
    meta = json.loads(store.data[NS + "meta"])
    assert meta["v"] == 4 and meta["data"] == [0, 1, 13] and meta["segments"] == [[4, 1]]
    state = LocalStorage(NS, store).load()
    assert state is not None and state.snapshot_data == '{"applied":4}'
    assert [(e.index, e.command) for e in state.entries] == [(4, [1]), (5, "five")]
    assert set(store.data) == {NS + "meta", NS + "e:1:4", NS + "e:1:5", NS + "d:0:0"}


def test_schema_1_namespace_second_writer_check_still_works() -> None:
    store = FakeWebStorage(SCHEMA_1)
    first, second = LocalStorage(NS, store), LocalStorage(NS, store)
    first.load()
    second.load()
    first.save(StorageUpdate(HardState(3, "a", 2)))  # writes schema 4
    with pytest.raises(StorageError, match="changed by someone else"):
        second.save(StorageUpdate(HardState(3, "b", 2)))


def test_a_node_started_outside_any_cluster_reloads() -> None:
    from lsfake import FakeWebStorage

    from webraft.core.state import OUTSIDE, HardState, SnapshotMeta, StorageUpdate
    from webraft.storage.localstorage import LocalStorage

    web = FakeWebStorage()
    LocalStorage("ns/", web).save(StorageUpdate(HardState(), (), SnapshotMeta(0, 0, OUTSIDE)))
    loaded = LocalStorage("ns/", web).load()
    assert loaded is not None and loaded.snapshot.config == OUTSIDE


def test_schema_2_namespace_loads() -> None:
    """Schema 2 (an entry per key, snapshot data) reads as runs of one."""
    schema_2 = {k: v.replace('"v":1', '"v":2').replace("]]}", ']],"data":null}')
                for k, v in SCHEMA_1.items()}
    assert LocalStorage(NS, FakeWebStorage(schema_2)).load() == expected()


def test_a_compaction_that_finds_its_run_cut_short_is_refused() -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1, "a", 3), tuple(Entry(1, i, COMMAND, i)
                                                         for i in range(1, 4)), BOOT))
    store.data[NS + "e:0:1"] = "[[1,0,1],[1,0,2]]"  # edited behind our back: 3 is gone
    data = dict(store.data)
    with pytest.raises(StorageError, match=r"no longer holds entries 2\.\.3"):
        local.save(StorageUpdate(None, (), SnapshotMeta(1, 1, BOOT.config), "[1]", 1))
    assert store.data == data

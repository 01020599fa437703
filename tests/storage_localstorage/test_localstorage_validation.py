"""Namespaces, jsnull, the default store, and untrusted (corrupt or concurrent) contents."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Callable

import pytest
from lsfake import FakeWebStorage, JsNull

from webraft.core.messages import COMMAND, CONFIG, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.errors import StorageError
from webraft.storage import LocalStorage, MemoryStorage

NS = "webraft/room/a/"
BOOT = SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))
UPDATES = [
    StorageUpdate(HardState(1, "a", 0), (Entry(1, 1), Entry(1, 2), Entry(1, 3)), BOOT),
    StorageUpdate(HardState(2, "b", 2), (Entry(2, 3, CONFIG, {"voters": ["a", "b"]}),
                                         Entry(2, 4, COMMAND, [1]))),
]


def filled(store: FakeWebStorage | None = None, ns: str = NS) -> FakeWebStorage:
    store = store if store is not None else FakeWebStorage()
    local = LocalStorage(ns, store)
    for update in UPDATES:
        local.save(update)
    return store


def expected():
    mem = MemoryStorage()
    for update in UPDATES:
        mem.save(update)
    return mem.load()


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
    mem = MemoryStorage()
    for update in [*UPDATES, StorageUpdate(HardState(3), (Entry(3, 2),))]:
        mem.save(update)
    assert LocalStorage(NS, store).load() == mem.load()
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
    assert store.data == {}
    filled(store)
    data = dict(store.data)
    local = LocalStorage(NS, store)
    bad = [
        StorageUpdate(None, (Entry(2, 6),)),  # a gap after last (4)
        StorageUpdate(None, (Entry(2, 5), Entry(2, 7))),  # a gap inside
        StorageUpdate(None, (Entry(2, 5, COMMAND, object()),)),  # not JSON
        StorageUpdate(snapshot=SnapshotMeta(0, 0, BOOT.config)),  # fine: same snapshot ...
    ]
    for update in bad[:3]:
        with pytest.raises(StorageError):
            local.save(update)
        assert store.data == data
    local.save(bad[3])
    assert store.data == data
    local.save(StorageUpdate(snapshot=SnapshotMeta(2, 1, BOOT.config)))
    with pytest.raises(StorageError, match="older"):
        local.save(StorageUpdate(snapshot=SnapshotMeta(1, 1, BOOT.config)))
    with pytest.raises(StorageError, match="do not follow"):
        local.save(StorageUpdate(None, (Entry(2, 2),)))  # inside the snapshot


def test_a_second_writer_on_the_namespace_is_detected() -> None:
    store = filled()
    first, second = LocalStorage(NS, store), LocalStorage(NS, store)
    assert first.load() == second.load()
    first.save(StorageUpdate(HardState(5, "a", 2)))
    data = dict(store.data)
    with pytest.raises(StorageError, match="changed by someone else"):
        second.save(StorageUpdate(HardState(5, "b", 2)))  # would be a second vote in term 5
    assert store.data == data
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
    "newer schema": (set_meta(v=2), "newer webraft"),
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
    "segments for an empty log": (set_meta(last=0), "empty log"),
    "no segments": (set_meta(segments=[]), "do not start"),
    "last beyond the entries": (set_meta(last=6), "entry 5 .* missing"),
    "entry missing (gap)": (set_key("e:0:2", None), "entry 2 .* missing"),
    "entry not JSON": (set_key("e:0:1", "[1,0,"), "entry 1 is not valid JSON"),
    "entry not a list": (set_key("e:0:1", '{"term":1}'), r"\[term, kind, command\]"),
    "entry too short": (set_key("e:0:1", "[1,0]"), r"\[term, kind, command\]"),
    "entry kind unknown": (set_key("e:0:1", "[1,7,null]"), "unknown kind"),
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

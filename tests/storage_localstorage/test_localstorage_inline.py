"""Schema 4's inline tail: a save of a few entries is one ``setItem`` (the meta carries them),
the tail moves out to a run past ``inline_chars``; crashes, quota failures, older schemas and
malformed tails."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsfake import FakeWebStorage, QuotaExceeded
from storage.storage_model import Model, updates
from test_localstorage_crash import BOOT, NS, build, check_every_crash_point, entries, snap

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import HardState, StorageUpdate
from webraft.errors import StorageError
from webraft.storage import LocalStorage
from webraft.storage.localstorage import INLINE_CHARS

#: Small enough that a few saves of BASE-sized entries pass it.
SMALL = 60


@pytest.fixture(autouse=True)
def inline_chars(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(LocalStorage, "inline_chars", SMALL)
    return SMALL


def meta(store: FakeWebStorage) -> dict:
    return json.loads(store.data[NS + "meta"])


def runs(store: FakeWebStorage) -> set[str]:
    return {k[len(NS):] for k in store.data if k.startswith(NS + "e:")}


def test_appends_are_one_set_item_until_the_tail_moves_out() -> None:
    store, model = build([StorageUpdate(HardState(1, "a", 0), (), BOOT)])
    local = LocalStorage(NS, store)
    local.load()
    texts = []
    for i in range(1, 4):  # '[1,0,{"n":i}]' is 14 characters: three fit in 60
        sets = store.sets
        update = StorageUpdate(None, entries(i, [1]))
        local.save(update)
        model.apply(update)
        texts.append(f'[1,0,{{"n":{i}}}]')
        assert store.sets == sets + 1 and runs(store) == set()
        assert meta(store)["tail"] == [json.loads(t) for t in texts]
        assert f'"tail":[{",".join(texts)}]' in store.data[NS + "meta"]  # compact
        assert LocalStorage(NS, store).load() == model.state()
    sets = store.sets
    update = StorageUpdate(None, entries(4, [1, 1]))
    local.save(update)  # 5 entries, 75 characters: all of them move out, as one run
    model.apply(update)
    assert store.sets == sets + 2 and runs(store) == {"e:0:1"}
    assert meta(store)["tail"] == [] and meta(store)["segments"] == [[1, 0]]
    update = StorageUpdate(HardState(1, "a", 5), entries(6, [1]))
    local.save(update)  # then a new tail, past the run
    model.apply(update)
    assert runs(store) == {"e:0:1"} and len(meta(store)["tail"]) == 1
    assert LocalStorage(NS, store).load() == model.state()


def test_the_default_bound_keeps_a_sequential_leaders_saves_at_one_set_item(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalStorage, "inline_chars", INLINE_CHARS)
    store, model = build([StorageUpdate(HardState(1, "a", 0), (), BOOT)])
    local = LocalStorage(NS, store)
    local.load()
    before = store.sets
    for i in range(1, 201):
        update = StorageUpdate(HardState(1, "a", i - 1), (Entry(1, i, COMMAND, {
            "op": "put", "key": f"k{i}", "value": "v" * 20}),))
        local.save(update)
        model.apply(update)
    moved = len(runs(store))
    assert moved > 0 and store.sets - before == 200 + moved
    assert moved <= 200 * 50 // INLINE_CHARS + 1  # each run took ~INLINE_CHARS characters
    assert len(store.data[NS + "meta"]) < INLINE_CHARS + 400
    assert LocalStorage(NS, store).load() == model.state()


@pytest.mark.parametrize("inline", [0, SMALL, INLINE_CHARS])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_update_sequences_match_the_model(inline: int, data: st.DataObject) -> None:
    store = FakeWebStorage({"foreign": "x"})
    local = LocalStorage(NS, store)
    local.inline_chars = inline
    model = Model()
    for _ in range(data.draw(st.integers(1, 14))):
        update = data.draw(updates(model))
        model.apply(update)
        local.save(update)
        expected = model.state()
        assert LocalStorage(NS, store).load() == expected
        kept = dict(store.data)
        LocalStorage(NS, store).load()  # no garbage after clean saves
        assert store.data == kept
        if inline == 0:
            assert meta(store)["tail"] == []
    assert store.data["foreign"] == "x"


#: Saves against an inline tail, and the writes (setItem + removeItem) each takes.
TAILED = [StorageUpdate(HardState(1, "a", 0), entries(1, [1] * 5), BOOT),  # moved out: 1..5
          StorageUpdate(None, entries(6, [1, 1]))]  # inline: 6..7, 30 characters
CASES = {
    "append to the tail": (TAILED, StorageUpdate(None, entries(8, [1])), 1),
    "append that moves the tail out": (TAILED, StorageUpdate(None, entries(8, [1] * 3)), 2),
    "truncate inside the tail": (TAILED, StorageUpdate(HardState(2), entries(7, [2])), 1),
    "truncate at the tail's start": (TAILED, StorageUpdate(HardState(2), entries(6, [2])), 1),
    # a new segment at 5, inline; meta (the run 1..5 is read up to 4 from now on)
    "truncate into the runs": (TAILED, StorageUpdate(HardState(2), entries(5, [2])), 1),
    "truncate before the runs": (TAILED, StorageUpdate(HardState(2), entries(1, [2])), 1 + 1),
    # data; 4..5 again; meta; the run 1..5 removed
    "compact into the runs": (TAILED, StorageUpdate(None, (), snap(3, 1), "[3]", 3), 4),
    "compact into the tail": (TAILED, StorageUpdate(None, (), snap(6, 1), "[6]", 6), 3),
    "compact the tail away": (TAILED, StorageUpdate(None, (), snap(7, 1), "[7]", 7), 3),
    "compact past the log, then entries": (TAILED, StorageUpdate(
        HardState(2), entries(10, [2]), snap(9, 2), "[9]", 9), 3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crash_after_every_write(name: str) -> None:
    setup, update, writes = CASES[name]
    store, model = build(setup)
    before = model.state()
    model.apply(update)
    after = model.state()
    assert after is not None and after != before
    assert check_every_crash_point(store, before, update, after) == writes


def test_schema_3_loads_and_the_next_save_writes_schema_4() -> None:
    store = FakeWebStorage({
        NS + "meta": '{"v":3,"term":1,"vote":"a","commit":0,"snapshot":{"index":0,"term":0,'
                     '"config":{"voters":["a","b","c"],"learners":[]}},"last":2,'
                     '"segments":[[1,0]],"data":null}',
        NS + "e:0:1": '[[1,0,{"n":1}],[1,0,{"n":2}]]'})
    model = Model()
    model.apply(StorageUpdate(HardState(1, "a", 0), entries(1, [1, 1]), BOOT))
    local = LocalStorage(NS, store)
    assert local.load() == model.state()
    update = StorageUpdate(None, entries(3, [1]))
    local.save(update)
    model.apply(update)
    assert meta(store)["v"] == 4 and meta(store)["tail"] == [[1, 0, {"n": 3}]]
    assert runs(store) == {"e:0:1"}
    assert LocalStorage(NS, store).load() == model.state()


@pytest.mark.parametrize("update", [StorageUpdate(None, entries(8, [1])),
                                    StorageUpdate(None, entries(8, [1, 1, 1]))],
                         ids=["inline", "moved out"])
def test_a_quota_failure_leaves_the_state_as_it_was(update: StorageUpdate) -> None:
    failed = 0
    for spare in range(0, 120, 7):
        store, model = build(TAILED)
        before_data, before = dict(store.data), model.state()
        store.quota = store.used() + spare
        local = LocalStorage(NS, store)
        try:
            local.save(update)
        except StorageError as exc:
            failed += 1
            assert isinstance(exc.__cause__, QuotaExceeded)
            assert store.data == before_data
            assert LocalStorage(NS, store).load() == before
            store.quota = None
            local.save(update)
        model.apply(update)
        assert LocalStorage(NS, store).load() == model.state()
    assert failed, "no spare room was small enough to make a save fail"


#: TAILED's meta with these fields replaced, and what the error says.
MALFORMED: dict[str, tuple[dict[str, object], str]] = {
    "not a list": ({"tail": {"0": [1, 0, 6]}}, "inline tail is not a list"),
    "null": ({"tail": None}, "inline tail is not a list"),
    "entry not a list": ({"tail": [[1, 0, 6], 7]}, "log entry 7 is not"),
    "entry too short": ({"tail": [[1, 0, 6], [1, 0]]}, "log entry 7 is not"),
    "entry term a string": ({"tail": [[1, 0, 6], ["1", 0, 7]]}, "log entry 7 term"),
    "entry kind unknown": ({"tail": [[1, 0, 6], [1, 99, 7]]}, "log entry 7"),
    "terms decrease": ({"tail": [[1, 0, 6], [0, 0, 7]]}, "inconsistent at index 7"),
    "term beyond the hard term": ({"tail": [[1, 0, 6], [5, 0, 7]]}, "inconsistent at index 7"),
    "longer than the log": ({"tail": [[1, 0, n] for n in range(8)]},
                            "does not fit in the last segment"),
    "without a segment": ({"tail": [[1, 0, 1]], "segments": [], "last": 0},
                          "does not fit in the last segment"),
    "across segments": ({"tail": [[1, 0, n] for n in range(4)], "segments": [[1, 0], [6, 1]]},
                        "does not fit in the last segment"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_tail_raises_storage_error(name: str) -> None:
    changes, match = MALFORMED[name]
    store, _ = build(TAILED)
    assert len(meta(store)["tail"]) == 2
    store.data[NS + "meta"] = json.dumps(meta(store) | changes)
    with pytest.raises(StorageError, match=match):
        LocalStorage(NS, store).load()


def test_a_schema_4_meta_without_a_tail_is_refused() -> None:
    store, _ = build(TAILED)
    data = meta(store)
    del data["tail"]
    store.data[NS + "meta"] = json.dumps(data)
    with pytest.raises(StorageError, match="lacks"):
        LocalStorage(NS, store).load()

"""A tab dying after any number of writes of a save leaves the old or the new state, whole:
appends, truncations, snapshots with data (in one key or many), compactions (keeping a tail,
across segments, beyond the log) and all of them at once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsfake import Crash, FakeWebStorage
from storage.storage_model import Model, updates

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from webraft.storage import LocalStorage
from webraft.storage.localstorage import INLINE_CHARS

NS = "webraft/room/a/"
FOREIGN = {"other/meta": "{", "webraft/room/a/b/e:0:1": "[1,0,1]", "webraft/room/ab": "?",
           "webraft/room/a/b/d:0:0": "{}", "webraft/room/a/d:00:0": "x"}
CONFIG = ClusterConfig(("a", "b", "c"))
BOOT = SnapshotMeta(0, 0, CONFIG)


def build(updates: list[StorageUpdate]) -> tuple[FakeWebStorage, Model]:
    store, model = FakeWebStorage(FOREIGN), Model()
    local = LocalStorage(NS, store)
    for update in updates:
        local.save(update)
        model.apply(update)
    return store, model


def check_every_crash_point(store: FakeWebStorage, before: StoredState | None,
                            update: StorageUpdate, after: StoredState) -> int:
    """Crash ``update``'s save after N writes for every N; return how many writes it takes."""
    before_data = dict(store.data)
    clean = store.copy()
    LocalStorage(NS, clean).save(update)  # first use without load(): loads, then saves
    after_data = dict(clean.data)
    assert LocalStorage(NS, clean).load() == after
    bump = HardState(max(before.hard.term if before else 0, after.hard.term) + 1)
    followup = (StorageUpdate(bump) if before else
                StorageUpdate(bump, (), after.snapshot, after.snapshot_data))
    n = 0
    while True:
        crashed = FakeWebStorage(before_data)
        local = LocalStorage(NS, crashed)
        assert local.load() == before
        crashed.crash_after(n)
        try:
            local.save(update)
        except Crash:
            completed = False
        else:
            completed = True
        crashed.revive()
        # A new tab loads one of the two states, never a mix, and collects the garbage.
        reloaded = LocalStorage(NS, crashed)
        state = reloaded.load()
        if state is not None:
            state.check()
        assert state in (before, after), f"crash after {n} writes: {state}"
        assert crashed.data == (after_data if state == after else before_data)
        if completed:
            assert state == after
            break
        # Garbage is also collected by a first save without a load.
        again = FakeWebStorage(crashed_data_before_gc(before_data, update, n))
        LocalStorage(NS, again).save(followup)
        ref = FakeWebStorage(before_data if state == before else after_data)
        LocalStorage(NS, ref).save(followup)
        assert again.data == ref.data
        n += 1
    return n


def crashed_data_before_gc(before_data: dict[str, str], update: StorageUpdate,
                           n: int) -> dict[str, str]:
    store = FakeWebStorage(before_data)
    local = LocalStorage(NS, store)
    local.load()
    store.crash_after(n)
    with pytest.raises(Crash):
        local.save(update)
    return dict(store.data)


def entries(first: int, terms: list[int]) -> tuple[Entry, ...]:
    return tuple(Entry(t, first + i, COMMAND, {"n": first + i}) for i, t in enumerate(terms))


def snap(index: int, term: int) -> SnapshotMeta:
    return SnapshotMeta(index, term, CONFIG)


#: Written with LocalStorage.data_chunk = 8: 40 characters are 5 keys.
DATA = '{"state":"0123456789","more":"abcdéfg😀"}'
BASE = [
    StorageUpdate(HardState(1, "a", 0), entries(1, [1, 1, 1]), BOOT),
    StorageUpdate(HardState(2, "b", 2), entries(3, [2, 2, 2])),  # a truncation: 2 segments
    StorageUpdate(None, entries(6, [2, 2])),
]
#: BASE then a snapshot at 4 (data in 2 keys) keeping entries 3..7 as its tail.
SNAPPED = [*BASE, StorageUpdate(HardState(2, "b", 5), (), snap(4, 2), "[4, 4444]", 2)]

CASES = {
    "first save": ([], StorageUpdate(HardState(1), entries(1, [1, 1]), BOOT)),
    "append": (BASE, StorageUpdate(None, entries(8, [2, 2, 2]))),
    "hard state only": (BASE, StorageUpdate(HardState(3, "c", 5))),
    "truncate mid-segment": (BASE, StorageUpdate(HardState(3), entries(5, [3, 3]))),
    "truncate across segments": (BASE, StorageUpdate(HardState(3), entries(2, [3, 3, 3, 3]))),
    "truncate at a segment start": (BASE, StorageUpdate(HardState(3), entries(3, [3]))),
    "snapshot inside the log, log kept": (BASE, StorageUpdate(None, (), snap(4, 2), DATA)),
    "snapshot and compaction of its prefix": (BASE, StorageUpdate(None, (), snap(4, 2),
                                                                  DATA, 4)),
    "snapshot keeping a tail across segments": (BASE, StorageUpdate(None, (), snap(5, 2),
                                                                    DATA, 1)),
    "snapshot past the log, everything dropped": (BASE, StorageUpdate(HardState(4), (),
                                                                      snap(9, 4), DATA, 9)),
    "snapshot, compaction, truncation": (BASE, StorageUpdate(HardState(3), entries(5, [3, 3]),
                                                             snap(3, 2), DATA, 2)),
    "install past the log, then entries": (BASE, StorageUpdate(HardState(4), entries(10, [4]),
                                                               snap(9, 4), DATA, 9)),
    "second snapshot replaces the data": (SNAPPED, StorageUpdate(None, (), snap(6, 2), DATA,
                                                                 5)),
    "compaction only": (SNAPPED, StorageUpdate(None, (), None, None, 4)),
    "compaction beyond the log": (SNAPPED, StorageUpdate(None, (), None, None, 99)),
    "append after compaction": (SNAPPED, StorageUpdate(None, entries(8, [2, 2]), None, None,
                                                       3)),
    "rewrite the kept tail": (SNAPPED, StorageUpdate(HardState(3), (Entry(2, 3, COMMAND, 3),
                                                                    Entry(2, 4, COMMAND, 4),
                                                                    Entry(3, 5, COMMAND, 5)))),
    "same snapshot, new data": (SNAPPED, StorageUpdate(None, (), snap(4, 2), DATA)),
    "snapshot re-recorded, data unchanged": (SNAPPED, StorageUpdate(HardState(3), (),
                                                                    snap(4, 2))),
}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalStorage, "data_chunk", 8)


@pytest.mark.parametrize("name", list(CASES))
def test_crash_after_every_write(name: str) -> None:
    setup, update = CASES[name]
    store, model = build(setup)
    before = model.state()
    model.apply(update)
    after = model.state()
    assert after is not None and after != before
    after.check()
    writes = check_every_crash_point(store, before, update, after)
    assert writes == EXPECTED_WRITES[name]
    assert all(store.data[k] == v for k, v in FOREIGN.items())


def test_truncation_never_overwrites_a_referenced_key() -> None:
    store, _ = build(BASE)
    referenced = {k: v for k, v in store.data.items() if k.startswith(NS)}
    store.crash_after(None)
    seen: list[str] = []
    original = store.setItem

    def spy(key: str, value: str) -> None:
        if key != NS + "meta":
            seen.append(key)
            assert key not in referenced, f"{key} overwritten before the commit point"
        original(key, value)

    store.setItem = spy  # type: ignore[method-assign]
    LocalStorage(NS, store).save(StorageUpdate(HardState(3), entries(2, [3, 3, 3])))
    assert seen == [NS + "e:2:2"]  # one run: 2..4


def test_a_new_snapshot_never_overwrites_the_referenced_data() -> None:
    store, _ = build(SNAPPED)
    referenced = {k for k in store.data if k.startswith(NS)}
    assert {NS + "d:0:0", NS + "d:0:1"} <= referenced
    seen: list[str] = []
    original = store.setItem

    def spy(key: str, value: str) -> None:
        seen.append(key)
        assert key == NS + "meta" or key not in referenced
        original(key, value)

    store.setItem = spy  # type: ignore[method-assign]
    LocalStorage(NS, store).save(StorageUpdate(None, entries(8, [2]), snap(6, 2), DATA, 5))
    assert seen == [*(f"{NS}d:1:{k}" for k in range(5)), NS + "e:1:8", NS + "meta"]
    assert not {NS + "d:0:0", NS + "d:0:1", NS + "e:0:1", NS + "e:1:3"} & set(store.data)


@pytest.mark.parametrize("inline", [0, 60, INLINE_CHARS])  # runs only, or a tail too
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_crash_during_random_updates(inline: int, data: st.DataObject) -> None:
    LocalStorage.inline_chars = inline  # restored by the inline_chars fixture
    model = Model()
    setup = []
    for _ in range(data.draw(st.integers(0, 6))):
        update = data.draw(updates(model))
        model.apply(update)
        setup.append(update)
    store, _ = build(setup)
    before = model.state()
    update = data.draw(updates(model))
    model.apply(update)
    after = model.state()
    assert after is not None
    if after == before:
        return  # nothing to tear apart
    check_every_crash_point(store, before, update, after)


#: setItem + removeItem calls of each case's save (data, runs, meta, then removals). BASE
#: leaves runs 1..3 of gen 0 (read up to 2), 3..5 and 6..7 of gen 1; SNAPPED the two of gen 1.
EXPECTED_WRITES = {
    "first save": 2,  # one run (1, 2); meta
    "append": 2,  # one run (8..10); meta
    "hard state only": 1,
    "truncate mid-segment": 1 + 1 + 1,  # 5, 6 in gen 2; meta; 6..7 of gen 1 removed
    "truncate across segments": 1 + 1 + 2,  # 2..5; meta; both runs of gen 1
    "truncate at a segment start": 1 + 1 + 2,
    "snapshot inside the log, log kept": 5 + 1,  # 5 data chunks; meta; nothing removed
    # ...; 5 of gen 1 again, as a run of its own; meta; 1..3 and 3..5 removed
    "snapshot and compaction of its prefix": 5 + 1 + 1 + 2,
    "snapshot keeping a tail across segments": 5 + 1 + 1 + 1,  # ...; 2 again; meta; 1..3
    "snapshot past the log, everything dropped": 5 + 1 + 3,
    "snapshot, compaction, truncation": 5 + 1 + 1 + 2,  # 1..3 (compacted), 6..7 (truncated)
    "install past the log, then entries": 5 + 1 + 1 + 3,
    "second snapshot replaces the data": 5 + 1 + 2 + 1,  # old data (2 chunks); 3..5
    "compaction only": 1 + 1 + 1,  # 5 again; meta; 3..5
    "compaction beyond the log": 1 + 2,
    "append after compaction": 1 + 1 + 1 + 1,  # 4..5 again, 8..9; meta; 3..5
    "rewrite the kept tail": 1 + 1 + 2,  # 3..5 in gen 2; meta; both runs of gen 1
    "same snapshot, new data": 5 + 1 + 2,
    "snapshot re-recorded, data unchanged": 1,
}

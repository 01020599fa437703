"""A tab dying after any number of writes of a save leaves the old or the new state, whole."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsfake import Crash, FakeWebStorage, draw_update

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from webraft.storage import LocalStorage, MemoryStorage

NS = "webraft/room/a/"
FOREIGN = {"other/meta": "{", "webraft/room/a/b/e:0:1": "[1,0,1]", "webraft/room/ab": "?"}
BOOT = SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))


def build(updates: list[StorageUpdate]) -> tuple[FakeWebStorage, MemoryStorage]:
    store, mem = FakeWebStorage(FOREIGN), MemoryStorage()
    local = LocalStorage(NS, store)
    for update in updates:
        local.save(update)
        mem.save(update)
    return store, mem


def check_every_crash_point(store: FakeWebStorage, before: StoredState | None,
                            update: StorageUpdate, after: StoredState) -> int:
    """Crash ``update``'s save after N writes for every N; return how many writes it takes."""
    before_data = dict(store.data)
    clean = store.copy()
    LocalStorage(NS, clean).save(update)  # first use without load(): loads, then saves
    after_data = dict(clean.data)
    assert LocalStorage(NS, clean).load() == after
    bump = HardState(max(before.hard.term if before else 0, after.hard.term) + 1)
    followup = StorageUpdate(bump, (), None if before else after.snapshot)
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


BASE = [
    StorageUpdate(HardState(1, "a", 0), entries(1, [1, 1, 1]), BOOT),
    StorageUpdate(HardState(2, "b", 2), entries(3, [2, 2, 2])),  # a truncation: 2 segments
    StorageUpdate(None, entries(6, [2, 2])),
]

CASES = {
    "first save": ([], StorageUpdate(HardState(1), entries(1, [1, 1]), BOOT)),
    "append": (BASE, StorageUpdate(None, entries(8, [2, 2, 2]))),
    "hard state only": (BASE, StorageUpdate(HardState(3, "c", 5))),
    "truncate mid-segment": (BASE, StorageUpdate(HardState(3), entries(5, [3, 3]))),
    "truncate across segments": (BASE, StorageUpdate(HardState(3), entries(2, [3, 3, 3, 3]))),
    "truncate at a segment start": (BASE, StorageUpdate(HardState(3), entries(3, [3]))),
    "snapshot inside the log": (BASE, StorageUpdate(snapshot=SnapshotMeta(4, 2, BOOT.config))),
    "snapshot past the log": (BASE, StorageUpdate(HardState(4), (),
                                                  SnapshotMeta(9, 4, BOOT.config))),
    "snapshot and truncation": (BASE, StorageUpdate(HardState(3), entries(5, [3, 3]),
                                                    SnapshotMeta(3, 2, BOOT.config))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crash_after_every_write(name: str) -> None:
    setup, update = CASES[name]
    store, mem = build(setup)
    before = mem.load()
    mem.save(update)
    after = mem.load()
    assert after is not None and after != before
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
    assert seen == [NS + "e:2:2", NS + "e:2:3", NS + "e:2:4"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_crash_during_random_updates(data: st.DataObject) -> None:
    mem = MemoryStorage()
    setup = []
    for _ in range(data.draw(st.integers(0, 6))):
        update = draw_update(data, mem)
        mem.save(update)
        setup.append(update)
    store, _ = build(setup)
    before = mem.load()
    update = draw_update(data, mem)
    mem.save(update)
    after = mem.load()
    assert after is not None
    if after == before:
        return  # nothing to tear apart
    check_every_crash_point(store, before, update, after)


#: setItem + removeItem calls of each case's save (entries, meta, then removals).
EXPECTED_WRITES = {
    "first save": 3,
    "append": 4,
    "hard state only": 1,
    "truncate mid-segment": 2 + 1 + 3,  # 5, 6 written; meta; 5, 6, 7 of gen 1 removed
    "truncate across segments": 4 + 1 + 6,  # 2..5; meta; 2 of gen 0, 3..7 of gen 1
    "truncate at a segment start": 1 + 1 + 5,
    "snapshot inside the log": 1 + 4,  # meta; 1..4 removed
    "snapshot past the log": 1 + 7,
    "snapshot and truncation": 2 + 1 + 6,  # 1..3 (snapshot) and 5..7 (truncation) removed
}

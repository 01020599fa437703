"""A save that does not fit (entries, a hard state, a snapshot's data in one key or many, a
compaction) leaves the stored state exactly as it was, and can be retried."""

from __future__ import annotations

import pytest
from lsfake import FakeWebStorage, QuotaExceeded
from storage.storage_model import Model

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.errors import StorageError
from webraft.storage import LocalStorage

NS = "webraft/room/a/"
BOOT = SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))
SETUP = [
    StorageUpdate(HardState(1, "a", 0), tuple(Entry(1, i, COMMAND, "x" * 20)
                                             for i in range(1, 5)), BOOT),
    StorageUpdate(HardState(2, "b", 2), (Entry(2, 3, COMMAND, "y" * 20),)),
]
UPDATES = {
    "append": StorageUpdate(None, tuple(Entry(2, i, COMMAND, "z" * 30) for i in range(4, 8))),
    "truncate": StorageUpdate(HardState(3), tuple(Entry(3, i, COMMAND, "w" * 30)
                                                  for i in range(2, 6))),
    "hard state": StorageUpdate(HardState(3, "a-much-longer-address-" * 4, 3)),
    "snapshot": StorageUpdate(None, (), SnapshotMeta(2, 1, BOOT.config), '"' + "s" * 90 + '"'),
    "snapshot in chunks": StorageUpdate(None, (), SnapshotMeta(2, 1, BOOT.config),
                                        '"' + "c" * 90 + '"'),
    "snapshot, compaction, entries": StorageUpdate(
        HardState(3), tuple(Entry(3, i, COMMAND, "v" * 30) for i in range(4, 6)),
        SnapshotMeta(3, 2, BOOT.config), '["' + "é" * 60 + '"]', 3),
}
#: Cases written with a small LocalStorage.data_chunk (their data spans several keys).
CHUNKED = {"snapshot in chunks": 16}


def setup(quota: int | None = None) -> tuple[FakeWebStorage, Model]:
    store, mem = FakeWebStorage({"someone-else": "v" * 100}), Model()
    local = LocalStorage(NS, store)
    for update in SETUP:
        local.save(update)
        mem.apply(update)
    store.quota = quota
    return store, mem


def peak_usage(update: StorageUpdate) -> int:
    """The most characters the store holds at any moment of ``update``'s save."""
    store, _ = setup()
    peak = store.used()
    original = store.setItem

    def spy(key: str, value: str) -> None:
        nonlocal peak
        original(key, value)
        peak = max(peak, store.used())

    store.setItem = spy  # type: ignore[method-assign]
    LocalStorage(NS, store).save(update)
    return peak


@pytest.mark.parametrize("name", list(UPDATES))
def test_every_quota_below_the_peak_fails_cleanly_and_a_retry_succeeds(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name in CHUNKED:
        monkeypatch.setattr(LocalStorage, "data_chunk", CHUNKED[name])
    update = UPDATES[name]
    used = setup()[0].used()
    peak = peak_usage(update)
    assert peak > used
    for quota in range(used, peak + 1):
        store, mem = setup(quota)
        before_data = dict(store.data)
        local = LocalStorage(NS, store)
        before = local.load()
        try:
            local.save(update)
        except StorageError as exc:
            assert quota < peak
            assert "quota exceeded" in str(exc)
            assert isinstance(exc.__cause__, QuotaExceeded)
            assert store.data == before_data  # exactly as before: nothing half-written
            assert LocalStorage(NS, store).load() == before
            # The runtime retries; with room made, the same save goes through.
            store.quota = None
            local.save(update)
        else:
            assert quota == peak
        mem.apply(update)
        assert LocalStorage(NS, store).load() == mem.state()
        chunks = -(-len(mem.data) // LocalStorage.data_chunk) if mem.data else 0
        # Nothing left over: a new tab's load, which removes every key the meta does not
        # reference, finds nothing to remove; and there is a key per run (of one entry or
        # more), per data chunk and the meta.
        kept = dict(store.data)
        LocalStorage(NS, store).load()
        assert store.data == kept
        assert 1 + chunks < len([k for k in store.data if k.startswith(NS)]) <= (
            1 + len(mem.entries) + chunks)


class JsException(Exception):
    """Shaped like what Pyodide raises for a DOMException thrown by setItem."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def test_pyodide_shaped_quota_error_and_other_write_failures() -> None:
    store, mem = setup()
    local = LocalStorage(NS, store)
    before = local.load()
    before_data = dict(store.data)
    real_set = store.setItem
    calls = 0

    def failing(error: Exception):
        def set_item(key: str, value: str) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise error
            real_set(key, value)
        return set_item

    store.setItem = failing(JsException("QuotaExceededError", "exceeded the quota"))
    with pytest.raises(StorageError, match="quota exceeded") as info:
        local.save(UPDATES["append"])
    assert isinstance(info.value.__cause__, JsException)
    assert store.data == before_data
    calls = 0
    store.setItem = failing(RuntimeError("SecurityError: storage disabled"))
    with pytest.raises(StorageError, match="write failed"):
        local.save(UPDATES["append"])
    assert store.data == before_data and LocalStorage(NS, store).load() == before
    store.setItem = real_set
    local.save(UPDATES["append"])
    mem.apply(UPDATES["append"])
    assert LocalStorage(NS, store).load() == mem.state()

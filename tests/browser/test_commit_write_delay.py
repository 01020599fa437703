"""A tab's LocalStorage writes a commit index alone COMMIT_WRITE_DELAY later, unless the next
save carries it first: not at the end of the browser task, where it was a ``setItem`` in
every sequential commit's path."""

from __future__ import annotations

import asyncio

import pytest
from storage_localstorage.lsfake import FakeWebStorage

from webraft.browser import transport
from webraft.browser.transport import BrowserConnection, BrowserRaft
from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage
from webraft.transport.relay import RelayClient

NS = "webraft/room/a/"


@pytest.fixture
def tab(monkeypatch: pytest.MonkeyPatch) -> tuple[BrowserRaft, LocalStorage, FakeWebStorage]:
    """A tab's node (not started) on a LocalStorage holding one entry; a 50 ms delay."""
    monkeypatch.setattr(transport, "COMMIT_WRITE_DELAY", 0.05)
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1, "a", 0), (Entry(1, 1, COMMAND, 1),),
                             SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c")))))
    client = RelayClient("room", "a")
    node = BrowserRaft(client, BrowserConnection("ws://127.0.0.1:1/ws", client, None),
                       members=["a", "b", "c"], storage=local, broadcast=False)
    return node, local, store


def committed(store: FakeWebStorage) -> int:
    state = LocalStorage(NS, store.copy()).load()
    assert state is not None
    return state.hard.commit


async def test_a_commit_index_alone_is_written_after_the_delay(
        tab: tuple[BrowserRaft, LocalStorage, FakeWebStorage]) -> None:
    node, local, store = tab
    sets = store.sets
    local.save(StorageUpdate(HardState(1, "a", 1)))
    await asyncio.sleep(0)  # the end of the task: nothing written yet
    assert store.sets == sets and committed(store) == 0
    local.save(StorageUpdate(HardState(1, "a", 1)))  # one write scheduled, not two
    await asyncio.sleep(0.1)
    assert store.sets == sets + 1 and committed(store) == 1
    await node.close()


async def test_the_next_save_carries_it_and_close_writes_what_is_left(
        tab: tuple[BrowserRaft, LocalStorage, FakeWebStorage]) -> None:
    node, local, store = tab
    sets = store.sets
    local.save(StorageUpdate(HardState(1, "a", 1)))
    local.save(StorageUpdate(None, (Entry(1, 2, COMMAND, 2),)))  # the next proposal's entry
    assert store.sets == sets + 1 and committed(store) == 1
    await asyncio.sleep(0.1)
    assert store.sets == sets + 1  # the timer found nothing left to write
    local.save(StorageUpdate(HardState(1, "a", 2)))
    await node.close()  # before the delay: written by close
    assert committed(store) == 2

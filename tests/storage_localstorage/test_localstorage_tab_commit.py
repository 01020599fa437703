"""A tab's node (``BrowserRaft``) on LocalStorage defers a commit index alone: it writes it in
a loop turn of its own, or with the next save, and on close; a write that fails is logged
and kept for later, never lost (``webraft/browser/transport.py``, ``LocalStorage.flush``)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from lsfake import FakeWebStorage

from webraft.browser.transport import BrowserConnection, BrowserRaft
from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage
from webraft.transport.relay import RelayClient

NS = "webraft:room:a:"
MEMBERS = ["a", "b", "c"]
BOOT = SnapshotMeta(0, 0, ClusterConfig(tuple(MEMBERS)))


def stored_commit(store: FakeWebStorage) -> int:
    return int(json.loads(store.data[NS + "meta"])["commit"])


def tab_on(local: LocalStorage) -> BrowserRaft:
    """A tab's node on ``local``, built but not started (no page, no relay)."""
    client = RelayClient("room", "a")
    return BrowserRaft(client, BrowserConnection("ws://127.0.0.1:1/ws", client, None),
                       members=MEMBERS, storage=local, broadcast=False)


def saved_log() -> tuple[FakeWebStorage, LocalStorage]:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(StorageUpdate(HardState(1, "a", 0), (Entry(1, 1, COMMAND, 1),
                                                    Entry(1, 2, COMMAND, 2)), BOOT))
    return store, local


async def test_a_tab_writes_a_commit_index_alone_in_a_loop_turn_of_its_own() -> None:
    store, local = saved_log()
    tab = tab_on(local)
    local.save(StorageUpdate(HardState(1, "a", 1)))  # what the driver saves once a quorum acked
    assert stored_commit(store) == 0  # not in this turn: the outcome reaches the page first
    await asyncio.sleep(0)
    assert stored_commit(store) == 1
    local.save(StorageUpdate(HardState(1, "a", 2)))
    await tab.close()  # closing writes what is deferred
    assert stored_commit(store) == 2
    assert LocalStorage(NS, store).load().hard == HardState(1, "a", 2)  # type: ignore[union-attr]


async def test_a_failed_deferred_write_is_logged_and_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    store, local = saved_log()
    tab = tab_on(local)
    mine = store.data[NS + "meta"]
    store.data[NS + "meta"] = mine.replace('"vote":"a"', '"vote":"b"')  # another tab wrote
    local.save(StorageUpdate(HardState(1, "a", 1)))
    with caplog.at_level(logging.WARNING, logger="webraft.storage.localstorage"):
        await asyncio.sleep(0)
    assert "could not write the commit index" in caplog.text
    store.data[NS + "meta"] = mine  # the other writer is gone
    await tab.close()
    assert stored_commit(store) == 1  # kept, and written by the next chance

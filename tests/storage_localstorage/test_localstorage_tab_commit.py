"""A tab's node (``BrowserRaft``) on LocalStorage defers a commit index alone: it writes it
with the next save, or by one timer :data:`~webraft.browser.transport.COMMIT_WRITE_DELAY`
later (never by a wake-up per commit), and on close; a write that fails is logged and kept
for later, never lost (``webraft/browser/transport.py``, ``LocalStorage.flush``)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from lsfake import FakeWebStorage
from support import until

from webraft import NodeConfig
from webraft.browser.transport import COMMIT_WRITE_DELAY, BrowserConnection, BrowserRaft
from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage
from webraft.storage.localstorage import INLINE_CHARS
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


async def test_a_tab_writes_a_commit_index_alone_on_a_timer() -> None:
    store, local = saved_log()
    tab = tab_on(local)
    local.save(StorageUpdate(HardState(1, "a", 1)))  # what the driver saves once a quorum acked
    assert stored_commit(store) == 0  # not in this turn: the outcome reaches the page first
    await asyncio.sleep(0)
    assert stored_commit(store) == 0  # nor in the next: the next save may carry it
    await asyncio.sleep(COMMIT_WRITE_DELAY * 2)
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
        await asyncio.sleep(COMMIT_WRITE_DELAY * 2)
    assert "could not write the commit index" in caplog.text
    store.data[NS + "meta"] = mine  # the other writer is gone
    await tab.close()
    assert stored_commit(store) == 1  # kept, and written by the next chance


class Socket:
    """A never-joined browser ``WebSocket``: nothing is sent through it."""

    readyState = 0

    def close(self, *_args: Any) -> None:
        pass


FAST = NodeConfig(heartbeat_frequency=0.01, heartbeat_timeout=0.05, election_timeout=(0.02, 0.04))


async def lone_leader(store: FakeWebStorage) -> BrowserRaft:
    """A started tab that is its own cluster's only voter, leading; its relay never joined."""
    client = RelayClient("room", "a")
    connection = BrowserConnection("ws://127.0.0.1:1/ws", client, None)
    connection._ws = Socket()  # as if open, so that starting opens no WebSocket
    node = BrowserRaft(client, connection, members=["a"], storage=LocalStorage(NS, store),
                       broadcast=False, config=FAST)
    node.listen("apply", lambda _entry, _index, cb: cb())
    node.start()
    await until(lambda: node.is_leader and node.commit_index >= 1)
    await asyncio.sleep(COMMIT_WRITE_DELAY * 2)  # its no-op's commit written
    return node


async def test_a_sequential_leader_writes_each_commit_index_with_the_next_proposal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalStorage, "inline_chars", INLINE_CHARS)  # a save: one setItem
    store = FakeWebStorage()
    node = await lone_leader(store)
    armed = hold_commit_timers(node)
    try:
        sets = store.sets
        for k in range(20):
            index = await node.propose(k)
            # Committed in memory; stored up to the entry before, which this proposal's save
            # carried.
            assert stored_commit(store) == index - 1
        assert store.sets - sets == 20  # one save per proposal, nothing more
        # Twenty commits deferred, and one timer armed for them all: not a timer each.
        assert len(armed) == 1
        armed[0]()  # the timer's time comes
        assert stored_commit(store) == node.commit_index
        assert store.sets - sets == 21
    finally:
        await node.close()


def hold_commit_timers(node: BrowserRaft) -> list[Any]:
    """The callbacks of the commit-index timers ``node`` arms from now on, held for the test
    to run rather than scheduled: what the test sees does not depend on how fast it runs."""
    armed: list[Any] = []
    loop = node.loop
    call_later = loop.call_later

    def holding(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        if delay != COMMIT_WRITE_DELAY:
            return call_later(delay, callback, *args)
        armed.append(callback)
        return asyncio.TimerHandle(loop.time() + delay, callback, args, loop)  # unscheduled

    loop.call_later = holding  # type: ignore[method-assign]
    return armed


async def test_commit_indexes_no_save_carries_are_written_by_one_timer() -> None:
    store = FakeWebStorage()
    node = await lone_leader(store)
    armed = hold_commit_timers(node)
    try:
        last = max(await asyncio.gather(*(node.propose(k) for k in range(5))))
        assert stored_commit(store) < last
        assert len(armed) == 1
        armed[0]()
        assert stored_commit(store) == last
    finally:
        await node.close()

"""Snapshots through the runtime: the ``snapshot`` handler, compaction, ``refresh`` on install
and on restart, with a small key-value application as the state machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cluster import Cluster, FastRaft
from support import until

import webraft


class KV:
    """The application: a dict, snapshotted and refreshed through the node's handlers."""

    def __init__(self, node: FastRaft, *, slow_snapshots: bool = False) -> None:
        self.node = node
        self.data: dict[str, Any] = {}
        self.refreshes = 0
        self.snapshots: list[int] = []
        node.listen("apply", self.apply)
        node.listen("snapshot", self.snapshot_later if slow_snapshots else self.snapshot)
        node.listen("refresh", self.refresh)

    def apply(self, entry: webraft.Entry, index: int, cb: Callable[..., None]) -> None:
        self.data[entry.command["k"]] = entry.command["v"]
        cb()

    def snapshot(self, index: int, term: int) -> dict[str, Any]:
        assert index == self.node.last_applied
        self.snapshots.append(index)
        return dict(self.data)

    async def snapshot_later(self, index: int, term: int) -> dict[str, Any]:
        state = dict(self.data)
        await asyncio.sleep(0.01)  # applying waits meanwhile: the state stays that of index
        assert index == self.node.last_applied
        self.snapshots.append(index)
        return state

    def refresh(self, cb: Callable[..., None]) -> None:
        snap = self.node.snapshot
        if snap is None:
            cb()  # nothing to load: start empty
            return
        self.refreshes += 1
        self.data = dict(snap.data)
        cb(snap.term, snap.index)


def kv_cluster(make_cluster: Any, *, slow: bool = False, **timing: Any,
               ) -> tuple[Cluster, dict[str, KV]]:
    timing = {"snapshot_entries": 20, "snapshot_tail": 5, **timing}
    c = make_cluster(**timing)
    apps = {}
    for name in c.names:
        apps[name] = KV(c.build(name, record_apply=False), slow_snapshots=slow)
    c.start()
    return c, apps


async def fill(lead: FastRaft, n: int, tag: str = "k") -> None:
    await asyncio.gather(*(lead.propose({"k": f"{tag}{i % 37}", "v": i}) for i in range(n)))


async def same_state(c: Cluster, apps: dict[str, KV]) -> None:
    await c.converged()
    lead = await c.leader()
    expected = apps[lead.address].data
    await until(lambda: all(apps[n].data == expected for n in c.names if n not in c.closed),
                5, "every application holds the leader's state")


async def test_the_log_is_compacted_and_storage_stays_bounded(make_cluster: Any) -> None:
    c, apps = kv_cluster(make_cluster)
    lead = await c.leader()
    for _ in range(5):
        await fill(lead, 60)
    await same_state(c, apps)
    for name in c.names:
        storage = c.storages[name]
        node = c.nodes[name]
        assert apps[name].snapshots, name
        assert storage.snapshot.index >= node.last_applied - 20
        assert len(storage.entries) <= 20 + 5 + 5, (name, len(storage.entries))
        assert storage.snapshot_data is not None
        assert node.snapshot is not None and node.snapshot.index == storage.snapshot.index
        assert apps[name].refreshes == 0  # nobody fell behind: nobody loaded a snapshot


async def test_a_follower_behind_the_compaction_catches_up_through_refresh(
        make_cluster: Any) -> None:
    c, apps = kv_cluster(make_cluster)
    lead = await c.leader()
    await fill(lead, 10)
    behind = next(n for n in c.names if n != lead.address)
    c.isolate(behind)
    lead = await c.leader(among=[n for n in c.names if n != behind])
    await fill(lead, 150, "away")
    assert apps[behind].refreshes == 0
    c.heal()
    await same_state(c, apps)
    assert apps[behind].refreshes >= 1
    assert c.storages[behind].snapshot.index > 10
    assert not c.nodes[behind].named("error")


async def test_a_restart_loads_the_snapshot_then_applies_the_rest(make_cluster: Any) -> None:
    c, apps = kv_cluster(make_cluster)
    lead = await c.leader()
    await fill(lead, 90)
    await same_state(c, apps)
    name = next(n for n in c.names if n != lead.address)
    assert c.storages[name].snapshot.index > 0
    kv: list[KV] = []
    await c.restart(name, record_apply=False,
                    before_start=lambda node: kv.append(KV(node)))  # an empty application
    apps[name] = kv[0]
    lead = await c.leader()
    await fill(lead, 5, "after")
    await same_state(c, apps)
    assert apps[name].refreshes == 1


async def test_an_asynchronous_snapshot_handler_sees_a_quiet_state(make_cluster: Any) -> None:
    c, apps = kv_cluster(make_cluster, slow=True)
    lead = await c.leader()
    for _ in range(3):
        await fill(lead, 40)
    await same_state(c, apps)
    assert all(apps[n].snapshots for n in c.names)


async def test_a_failing_snapshot_handler_reports_and_the_node_goes_on(
        make_cluster: Any) -> None:
    c = make_cluster(snapshot_entries=10, snapshot_tail=0)
    for name in c.names:
        node = c.build(name)
        node.listen("snapshot", lambda index, term: {"not json": {1, 2}})
    c.start()
    lead = await c.leader()
    await asyncio.gather(*(lead.propose(i) for i in range(30)))
    await c.converged()
    assert lead.named("error")
    assert c.storages[lead.address].snapshot.index == 0  # never compacted
    assert len(c.storages[lead.address].entries) == lead.commit_index


async def test_without_a_snapshot_handler_nothing_is_compacted(make_cluster: Any) -> None:
    c = make_cluster(snapshot_entries=5).start()
    lead = await c.leader()
    await asyncio.gather(*(lead.propose(i) for i in range(30)))
    await c.converged()
    assert all(c.storages[n].snapshot.index == 0 for n in c.names)
    assert lead.snapshot is None


async def test_a_refresh_that_does_not_load_the_snapshot_is_an_error_then_asked_again(
        make_cluster: Any) -> None:
    """A handler that answers ``cb(0, 0)`` when it must load a snapshot (it never looked at
    ``raft.snapshot``) would leave the application without the compacted entries. Before,
    ``(0, 0)`` counted as "loaded" and the node applied on from the snapshot, silently
    diverging; now it is a ``SnapshotNotLoaded`` error that says what to do, and the handler
    is asked again. ``cb()`` still means "loaded"."""
    c, apps = kv_cluster(make_cluster)
    lead = await c.leader()
    await fill(lead, 10)
    behind = next(n for n in c.names if n != lead.address)
    app = apps[behind]
    answers: list[str] = []

    def careless_then_careful(cb: Callable[..., None]) -> None:
        snap = app.node.snapshot
        if snap is None:
            cb()
        elif not answers:
            answers.append("0, 0")
            cb(0, 0)  # did not load it
        else:
            answers.append("loaded")
            app.data = dict(snap.data)
            cb()

    app.node.unlisten("refresh", app.refresh)
    app.node.listen("refresh", careless_then_careful)
    c.isolate(behind)
    lead = await c.leader(among=[n for n in c.names if n != behind])
    await fill(lead, 150, "away")
    c.heal()
    await same_state(c, apps)
    assert answers[:2] == ["0, 0", "loaded"]
    errors = c.nodes[behind].named("error")
    assert errors and isinstance(errors[0][0], webraft.SnapshotNotLoaded)
    assert "(raft.snapshot;" in str(errors[0][0]) and "cb(snapshot.term" in str(errors[0][0])


async def test_a_snapshot_handler_removed_by_an_apply_handler_is_not_called(
        make_cluster: Any) -> None:
    """Handlers are looked up once per slice of applying: one removed during the slice is
    not called when a snapshot falls due in it."""
    c, apps = kv_cluster(make_cluster)
    lead = await c.leader()
    app = apps[lead.address]
    errors: list[Any] = []
    lead.listen("error", errors.append)

    def unlisten_at_the_first(entry: webraft.Entry, index: int, cb: Callable[..., None]) -> None:
        lead.unlisten("snapshot", app.snapshot)
        cb()

    lead.listen("apply", unlisten_at_the_first)
    before = list(app.snapshots)
    await fill(lead, 60)
    await c.converged()
    assert app.snapshots == before and errors == []
    assert lead.snapshot is None or lead.snapshot.index <= (before or [0])[-1]

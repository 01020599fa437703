"""Restarts on the same storage, leader failover, close() and ``async with``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from cluster import Cluster, FastRaft, Network
from support import until

import webraft


def log_of(node: webraft.RaftInterface) -> list[tuple[int, int, int, Any]]:
    log = node.core.log
    return [(e.index, e.term, e.kind, e.command)
            for e in (log.entry(i) for i in range(log.offset + 1, log.last_index + 1))]


class App:
    """An application state machine that remembers what it applied (like the seed's README)."""

    def __init__(self) -> None:
        self.commands: list[tuple[int, Any]] = []
        self.term = 0
        self.index = 0

    def apply(self, entry: webraft.Entry, index: int, cb: Callable[..., None]) -> None:
        self.commands.append((index, entry.command))
        self.term, self.index = entry.term, index
        cb()


# ---------------------------------------------------------------------- restart


async def test_restart_recovers_term_vote_and_log(cluster: Cluster) -> None:
    lead = await cluster.leader()
    for k in range(5):
        await lead.propose(k)
    await cluster.converged()
    for name in cluster.names:
        old = cluster.nodes[name]
        # Alone, its term, vote, log and commit index stop moving (pre-votes change nothing),
        # and everything it holds gets saved; state that was never saved may be forgotten.
        cluster.isolate(name)
        storage = cluster.storages[name]

        def saved(old: FastRaft = old, storage: webraft.MemoryStorage = storage) -> bool:
            hard = storage.hard
            return hard is not None and (hard.term, hard.vote, hard.commit) == (
                old.term, old.core.vote, old.commit_index) and len(storage.entries) == len(
                log_of(old))

        await until(saved, 5, "the isolated node saved its state")
        state = (old.term, old.core.vote, log_of(old), old.commit_index)
        assert state[2], "the log is not empty"
        await cluster.stop(name)
        new = cluster.build(name)  # same MemoryStorage, not started
        assert (new.term, new.core.vote, log_of(new), new.commit_index) == state
        assert new.state == "follower"
        assert new.last_applied == 0
        assert new.applied == []
        cluster.heal()
        new.start()
        await cluster.converged()
        assert [i for i, _ in new.applied] == [i for i, _ in cluster.nodes[
            next(n for n in cluster.names if n != name)].applied]


async def test_restart_with_refresh_applies_nothing_twice_and_catches_up(
        cluster: Cluster) -> None:
    lead = await cluster.leader()
    name = next(n for n in cluster.names if n != lead.address)
    app = App()
    cluster.nodes[name].listen("apply", app.apply)
    for k in range(4):
        await lead.propose({"k": k})
    await until(lambda: len(app.commands) == 4, 5, "follower applied everything")
    await cluster.stop(name)
    missed = [await lead.propose({"missed": k}) for k in range(3)]

    refreshed: list[int] = []
    loop = asyncio.get_running_loop()

    def install(node: FastRaft) -> None:
        node.listen("apply", app.apply)

        def refresh(cb: Callable[..., None]) -> None:
            refreshed.append(app.index)
            # the application loads its snapshot asynchronously before answering
            loop.call_later(0.02, cb, app.term, app.index)

        node.listen("refresh", refresh)

    before = list(app.commands)
    new = await cluster.restart(name, before_start=install)
    assert refreshed == [before[-1][0]]
    await cluster.converged()
    # Only the entries the application had not applied yet were handed to it, once each.
    assert [i for i, _ in new.applied] == missed
    assert app.commands == before + [(i, {"missed": k}) for k, i in enumerate(missed)]
    index = await new.propose("after restart")
    await cluster.converged()
    assert app.commands[-1] == (index, "after restart")
    assert [i for i, _ in app.commands] == sorted({i for i, _ in app.commands})
    assert not new.named("error")


async def test_restart_without_refresh_reapplies_everything_once(cluster: Cluster) -> None:
    lead = await cluster.leader()
    name = next(n for n in cluster.names if n != lead.address)
    for k in range(4):
        await lead.propose(k)
    await cluster.converged()
    old_applied = list(cluster.nodes[name].applied)
    await cluster.stop(name)
    extra = await lead.propose("while down")
    new = await cluster.restart(name)
    await cluster.converged()
    assert new.applied == [*old_applied, (extra, "while down")]
    assert new.applied == lead.applied
    assert [i for (i,) in new.named("updated")] == [i for i, _ in new.applied]


async def test_refresh_with_a_wrong_term_is_reported(cluster: Cluster) -> None:
    lead = await cluster.leader()
    name = next(n for n in cluster.names if n != lead.address)
    index = await lead.propose("x")
    await cluster.converged()
    term = cluster.nodes[name].core.log.term_at(index)
    await cluster.stop(name)

    def install(node: FastRaft) -> None:
        node.listen("refresh", lambda cb: cb(term + 7, index))

    new = await cluster.restart(name, before_start=install)
    await until(lambda: new.named("error"), 5, "error reported")
    await cluster.converged()


async def test_refresh_callback_with_bad_arguments_is_reported(cluster: Cluster) -> None:
    lead = await cluster.leader()
    name = next(n for n in cluster.names if n != lead.address)
    await lead.propose("x")
    await cluster.converged()
    await cluster.stop(name)
    calls: list[Callable[..., None]] = []

    def install(node: FastRaft) -> None:
        node.listen("refresh", calls.append)

    new = await cluster.restart(name, before_start=install)
    cb = calls[0]
    for bad in ((-1, 0), (0, -1), ("1", 1), (1, 1.0), (None, None), (True, 1)):
        cb(*bad)
    assert len(new.named("error")) == 6
    assert new.applied == []
    cb(0, 0)  # a valid answer opens the gate: everything is applied
    await cluster.converged()
    assert new.applied == lead.applied


async def test_whole_cluster_restart_resumes(cluster: Cluster) -> None:
    lead = await cluster.leader()
    for k in range(3):
        await lead.propose(k)
    await cluster.converged()
    terms = {n: node.term for n, node in cluster.nodes.items()}
    applied = list(lead.applied)
    for name in cluster.names:
        await cluster.stop(name)
    for name in cluster.names:
        await cluster.restart(name)
    new_lead = await cluster.leader()
    assert new_lead.term > max(terms.values())
    index = await new_lead.propose("again")
    await cluster.converged()
    for node in cluster.nodes.values():
        assert node.applied == [*applied, (index, "again")]


# ---------------------------------------------------------------------- failover


async def test_leader_failover_and_old_leader_convergence(cluster: Cluster) -> None:
    old = await cluster.leader()
    first = await old.propose("first")
    others = [n for n in cluster.names if n != old.address]
    mark = len(old.events)
    cluster.isolate(old.address)
    doomed = old.propose("doomed")  # appended by a leader that can no longer commit
    new = await cluster.leader(among=others)
    assert new.term > old.term
    index = await new.propose("second")
    assert index > first
    cluster.heal()
    # Its slot is lost, not the command: the old leader sends it on to the new one, whose
    # session table applies it once (it used to fail with LeadershipLost).
    again = await asyncio.wait_for(doomed, 10)
    assert again > index
    await cluster.converged()  # including the old leader, once it hears of the new term
    final = await cluster.leader()
    for node in cluster.nodes.values():
        assert node.applied == [(first, "first"), (index, "second"), (again, "doomed")]
        assert node.term == final.term >= new.term
    assert ("follower",) in old.events[mark:]  # it stepped down


async def test_restarting_the_leader(cluster: Cluster) -> None:
    old = await cluster.leader()
    a = await old.propose("a")
    await cluster.stop(old.address)
    others = [n for n in cluster.names if n != old.address]
    new = await cluster.leader(among=others)
    b = await new.propose("b")
    back = await cluster.restart(old.address)
    await cluster.converged()
    assert back.applied == [(a, "a"), (b, "b")]


# ---------------------------------------------------------------------- close


async def test_close_stops_timers_and_messages(cluster: Cluster) -> None:
    lead = await cluster.leader()
    victim = next(n for n in cluster.nodes.values() if n is not lead)
    cluster.isolate(victim.address)  # alone, it would campaign over and over
    await cluster.stop(victim.address)
    state = (victim.term, victim.state, victim.commit_index, victim.last_applied)
    victim.events.clear()
    sent_after = len([1 for src, _, _ in cluster.net.log if src == victim.address])
    cluster.heal()
    errors: list[BaseException] = []
    victim.listen("error", errors.append)
    victim.got_data(lead.address, "garbage")  # ignored once closed
    victim.got_data(lead.address, {"type": "heartbeat", "term": 999, "commit": 0})
    assert victim.state == state[1]
    # Long enough for several election rounds and many heartbeats.
    await asyncio.sleep(10 * cluster.timing.election_max)
    assert victim.events == []
    assert errors == []
    assert (victim.term, victim.state, victim.commit_index, victim.last_applied) == state
    assert len([1 for src, _, _ in cluster.net.log if src == victim.address]) == sent_after
    assert all(node.closed for node in victim.nodes.values())


async def test_closed_leader_sends_nothing_and_others_take_over(cluster: Cluster) -> None:
    lead = await cluster.leader()
    await cluster.stop(lead.address)
    lead.events.clear()
    count = len(cluster.net.log)
    others = [n for n in cluster.names if n != lead.address]
    new = await cluster.leader(among=others)
    assert all(src != lead.address for src, _, _ in list(cluster.net.log)[count:])
    assert lead.events == []
    assert new.term > lead.term


async def test_close_is_idempotent_and_leaves_no_tasks(make_cluster: Callable[..., Cluster]
                                                       ) -> None:
    c = make_cluster().start()
    lead = await c.leader()
    await lead.propose("x")
    for node in c.nodes.values():
        await node.close()
        await node.close()
    await asyncio.gather(*(node.close() for node in c.nodes.values()))
    await asyncio.sleep(0.05)
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []


async def test_async_with_single_node_cluster() -> None:
    net = Network()
    async with FastRaft("solo", net, members=["solo"]) as raft:
        assert isinstance(raft, FastRaft)
        raft.start()  # already started: no-op
        index = await raft.propose({"alone": True})
        assert raft.is_leader
        assert raft.leader == "solo"
        assert raft.applied == [(index, {"alone": True})]
        assert raft.last_applied == index == raft.commit_index
    with pytest.raises(webraft.RaftClosed) as info:
        await raft.propose("late")
    assert info.value.may_have_committed is False
    raft.events.clear()
    await asyncio.sleep(0.1)
    assert raft.events == []


async def test_async_with_closes_on_error() -> None:
    net = Network()
    with pytest.raises(KeyError):
        async with FastRaft("solo", net, members=["solo"]) as raft:
            fut = raft.propose("pending")
            raise KeyError("boom")
    assert fut.done()
    with pytest.raises(webraft.RaftClosed) as info:
        await fut
    assert info.value.may_have_committed is False
    with pytest.raises(webraft.RaftClosed):
        await raft.propose("late")


async def test_constructor_validation() -> None:
    net = Network()
    with pytest.raises(ValueError):
        FastRaft("", net, members=["a"])
    with pytest.raises(ValueError):
        FastRaft("a", net, members=["a", "a"])
    with pytest.raises(ValueError):
        FastRaft("a", net, members=["a", ""])


async def test_members_are_ignored_when_storage_has_state(cluster: Cluster) -> None:
    await cluster.leader()
    name = cluster.names[0]
    await cluster.stop(name)
    node = FastRaft(name, cluster.net, members=["x", "y"], storage=cluster.storages[name])
    assert tuple(node.members) == tuple(cluster.names)
    await node.close()



async def test_proposals_expire_while_storage_keeps_failing() -> None:
    """A Ready loop stuck retrying a save must not leave proposals waiting forever: they
    fail after the proposal timeout, as certainly not committed (they were never sent)."""

    class Failing(webraft.MemoryStorage):
        broken = False

        def save(self, update: object) -> None:
            if self.broken:
                raise webraft.StorageError("quota exceeded")
            super().save(update)

    storage = Failing()

    class Solo(webraft.RaftInterface):
        proposal_timeout = 0.3

        def create_instance(self, address: str) -> webraft.NodeInstance:
            raise AssertionError("no peers")

    async with Solo("a", storage=storage) as node:
        await node.propose("before")  # leads alone, commits
        storage.broken = True
        stuck = node.propose("appended, then the save failed")
        await asyncio.sleep(0.05)  # the Ready loop now retries that save
        results = await asyncio.gather(stuck, *(node.propose(i) for i in range(3)),
                                       return_exceptions=True)
    assert all(isinstance(r, webraft.ProposalTimeout) for r in results), results
    # The first is in the leader's log (it would commit once storage recovers); the others
    # never left this node's outbox.
    assert [r.may_have_committed for r in results] == [True, False, False, False]

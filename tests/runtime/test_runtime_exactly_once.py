"""Exactly-once plain proposals (Raft thesis §6.3): every node's ``propose`` goes through its
implicit client session, and a proposal whose fate is unknown is sent again, at once, to
the leader known now; the session table applies it once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from cluster import Cluster, FastRaft
from support import GUARD

import webraft
from webraft.core.messages import SESSION

#: Timeouts no test waits out: a proposal that completes was resent by a leader change.
HOUR = 3600.0


def _counts(node: FastRaft) -> Counter[Any]:
    return Counter(command for _, command in node.applied)


async def _follower(cluster: Cluster, leader: FastRaft) -> FastRaft:
    return next(n for n in cluster.live() if n is not leader)


async def test_a_lost_forward_answer_is_resent_to_the_new_leader_and_applied_once(
        make_cluster: Any) -> None:
    """The leader appends and commits a follower's proposal, but nothing it sends reaches
    the follower (its answer is lost); then the leader goes. The follower sends the proposal
    to the new leader as soon as it knows it (the timeouts are an hour: only the leader
    change can resend it); the copy is a duplicate, and the caller learns the index of the
    first."""
    cluster: Cluster = make_cluster(proposal_timeout=HOUR, message_timeout=HOUR).start()
    old = await cluster.leader()
    follower, other = [n for n in cluster.live() if n is not old]
    cluster.net.drops.append(lambda src, dst, p: src == old.address
                             and dst == follower.address)
    fut = follower.propose("x")
    await asyncio.sleep(0.1)  # committed by the leader and the other follower
    first = next(i for i, c in other.applied if c == "x")
    assert not fut.done()
    await cluster.stop(old.address)
    assert await asyncio.wait_for(fut, GUARD) == first
    await cluster.converged()
    for node in cluster.live():
        assert _counts(node)["x"] == 1


async def test_proposals_in_flight_to_a_killed_leader_complete_on_the_next(
        make_cluster: Any) -> None:
    """The leader dies with proposals in flight, its own and forwarded ones: each completes
    on the next leader (the timeouts are an hour: nothing waits them out), applied once."""
    cluster: Cluster = make_cluster(names=("a", "b", "c", "d", "e"), proposal_timeout=HOUR,
                                    message_timeout=HOUR).start()
    old = await cluster.leader()
    followers = [n for n in cluster.live() if n is not old]
    # Nothing the leader sends arrives any more: its entries never commit.
    cluster.net.drops.append(lambda src, dst, p: src == old.address)
    futs = {f"v{i}": followers[i % len(followers)].propose(f"v{i}") for i in range(20)}
    own = old.propose("own")
    await asyncio.sleep(0.02)  # the forwards reached the leader, which appended them
    await cluster.stop(old.address)
    indexes = await asyncio.wait_for(asyncio.gather(*futs.values()), GUARD)
    with pytest.raises(webraft.RaftClosed):
        await own  # its node closed: it may have committed
    await cluster.converged()
    for node in cluster.live():
        counts = _counts(node)
        assert all(counts[v] == 1 for v in futs), counts
        assert dict(node.applied).keys() >= set(indexes)
        assert {node.applied[k][1] for k in range(len(node.applied))
                if node.applied[k][0] in indexes} == set(futs)


async def test_a_leader_that_lost_its_term_resends_its_own_proposal(cluster: Cluster) -> None:
    """A proposal on a leader cut off before it commits goes to the next leader once the old
    one hears of it; the answer is the real index where it was applied."""
    old = await cluster.leader()
    cluster.isolate(old.address)
    fut = old.propose("mine")
    others = [n for n in cluster.names if n != old.address]
    new = await cluster.leader(among=others)
    cluster.heal()
    index = await asyncio.wait_for(fut, 3)
    await cluster.converged()
    for node in cluster.live():
        assert (index, "mine") in node.applied and _counts(node)["mine"] == 1
    assert new.term > 1


async def test_a_forwarded_proposal_delivered_twice_is_applied_once(cluster: Cluster) -> None:
    """The network delivers a forwarded proposal twice, once as another request (as a resend
    would be): both copies are appended, the session table applies the command once, and
    the caller learns the first copy's index."""
    leader = await cluster.leader()
    follower = await _follower(cluster, leader)
    net = cluster.net
    send = net.send
    copies: list[dict[str, Any]] = []

    def twice(src: str, dst: str, payload: dict[str, Any]) -> None:
        send(src, dst, payload)
        if payload["type"] == "propose" and not copies:
            copies.append(payload)
            send(src, dst, {**payload, "id": payload["id"] + 1000})  # a resend's new id
            send(src, dst, payload)  # and the very same request again

    net.send = twice  # type: ignore[method-assign]
    index = await asyncio.wait_for(follower.propose("once"), 3)
    await follower.propose("after")  # every copy is in the log by now
    await cluster.converged()
    assert copies
    for node in cluster.live():
        assert _counts(node)["once"] == 1 and (index, "once") in node.applied
    log = leader.core.last_entries(10)
    assert sum(1 for e in log if e.kind == SESSION and e.command == "once") == 2


async def test_a_restarted_node_gets_a_new_implicit_session(cluster: Cluster) -> None:
    """A restarted node draws a new nonce: its numbers start again at 1 without colliding
    with those its previous incarnation had applied."""
    leader = await cluster.leader()
    node = await _follower(cluster, leader)
    before = node.proposals.implicit.id
    assert isinstance(before, str) and before.startswith(f"{node.address}/")
    for k in range(3):
        await node.propose(f"old{k}")
    await cluster.converged()
    back = await cluster.restart(node.address)
    await cluster.converged()
    after = back.proposals.implicit.id
    assert after != before and back.proposals.implicit.next_seq == 1
    indexes = [await back.propose(f"new{k}") for k in range(3)]  # seqs 1..3 again
    await cluster.converged()
    for live in cluster.live():
        applied = dict(live.applied)
        assert [applied[i] for i in indexes] == ["new0", "new1", "new2"]
        assert live.applier.sessions.applied_at(after, 3) == indexes[2]  # 1, 2 acknowledged
        # The previous incarnation's session is retired: nothing of it applies any more.
        assert live.applier.sessions.sessions[before].done == {}


async def test_proposal_timeout_only_when_no_leader_took_it(make_cluster: Any) -> None:
    """Leader changes do not time a proposal out; a node whose proposal no leader takes for
    the whole ``proposal_timeout`` does: ``ProposalTimeout`` (may have committed) if it sent
    it, ``NoLeaderError`` if it never did. (A node cut off from every leader gives up sooner:
    ``test_runtime_cut_off.py``.)"""
    cluster: Cluster = make_cluster(proposal_timeout=0.5, message_timeout=0.5).start()
    leader = await cluster.leader()
    # Several leader changes within one proposal timeout: nothing times out.
    futs = []
    for _ in range(3):
        current = await cluster.leader()
        futs.append(current.propose("during"))
        current.transfer_leadership()
        await asyncio.sleep(0.1)
    assert len(set(await asyncio.wait_for(asyncio.gather(*futs), 3))) == 3
    # A follower whose forwards never reach the leader, though it hears from it (so it is
    # not cut off): it sends its proposal again and again, no leader takes it, and it
    # times out.
    leader = await cluster.leader()
    follower = await _follower(cluster, leader)
    cluster.net.drops.append(lambda src, dst, p: src == follower.address
                             and p["type"] == "propose")
    loop = asyncio.get_running_loop()
    start = loop.time()
    held = follower.propose("held")
    with pytest.raises(webraft.ProposalTimeout) as info:
        await asyncio.wait_for(held, 3)
    assert info.value.may_have_committed and loop.time() - start >= 0.5
    assert not follower.proposals.cut_off
    # A node that never knew a leader (its cluster's others are not started) never sends.
    lone = make_cluster(proposal_timeout=0.5).build("a")
    lone.start()
    start = loop.time()
    with pytest.raises(webraft.NoLeaderError):
        await asyncio.wait_for(lone.propose("never sent"), 3)
    assert loop.time() - start >= 0.5
    cluster.heal()
    await cluster.converged()
    for node in [*cluster.live(), lone]:
        assert "never sent" not in _counts(node) and _counts(node)["held"] <= 1

"""A cut-off node gives up at once: one that knew a leader, then has known none for
``config.cut_off_after``, fails the proposals no leader holds, and new ones, without waiting
out ``proposal_timeout`` (its callers retry through another member). A node that never knew a
leader still waits for the first one, and a leader change alone fails nothing.

Every ``proposal_timeout`` here is an hour, so a proposal that fails within the test's guard
was failed by the cut-off rule, and one that succeeds was sent on by the leader change.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from cluster import Cluster, FastRaft
from support import GUARD, until

import webraft

#: Timeouts no test waits out.
HOUR = 3600.0


def _counts(node: FastRaft) -> Counter[Any]:
    return Counter(command for _, command in node.applied)


async def test_a_cut_off_leader_fails_held_parked_and_new_proposals_at_once(
        make_cluster: Any) -> None:
    """The leader is cut off from everyone. Its own proposal (appended to its log: it may
    still commit) fails with ``ProposalTimeout``; one made after it stepped down (parked,
    never sent) and one made once it is cut off fail with ``NoLeaderError``, and so does a
    read. Once the link is back it learns of the new leader and proposes normally; nothing
    was applied twice, and what was never sent is nowhere."""
    cluster: Cluster = make_cluster(proposal_timeout=HOUR, message_timeout=HOUR).start()
    old = await cluster.leader()
    parked: list[asyncio.Future[int]] = []

    def stepped_down(leader: str | None, term: int) -> None:
        if leader is None and not parked:
            assert not old.proposals.cut_off
            parked.append(old.propose("parked"))

    old.listen("leader changed", stepped_down)
    cluster.isolate(old.address)
    held = old.propose("held")
    with pytest.raises(webraft.ProposalTimeout) as timeout:
        await asyncio.wait_for(held, GUARD)
    assert timeout.value.may_have_committed and old.proposals.cut_off
    with pytest.raises(webraft.NoLeaderError) as never_sent:
        await asyncio.wait_for(parked[0], GUARD)
    assert not never_sent.value.may_have_committed
    new = old.propose("new")
    await asyncio.sleep(0)
    assert new.done()  # at once: no leader is waited for
    with pytest.raises(webraft.NoLeaderError):
        await new
    with pytest.raises(webraft.NoLeaderError):
        await asyncio.wait_for(old.read_index(), GUARD)
    cluster.heal()
    await until(lambda: old.leader is not None, GUARD, "the old leader hears of the new one")
    assert not old.proposals.cut_off
    after = await asyncio.wait_for(old.propose("after"), GUARD)
    await cluster.converged()
    for node in cluster.live():
        counts = _counts(node)
        assert counts["parked"] == counts["new"] == 0 and counts["held"] <= 1
        assert (after, "after") in node.applied


async def test_a_cut_off_follower_fails_its_unanswered_forward(make_cluster: Any) -> None:
    """A follower cut off from everyone forwarded a proposal that no answer came for: it may
    have reached the leader, so it fails as "may have committed" once the follower is cut
    off. It was never delivered: once healed, no member applies it (nothing resent it)."""
    cluster: Cluster = make_cluster(proposal_timeout=HOUR, message_timeout=HOUR).start()
    leader = await cluster.leader()
    follower = next(n for n in cluster.live() if n is not leader)
    cluster.isolate(follower.address)
    fut = follower.propose("forwarded")
    with pytest.raises(webraft.ProposalTimeout) as info:
        await asyncio.wait_for(fut, GUARD)
    assert info.value.may_have_committed and follower.proposals.cut_off
    cluster.heal()
    await cluster.converged()
    assert all(_counts(node)["forwarded"] == 0 for node in cluster.live())


async def test_a_node_that_never_knew_a_leader_waits_for_the_first(
        make_cluster: Any) -> None:
    """A node alone of its cluster (the others not started yet, as a tab waits to be added)
    knows no leader, but never knew one: it is not cut off, and its proposal waits, however
    long that takes, for the first leader; then it is applied once."""
    cluster: Cluster = make_cluster(proposal_timeout=HOUR, message_timeout=HOUR)
    lone = cluster.build("a")  # the others are not on the network yet
    lone.start()
    fut = lone.propose("early")
    # Several times as long as a node that knew a leader would wait; no leader can exist.
    await asyncio.sleep(3 * lone.config.cut_off_after)
    assert not fut.done() and not lone.proposals.cut_off and lone.leader is None
    cluster.start()  # builds and starts the others
    index = await asyncio.wait_for(fut, GUARD)
    await cluster.converged()
    for node in cluster.live():
        assert (index, "early") in node.applied and _counts(node)["early"] == 1


async def test_a_proposal_parked_during_an_election_succeeds_on_the_new_leader(
        make_cluster: Any) -> None:
    """The leader dies; a follower's proposal made while no leader is known is parked, not
    failed (an election is no cut-off), and is applied once by the new leader."""
    cluster: Cluster = make_cluster(proposal_timeout=HOUR, message_timeout=HOUR).start()
    old = await cluster.leader()
    follower = next(n for n in cluster.live() if n is not old)
    parked: list[asyncio.Future[int]] = []

    def lost(leader: str | None, term: int) -> None:
        if leader is None and not parked:
            parked.append(follower.propose("during"))

    follower.listen("leader changed", lost)
    await cluster.stop(old.address)
    await until(lambda: parked, GUARD, "the follower knows no leader")
    index = await asyncio.wait_for(parked[0], GUARD)
    assert not follower.proposals.cut_off
    await cluster.converged()
    for node in cluster.live():
        assert (index, "during") in node.applied and _counts(node)["during"] == 1

"""read_index(): linearizable reads from any member, never stale from a cut-off leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from cluster import Cluster
from support import GUARD, stable_leader, until

import webraft


async def test_reads_see_every_completed_write_from_any_member(cluster: Cluster) -> None:
    lead = await cluster.leader()
    index = await lead.propose({"x": 1})
    for node in cluster.live():
        read_at = await node.read_index()
        assert read_at >= index
        assert node.last_applied >= read_at
        assert (index, {"x": 1}) in node.applied


async def test_concurrent_reads_share_rounds(cluster: Cluster) -> None:
    lead = await cluster.leader()
    await lead.propose("w")
    rounds = lead.core._read_round
    indexes = await asyncio.gather(*(lead.read_index() for _ in range(50)))
    assert len(set(indexes)) == 1
    # Fifty reads share a round; heartbeats (which number rounds too) may add a few.
    assert lead.core._read_round - rounds < 10


async def test_a_cut_off_leader_gives_no_read_and_the_new_leader_does(
        make_cluster) -> None:
    cluster = make_cluster(proposal_timeout=0.5)
    cluster.start()
    old = await cluster.leader()
    cluster.isolate(old.address)
    rest = [n for n in cluster.live() if n is not old]
    new = await until(lambda: stable_leader(rest), what="a new leader")
    index = await new.propose("written after the cut")
    # The old leader may still believe it leads for a moment, but it cannot confirm that
    # with a majority, so it never hands out a (stale) read index.
    with pytest.raises(webraft.NoLeaderError):
        await old.read_index()
    assert await new.read_index() >= index


async def test_lease_reads_answer_from_the_leader_and_still_see_every_write(
        make_cluster) -> None:
    cluster = make_cluster(read_lease=True).start()
    lead = await cluster.leader()
    index = await lead.propose("leased")
    await until(lambda: lead.core._lease_valid(), what="a lease")
    rounds = lead.core._read_round
    assert await lead.read_index() >= index
    assert lead.core._read_round - rounds < 3  # no round of its own (a heartbeat may pass)
    for node in cluster.live():
        assert await node.read_index() >= index


async def test_a_read_asked_of_a_leader_that_died_is_asked_of_the_next(
        make_cluster: Callable[..., Cluster]) -> None:
    """A follower asked the leader for a read index; the leader died before its answer
    arrived. The follower asks the new leader as soon as it stops following the old one, not
    after its message timeout (an hour here, as is the proposal timeout)."""
    cluster = make_cluster(proposal_timeout=3600.0, message_timeout=3600.0).start()
    old = await cluster.leader()
    written = await old.propose("before")
    follower = next(n for n in cluster.live() if n is not old)
    cluster.net.drops.append(lambda src, dst, p: src == old.address
                             and dst == follower.address)
    read = asyncio.ensure_future(follower.read_index())
    await until(lambda: any(dst == old.address and p["type"] == "read"
                            for src, dst, p in cluster.net.log if src == follower.address),
                what="the follower's read reached the leader")
    await cluster.stop(old.address)
    assert await asyncio.wait_for(read, GUARD) >= written
    assert follower.leader != old.address


async def test_a_lease_is_judged_by_the_time_of_the_read_not_of_the_last_tick(
        make_cluster: Callable[..., Cluster]) -> None:
    """The core's clock moves only when the node ticks or takes a message. A leader whose
    loop was blocked past its lease must not answer the first read after it from that
    lease: meanwhile the others may have elected a leader and committed writes."""
    cluster = make_cluster(read_lease=True).start()
    lead = await cluster.leader()
    await lead.propose("leased")
    await until(lambda: lead.core._lease_valid(), what="a lease")
    cluster.net.isolate(lead.address)
    time.sleep(lead.config.heartbeat_timeout)  # the loop blocked: no tick, no message
    answered = lead.proposals.ask_read_index()
    await asyncio.sleep(0)
    assert not (answered.done() and not answered.exception() and answered.result())


async def test_only_a_leasing_leader_ticks_for_a_read_and_checks_for_a_stall_first(
        make_cluster: Callable[..., Cluster]) -> None:
    """The tick that dates a lease read runs the node's stall check first, as every tick of
    its timers does (a tab's blocked loop must not fire an overdue timer); other reads do
    not tick, so a read on a follower never fires its timers."""
    cluster = make_cluster(read_lease=True).start()
    lead = await cluster.leader()
    await lead.propose("leased")
    checked: list[str] = []
    for node in cluster.live():
        node.driver.before_tick = lambda node=node: checked.append(node.address)
        node.proposals.ask_read_index()
    assert checked == [lead.address]

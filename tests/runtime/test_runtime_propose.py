"""propose(): indexes, forwarding, apply/updated ordering, callbacks, retries and errors."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from cluster import RELAXED, Cluster, FastRaft, Network, Timing
from support import until

import webraft
from webraft.core.progress import REPLICATE


def followers(c: Cluster, lead: FastRaft) -> list[FastRaft]:
    return [n for n in c.nodes.values() if n is not lead]


# ---------------------------------------------------------------------- indexes and order


async def test_a_settled_proposal_is_not_kept_until_its_deadline(cluster: Cluster) -> None:
    """Once a proposal has its outcome, nothing of the node keeps its future alive: not the
    expiry record of its batch until ``proposal_timeout`` is over (at 10,000 in flight that
    was tens of thousands of objects for the garbage collector to walk)."""
    lead = await cluster.leader()
    f1, _ = followers(cluster, lead)
    futures = [node.propose(["kept", k]) for k, node in enumerate([lead, lead, f1, f1])]
    for fut in futures:  # not gather(), whose future would keep them
        assert await fut > 0
    refs = [weakref.ref(fut) for fut in futures]
    del futures, fut
    await asyncio.sleep(0)  # the loop's own wake-up calls, which hold a future briefly
    gc.collect()
    assert [ref() for ref in refs] == [None] * 4


async def test_leader_and_forwarded_proposals_share_one_index_sequence(cluster: Cluster) -> None:
    lead = await cluster.leader()
    f1, f2 = followers(cluster, lead)
    proposers = [lead, f1, f2, f1, lead, f2, f2, lead]
    indexes = []
    for k, node in enumerate(proposers):
        index = await node.propose({"k": k, "via": node.address})
        # Resolved only once applied on the proposing node itself.
        assert node.last_applied >= index
        assert (index, {"k": k, "via": node.address}) in node.applied
        indexes.append(index)
    assert indexes == sorted(indexes)
    assert len(set(indexes)) == len(indexes)
    await cluster.converged()
    expected = [(i, {"k": k, "via": n.address})
                for k, (i, n) in enumerate(zip(indexes, proposers, strict=True))]
    for node in cluster.nodes.values():
        assert node.applied == expected
        assert [e for e in node.events if e[0] == "updated"] == [
            ("updated", i) for i in indexes]


async def test_concurrent_proposals_from_every_node_apply_identically(cluster: Cluster) -> None:
    lead = await cluster.leader()
    nodes = list(cluster.nodes.values())
    futs = [nodes[k % 3].propose([nodes[k % 3].address, k]) for k in range(150)]
    results = await asyncio.gather(*futs)
    assert len(set(results)) == 150
    await cluster.converged()
    reference = lead.applied
    assert len(reference) == 150
    by_index = dict(reference)
    for k, index in enumerate(results):
        assert by_index[index] == [nodes[k % 3].address, k]
    for node in nodes:
        assert node.applied == reference
        idx = [i for i, _ in node.applied]
        assert idx == sorted(idx)
    # Per proposer, commands keep the order in which they were proposed.
    for node in nodes:
        mine = [i for i, (addr, _k) in reference if addr == node.address]
        assert [by_index[i][1] for i in mine] == sorted(by_index[i][1] for i in mine)


# ---------------------------------------------------------------------- apply callbacks


async def test_propose_resolves_only_after_a_delayed_apply_callback(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    log: list[tuple[str, str, int]] = []
    loop = asyncio.get_running_loop()
    for name in c.names:
        node = c.build(name, record_apply=False)

        def slow_apply(entry: webraft.Entry, index: int, cb: Callable[..., None],
                       node: FastRaft = node) -> None:
            # Nothing after index-1 is applied yet while this entry is being applied.
            assert node.last_applied == index - 1
            log.append((node.address, "apply", index))

            def done() -> None:
                log.append((node.address, "cb", index))
                cb()

            loop.call_later(0.02, done)

        node.listen("apply", slow_apply)
        node.listen("updated", lambda i, a=name: log.append((a, "updated", i)))
    c.start()
    lead = await c.leader()
    for proposer in (lead, *followers(c, lead)):
        futs = [proposer.propose(k) for k in range(3)]
        for fut in futs:
            index = await fut
            assert proposer.last_applied >= index
            mine = [(what, i) for a, what, i in log if a == proposer.address]
            pos_cb = mine.index(("cb", index))
            assert mine.index(("apply", index)) < pos_cb < mine.index(("updated", index))
    await c.converged()
    assert not any(isinstance(e, AssertionError) for n in c.nodes.values()
                   for (e,) in n.named("error"))
    for name in c.names:
        mine = [(what, i) for a, what, i in log if a == name]
        # strictly sequential: apply i, cb i, updated i, apply j, ...
        for k in range(0, len(mine), 3):
            _, index = mine[k]
            assert mine[k:k + 3] == [("apply", index), ("cb", index), ("updated", index)]
        assert len(mine) == 9 * 3


async def test_every_apply_handler_must_call_back_before_updated(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    held: dict[str, list[Callable[..., None]]] = {n: [] for n in c.names}
    for name in c.names:
        node = c.build(name)
        node.listen("apply", lambda e, i, cb, name=name: held[name].append(cb))
    c.start()
    lead = await c.leader()
    fut = lead.propose("x")
    await until(lambda: held[lead.address], 5, "second handler called")
    index = lead.applied[-1][0]
    assert lead.commit_index >= index
    await asyncio.sleep(0.05)  # the first handler is done; the second still holds it
    assert not fut.done()
    assert lead.last_applied < index
    assert ("updated", index) not in lead.events
    held[lead.address].pop()()
    assert await fut == index
    assert lead.last_applied == index
    assert ("updated", index) in lead.events


async def test_cb_with_an_exception_retries_in_order(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    attempts: dict[str, dict[int, int]] = {n: {} for n in c.names}
    failing_command = "fail twice"
    for name in c.names:
        node = c.build(name, record_apply=False)
        node.applied_ok = []  # type: ignore[attr-defined]

        def apply(entry: webraft.Entry, index: int, cb: Callable[..., None],
                  node: FastRaft = node) -> None:
            count = attempts[node.address][index] = attempts[node.address].get(index, 0) + 1
            if entry.command == failing_command and count <= 2:
                cb(RuntimeError(f"transient {count}"))
                return
            node.applied_ok.append((index, entry.command))  # type: ignore[attr-defined]
            cb()

        node.listen("apply", apply)
    c.start()
    lead = await c.leader()
    futs = [lead.propose("before"), lead.propose(failing_command), lead.propose("after")]
    indexes = await asyncio.gather(*futs)
    await c.converged()
    for node in c.nodes.values():
        assert node.applied_ok == list(  # type: ignore[attr-defined]
            zip(indexes, ["before", failing_command, "after"], strict=True))
        assert attempts[node.address][indexes[1]] == 3
        assert attempts[node.address][indexes[2]] == 1
        errs = [str(e) for (e,) in node.named("error")]
        assert "transient 1" in errs
        assert "transient 2" in errs
        assert [i for (i,) in node.named("updated")] == indexes


async def test_an_apply_handler_that_raises_is_retried(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    seen: dict[str, list[int]] = {n: [] for n in c.names}
    for name in c.names:
        node = c.build(name)

        def flaky(entry: webraft.Entry, index: int, cb: Callable[..., None],
                  name: str = name) -> None:
            seen[name].append(index)
            if seen[name].count(index) == 1:
                raise RuntimeError(f"first try of {index}")
            cb()

        node.listen("apply", flaky)
    c.start()
    lead = await c.leader()
    a = await lead.propose("a")
    b = await lead.propose("b")
    await c.converged()
    for node in c.nodes.values():
        assert node.applied == [(a, "a"), (b, "b")]  # the first handler ran once per entry
        assert seen[node.address] == [a, a, b, b]
        assert {str(e) for (e,) in node.named("error")} >= {f"first try of {a}",
                                                           f"first try of {b}"}


async def test_async_apply_handlers_are_awaited(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    finished: dict[str, list[int]] = {n: [] for n in c.names}
    failed: set[str] = set()
    for name in c.names:
        node = c.build(name)

        async def apply(entry: webraft.Entry, index: int, _cb: Any, name: str = name) -> None:
            await asyncio.sleep(0.01)
            if entry.command == "flaky" and name not in failed:
                failed.add(name)
                raise ValueError("async apply failed once")
            finished[name].append(index)

        node.listen("apply", apply)
    c.start()
    lead = await c.leader()
    f = followers(c, lead)[0]
    i1 = await f.propose("x")
    assert i1 in finished[f.address]
    i2 = await lead.propose("flaky")
    assert i2 in finished[lead.address]
    assert lead.last_applied >= i2
    await c.converged()
    for name in c.names:
        assert finished[name] == [i1, i2]
        node = c.nodes[name]
        assert any("async apply failed once" in str(e) for (e,) in node.named("error"))


# ---------------------------------------------------------------------- JSON normalization


async def test_tuples_become_lists_and_caller_mutation_does_not_touch_the_log(
        cluster: Cluster) -> None:
    lead = await cluster.leader()
    f = followers(cluster, lead)[0]
    i1 = await lead.propose(("a", 1, ("b", (2,))))
    cmd = {"k": [1], "t": (1, 2)}
    fut = f.propose(cmd)
    cmd["k"].append(2)
    cmd["new"] = True
    i2 = await fut
    cmd["k"].append(3)
    await cluster.converged()
    for node in cluster.nodes.values():
        assert node.applied == [(i1, ["a", 1, ["b", [2]]]), (i2, {"k": [1], "t": [1, 2]})]
        assert node.core.log.entry(i2).command == {"k": [1], "t": [1, 2]}  # in a session
        assert isinstance(node.applied[0][1], list)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", [
    {1, 2}, float("nan"), float("inf"), -math.inf, object(), b"bytes", {"k": {3}},
    [1, float("nan")], {("tuple", "key"): 1},
], ids=["set", "nan", "inf", "-inf", "object", "bytes", "nested-set", "nested-nan",
        "tuple-key"])
async def test_non_json_commands_are_invalid(cluster: Cluster, command: Any) -> None:
    lead = await cluster.leader()
    before = lead.core.log.last_index
    for node in cluster.nodes.values():
        with pytest.raises(webraft.InvalidCommand) as info:
            await node.propose(command)
        assert isinstance(info.value, webraft.ProposalError)
        assert isinstance(info.value, ValueError)
        assert info.value.may_have_committed is False
    assert lead.core.log.last_index == before


def too_big(limit: int) -> list[Any]:
    """Commands whose JSON is over ``limit`` bytes (ASCII JSON: non-ASCII is escaped)."""
    return [
        "x" * limit,  # its JSON is 2 bytes (the quotes) over the limit
        "é" * (limit // 6 + 1),  # JSON writes each as \u00e9: 6 bytes
        '"' * (limit // 2 + 1),  # JSON writes each as \": 2 bytes
        {"big": ["é" * (limit // 6 + 1)]},
        ["x" * limit],
        [0] * (limit // 2 + 1),  # even compact JSON ("0,0,...") is over
    ]


async def test_oversized_command_is_invalid_and_the_limit_itself_is_accepted(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(timing=RELAXED).start()  # big entries take a while to copy
    lead = await cluster.leader()
    f = followers(cluster, lead)[0]
    limit = lead.max_command_bytes
    assert limit == f.max_command_bytes > 0
    for node in (lead, f):
        for command in too_big(limit):
            with pytest.raises(webraft.InvalidCommand):
                await node.propose(command)
    index = await lead.propose("y" * (limit - 2))  # exactly the limit
    await cluster.converged()
    for node in cluster.nodes.values():
        assert node.applied == [(index, "y" * (limit - 2))]


async def test_propose_decoded_keeps_the_parsed_command_and_still_checks_it(
        make_cluster: Callable[..., Cluster]) -> None:
    """What the browser bridge uses for commands fresh from json.loads: the same outcomes as
    propose(), without the defensive copy."""
    cluster = make_cluster(max_command_bytes=1000).start()
    lead = await cluster.leader()
    f = followers(cluster, lead)[0]
    for node in (lead, f):
        for command in [*too_big(1000), json.loads("[1e400]"), json.loads('{"k": NaN}')]:
            with pytest.raises(webraft.InvalidCommand):
                await node.propose_decoded(command)
    command = json.loads('{"k": [1, "\\u00e9"], "n": null}')
    index = await f.propose_decoded(command)
    await cluster.converged()
    for node in cluster.nodes.values():
        assert node.applied == [(index, command)]
    assert lead.core.log.entry(index).command == command  # in its implicit session


async def test_a_smaller_command_limit_set_by_a_subclass_is_honoured(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(max_command_bytes=1000).start()
    lead = await cluster.leader()
    f = followers(cluster, lead)[0]
    for node in (lead, f):
        assert node.max_command_bytes == 1000
        for command in too_big(1000):
            with pytest.raises(webraft.InvalidCommand):
                await node.propose(command)
    i1 = await f.propose("z" * 998)  # exactly the limit
    i2 = await lead.propose({"k": "v" * 990})  # {"k":"vvv..."}: 998 bytes
    await cluster.converged()
    for node in cluster.nodes.values():
        assert node.applied == [(i1, "z" * 998), (i2, {"k": "v" * 990})]


async def test_no_leader_error_when_no_leader_ever_exists() -> None:
    net = Network()
    raft = FastRaft("a", net, members=["a", "b", "c"],
                    timing=Timing(proposal_timeout=0.2))
    raft.start()
    try:
        futs = [raft.propose({"n": n}) for n in range(3)]
        for fut in futs:
            with pytest.raises(webraft.NoLeaderError) as info:
                await asyncio.wait_for(fut, 5)
            assert info.value.may_have_committed is False
        assert raft.leader is None
        assert not raft.is_leader
        assert raft.core.log.last_index == 0
    finally:
        await raft.close()


async def test_proposal_timeout_when_the_forwarded_request_is_lost(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(proposal_timeout=5.0, message_timeout=0.2).start()
    lead = await c.leader()
    f = followers(c, lead)[0]
    # f cannot lead (an election on a loaded machine would let it append its own proposal).
    c.net.drops.append(lambda src, dst, p: p["type"] == "propose"
                       or (src == f.address and p["type"] == "vote"))
    with pytest.raises(webraft.ProposalTimeout) as info:
        await asyncio.wait_for(f.propose("lost"), 5)
    assert info.value.may_have_committed is True
    assert all(cmd != "lost" for n in c.nodes.values() for _, cmd in n.applied)
    c.heal()
    assert await f.propose("found") > 0


async def test_proposal_timeout_when_the_forwarded_answer_never_comes(
        make_cluster: Callable[..., Cluster]) -> None:
    # The leader appends it, but neither its answer nor its replication reach the proposer,
    # and proposal_timeout (shorter than message_timeout here) ends the wait.
    c = make_cluster(proposal_timeout=0.3, message_timeout=5.0).start()
    lead = await c.leader()
    f = followers(c, lead)[0]
    c.net.drops.append(lambda src, dst, p: src == lead.address and dst == f.address
                       and p["type"] in ("propose_resp", "append"))
    with pytest.raises(webraft.ProposalTimeout) as info:
        await asyncio.wait_for(f.propose("maybe"), 5)
    assert info.value.may_have_committed is True
    # ...and it did commit: the other follower and the leader apply it.
    await until(lambda: (lead.applied and lead.applied[-1][1] == "maybe"), 5, "committed")


async def test_proposals_on_a_partitioned_node_fail_in_time(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(proposal_timeout=0.3).start()
    lead = await c.leader()
    c.isolate(lead.address)
    # Appended by a leader that can no longer reach anyone: the outcome is unknown.
    with pytest.raises(webraft.ProposalTimeout) as info:
        await asyncio.wait_for(lead.propose("stranded"), 5)
    assert info.value.may_have_committed is True
    # Once it has stepped down and knows no leader, nothing is sent: certainly not committed.
    await until(lambda: lead.leader is None and not lead.is_leader, 5, "stepped down")
    with pytest.raises(webraft.NoLeaderError) as info2:
        await asyncio.wait_for(lead.propose("parked"), 5)
    assert info2.value.may_have_committed is False
    c.heal()
    await c.converged()
    assert all(cmd not in ("stranded", "parked") for n in c.nodes.values() for _, cmd in n.applied)


async def test_not_leader_error_when_forwarding_is_off(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(forward_proposals=False).start()
    lead = await c.leader()
    for f in followers(c, lead):
        with pytest.raises(webraft.NotLeaderError) as info:
            await f.propose("no")
        assert info.value.leader == lead.address
        assert info.value.may_have_committed is False
    assert await lead.propose("yes") > 0


async def test_close_fails_pending_proposals_with_raft_closed(
        make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    hold: list[Callable[..., None]] = []
    for name in c.names:
        node = c.build(name)
        node.listen("apply", lambda e, i, cb: hold.append(cb) if e.command == "held" else cb())
    c.start()
    lead = await c.leader()
    f = followers(c, lead)[0]
    # 1. committed but never applied (the application holds the callback)
    held = lead.propose("held")
    await until(lambda: any(cmd == "held" for _, cmd in lead.applied), 5, "held entry applied")
    # 2. parked on an isolated node that knows no leader
    other = followers(c, lead)[1]
    c.isolate(other.address)
    await until(lambda: other.leader is None, 5, "isolated node lost its leader")
    parked = other.propose("parked")
    # 3. forwarded and unanswered
    c.net.drops.append(lambda src, dst, p: p["type"] == "propose")
    forwarded = f.propose("forwarded")
    await asyncio.sleep(0.02)
    assert not (held.done() or parked.done() or forwarded.done())
    await lead.close()
    await other.close()
    await f.close()
    for fut, may in ((held, True), (parked, False), (forwarded, True)):
        assert fut.done()
        with pytest.raises(webraft.RaftClosed) as info:
            await fut
        assert info.value.may_have_committed is may
    with pytest.raises(webraft.RaftClosed):
        await lead.propose("after close")


async def test_a_round_calls_send_now_between_its_sends_and_its_applies(
        cluster: Cluster) -> None:
    """``Driver.send_now`` runs once a round has written its messages and before the
    entries it committed are applied: a tab sends its answers there, not after the apply
    handlers ran."""
    lead = await cluster.leader()
    seen: list[tuple[int, int, str]] = []
    for node in followers(cluster, lead):
        def hook(node: FastRaft = node) -> None:
            sent = [m for src, _, m in cluster.net.log if src == node.address]
            seen.append((node.last_applied, node.commit_index, sent[-1]["type"]))
        node.driver.send_now = hook
    for command in ("x", "y", "z"):
        await lead.propose(command)
    await cluster.converged()
    assert seen
    assert all(applied < commit for applied, commit, _ in seen)  # committed, not applied
    assert {kind for *_, kind in seen} <= {"append_resp", "heartbeat_resp"}


async def test_a_leader_sends_its_appends_before_it_saves_their_entries(
        cluster: Cluster) -> None:
    """A leader's appends leave before its save of their entries (Raft thesis §10.2.1), so
    the followers' part of a commit overlaps the leader's own save; a follower's
    acknowledgement still leaves only after the entries it acknowledges are saved."""
    lead = await cluster.leader()
    # Until a follower acknowledges the new leader's first append, its progress is a probe
    # in flight and nothing more is sent to it: replicate first.
    await lead.propose("first")
    await until(lambda: all(pr.state == REPLICATE for pr in lead.core.progress.values()),
                what="every follower replicating")
    follower = followers(cluster, lead)[0]
    sent_at_save: dict[str, list[set[int]]] = {lead.address: [], follower.address: []}

    def watch(node: FastRaft) -> None:
        storage = cluster.storages[node.address]
        save = storage.save

        def saving(update: Any) -> Any:
            if update.entries:
                # The entry indexes this node has sent appends or acknowledgements for.
                sent = {m.get("index", 0) for src, _, m in cluster.net.log
                        if src == node.address and m["type"] == "append_resp"}
                sent |= {e[0] for src, _, m in cluster.net.log if src == node.address
                         and m["type"] == "append" for e in _indexed(m)}
                sent_at_save[node.address].append(
                    {e.index for e in update.entries} & sent)
            return save(update)

        storage.save = saving  # type: ignore[method-assign]

    watch(lead)
    watch(follower)
    for command in ("x", "y", "z"):
        await lead.propose(command)
    await cluster.converged()
    assert sent_at_save[lead.address] and all(sent_at_save[lead.address])
    assert sent_at_save[follower.address]
    assert not any(sent_at_save[follower.address])


def _indexed(append: dict[str, Any]) -> list[tuple[int]]:
    """``(index,)`` of each entry an append message carries."""
    first = append["prev_index"] + 1
    return [(first + k,) for k in range(len(append.get("entries", [])))]


async def test_the_timer_calls_before_tick_before_the_core_clock_moves(
        cluster: Cluster) -> None:
    """``Driver.before_tick`` runs when the node's timer fires and before the core sees the
    new time: a tab that finds there that its loop was blocked declares the stall first, so
    an overdue election or CheckQuorum timer cannot act on it."""
    lead = await cluster.leader()
    seen: list[tuple[float, float]] = []

    def hook() -> None:
        seen.append((lead.core.now, lead.driver.now()))

    lead.driver.before_tick = hook
    await until(lambda: len(seen) >= 3)  # the leader's heartbeat timer
    lead.driver.before_tick = None
    assert all(core < now for core, now in seen)  # called before the tick moved the clock


async def test_a_batch_runs_its_round_at_its_end_and_kicks_none(cluster: Cluster) -> None:
    """``Driver.batch`` (a tab's burst of proposals): proposals made inside schedule no round
    for the next loop turn (on Pyodide a browser task of its own); the round runs as the
    batch ends, so the entries are in the log and on their way before it returns."""
    lead = await cluster.leader()
    driver = lead.driver
    await until(lambda: not driver.kicked)  # no round pending from earlier work
    last = lead.core.status().last_index
    with driver.batch():
        futures = [lead.propose(["batched", k]) for k in range(3)]
        assert not driver.kicked
        assert lead.core.status().last_index == last  # not yet: the round is at the end
        with driver.batch():  # nested: the outer batch runs the round
            futures.append(lead.propose(["batched", 3]))
        assert lead.core.status().last_index == last
    assert not driver.kicked
    assert lead.core.status().last_index == last + 4
    assert [await fut for fut in futures] == list(range(last + 1, last + 5))

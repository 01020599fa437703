"""Client sessions (Raft thesis §6.3): retried proposals apply exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cluster import Cluster

import webraft
from webraft.core import sessions
from webraft.core.messages import SESSION


def commands(node: Any) -> list[Any]:
    return [command for _, command in node.applied]


async def test_a_retry_after_a_lost_answer_applies_once(make_cluster: Any) -> None:
    c: Cluster = make_cluster(message_timeout=0.2).start()
    lead = await c.leader()
    follower = next(n for n in c.nodes.values() if n is not lead)
    session = await follower.open_session()
    forwarded: set[int] = set()  # request ids (a filter may see a message more than once)

    def keep_the_follower_in_the_dark(src: str, dst: str, payload: dict[str, Any]) -> bool:
        """Until the follower forwards a second copy, it hears neither the leader's answer
        nor the entries: it cannot know the first copy committed, so it must retry."""
        if src == follower.address and payload["type"] == "propose":
            forwarded.add(payload["id"])
        return (dst == follower.address and len(forwarded) < 2
                and payload["type"] in ("propose_resp", "append", "commit"))

    c.net.drops.append(keep_the_follower_in_the_dark)
    index = await session.propose({"pay": 10})
    assert len(forwarded) >= 2, "the follower never retried: the test proved nothing"
    await c.converged()
    for node in c.nodes.values():
        assert commands(node).count({"pay": 10}) == 1
        assert (index, {"pay": 10}) in node.applied
    # Both copies are in the log; only the first was applied.
    copies = [e.index for e in lead.core.log.entries
              if e.kind == SESSION and e.command == {"pay": 10}]
    assert len(copies) == 2 and copies[0] == index


async def test_a_resumed_session_is_deduplicated_across_restarts_and_snapshots(
        make_cluster: Any) -> None:
    c: Cluster = make_cluster(snapshot_entries=5, snapshot_tail=0)

    def handlers(node: Any) -> None:
        node.listen("snapshot", lambda index, term: {"opaque": index})
        node.listen("refresh", lambda cb: cb())

    for name in c.names:
        handlers(c.build(name))
    c.start()
    lead = await c.leader()
    session = await lead.open_session()
    first = await session.propose("once")
    for i in range(12):
        await lead.propose(i)  # compacts the log: the table lives on in the snapshot
    await c.converged()
    assert c.storages[lead.address].snapshot.index > first
    restarted = await c.restart(lead.address, before_start=handlers)
    await c.leader()
    again = restarted.resume_session(session.id, 1)  # a client that lost track retries seq 1
    assert await again.propose("once") == first
    await c.converged()
    assert all(commands(n).count("once") <= 1 for n in c.nodes.values())


async def test_an_expired_session_is_refused(make_cluster: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 2)
    c: Cluster = make_cluster().start()
    lead = await c.leader()
    old = await lead.open_session()
    await lead.open_session()
    await lead.open_session()
    with pytest.raises(webraft.SessionExpired) as refused:
        await old.propose("too late")
    assert refused.value.may_have_committed is False  # its first attempt: surely new
    assert "too late" not in commands(lead)


async def test_a_retry_refused_as_expired_may_have_been_applied(
        make_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attempt applies, its answer is lost, the session expires, the retry is refused:
    the command took effect, so the refusal must not claim it did not."""
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 2)
    c: Cluster = make_cluster().start()
    lead = await c.leader()
    session = await lead.open_session()
    await session.propose("x")  # suppose this answer never reached the client
    await lead.open_session()
    await lead.open_session()  # expires the first session
    other = next(n for n in c.nodes.values() if n is not lead)
    with pytest.raises(webraft.SessionExpired) as refused:
        await other.resume_session(session.id, 1).propose("x")
    assert refused.value.may_have_committed is True
    await c.converged()
    assert all(commands(n).count("x") == 1 for n in c.nodes.values())


async def test_a_timed_out_command_is_retried_exactly_once_under_its_number(
        make_cluster: Any) -> None:
    """A timeout leaves the command in flight: retrying it as a new command could apply it
    twice, retrying it under the number the timeout names applies it once."""
    c: Cluster = make_cluster().start()
    lead = await c.leader()
    session = await lead.open_session()
    with pytest.raises(webraft.ProposalTimeout) as timed_out:
        await session.propose({"pay": 10}, timeout=1e-9)
    assert timed_out.value.may_have_committed and timed_out.value.seq == 1
    retry = lead.resume_session(session.id, timed_out.value.seq)
    index = await retry.propose({"pay": 10})
    await c.converged()
    for node in c.nodes.values():
        assert commands(node).count({"pay": 10}) == 1
    assert await retry.propose({"pay": 10}) > index  # its next number is a new command


async def test_concurrent_proposals_of_one_session_all_apply(make_cluster: Any) -> None:
    c: Cluster = make_cluster().start()
    lead = await c.leader()
    session = await lead.open_session()
    indexes = await asyncio.gather(*(session.propose(i) for i in range(50)))
    assert len(set(indexes)) == 50
    await c.converged()
    assert [cmd for cmd in commands(lead) if isinstance(cmd, int)] == list(range(50))


async def test_session_proposals_apply_exactly_once_through_losses_and_a_leader_change(
        make_cluster: Any) -> None:
    """The proposing follower hears no answers and no entries for a while (so it retries
    every proposal, several times), and the leader is cut off in the middle: callers see
    every proposal succeed once, and every node applied each command exactly once."""
    c: Cluster = make_cluster(message_timeout=0.1, proposal_timeout=0.5).start()
    lead = await c.leader()
    follower = next(n for n in c.nodes.values() if n is not lead)
    session = await follower.open_session()
    dark = {"propose_resp", "append", "commit"}
    c.net.drops.append(lambda src, dst, p: dst == follower.address and p["type"] in dark)
    proposals = [asyncio.ensure_future(session.propose({"n": i}, timeout=30))
                 for i in range(40)]
    await asyncio.sleep(0.4)
    c.isolate(lead.address)  # a new leader, while proposals are still being retried
    await asyncio.sleep(0.4)
    c.heal()
    indexes = await asyncio.gather(*proposals)
    assert len(set(indexes)) == 40
    await c.converged(timeout=10)
    for node in c.nodes.values():
        applied = [cmd["n"] for cmd in commands(node) if isinstance(cmd, dict) and "n" in cmd]
        assert sorted(applied) == list(range(40)), node.address
    final = await c.leader()
    copies = [e for e in final.core.log.entries
              if e.kind == SESSION and isinstance(e.command, dict) and "n" in e.command]
    assert len(copies) > 40, "no proposal was retried: the test proved nothing"


async def test_an_apply_handler_gets_the_logs_own_entry_with_the_command(
        make_cluster: Any) -> None:
    """No copy per applied entry: a session entry's ``command`` is the application's, and
    its ``client`` and ``seq`` say which proposal it is."""
    c: Cluster = make_cluster().start()
    lead = await c.leader()
    seen: list[webraft.Entry] = []

    def apply(entry: webraft.Entry, index: int, cb: Any) -> None:
        seen.append(entry)
        cb()

    lead.listen("apply", apply)
    plain = await lead.propose({"plain": 1})
    session = await lead.open_session()
    in_session = await session.propose({"in": "session"})
    log = {e.index: e for e in lead.core.log.entries}
    assert [(e.index, e.kind, e.command) for e in seen] == [
        (plain, SESSION, {"plain": 1}), (in_session, SESSION, {"in": "session"})]
    assert all(e is log[e.index] for e in seen)
    assert (seen[0].client, seen[1].client, seen[1].seq) == (
        lead.proposals.implicit.id, session.id, 1)  # a session numbers from 1

"""Lazy followers (``CoreConfig.lazy_interval``): new entries go at once to the voters a
commit needs, those furthest ahead; the others get theirs batched, at most one append per
interval, and take a quorum follower's place when it stops answering."""

from __future__ import annotations

from webraft.core.messages import AppendRequest, AppendResponse, ProposeRequest
from webraft.core.raft import RaftCore
from webraft.core.state import ClusterConfig

from .helpers import HEARTBEAT, ack, make_leader, msgs, persist

LAZY = 0.02


def lazy_leader(**kw: object) -> RaftCore:
    """A leader of term 2 whose no-op (index 2) every follower acknowledged, an interval
    ago."""
    leader = make_leader(lazy_interval=LAZY, **kw)
    for peer in leader.progress:
        ack(leader, peer)
    persist(leader)
    leader.tick(leader.now + LAZY)
    return leader


def appended(leader: RaftCore) -> dict[str, list[int]]:
    """Persist the leader's Ready; the entry indexes of the appends to each follower."""
    rd = persist(leader)
    return {peer: [e.index for m in msgs(rd, AppendRequest, to=peer) for e in m.entries]
            for peer in leader.progress}


def test_only_the_quorum_follower_gets_each_entry_at_once_the_other_a_batch() -> None:
    leader = lazy_leader()
    start = leader.now
    got = {"b": [], "c": []}
    for k in range(3):
        leader.tick(start + k * LAZY / 4)
        leader.propose(k, [f"x{k}"])
        for peer, indexes in appended(leader).items():
            got[peer] += indexes
        ack(leader, "b")
    # b (first in the configuration among equals) got each entry as it came; c got the
    # first at once (nothing had gone to it within the interval), then waits.
    assert got == {"b": [3, 4, 5], "c": [3]}
    assert leader.log.commit == 5  # b's acknowledgements committed them all
    assert leader.next_deadline <= start + LAZY  # c's batch is due then
    leader.tick(start + LAZY)
    assert appended(leader) == {"b": [], "c": [4, 5]}  # one append for the rest


def test_a_lazy_follower_takes_over_when_the_quorum_follower_stops_answering() -> None:
    leader = lazy_leader()
    start = leader.now
    leader.propose(1, ["x"])
    assert appended(leader) == {"b": [3], "c": [3]}
    ack(leader, "b")
    ack(leader, "c")
    leader.tick(start + LAZY / 4)
    leader.propose(2, ["y"])
    assert appended(leader) == {"b": [4], "c": []}  # b goes silent from here
    leader.tick(start + LAZY)
    assert appended(leader) == {"b": [], "c": [4]}
    ack(leader, "c")
    assert leader.log.commit == 4  # c's answer commits without b
    leader.tick(start + LAZY * 1.25)
    leader.propose(3, ["z"])
    assert appended(leader)["c"] == [5]  # c is ahead of b now: it gets entries at once
    assert leader.progress["b"].match == 3


def test_a_follower_waiting_for_its_own_proposal_is_not_lazy() -> None:
    leader = lazy_leader()
    leader.propose(1, ["x"])
    appended(leader)
    ack(leader, "b")
    # c forwards a proposal: until it commits, c hears of every entry at once.
    leader.step("c", ProposeRequest(leader.term, 7, ("from c",)))
    assert appended(leader)["c"] == [4]


def test_with_five_voters_two_followers_get_entries_at_once() -> None:
    leader = lazy_leader(voters=("a", "b", "c", "d", "e"))
    leader.propose(1, ["x"])
    assert appended(leader) == {p: [3] for p in "bcde"}  # nothing went within the interval
    for peer in "bcde":
        ack(leader, peer)
    leader.tick(leader.now + LAZY / 2)
    leader.step("d", AppendResponse(leader.term, 3, True))
    leader.propose(2, ["y"])
    assert appended(leader) == {"b": [4], "c": [4], "d": [], "e": []}
    ack(leader, "c")
    assert leader.log.commit == 3  # a quorum is three: a and one follower are not enough
    ack(leader, "b")
    assert leader.log.commit == 4


def c_waiting() -> RaftCore:
    """A lazy leader whose second entry went to b at once and waits to go to c."""
    leader = lazy_leader()
    leader.propose(1, ["x"])
    appended(leader)
    ack(leader, "b")
    leader.tick(leader.now + LAZY / 4)
    leader.propose(2, ["y"])
    assert appended(leader) == {"b": [4], "c": []}
    return leader


def test_lazy_batches_stop_with_leadership() -> None:
    leader = c_waiting()
    assert leader.next_deadline < leader.now + HEARTBEAT  # c's batch is due before a beat
    leader.step("b", AppendRequest(leader.term + 1, 4, 2, 4, ()))  # a newer leader
    assert leader.state == "follower"
    assert leader.next_deadline == leader.election_deadline


def test_a_lazy_follower_removed_from_the_configuration_wakes_nobody() -> None:
    leader = c_waiting()
    assert leader.next_deadline < leader.heartbeat_deadline  # c's batch is due first
    leader.change_config(3, ClusterConfig(("a", "b")))
    persist(leader)
    assert "c" not in leader.progress
    assert leader.next_deadline == min(leader.heartbeat_deadline, leader.quorum_deadline)


def test_a_lazy_follower_sent_its_entries_early_is_no_longer_due() -> None:
    """One that became the quorum's follower (the other went silent) was sent its entries
    at once: its pending batch would only wake the leader for nothing."""
    leader = lazy_leader()
    leader.propose(1, ["x"])
    appended(leader)
    ack(leader, "b")
    ack(leader, "c")
    leader.tick(leader.now + LAZY / 4)
    leader.propose(2, ["y"])
    assert appended(leader) == {"b": [4], "c": []}
    leader.progress["c"].match = 4  # say c got ahead of b (b went silent)
    leader.propose(3, ["z"])
    assert appended(leader) == {"b": [], "c": [4, 5]}
    assert set(leader._lazy) == {"b"}  # b is the lazy one now; c's old due time is gone

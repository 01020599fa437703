"""Leadership transfer (Raft thesis §3.10): catch the target up, TimeoutNow, abort on timeout."""

from __future__ import annotations

from webraft.core.messages import AppendRequest, TimeoutNow, VoteRequest
from webraft.core.raft import CANDIDATE, FOLLOWER, LEADER

from .helpers import ELECTION_TIMEOUT, ack, exchange, make_core, make_leader, msgs, persist


def test_up_to_date_target_gets_timeout_now_at_once() -> None:
    leader = make_leader()
    ack(leader, "b")
    persist(leader)
    assert leader.transfer_leadership("b") == "b"
    assert msgs(persist(leader), TimeoutNow, to="b") == [TimeoutNow(leader.term)]


def test_lagging_target_is_caught_up_first() -> None:
    leader = make_leader()
    leader.transfer_leadership("b")
    assert msgs(persist(leader), TimeoutNow) == []
    ack(leader, "b", 1)  # b lacks the leader's no-op
    rd = persist(leader)
    assert msgs(rd, TimeoutNow) == []
    [append] = msgs(rd, AppendRequest, to="b")
    assert append.entries[-1].index == leader.log.last_index
    ack(leader, "b")
    assert msgs(persist(leader), TimeoutNow, to="b") == [TimeoutNow(leader.term)]


def test_default_target_is_the_most_up_to_date_voter() -> None:
    leader = make_leader()
    ack(leader, "c")
    ack(leader, "b", 1)
    persist(leader)
    assert leader.transfer_leadership() == "c"


def test_proposals_are_refused_while_handing_over() -> None:
    leader = make_leader()
    leader.transfer_leadership("b")
    last = leader.log.last_index
    leader.propose(7, ["x"])
    rd = persist(leader)
    assert leader.log.last_index == last
    assert [(p.id, p.index, p.leader) for p in rd.proposals] == [(7, 0, "b")]


def test_transfer_is_abandoned_after_an_election_timeout() -> None:
    leader = make_leader(check_quorum=False)  # silent peers: no step-down meanwhile
    leader.transfer_leadership("b")
    leader.tick(leader.now + ELECTION_TIMEOUT)
    assert leader.state == LEADER and leader.transferee is None
    leader.propose(1, ["x"])
    assert persist(leader).proposals[0].index > 0


def test_timeout_now_makes_a_follower_campaign_past_leases() -> None:
    b = make_core("b", log=[1], term=1)
    b.step("a", AppendRequest(1, 1, 1, 1, ()))
    persist(b)
    b.step("a", TimeoutNow(1))
    assert b.state == CANDIDATE and b.term == 2
    [request] = msgs(persist(b), VoteRequest, to="c")
    assert request.transfer and not request.pre
    # c heard from the leader a moment ago, so it is in its lease, yet it votes for b.
    c = make_core("c", log=[1], term=1)
    c.step("a", AppendRequest(1, 1, 1, 1, ()))
    persist(c)
    c.step("b", request)
    assert c.term == 2 and c.vote == "b"


def test_timeout_now_from_a_non_leader_is_ignored() -> None:
    b = make_core("b", log=[1], term=1)
    b.step("a", AppendRequest(1, 1, 1, 1, ()))
    persist(b)
    b.step("c", TimeoutNow(1))
    assert b.state == FOLLOWER and b.term == 1


def test_transfer_end_to_end() -> None:
    cores = {n: make_core(n, log=[1], term=1) for n in "abc"}
    a = cores["a"]
    a.tick(a.election_deadline)
    exchange(cores)
    assert a.state == LEADER
    a.propose(1, ["x"])
    exchange(cores)
    assert a.transfer_leadership("c") == "c"
    exchange(cores)
    assert cores["c"].state == LEADER and a.state == FOLLOWER
    assert a.leader == "c" and cores["b"].leader == "c"
    assert [e.command for e in cores["c"].log.entries][-2] == "x"

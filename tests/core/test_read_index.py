"""ReadIndex (Raft thesis §6.4): a read index is handed out only after a quorum confirms."""

from __future__ import annotations

from webraft.core.messages import (
    AppendResponse,
    CommitNotice,
    Heartbeat,
    HeartbeatResponse,
    ReadIndexRequest,
    ReadIndexResponse,
)
from webraft.core.raft import ReadState

from .helpers import ack, make_core, make_leader, msgs, persist


def committed_leader():
    leader = make_leader()
    ack(leader, "b")
    persist(leader)
    assert leader.log.term_at(leader.log.commit) == leader.term
    return leader


def test_a_read_waits_for_a_quorum_round_and_returns_the_commit_index() -> None:
    leader = committed_leader()
    leader.read_index(1)
    rd = persist(leader)
    beats = msgs(rd, Heartbeat)
    assert len(beats) == 2 and {b.ctx for b in beats} == {1}
    assert rd.reads == []
    leader.step("c", HeartbeatResponse(leader.term, ctx=1))
    assert persist(leader).reads == [ReadState(1, leader.log.commit)]


def test_reads_asked_together_share_one_round() -> None:
    leader = committed_leader()
    for req in (1, 2, 3):
        leader.read_index(req)
    rd = persist(leader)
    assert len(msgs(rd, Heartbeat)) == 2  # one round, not three
    leader.step("b", HeartbeatResponse(leader.term, ctx=1))
    assert [r.id for r in persist(leader).reads] == [1, 2, 3]


def test_an_old_heartbeat_answer_does_not_confirm_a_newer_round() -> None:
    leader = committed_leader()
    leader.read_index(1)
    persist(leader)
    leader.step("b", HeartbeatResponse(leader.term, ctx=0))
    assert persist(leader).reads == []


def test_a_new_leader_waits_for_its_first_commit() -> None:
    leader = make_leader()  # its no-op is not committed yet
    leader.read_index(1)
    rd = persist(leader)
    assert not msgs(rd, Heartbeat) and not rd.reads
    ack(leader, "b")  # the no-op commits: now the commit index is known current
    rd = persist(leader)
    assert {b.ctx for b in msgs(rd, Heartbeat)} == {1}
    leader.step("b", HeartbeatResponse(leader.term, ctx=1))
    assert persist(leader).reads == [ReadState(1, leader.log.commit)]


def test_a_leader_that_steps_down_fails_its_reads() -> None:
    leader = committed_leader()
    leader.read_index(1)
    persist(leader)
    leader.step("b", AppendResponse(leader.term + 1, 0, False))  # a newer term exists
    assert persist(leader).reads == [ReadState(1, 0)]


def test_a_follower_asks_the_leader() -> None:
    leader = committed_leader()
    b = make_core("b", log=[1], term=leader.term)
    b.leader = "a"
    b.read_index(5)
    [request] = msgs(persist(b), ReadIndexRequest, to="a")
    leader.step("b", request)
    rd = persist(leader)
    leader.step("c", HeartbeatResponse(leader.term, ctx=1))
    [answer] = msgs(persist(leader), ReadIndexResponse, to="b")
    assert answer.index == leader.log.commit
    b.step("a", answer)
    assert persist(b).reads == [ReadState(5, leader.log.commit, "a")]
    assert rd.reads == []


def test_a_non_leader_refuses_and_a_lone_voter_answers_at_once() -> None:
    b = make_core("b")
    b.step("c", ReadIndexRequest(0, 9))
    assert msgs(persist(b), ReadIndexResponse, to="c") == [ReadIndexResponse(0, 9, 0)]
    b.read_index(1)  # no leader known
    assert persist(b).reads == [ReadState(1, 0)]
    solo = make_core("a", voters=("a",))
    solo.tick(0.0)
    persist(solo)
    persist(solo)  # the no-op is persisted, hence committed
    solo.read_index(1)
    assert persist(solo).reads == [ReadState(1, solo.log.commit)]


# ---------------------------------------------------------------------- lease reads


def leased_leader():
    """A committed leader with lease reads, whose first heartbeat round a majority answered."""
    leader = make_leader(lease_reads=True)
    ack(leader, "b")
    persist(leader)
    leader.tick(leader.heartbeat_deadline)
    [beat] = msgs(persist(leader), Heartbeat, to="b")
    leader.step("b", HeartbeatResponse(leader.term, ctx=beat.ctx))
    persist(leader)
    return leader, beat.ctx


def test_a_lease_answers_at_once_without_a_round() -> None:
    leader, _ = leased_leader()
    leader.read_index(7)
    rd = persist(leader)
    assert rd.reads == [ReadState(7, leader.log.commit)] and not msgs(rd, Heartbeat)
    leader.step("c", ReadIndexRequest(leader.term, 8))  # a follower asking
    assert msgs(persist(leader), ReadIndexResponse) == [
        ReadIndexResponse(leader.term, 8, leader.log.commit)]


def test_without_lease_reads_a_round_is_always_needed() -> None:
    leader = committed_leader()
    leader.tick(leader.heartbeat_deadline)
    [beat] = msgs(persist(leader), Heartbeat, to="b")
    leader.step("b", HeartbeatResponse(leader.term, ctx=beat.ctx))
    leader.read_index(7)
    rd = persist(leader)
    assert rd.reads == [] and msgs(rd, Heartbeat)


def test_a_lease_ends_before_the_followers_stop_honouring_it() -> None:
    leader, _ = leased_leader()
    sent = leader.now
    # Heartbeats go out but nobody answers: the lease runs out with the round that was.
    leader.tick(sent + 0.95 * leader.cfg.quorum_timeout)
    persist(leader)
    leader.read_index(7)
    rd = persist(leader)
    assert rd.reads == [] and msgs(rd, Heartbeat)


def test_leadership_transfer_voids_the_lease() -> None:
    leader, _ = leased_leader()
    ack(leader, "c")
    persist(leader)
    assert leader.transfer_leadership("c") == "c"
    persist(leader)  # TimeoutNow: "c" may win at once, past every follower's lease
    leader.transferee = None  # even after the transfer is given up...
    leader.read_index(7)
    rd = persist(leader)
    assert rd.reads == [] and msgs(rd, Heartbeat)  # ...only a new round can confirm


def test_a_follower_answered_from_the_lease_hears_of_the_commit_it_waits_for() -> None:
    leader, _ = leased_leader()
    leader.propose(1, ["x"])
    persist(leader)
    ack(leader, "b")
    assert not msgs(persist(leader), CommitNotice, to="b")  # b waits for nothing yet
    leader.step("b", ReadIndexRequest(leader.term, 8))
    rd = persist(leader)
    commit = leader.log.commit
    assert msgs(rd, ReadIndexResponse, to="b") == [ReadIndexResponse(leader.term, 8, commit)]
    assert msgs(rd, CommitNotice, to="b") == [CommitNotice(leader.term, commit)]

"""CheckQuorum (thesis §6.2, §9.6): leaders step down when cut off; followers keep a lease."""

from __future__ import annotations

import pytest

from webraft.core.messages import AppendResponse, Heartbeat, HeartbeatResponse, VoteRequest
from webraft.core.raft import FOLLOWER, LEADER, RaftCore

from .helpers import HEARTBEAT, QUORUM, make_core, make_leader, msgs, persist


def run_until(core: RaftCore, end: float) -> None:
    """Tick a leader through every heartbeat up to ``end``, discarding what it sends."""
    t = core.now
    while t < end - 1e-9:
        t = min(t + HEARTBEAT, end)
        core.tick(t)
        persist(core)


def test_leader_that_hears_from_no_majority_steps_down():
    core = make_leader()
    start = core.now
    run_until(core, start + QUORUM - 0.001)
    assert core.state == LEADER
    core.tick(start + QUORUM)
    assert (core.state, core.term, core.leader) == (FOLLOWER, 2, None)


@pytest.mark.parametrize("answer", ["heartbeat", "append"])
def test_leader_that_hears_from_a_majority_stays_for_that_window_only(answer):
    core = make_leader()
    start = core.now
    run_until(core, start + QUORUM / 2)
    if answer == "heartbeat":
        core.step("b", HeartbeatResponse(core.term))
    else:
        core.step("b", AppendResponse(core.term, core.log.last_index, True))
    run_until(core, start + QUORUM)
    assert core.state == LEADER
    run_until(core, start + 2 * QUORUM - 0.001)
    assert core.state == LEADER
    core.tick(start + 2 * QUORUM)  # nobody answered during the second window
    assert core.state == FOLLOWER


def test_learners_do_not_keep_a_leader_in_office():
    core = make_leader(learners=["d", "e"])
    start = core.now
    core.step("d", HeartbeatResponse(core.term))
    core.step("e", HeartbeatResponse(core.term))
    run_until(core, start + QUORUM)
    assert core.state == FOLLOWER


def follower_in_lease(**kw) -> RaftCore:
    """Follower b of leader a (term 2, log [1, 1]) that heard a heartbeat at time 1.0."""
    core = make_core("b", log=[1, 1], term=2, **kw)
    core.tick(1.0)
    core.step("a", Heartbeat(2, 0))
    persist(core)
    return core


@pytest.mark.parametrize("pre", [False, True])
def test_follower_in_lease_ignores_higher_term_vote_requests(pre):
    core = follower_in_lease()
    core.tick(1.0 + QUORUM - 0.001)
    core.step("c", VoteRequest(3, 10, 2, pre=pre))
    assert not core.has_ready()  # no answer at all, no hard state change
    assert (core.term, core.vote, core.leader, core.state) == (2, None, "a", FOLLOWER)


@pytest.mark.parametrize("pre", [False, True])
def test_transfer_request_bypasses_the_lease(pre):
    core = follower_in_lease()
    core.tick(1.0 + QUORUM / 2)
    core.step("c", VoteRequest(3, 10, 2, pre=pre, transfer=True))
    [answer] = msgs(persist(core))
    assert answer.granted and answer.term == 3
    assert (core.term, core.vote) == ((2, None) if pre else (3, "c"))


@pytest.mark.parametrize("pre", [False, True])
def test_follower_answers_once_the_lease_expired(pre):
    core = follower_in_lease()
    core.tick(1.0 + QUORUM + 0.001)  # (1.2 - 1.0 < 0.2 in floating point)
    core.step("c", VoteRequest(3, 10, 2, pre=pre))
    [answer] = msgs(persist(core))
    assert answer.granted
    assert (core.term, core.vote) == ((2, None) if pre else (3, "c"))


def test_without_check_quorum_there_is_no_lease():
    core = follower_in_lease(check_quorum=False)
    core.tick(1.0 + QUORUM / 2)
    core.step("c", VoteRequest(3, 10, 2))
    [answer] = msgs(persist(core))
    assert answer.granted and (core.term, core.vote) == (3, "c")


def test_leader_ignores_higher_term_vote_requests_under_check_quorum():
    core = make_leader()
    core.step("c", VoteRequest(9, 10, 2))
    core.step("c", VoteRequest(9, 10, 2, pre=True))
    assert (core.state, core.term) == (LEADER, 2)
    assert not core.has_ready()

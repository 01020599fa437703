"""Figure 2, "Rules for all servers" and §5.1: terms only move forward; stale messages lose."""

from __future__ import annotations

import pytest

from webraft.core.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    VoteRequest,
    VoteResponse,
)
from webraft.core.raft import CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE, RaftCore
from webraft.core.state import HardState

from .helpers import make_core, make_leader, msgs, observable, persist


def core_in(role: str) -> RaftCore:
    """Node ``a`` of a three-node cluster in ``role`` at term 2, with log [1, 1]."""
    if role == FOLLOWER:
        return make_core(log=[1, 1], term=2, vote="c")
    if role == LEADER:
        return make_leader(log=[1, 1])
    core = make_core(log=[1, 1], term=2 if role == PRE_CANDIDATE else 1)
    core.tick(core.election_deadline)
    if role == CANDIDATE:
        core.step("b", VoteResponse(2, True, pre=True))
    persist(core)
    assert (core.state, core.term) == (role, 2)
    return core


# Every Raft message at term 5; none of them would win anything on its own merits (the vote
# request's log is behind ours), so only the term rule can change the receiver.
HIGHER_TERM = {
    "vote": VoteRequest(5, 0, 0),
    "vote_resp": VoteResponse(5, False),
    "pre_vote_reject": VoteResponse(5, False, pre=True),
    "append": AppendRequest(5, 0, 0, 0),
    "append_resp": AppendResponse(5, 0, False),
    "heartbeat": Heartbeat(5, 0),
    "heartbeat_resp": HeartbeatResponse(5),
}


# (A CheckQuorum leader ignores vote requests: that case is in test_check_quorum.)
@pytest.mark.parametrize(("role", "name"), [
    (role, name) for role in (FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER) for name in HIGHER_TERM
    if (role, name) != (LEADER, "vote")])
def test_higher_term_is_adopted_and_makes_a_follower(role, name):
    core = core_in(role)
    core.step("b", HIGHER_TERM[name])
    assert (core.term, core.state, core.vote) == (5, FOLLOWER, None)
    assert core.leader == ("b" if name in ("append", "heartbeat") else None)
    assert persist(core).hard == HardState(5, None, 0)


def test_leader_without_check_quorum_steps_down_on_higher_vote_request():
    core = make_leader(log=[1, 1], check_quorum=False)
    core.step("b", VoteRequest(5, 0, 0))
    assert (core.term, core.state, core.vote, core.leader) == (5, FOLLOWER, None, None)


def test_granted_pre_vote_response_carries_proposed_term_not_responders():
    # A granted pre-vote echoes the term the pre-candidate *would* use; it says nothing about
    # the responder's term, so it must not move ours.
    core = core_in(FOLLOWER)
    before = observable(core)
    core.step("b", VoteResponse(5, True, pre=True))
    assert observable(core) == before


@pytest.mark.parametrize("kind", [AppendRequest, Heartbeat])
def test_stale_leader_message_is_answered_with_our_term(kind):
    core = make_core(log=[1, 1, 3], term=3)
    core.step("b", Heartbeat(3, 0))  # b leads term 3
    persist(core)
    before = observable(core)
    stale = AppendRequest(2, 2, 1, 2, ()) if kind is AppendRequest else Heartbeat(2, 2)
    core.step("c", stale)
    rd = core.ready()
    assert rd.messages == [("c", AppendResponse(3, 0, False))]
    assert rd.hard is None and rd.entries == []
    assert (core.term, core.state, core.leader, core.log.commit) == (3, FOLLOWER, "b", 0)
    assert observable(core)[:6] == before[:6]


def test_deposed_leader_steps_down_when_told_the_new_term():
    old = core_in(LEADER)  # leads term 2
    follower = make_core("b", log=[1, 1], term=4)
    follower.tick(0.01)
    old.tick(old.heartbeat_deadline)
    for dst, m in persist(old).messages:
        if dst == "b":
            follower.step("a", m)
    [(dst, answer)] = persist(follower).messages
    assert dst == "a" and answer.term == 4 and not answer.success
    old.step("b", answer)
    assert (old.state, old.term, old.leader) == (FOLLOWER, 4, None)


@pytest.mark.parametrize("pre", [False, True])
def test_stale_vote_request_is_never_granted(pre):
    core = make_core(log=[1], term=5)
    before = observable(core)
    core.step("b", VoteRequest(3, 10, 3, pre=pre))
    rd = core.ready()
    assert all(not m.granted for m in msgs(rd, VoteResponse))
    if pre:  # a stale pre-candidate learns our term so it stops campaigning
        assert rd.messages == [("b", VoteResponse(5, False, pre=True))]
    assert (core.term, core.vote) == (5, None)
    assert observable(core)[:-1] == before[:-1]


@pytest.mark.parametrize("pre", [False, True])
def test_stale_vote_grant_is_not_counted(pre):
    # Five voters so that nothing but the stale grants could reach a majority.
    core = make_core(voters="abcde", log=[1], term=4, pre_vote=pre)
    core.tick(core.election_deadline)
    assert core.state == (PRE_CANDIDATE if pre else CANDIDATE)
    persist(core)
    for peer in "bcde":
        core.step(peer, VoteResponse(4, True, pre=pre))  # grants for the previous round
    assert core.state == (PRE_CANDIDATE if pre else CANDIDATE)
    assert core.term == (4 if pre else 5)


def test_stale_responses_do_not_touch_the_leader_progress():
    core = core_in(LEADER)
    before = observable(core)
    core.step("b", AppendResponse(1, 3, True))
    core.step("c", HeartbeatResponse(1))
    core.step("c", AppendResponse(1, 1, False, 0, 0))
    assert observable(core) == before
    assert core.progress["b"].match == 0 and not core.progress["c"].recent_active


@pytest.mark.parametrize("granted", [True, False])
def test_pre_vote_never_changes_the_receivers_term(granted):
    # Our log [1, 1]; the pre-candidate's last term decides whether we grant.
    core = make_core("b", log=[1, 1], term=2)
    core.step("a", VoteRequest(7, 5, 2 if granted else 0, pre=True))
    rd = persist(core)
    assert (core.term, core.vote, core.state) == (2, None, FOLLOWER)
    assert rd.hard is None
    expected = VoteResponse(7, True, pre=True) if granted else VoteResponse(2, False, pre=True)
    assert rd.messages == [("a", expected)]

"""Leader election (§5.2, §5.4.1) with the PreVote phase (thesis §9.6)."""

from __future__ import annotations

import pytest

from webraft.core.events import ElectionStarted, ElectionTimeout, LeaderChanged, RoleChanged
from webraft.core.messages import NOOP, AppendRequest, Entry, Heartbeat, VoteRequest, VoteResponse
from webraft.core.raft import CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE
from webraft.core.state import HardState

from .helpers import (
    ELECTION_TIMEOUT,
    FOLLOWER_TIMEOUT,
    make_core,
    msgs,
    outbox,
    persist,
    stored,
)


def test_follower_times_out_into_pre_vote_without_changing_its_term():
    core = make_core(log=[1], term=1)
    core.tick(FOLLOWER_TIMEOUT - 0.001)
    assert not core.has_ready() and core.state == FOLLOWER
    core.tick(FOLLOWER_TIMEOUT)
    rd = persist(core)
    assert (core.state, core.term, core.vote) == (PRE_CANDIDATE, 1, None)
    assert rd.hard is None
    assert sorted(outbox(rd)) == [("b", VoteRequest(2, 1, 1, pre=True)),
                                  ("c", VoteRequest(2, 1, 1, pre=True))]
    assert ElectionStarted(2, pre=True) in rd.events and RoleChanged(CANDIDATE) in rd.events


def test_pre_vote_majority_starts_the_real_election():
    core = make_core(log=[1], term=1)
    core.tick(FOLLOWER_TIMEOUT)
    persist(core)
    core.step("b", VoteResponse(2, True, pre=True))
    rd = persist(core)
    assert (core.state, core.term, core.vote) == (CANDIDATE, 2, "a")
    # The self-vote is persisted in the same Ready as the requests that depend on it.
    assert rd.hard == HardState(2, "a", 0)
    assert sorted(outbox(rd)) == [("b", VoteRequest(2, 1, 1)), ("c", VoteRequest(2, 1, 1))]


def test_pre_vote_majority_rejection_returns_to_follower_in_the_same_term():
    core = make_core(log=[1], term=1)
    core.tick(FOLLOWER_TIMEOUT)
    persist(core)
    core.step("b", VoteResponse(1, False, pre=True))
    assert core.state == PRE_CANDIDATE  # one refusal out of three is not a majority
    core.step("c", VoteResponse(1, False, pre=True))
    assert (core.state, core.term, core.vote) == (FOLLOWER, 1, None)
    assert persist(core).hard is None


def test_without_pre_vote_timeout_increments_term_and_votes_for_self():
    core = make_core(log=[1], term=1, pre_vote=False)
    core.tick(FOLLOWER_TIMEOUT)
    rd = persist(core)
    assert (core.state, core.term, core.vote) == (CANDIDATE, 2, "a")
    assert rd.hard == HardState(2, "a", 0)
    assert sorted(outbox(rd)) == [("b", VoteRequest(2, 1, 1)), ("c", VoteRequest(2, 1, 1))]


def test_vote_majority_makes_a_leader_that_appends_a_noop_of_its_term():
    core = make_core(log=[1], term=1, pre_vote=False)
    core.tick(FOLLOWER_TIMEOUT)
    persist(core)
    core.step("c", VoteResponse(2, True))
    rd = persist(core)
    assert (core.state, core.leader) == (LEADER, "a")
    noop = Entry(2, 2, NOOP, None)
    assert core.log.entries[-1] == noop and rd.entries == [noop]
    assert sorted(outbox(rd, AppendRequest)) == [
        ("b", AppendRequest(2, 1, 1, 0, (noop,))), ("c", AppendRequest(2, 1, 1, 0, (noop,)))]
    assert RoleChanged(LEADER) in rd.events


def test_single_voter_elects_itself_at_once():
    core = make_core(voters=["a"])
    core.tick(FOLLOWER_TIMEOUT)
    assert (core.state, core.term, core.vote) == (LEADER, 1, "a")
    assert core.log.entries == [Entry(1, 1, NOOP, None)]


@pytest.mark.parametrize("pre", [False, True])
@pytest.mark.parametrize("kind", [AppendRequest, Heartbeat])
def test_campaigner_hearing_a_leader_of_its_term_becomes_follower(pre, kind):
    core = make_core(log=[1], term=1, pre_vote=pre)
    core.tick(FOLLOWER_TIMEOUT)
    term = core.term  # 1 for a pre-candidate, 2 for a candidate
    core.step("b", AppendRequest(term, 1, 1, 0) if kind is AppendRequest else Heartbeat(term, 0))
    assert (core.state, core.term, core.leader) == (FOLLOWER, term, "b")
    assert core.vote == (None if pre else "a")  # a vote cast this term stays cast


@pytest.mark.parametrize("pre", [False, True])
def test_split_vote_starts_a_new_round_after_the_election_timeout(pre):
    core = make_core(voters="abcde", log=[1], term=1, pre_vote=pre)
    core.tick(FOLLOWER_TIMEOUT)
    if pre:
        core.step("b", VoteResponse(2, True, pre=True))
        core.step("c", VoteResponse(2, True, pre=True))
    persist(core)
    core.step("b", VoteResponse(2, True))
    core.step("c", VoteResponse(2, False))
    core.step("d", VoteResponse(2, False))  # e never answers: 2 for, 2 against
    assert (core.state, core.term) == (CANDIDATE, 2)
    persist(core)
    core.tick(FOLLOWER_TIMEOUT + ELECTION_TIMEOUT - 0.001)
    assert not core.has_ready() and core.term == 2
    core.tick(FOLLOWER_TIMEOUT + ELECTION_TIMEOUT)
    rd = persist(core)
    if pre:
        assert (core.state, core.term) == (PRE_CANDIDATE, 2)
        expected = VoteRequest(3, 1, 1, pre=True)
    else:
        assert (core.state, core.term, core.vote) == (CANDIDATE, 3, "a")
        expected = VoteRequest(3, 1, 1)
    assert sorted(outbox(rd)) == [(p, expected) for p in "bcde"]


def test_vote_is_granted_at_most_once_per_term_and_persisted_with_the_grant():
    core = make_core("b", log=[1], term=1)
    core.step("a", VoteRequest(2, 1, 1))
    rd = persist(core)
    assert rd.hard == HardState(2, "a", 0)
    assert rd.messages == [("a", VoteResponse(2, True))]

    core.step("c", VoteRequest(2, 1, 1))
    assert persist(core).messages == [("c", VoteResponse(2, False))]
    core.step("a", VoteRequest(2, 1, 1))  # a retransmission: the same answer
    assert persist(core).messages == [("a", VoteResponse(2, True))]
    assert core.vote == "a"

    # The promise survives a restart from what that Ready persisted.
    restarted = make_core("b", state=stored(log=[1], term=2, vote="a"))
    restarted.step("c", VoteRequest(2, 1, 1))
    assert persist(restarted).messages == [("c", VoteResponse(2, False))]


def test_candidate_has_voted_for_itself_and_refuses_a_rival_of_its_term():
    core = make_core(log=[1], term=1, pre_vote=False)
    core.tick(FOLLOWER_TIMEOUT)
    persist(core)
    core.step("b", VoteRequest(2, 5, 1))
    assert persist(core).messages == [("b", VoteResponse(2, False))]
    assert (core.state, core.vote) == (CANDIDATE, "a")


def test_granting_a_vote_resets_the_election_timer():
    core = make_core("b", log=[1], term=1)
    core.tick(0.5)
    core.step("a", VoteRequest(2, 1, 1))
    persist(core)
    core.tick(0.5 + FOLLOWER_TIMEOUT - 0.001)
    assert core.state == FOLLOWER and not core.has_ready()
    core.tick(0.5 + FOLLOWER_TIMEOUT)
    assert core.state == PRE_CANDIDATE


def test_hearing_from_the_leader_resets_the_election_timer():
    core = make_core("b", log=[1], term=1)
    core.tick(0.9)
    core.step("a", Heartbeat(1, 0))
    persist(core)
    core.tick(0.9 + FOLLOWER_TIMEOUT - 0.001)
    assert core.state == FOLLOWER
    core.tick(0.9 + FOLLOWER_TIMEOUT)
    assert core.state == PRE_CANDIDATE
    assert ElectionTimeout() in persist(core).events


# Voter log: terms [1, 1, 2] (last index 3, last term 2). §5.4.1: the later last term wins;
# with equal last terms the longer log wins.
UP_TO_DATE = [
    pytest.param(1, 3, True, id="higher-last-term-shorter-log"),
    pytest.param(3, 2, True, id="same-last-term-same-length"),
    pytest.param(4, 2, True, id="same-last-term-longer"),
    pytest.param(2, 2, False, id="same-last-term-shorter"),
    pytest.param(10, 1, False, id="lower-last-term-longer-log"),
    pytest.param(0, 0, False, id="empty-log"),
]


@pytest.mark.parametrize("pre", [False, True])
@pytest.mark.parametrize(("last_index", "last_term", "granted"), UP_TO_DATE)
def test_vote_requires_an_up_to_date_log(pre, last_index, last_term, granted):
    core = make_core("b", log=[1, 1, 2], term=2)
    core.step("c", VoteRequest(3, last_index, last_term, pre=pre))
    [answer] = msgs(persist(core), VoteResponse)
    assert (answer.granted, answer.pre) == (granted, pre)
    if pre:
        assert (core.term, core.vote) == (2, None)
    else:
        assert (core.term, core.vote) == (3, "c" if granted else None)


@pytest.mark.parametrize("role", ["learner", "outsider"])
def test_non_voter_never_campaigns(role):
    core = make_core("d", learners=["d"] if role == "learner" else [], log=[1], term=1)
    for now in (FOLLOWER_TIMEOUT, 10.0, 100.0):
        core.tick(now)
        assert (core.state, core.term) == (FOLLOWER, 1)
        assert not core.has_ready()


def test_candidate_ignores_votes_from_non_voters():
    core = make_core(learners=["d"], log=[1], term=1, pre_vote=False)
    core.tick(FOLLOWER_TIMEOUT)
    assert sorted(dst for dst, _ in persist(core).messages) == ["b", "c"]
    core.step("d", VoteResponse(2, True))
    core.step("x", VoteResponse(2, True))
    assert core.state == CANDIDATE


def test_a_lone_voter_campaigns_at_its_first_tick() -> None:
    core = make_core("a", voters=("a",))
    core.tick(0.0)
    persist(core)
    assert core.state == LEADER and core.term == 1


def test_leader_unreachable_hint_brings_the_campaign_forward_and_lifts_the_lease() -> None:
    core = make_core("b", log=[1], term=1)
    core.step("a", AppendRequest(1, 1, 1, 1, ()))
    persist(core)
    assert core.election_deadline > 0.15
    core.leader_unreachable(0.01)
    assert core.leader is None and core.election_deadline == core.now + 0.01
    # Without a leader there is no lease: a peer that got the same news is answered.
    core.step("c", VoteRequest(2, 1, 1, pre=True))
    [answer] = msgs(persist(core), VoteResponse)
    assert answer.granted
    core.tick(0.01)
    assert core.state == PRE_CANDIDATE



def test_a_stall_restarts_a_followers_election_timer_and_its_lease_of_the_leader():
    """After the runtime was blocked, the silence its timers measured says nothing about the
    leader: the follower waits a whole timeout from now (and keeps refusing votes), rather
    than campaigning at the first tick past its old deadline."""
    core = make_core(log=[1], term=1)
    core.step("b", Heartbeat(1, 0))  # b leads term 1
    persist(core)
    stall_end = FOLLOWER_TIMEOUT + 5.0  # blocked long past the old deadline
    core.stalled(stall_end, FOLLOWER_TIMEOUT)  # the clock moves, no overdue timer fires
    core.tick(stall_end)
    assert core.state == FOLLOWER and not any(
        isinstance(m, VoteRequest) for _, m in outbox(persist(core)))
    core.step("c", VoteRequest(2, 1, 1, pre=True))  # still within its lease of b
    assert not any(m.granted for _, m in outbox(persist(core)) if isinstance(m, VoteResponse))
    core.tick(stall_end + FOLLOWER_TIMEOUT)  # and a real silence after it still counts
    assert core.state == PRE_CANDIDATE


def test_without_a_stall_the_overdue_timer_fires_at_once():
    core = make_core(log=[1], term=1)
    core.step("b", Heartbeat(1, 0))
    persist(core)
    core.tick(FOLLOWER_TIMEOUT + 5.0)
    assert core.state == PRE_CANDIDATE


def test_leader_changes_are_reported_once_each_with_their_term():
    """LeaderChanged: a follower that hears a leader, loses it to an election, and a node
    that wins; a leader forgotten and found again between two Ready calls is no news."""
    core = make_core("b", log=[1], term=1)
    core.step("a", Heartbeat(2, 0, 0))
    assert LeaderChanged("a", 2) in persist(core).events
    core.step("a", Heartbeat(2, 0, 0))
    assert not any(isinstance(e, LeaderChanged) for e in persist(core).events)
    core.leader_unreachable(0.0)
    core.step("a", Heartbeat(2, 0, 0))  # found again before the runtime looked
    assert not any(isinstance(e, LeaderChanged) for e in persist(core).events)
    core.tick(core.election_deadline)
    assert LeaderChanged(None, 2) in persist(core).events  # campaigning: no leader
    elected = make_core(log=[1], term=1, pre_vote=False)
    elected.tick(FOLLOWER_TIMEOUT)
    persist(elected)
    elected.step("c", VoteResponse(2, True))
    assert LeaderChanged("a", 2) in persist(elected).events

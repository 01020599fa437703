"""Proposals: the leader appends; followers forward to the leader they know of."""

from __future__ import annotations

from webraft.core.messages import COMMAND, Entry, Heartbeat, ProposeRequest, ProposeResponse
from webraft.core.raft import ProposalResult

from .helpers import FOLLOWER_TIMEOUT, make_core, make_leader, persist


def test_leader_appends_its_own_proposal_and_reports_the_index():
    core = make_leader()
    core.propose(4, ["x", "y"])
    rd = persist(core)
    assert rd.proposals == [ProposalResult(4, 3, 2)]
    assert rd.entries == [Entry(2, 3, COMMAND, "x"), Entry(2, 4, COMMAND, "y")]


def test_follower_forwards_to_its_leader_who_answers_with_the_index():
    leader = make_leader()
    follower = make_core("b", log=[1], term=2)
    follower.step("a", Heartbeat(2, 0))
    persist(follower)

    follower.propose(7, ["x"])
    rd = persist(follower)
    assert rd.messages == [("a", ProposeRequest(2, 7, ("x",)))]
    assert rd.proposals == []  # the outcome comes from the leader

    leader.step("b", rd.messages[0][1])
    rd = persist(leader)
    assert leader.log.entries[-1] == Entry(2, 3, COMMAND, "x")
    [answer] = [m for dst, m in rd.messages if dst == "b" and isinstance(m, ProposeResponse)]
    assert answer == ProposeResponse(2, 7, 3)

    follower.step("a", answer)
    assert persist(follower).proposals == [ProposalResult(7, 3, 2, "", "a")]


def test_non_leader_answers_index_zero_with_its_leader_hint():
    core = make_core("c", log=[1], term=2)
    core.step("a", Heartbeat(2, 0))
    persist(core)
    core.step("b", ProposeRequest(2, 7, ("x",)))
    assert persist(core).messages == [("b", ProposeResponse(2, 7, 0, "a"))]
    assert core.log.last_index == 1


def test_candidate_answers_index_zero_with_no_hint():
    core = make_core("c", log=[1], term=1)
    core.tick(FOLLOWER_TIMEOUT)
    persist(core)
    core.step("b", ProposeRequest(1, 7, ("x",)))
    assert persist(core).messages == [("b", ProposeResponse(1, 7, 0, ""))]


def test_proposal_without_a_known_leader_is_not_appended_anywhere():
    core = make_core("b", log=[1], term=1)
    core.propose(3, ["x"])
    rd = persist(core)
    assert rd.messages == [] and rd.entries == []
    [result] = rd.proposals
    assert (result.id, result.index, result.leader) == (3, 0, "")

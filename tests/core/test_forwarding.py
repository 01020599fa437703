"""Proposals: the leader appends; followers forward to the leader they know of."""

from __future__ import annotations

from webraft.core.messages import COMMAND, Entry, Heartbeat, ProposeRequest, ProposeResponse
from webraft.core.progress import PROBE, Progress
from webraft.core.raft import LEADER, ProposalResult, RaftCore

from .helpers import ELECTION_TIMEOUT, FOLLOWER_TIMEOUT, ack, make_core, make_leader, persist


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


def _answers(core: RaftCore, to: str) -> list[ProposeResponse]:
    return [m for dst, m in persist(core).messages
            if dst == to and isinstance(m, ProposeResponse)]


def test_a_copy_of_a_request_refused_while_handing_over_is_refused_again():
    """The network duplicates and delays: a copy arriving after the transfer was abandoned
    was appended, while the sender, told "not appended", had proposed it again elsewhere
    (the simulator saw one command applied twice)."""
    leader = make_leader()
    ack(leader, "b")
    persist(leader)
    assert leader.transfer_leadership("b") == "b"
    request = ProposeRequest(leader.term, 7, ("x",))
    leader.step("c", request)
    assert [a.index for a in _answers(leader, "c")] == [0]
    leader.tick(leader.now + 10 * ELECTION_TIMEOUT)  # the transfer is abandoned
    assert leader.transferee is None and leader.state == LEADER
    last = leader.log.last_index
    leader.step("c", request)  # the late copy
    assert [a.index for a in _answers(leader, "c")] == [0]
    assert leader.log.last_index == last


def test_a_copy_of_an_appended_request_gets_its_index_even_while_handing_over():
    leader = make_leader()
    request = ProposeRequest(leader.term, 7, ("x",))
    leader.step("c", request)
    [first] = _answers(leader, "c")
    ack(leader, "b")
    persist(leader)
    leader.transfer_leadership("b")
    leader.step("c", request)
    assert [a.index for a in _answers(leader, "c")] == [first.index] != [0]


def test_a_copy_addressed_to_a_term_this_node_may_have_led_gets_no_answer():
    """A refusal means "certainly not appended" and the sender retries elsewhere; a node that
    led the term the copy was meant for (it may have appended the first one, perhaps before a
    restart) cannot say that, so it stays silent and the sender's outcome stays unknown."""
    core = make_leader()
    led = core.term
    core.step("b", Heartbeat(led + 1, 0))  # b leads a newer term
    persist(core)
    core.step("c", ProposeRequest(led, 8, ("x",)))
    assert _answers(core, "c") == []
    core.step("c", ProposeRequest(led + 1, 9, ("y",)))  # meant for b's term: never ours
    assert [a.index for a in _answers(core, "c")] == [0]


def test_an_answer_that_is_no_news_keeps_a_probe_paused():
    """A follower acknowledging only what it has saved so far must not make the leader resend
    the same entries at once, as fast as the network answers (the simulator saw a leader and
    a follower with a slow disk do nothing else); the next heartbeat's answer resends."""
    pr = Progress(5)
    pr.match = 4
    pr.sent(5, 10)
    assert pr.state == PROBE and pr.paused
    assert not pr.update(4)
    assert pr.paused
    assert pr.update(5) and not pr.paused

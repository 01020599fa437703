"""Commitment (§5.3, §5.4.2, Figure 8) and handing committed entries to the application."""

from __future__ import annotations

import pytest

from webraft.core.messages import (
    COMMAND,
    NOOP,
    AppendRequest,
    AppendResponse,
    Entry,
    Heartbeat,
    VoteRequest,
    VoteResponse,
)
from webraft.core.raft import LEADER

from .helpers import (
    FOLLOWER_TIMEOUT,
    ack,
    elect,
    entries,
    make_core,
    make_leader,
    msgs,
    outbox,
    persist,
    stored,
)


def test_figure8_leader_never_commits_an_earlier_term_by_counting_replicas():
    # Figure 8 (c): S1 leads term 4 with [1, 2] and gets the term-2 entry onto S2 and S3.
    s1 = make_leader(voters="abcde", log=[1, 2], term=3, commit=1)
    assert (s1.term, s1.log.last_index) == (4, 3)  # its term-4 no-op sits at index 3
    ack(s1, "b", 2)
    ack(s1, "c", 2)
    rd = persist(s1)
    # Index 2 is on a majority, but it is of term 2: S5 could still overwrite it (Figure 8 d).
    assert s1.log.commit == 1 and rd.committed == []
    # Figure 8 (e): an entry of the current term on a majority commits everything before it.
    ack(s1, "b", 3)
    assert s1.log.commit == 1  # S1 and S2: not yet a majority of five
    ack(s1, "c", 3)
    rd = persist(s1)
    assert s1.log.commit == 3
    assert [e.index for e in rd.committed] == [2, 3]


# (follower log, append prev_index, append entries as terms, leader commit, follower commit)
FOLLOWER_COMMIT = [
    pytest.param([], 0, [1, 1], 5, 2, id="leader-ahead-of-what-was-sent"),
    pytest.param([1, 1, 1, 1], 0, [1], 3, 1, id="only-up-to-the-last-new-entry"),
    pytest.param([1, 1, 1, 1], 2, [], 3, 2, id="empty-append-verifies-up-to-prev"),
    pytest.param([1, 1], 0, [1, 1], 1, 1, id="leader-commit-below-last-new"),
]


@pytest.mark.parametrize(("log", "prev", "new", "leader_commit", "commit"), FOLLOWER_COMMIT)
def test_follower_commit_is_min_of_leader_commit_and_last_new_entry(log, prev, new,
                                                                    leader_commit, commit):
    core = make_core("b", log=log, term=1)
    core.step("a", AppendRequest(1, prev, 1 if prev else 0, leader_commit,
                                 tuple(entries(new, prev + 1))))
    assert core.log.commit == commit


def test_follower_commit_never_moves_back():
    core = make_core("b", log=[1, 1, 1], term=1, commit=3)
    core.step("a", AppendRequest(1, 1, 1, 1))
    core.step("a", Heartbeat(1, 2))
    assert core.log.commit == 3


def test_heartbeat_commit_never_goes_beyond_the_follower_log():
    core = make_core("b", log=[1, 1], term=1)
    core.step("a", Heartbeat(1, 5))
    assert core.log.commit == 2
    assert [e.index for e in persist(core).committed] == [1, 2]


def test_leader_heartbeat_carries_commit_bounded_by_each_followers_match():
    core = make_leader()
    ack(core, "b")  # b matches index 2; c is still probing
    persist(core)
    assert core.log.commit == 2
    core.tick(core.heartbeat_deadline)
    rd = persist(core)
    assert [m.commit for m in msgs(rd, Heartbeat, to="b")] == [2]
    assert [m.commit for m in msgs(rd, Heartbeat, to="c")] == [0]


def test_single_node_commits_only_after_its_own_entries_are_persisted():
    core = make_core(voters=["a"])
    core.tick(FOLLOWER_TIMEOUT)
    assert core.state == LEADER
    rd = core.ready()
    assert rd.entries == [Entry(1, 1, NOOP, None)] and rd.committed == []
    assert core.log.commit == 0
    core.advance(rd)
    assert core.log.commit == 1
    rd = persist(core)
    assert rd.committed == [Entry(1, 1, NOOP, None)] and rd.hard.commit == 1

    core.propose(1, ["x"])
    rd = core.ready()
    assert rd.entries == [Entry(1, 2, COMMAND, "x")] and rd.committed == []
    assert core.log.commit == 1
    core.advance(rd)
    assert persist(core).committed == [Entry(1, 2, COMMAND, "x")]


def test_leader_counts_itself_only_after_advance():
    core = make_core("a", log=[1], term=1)
    elect(core)
    rd = core.ready()  # the no-op at index 2, not yet persisted
    assert [e.index for e in rd.entries] == [2]
    ack(core, "b", 2)  # b was faster than our own disk
    assert core.log.commit == 0
    core.advance(rd)
    assert core.log.commit == 2
    assert [e.index for e in persist(core).committed] == [1, 2]


def test_only_a_leader_with_its_term_and_vote_stored_may_send_before_saving():
    """Raft thesis §10.2.1: a leader's appends may leave while it saves their entries, since
    it counts itself only once they are saved (above). Messages that promise something
    stored (a vote, a new term, an acknowledgement) must wait for the save."""
    core = make_core("a", log=[1], term=1)
    core.tick(core.election_deadline)
    rd = core.ready()  # the pre-vote requests (a pre-candidate stores nothing)
    assert msgs(rd, VoteRequest) and not rd.send_first
    core.advance(rd)
    for dst, req in outbox(rd, VoteRequest):
        core.step(dst, VoteResponse(req.term, True, pre=True))
    rd = core.ready()  # the real campaign: term 2 and our own vote, with the vote requests
    assert rd.hard is not None and rd.hard.term == 2 and msgs(rd, VoteRequest)
    assert not rd.send_first
    core.advance(rd)
    for dst, req in outbox(rd, VoteRequest):
        core.step(dst, VoteResponse(req.term, True))
    assert core.state == LEADER
    rd = core.ready()  # the no-op and its appends: term and vote were stored with the votes
    assert rd.entries and msgs(rd, AppendRequest) and rd.send_first
    core.advance(rd)
    core.propose(1, ["x"])
    rd = core.ready()
    assert rd.entries and rd.send_first
    core.advance(rd)

    follower = make_core("b", log=[1], term=1)
    follower.step("a", AppendRequest(2, 1, 1, 1, (Entry(2, 2, COMMAND, "y"),)))
    rd = follower.ready()  # the new term and the entry, with the acknowledgement
    assert rd.hard is not None and msgs(rd, AppendResponse) and not rd.send_first


def test_committed_entries_are_handed_out_once_in_order_after_being_persisted():
    core = make_core("b", term=1)
    handed = []
    core.step("a", AppendRequest(1, 0, 0, 3, tuple(entries([1, 1, 1]))))
    rd = core.ready()
    # Entries in this Ready are committed but not yet stored: not to be applied yet.
    assert [e.index for e in rd.entries] == [1, 2, 3] and rd.committed == []
    core.advance(rd)
    handed += persist(core).committed
    core.step("a", AppendRequest(1, 3, 1, 3, ()))  # the same commit index again
    core.step("a", Heartbeat(1, 3))
    handed += persist(core).committed
    core.step("a", AppendRequest(1, 3, 1, 5, tuple(entries([1, 1], 4))))
    rd = core.ready()
    assert rd.committed == []
    core.advance(rd)
    handed += persist(core).committed
    handed += persist(core).committed
    assert handed == entries([1, 1, 1, 1, 1])


@pytest.mark.parametrize(("applied", "expected"), [(0, [1, 2, 3, 4]), (2, [3, 4]), (4, [])])
def test_restart_never_hands_out_applied_entries_again(applied, expected):
    state = stored(log=[1, 1, 1, 1, 1], term=1, commit=4)
    core = make_core("b", state=state, applied=applied, settle=False)
    assert [e.index for e in persist(core).committed] == expected
    core.step("a", AppendRequest(1, 5, 1, 5))  # the leader commits index 5
    assert [e.index for e in persist(core).committed] == [5]


def test_restart_with_applied_beyond_the_log_is_refused():
    with pytest.raises(ValueError, match="beyond the stored log"):
        make_core("b", state=stored(log=[1, 1], term=1, commit=2), applied=3)


def test_stale_success_does_not_move_match_back():
    core = make_leader()
    ack(core, "b", 2)
    core.step("b", AppendResponse(core.term, 1, True))  # a late answer to an older append
    assert core.progress["b"].match == 2

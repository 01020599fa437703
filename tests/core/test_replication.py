"""Log replication (§5.3): the consistency check, log repair, pipelining and batching."""

from __future__ import annotations

import dataclasses

import pytest

from webraft.core.messages import (
    NOOP,
    AppendRequest,
    AppendResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    ProposeRequest,
)
from webraft.core.progress import PROBE, REPLICATE
from webraft.core.raft import STALL_BEATS, RaftCore

from .helpers import (
    HEARTBEAT,
    ack,
    elect,
    entries,
    exchange,
    make_core,
    make_leader,
    msgs,
    outbox,
    persist,
    terms,
)


def follower_of_a(log, term=None, **kw) -> RaftCore:
    """Follower b whose leader is a."""
    return make_core("b", log=log, term=term, **kw)


# Follower log [1, 1, 3, 3]; the leader's append at term 4. Expected (hint_index, hint_term):
# the follower points at the last entry that could still match, skipping a whole term.
MISMATCHES = [
    pytest.param(6, 3, 4, 3, id="prev-beyond-the-log"),
    pytest.param(4, 2, 2, 1, id="prev-term-differs-skips-term-3"),
    pytest.param(3, 1, 2, 1, id="prev-term-older"),
]


@pytest.mark.parametrize(("prev_index", "prev_term", "hint_index", "hint_term"), MISMATCHES)
def test_append_with_unmatched_prev_is_rejected_with_a_hint(prev_index, prev_term, hint_index,
                                                           hint_term):
    core = follower_of_a([1, 1, 3, 3])
    core.step("a", AppendRequest(4, prev_index, prev_term, 4, tuple(entries([4], prev_index + 1))))
    rd = persist(core)
    assert rd.messages == [("a", AppendResponse(4, prev_index, False, hint_index, hint_term))]
    assert terms(core) == [1, 1, 3, 3] and rd.entries == []
    assert core.log.commit == 0  # nothing was verified, so nothing commits


def test_append_with_matching_prev_is_accepted():
    core = follower_of_a([1, 1, 3, 3])
    core.step("a", AppendRequest(4, 2, 1, 0, (Entry(4, 3, NOOP),)))
    rd = persist(core)
    assert rd.messages == [("a", AppendResponse(4, 3, True))]
    assert terms(core) == [1, 1, 4]
    assert rd.entries == [Entry(4, 3, NOOP)]  # storage replaces its suffix from index 3


# Figure 7: the leader of term 8 and six possible followers.
FIG7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIG7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


def repair(case: str) -> tuple[RaftCore, RaftCore, int]:
    """Elect the Figure 7 leader in term 8 and exchange with follower ``case`` until done."""
    leader = make_core("a", log=FIG7_LEADER, term=7, commit=3)
    follower = make_core("b", log=FIG7_FOLLOWERS[case], commit=3)
    elect(leader)  # c's votes; c is then cut off
    assert leader.term == 8
    delivered = exchange({"a": leader, "b": follower})
    rejections = [m for src, _, m in delivered
                  if src == "b" and isinstance(m, AppendResponse) and not m.success]
    return leader, follower, len(rejections)


@pytest.mark.parametrize("case", sorted(FIG7_FOLLOWERS))
def test_figure7_leader_repairs_every_follower_log(case):
    leader, follower, _ = repair(case)
    assert terms(leader) == [*FIG7_LEADER, 8]
    assert follower.log.entries == leader.log.entries
    # b's acknowledgement completes a majority for the term-8 no-op; b, which waits for no
    # commit of its own, learns it with the next heartbeat.
    assert leader.log.commit == 11
    leader.tick(leader.heartbeat_deadline)
    exchange({"a": leader, "b": follower})
    assert follower.log.commit == 11


@pytest.mark.parametrize("case", sorted(FIG7_FOLLOWERS))
def test_figure7_repair_backs_off_a_term_at_a_time(case):
    # Without hints, (f) would need 7 rejections (one per index from 10 back to 3).
    _, _, rejections = repair(case)
    assert rejections <= 3


def test_duplicated_or_reordered_append_never_drops_entries():
    core = follower_of_a([], term=1)
    five = tuple(entries([1, 1, 1, 1, 1]))
    core.step("a", AppendRequest(1, 0, 0, 0, five))
    persist(core)
    for old in (AppendRequest(1, 0, 0, 0, five[:2]), AppendRequest(1, 2, 1, 0, five[2:4]),
                AppendRequest(1, 0, 0, 0, five)):
        core.step("a", old)
        rd = persist(core)
        assert core.log.entries == list(five)
        assert rd.entries == []  # nothing to store again
        [answer] = rd.messages
        assert answer == ("a", AppendResponse(1, old.entries[-1].index, True))


def test_conflict_truncates_only_from_the_first_differing_term():
    core = follower_of_a([1, 1, 2, 2, 2], term=2)
    new = tuple(entries([1, 2, 3], 2))  # the same terms at 2..3, term 3 from index 4
    core.step("a", AppendRequest(3, 1, 1, 0, new))
    rd = persist(core)
    assert terms(core) == [1, 1, 2, 3]
    assert rd.entries == [new[-1]]


def replicating_leader(**kw) -> RaftCore:
    """Leader a of term 2 whose followers b and c matched its no-op (index 2)."""
    core = make_leader(**kw)
    ack(core, "b")
    ack(core, "c")
    persist(core)
    assert core.progress["b"].state == core.progress["c"].state == REPLICATE
    return core


def appends_to(rd, peer) -> list[AppendRequest]:
    return [m for m in msgs(rd, AppendRequest, to=peer) if m.entries]


def test_replicate_state_pipelines_up_to_max_inflight():
    core = replicating_leader(max_inflight=3)
    per_ready = []
    for i in range(5):
        core.propose(i, [f"x{i}"])
        per_ready.append([m.entries[0].command for m in appends_to(persist(core), "b")])
    assert per_ready == [["x0"], ["x1"], ["x2"], [], []]  # no waiting, then the window is full
    ack(core, "b", 3)  # x0 at index 3 answered: one slot frees, the backlog leaves as one batch
    [batch] = appends_to(persist(core), "b")
    assert [e.command for e in batch.entries] == ["x3", "x4"]


def test_probe_state_sends_one_append_at_a_time():
    core = make_core("a", log=[1], term=1)
    elect(core)
    [probe] = appends_to(persist(core), "c")
    assert core.progress["c"].state == PROBE
    for i in range(3):
        core.propose(i, [f"x{i}"])
        assert appends_to(persist(core), "c") == []
    # A heartbeat answer shows the follower is there but the probe went unanswered: resend.
    core.step("c", HeartbeatResponse(core.term))
    [again] = appends_to(persist(core), "c")
    assert (again.prev_index, len(again.entries)) == (probe.prev_index, 4)
    core.propose(9, ["y"])
    assert appends_to(persist(core), "c") == []
    ack(core, "c", 5)
    assert core.progress["c"].state == REPLICATE


@pytest.mark.parametrize("lost", [True, False])
def test_lost_last_append_is_resent_after_stall_beats_heartbeats(lost):
    core = replicating_leader()
    core.tick(core.heartbeat_deadline)
    persist(core)
    core.propose(1, ["x"])
    [append] = appends_to(persist(core), "b")
    if not lost:
        ack(core, "b")
        persist(core)
    for _ in range(STALL_BEATS):  # a busy follower gets this long before a resend
        core.tick(core.heartbeat_deadline - HEARTBEAT / 2)
        assert not core.has_ready()
        core.tick(core.heartbeat_deadline)
        assert appends_to(persist(core), "b") == []
    core.tick(core.heartbeat_deadline)
    resent = appends_to(persist(core), "b")
    assert resent == ([append] if lost else [])


def test_proposals_between_two_readies_leave_as_one_append_per_follower():
    core = replicating_leader()
    core.propose(1, ["x"])
    core.propose(2, ["y", "z"])
    core.step("b", ProposeRequest(core.term, 7, ("w",)))
    rd = persist(core)
    for peer in "bc":
        [append] = msgs(rd, AppendRequest, to=peer)
        assert [e.command for e in append.entries] == ["x", "y", "z", "w"]
    assert len(rd.messages) == 3  # the two appends and b's ProposeResponse


def one_at_a_time() -> tuple[RaftCore, dict[str, RaftCore]]:
    leader = make_leader("a", log=[1], term=2)
    cores = {"a": leader, **{n: make_core(n, log=[1], term=2) for n in "bc"}}
    exchange(cores)
    leader.tick(leader.heartbeat_deadline)
    exchange(cores)
    return leader, cores


def test_one_at_a_time_proposals_cost_one_append_and_one_answer_per_follower():
    leader, cores = one_at_a_time()
    for n in range(3):
        leader.propose(n, [n])
        delivered = exchange(cores)
        assert sorted((src, dst, type(m).__name__) for src, dst, m in delivered) == [
            ("a", "b", "AppendRequest"), ("a", "c", "AppendRequest"),
            ("b", "a", "AppendResponse"), ("c", "a", "AppendResponse")]
    # Each append carries the commit index of the ones before.
    assert leader.log.commit == 5
    assert cores["b"].log.commit == cores["c"].log.commit == 4
    leader.tick(leader.heartbeat_deadline)
    exchange(cores)
    assert cores["b"].log.commit == cores["c"].log.commit == 5


def test_a_follower_that_forwarded_a_proposal_hears_of_its_commit_at_once():
    leader, cores = one_at_a_time()
    cores["b"].propose(7, ["x"])
    delivered = exchange(cores)
    assert [m.commit for src, dst, m in delivered if dst == "b" and hasattr(m, "commit")][-1] \
        == leader.log.commit == 3
    assert cores["b"].log.commit == 3
    assert cores["c"].log.commit == 2  # c waits for nothing: the next heartbeat tells it


@pytest.mark.parametrize("lease_reads", [False, True])
def test_a_follower_sent_entries_in_the_last_half_interval_gets_no_heartbeat(lease_reads):
    """Under load every append restarts a follower's election timer and carries the commit
    index, and its answer counts for CheckQuorum: a heartbeat beside it would only double the
    follower's messages. Once its entries are half an interval old, heartbeats resume. Lease
    reads count heartbeat rounds, so with them every round goes to every follower."""
    core = replicating_leader(lease_reads=lease_reads)
    core.tick(core.heartbeat_deadline)
    persist(core)
    core.tick(core.heartbeat_deadline - HEARTBEAT / 4)
    core.propose(1, ["x"])
    assert appends_to(persist(core), "b") and core.progress["c"].sent_at == core.now
    ack(core, "b")
    ack(core, "c")
    persist(core)
    core.tick(core.heartbeat_deadline)  # the entries left a quarter of an interval ago
    beats = {dst for dst, _ in outbox(persist(core), Heartbeat)}
    assert beats == ({"b", "c"} if lease_reads else set())
    core.tick(core.heartbeat_deadline)  # now they are an interval and a quarter old
    assert {dst for dst, _ in outbox(persist(core), Heartbeat)} == {"b", "c"}


def _beats_after_fresh_entries(core: RaftCore, before: float, answer: bool = True) -> set[str]:
    """Propose ``before`` seconds ahead of the next heartbeat (the followers answering, or
    not), then tick it: the followers that got a heartbeat."""
    core.tick(core.heartbeat_deadline - before)
    core.propose(1, ["x"])
    persist(core)
    if answer:
        ack(core, "b")
        ack(core, "c")
        persist(core)
    core.tick(core.heartbeat_deadline)
    return {dst for dst, _ in outbox(persist(core), Heartbeat)}


def test_a_follower_whose_appends_go_unanswered_gets_heartbeats_again():
    """Appends may be lost while heartbeats get through (an append too large for the link,
    say): after an interval without an answer, the follower gets its heartbeats again
    rather than hearing nothing until it is probed."""
    core = replicating_leader()
    core.tick(core.heartbeat_deadline)
    persist(core)
    assert _beats_after_fresh_entries(core, HEARTBEAT / 4, answer=False) == set()
    assert _beats_after_fresh_entries(core, HEARTBEAT / 4, answer=False) == {"b", "c"}


def test_reads_waiting_for_a_round_keep_every_heartbeat():
    """A read's round went out and its answers were lost: the next heartbeats, which a
    follower's fresh entries would otherwise skip, carry the next round that confirms it."""
    core = replicating_leader()
    core.tick(core.heartbeat_deadline)
    persist(core)
    core.read_index(7)
    assert {dst for dst, _ in outbox(persist(core), Heartbeat)} == {"b", "c"}  # lost
    assert _beats_after_fresh_entries(core, HEARTBEAT / 4) == {"b", "c"}


def test_the_skip_window_shrinks_when_the_heartbeat_nears_the_quorum_timeout():
    """With a heartbeat of 0.15 s and a timeout of 0.2 s, half an interval of skipping would
    leave a follower 0.225 s without a word: the window is cut so that it hears from its
    leader within the timeout whatever the settings."""
    core = replicating_leader()
    core.cfg = dataclasses.replace(core.cfg, heartbeat_interval=0.15, quorum_timeout=0.2)
    core.tick(core.heartbeat_deadline)
    persist(core)
    assert _beats_after_fresh_entries(core, 0.05) == {"b", "c"}  # past a window of 0.025
    assert _beats_after_fresh_entries(core, 0.02) == set()

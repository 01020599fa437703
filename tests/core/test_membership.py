"""Membership changes through the log (Raft thesis §4): one voter at a time, learners first."""

from __future__ import annotations

from webraft.core.events import ConfigChanged
from webraft.core.messages import CONFIG, AppendRequest, Entry, VoteRequest
from webraft.core.raft import FOLLOWER, LEADER
from webraft.core.state import ClusterConfig

from .helpers import ack, exchange, make_core, make_leader, msgs, persist


def config_entry(term: int, index: int, voters: tuple[str, ...], learners: tuple[str, ...] = ()):
    return Entry(term, index, CONFIG, ClusterConfig(voters, learners).to_json())


def test_a_new_configuration_takes_effect_when_appended_not_when_committed() -> None:
    leader = make_leader()
    leader.change_config(1, ClusterConfig(("a", "b", "c"), ("d",)))
    assert leader.cluster.learners == ("d",)
    assert "d" in leader.progress  # the learner gets appends right away
    rd = persist(leader)
    assert rd.proposals[0].index == leader.config_index
    assert ConfigChanged(("a", "b", "c"), ("d",)) in rd.events
    assert msgs(rd, AppendRequest, to="d")


def test_one_change_at_a_time() -> None:
    leader = make_leader()
    leader.change_config(1, ClusterConfig(("a", "b", "c"), ("d",)))
    leader.change_config(2, ClusterConfig(("a", "b"), ("d",)))  # previous one not committed
    rd = persist(leader)
    assert [(p.id, p.index > 0) for p in rd.proposals] == [(1, True), (2, False)]
    assert "still in progress" in rd.proposals[1].error


def test_two_voters_at_once_are_refused() -> None:
    leader = make_leader()
    ack(leader, "b")
    persist(leader)
    leader.change_config(1, ClusterConfig(("a", "b", "c", "d", "e")))
    [result] = persist(leader).proposals
    assert result.index == 0 and "one voter" in result.error


def test_a_caught_up_learner_is_promoted() -> None:
    leader = make_leader()
    ack(leader, "b")
    persist(leader)
    leader.change_config(1, ClusterConfig(("a", "b", "c"), ("d",)))
    persist(leader)
    ack(leader, "b")  # commits the configuration
    persist(leader)
    assert leader.log.commit == leader.config_index
    ack(leader, "d")  # the learner has everything
    persist(leader)
    assert leader.cluster == ClusterConfig(("a", "b", "c", "d"))


def test_learners_do_not_count_for_commitment() -> None:
    leader = make_leader(voters=("a", "b", "c"), learners=("d", "e"))
    last = leader.log.last_index
    ack(leader, "d")
    ack(leader, "e")
    persist(leader)
    assert leader.log.commit < last
    ack(leader, "b")
    persist(leader)
    assert leader.log.commit == last


def test_a_follower_adopts_a_configuration_and_drops_it_when_truncated() -> None:
    b = make_core("b", log=[1], term=2)
    b.step("a", AppendRequest(2, 1, 1, 1, (config_entry(2, 2, ("a", "b", "c", "d")),)))
    persist(b)
    assert b.cluster.voters == ("a", "b", "c", "d") and b.config_index == 2
    # A leader of term 3 never had that entry: its append replaces it.
    b.step("c", AppendRequest(3, 1, 1, 1, (Entry(3, 2, 0, "x"),)))
    persist(b)
    assert b.cluster.voters == ("a", "b", "c") and b.config_index == 0


def test_a_removed_leader_steps_down_once_its_removal_commits() -> None:
    leader = make_leader()
    ack(leader, "b")
    persist(leader)
    leader.change_config(1, ClusterConfig(("b", "c")))
    persist(leader)
    assert leader.state == LEADER  # still leads (and replicates) until it commits
    ack(leader, "b")
    persist(leader)
    assert leader.state == LEADER  # the new voters are b and c: both must have it
    ack(leader, "c")
    persist(leader)
    assert leader.state == FOLLOWER
    leader.tick(leader.election_deadline + 10)
    assert not msgs(persist(leader), VoteRequest)  # not a voter: never campaigns


def test_removal_and_addition_end_to_end() -> None:
    cores = {n: make_core(n, log=[1], term=1, voters=("a", "b", "c")) for n in "abcd"}
    a = cores["a"]
    a.tick(a.election_deadline)
    exchange(cores)
    assert a.state == LEADER
    a.change_config(1, ClusterConfig(("a", "b", "c"), ("d",)))
    exchange(cores)
    assert all(c.cluster.voters == ("a", "b", "c", "d") for c in cores.values())
    a.change_config(2, ClusterConfig(("a", "c", "d")))
    exchange(cores)
    assert all(c.cluster == ClusterConfig(("a", "c", "d")) for n, c in cores.items() if n != "b")
    a.propose(3, ["after"])
    exchange(cores)
    assert [e.command for e in cores["d"].log.entries][-1] == "after"
    a.tick(a.heartbeat_deadline)  # d learns the last commit with the next heartbeat
    exchange(cores)
    assert cores["d"].log.commit == a.log.commit

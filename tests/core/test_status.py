"""The core's one window: a frozen Status, and the small queries beside it."""

from __future__ import annotations

import dataclasses

import pytest

from webraft.core.messages import COMMAND, Entry
from webraft.core.progress import PROBE, REPLICATE
from webraft.core.state import ClusterConfig, SnapshotMeta
from webraft.core.status import PeerStatus

from .helpers import ack, make_core, make_leader, persist


def test_a_follower_shows_its_hard_state_log_and_configuration() -> None:
    core = make_core("b", log=[1, 1, 2], term=2, vote="a", commit=2, learners=("d",))
    status = core.status()
    assert (status.id, status.role, status.term, status.vote, status.leader) == (
        "b", "follower", 2, "a", None)
    assert (status.commit_index, status.last_index) == (2, 3)
    assert status.snapshot == SnapshotMeta(0, 0, ClusterConfig(("a", "b", "c"), ("d",)))
    assert (status.config_index, status.config) == (0, ClusterConfig(("a", "b", "c"), ("d",)))
    assert status.transferee is None and dict(status.progress) == {}


def test_a_leader_shows_each_peers_progress_as_of_the_call() -> None:
    leader = make_leader(log=[1, 1])
    before = leader.status()
    assert (before.role, before.leader, before.term, before.last_index) == ("leader", "a", 2, 3)
    assert dict(before.progress) == {"b": PeerStatus(0, 3, PROBE), "c": PeerStatus(0, 3, PROBE)}
    ack(leader, "b")
    persist(leader)
    after = leader.status()
    assert after.progress["b"] == PeerStatus(3, 4, REPLICATE)
    assert after.commit_index == 3
    # The earlier status did not move with the core.
    assert before.progress["b"] == PeerStatus(0, 3, PROBE) and before.commit_index == 0


def test_a_status_cannot_be_changed_by_its_reader() -> None:
    status = make_leader().status()
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.term = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        status.progress["b"] = PeerStatus(9, 9, PROBE)  # type: ignore[index]


def test_a_transfer_and_a_new_configuration_show_in_the_status() -> None:
    leader = make_leader()
    ack(leader, "b")
    ack(leader, "c")
    persist(leader)
    assert leader.transfer_leadership("c") == "c"
    assert leader.status().transferee == "c"
    other = make_leader()
    other.change_config(1, ClusterConfig(("a", "b", "c"), ("d",)))
    status = other.status()
    assert status.config == ClusterConfig(("a", "b", "c"), ("d",))
    assert status.config_index == status.last_index == 3
    assert "d" in status.progress


def test_term_at_and_last_entries_answer_without_the_log() -> None:
    core = make_core("b", log=[1, 2, 2], term=2)
    assert [core.term_at(i) for i in range(5)] == [0, 1, 2, 2, None]
    assert core.last_entries(2) == [Entry(2, 2, COMMAND, "2.2"), Entry(2, 3, COMMAND, "2.3")]
    assert len(core.last_entries(12)) == 3 and core.last_entries(0) == []
    assert (core.role, core.commit_index) == ("follower", 0)

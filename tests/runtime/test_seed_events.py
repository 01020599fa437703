"""The core's typed events become the seed's event names, with the seed's arguments."""

from __future__ import annotations

from webraft.core.events import ConfigChanged, ElectionStarted, ElectionTimeout, RoleChanged
from webraft.runtime.events import seed_events


def test_a_role_change_is_announced_by_its_name_then_as_state_changed() -> None:
    assert seed_events(RoleChanged("leader")) == (("leader",), ("state changed", "leader"))
    assert seed_events(RoleChanged("follower")) == (("follower",),
                                                    ("state changed", "follower"))


def test_elections_and_configurations_keep_the_seed_names_and_arguments() -> None:
    assert seed_events(ElectionTimeout()) == (("heartbeat timeout",),)
    assert seed_events(ElectionStarted(3, pre=True)) == (("start election",),)
    assert seed_events(ConfigChanged(("a", "b"), ("c",))) == (
        ("membership changed", ["a", "b"], ["c"]),)

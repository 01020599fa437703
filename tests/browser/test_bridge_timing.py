"""The page's options as the bridge hands them to :class:`~webraft.NodeConfig`
(``webraft/browser/bridge.py``'s ``_timing``): JavaScript's milliseconds become seconds, an
option left out keeps the tab's default, and a value of the wrong kind is refused by the
page's name for it."""

from __future__ import annotations

from typing import Any

import pytest

from webraft.browser.bridge import _seconds, _timing
from webraft.browser.transport import LAZY_INTERVAL, browser_config


def test_milliseconds_become_seconds_and_missing_options_keep_the_defaults() -> None:
    timing = _timing({"electionTimeout": [300, 600], "heartbeatFrequency": 40,
                      "proposalTimeout": None, "snapshotTail": 10, "lazyInterval": None})
    assert timing == {"election_timeout": (0.3, 0.6), "heartbeat_frequency": 0.04,
                      "snapshot_tail": 10}
    assert browser_config(**timing).lazy_interval == LAZY_INTERVAL


def test_a_lazy_interval_of_zero_turns_lazy_followers_off() -> None:
    """0 is a setting here, not a missing option (unlike a heartbeat of 0)."""
    assert _timing({"lazyInterval": 0}) == {"lazy_interval": 0}
    assert browser_config(**_timing({"lazyInterval": 0})).lazy_interval == 0
    assert browser_config(**_timing({"lazyInterval": 5})).core_config(
        "a", float, float, False).lazy_interval == 0.005


def test_a_whole_number_sent_as_a_float_is_a_count() -> None:
    assert _timing({"snapshotEntries": 500.0}) == {"snapshot_entries": 500}


@pytest.mark.parametrize(("option", "value"), [
    ("lazyInterval", "40"),
    ("lazyInterval", True),
    ("lazyInterval", -1),
    ("heartbeatFrequency", "50"),
    ("memberGrace", float("nan")),
    ("electionTimeout", [150]),
    ("electionTimeout", [150, "300"]),
    ("electionTimeout", [150, None]),
    ("electionTimeout", "150-300"),
    ("snapshotTail", 2.5),
    ("snapshotEntries", "1000"),
])
def test_a_value_of_the_wrong_kind_is_refused_by_the_pages_name(option: str,
                                                                value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        _timing({option: value})


def test_the_start_up_options_in_milliseconds_are_checked_the_same_way() -> None:
    assert _seconds(None, "connectTimeout") is None
    assert _seconds(2500, "connectTimeout") == 2.5
    with pytest.raises(ValueError, match="hiddenElectionDelay"):
        _seconds(-1, "hiddenElectionDelay")

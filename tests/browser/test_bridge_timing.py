"""The page's options as the bridge hands them to :class:`~webraft.NodeConfig`
(``webraft/browser/bridge.py``'s ``_timing``): JavaScript's milliseconds become seconds, and
an option left out keeps the tab's default."""

from __future__ import annotations

from webraft.browser.bridge import _timing
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

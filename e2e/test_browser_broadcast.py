"""Three tabs of one browser talk over BroadcastChannel: past the relay while it runs, and on
their own once it is stopped; a paused tab drops the channel's traffic as it drops the
relay's. The tabs share one context (one browser) and have a relay of their own, which the
test stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser_support import (
    SLOTS,
    Relay,
    Tab,
    new_context,
    open_tab,
    unique_room,
    wait_applied,
    wait_for,
    wait_leader,
)


@pytest.fixture(scope="module")
def room(browser: Any, start_relay: Callable[..., Relay]) -> Iterator[tuple[Relay, list[Tab]]]:
    relay = start_relay()
    context = new_context(browser)
    name = unique_room("broadcast")
    tabs = [open_tab(context, relay.url, name, name=f"{name}#{i}", members=SLOTS, wait=False)
            for i in range(3)]
    for tab in tabs:
        tab.wait_booted()
        tab.name = f"{name}/{tab.address}"
    yield relay, tabs
    for tab in tabs:
        tab.close()
    context.close()


def leader_of(tabs: list[Tab]) -> Tab:
    address, _ = wait_leader(tabs)
    return next(t for t in tabs if t.address == address)


def routed(relay: Relay) -> int:
    return int(relay.stats()["messages_routed"])


def test_tabs_of_one_browser_link_and_commit_past_the_relay(
        room: tuple[Relay, list[Tab]]) -> None:
    relay, tabs = room
    wait_for(lambda: all(len(t.status()["linked"]) == 2 for t in tabs),
             what="every tab linked to the two others")
    for tab in tabs:
        assert tab.status()["linked"] == sorted(set(SLOTS) - {tab.address})
    leader = leader_of(tabs)
    index = leader.propose({"op": "put", "key": "warm", "value": 0})
    wait_applied(tabs, index)
    before = routed(relay)
    for k in range(20):
        index = leader.propose({"op": "put", "key": "linked", "value": k})
    wait_applied(tabs, index)
    assert routed(relay) == before  # not one Raft message through the relay


def test_the_room_keeps_committing_with_the_relay_stopped(
        room: tuple[Relay, list[Tab]]) -> None:
    relay, tabs = room
    leader = leader_of(tabs)
    term = leader.status()["term"]
    relay.stop()
    wait_for(lambda: not any(t.status()["connected"] for t in tabs),
             what="every tab to lose the relay")
    for k in range(20):
        index = leader.propose({"op": "put", "key": "alone", "value": k})
    wait_applied(tabs, index)
    assert all(t.kv()["alone"] == 19 for t in tabs)
    # Still the same leader and term: the channel carried the heartbeats as well.
    assert leader_of(tabs) is leader and leader.status()["term"] == term


def test_a_paused_tab_drops_channel_traffic(room: tuple[Relay, list[Tab]]) -> None:
    _, tabs = room
    leader = leader_of(tabs)
    paused = next(t for t in tabs if t is not leader)
    others = [t for t in tabs if t is not paused]
    applied = paused.status()["lastApplied"]
    paused.eval("webraft.setPaused(true)")
    try:
        for k in range(10):
            index = leader.propose({"op": "put", "key": "paused", "value": k})
        wait_applied(others, index)  # the leader and the other follower are a majority
        assert paused.status()["lastApplied"] == applied  # it heard none of it
    finally:
        paused.eval("webraft.setPaused(false)")
    wait_applied(tabs, index)  # back: it catches up over the channel
    assert paused.kv()["paused"] == 9
    assert all(not t.page_errors for t in tabs), [t.page_errors for t in tabs]


def test_broadcast_false_sends_everything_through_the_relay(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    """connect({broadcast: false}) (the demo's ?broadcast=0): tabs of one browser never link."""
    relay = start_relay()
    context = new_context(browser)
    name = unique_room("no-broadcast")
    tabs = [open_tab(context, relay.url, name, name=f"{name}#{i}", members=SLOTS[:2],
                     query="&broadcast=0") for i in range(2)]
    try:
        leader = leader_of(tabs)
        before = routed(relay)
        index = leader.propose({"op": "put", "key": "relayed", "value": 1})
        wait_applied(tabs, index)
        assert routed(relay) > before
        assert all(t.status()["linked"] == [] for t in tabs)
    finally:
        for tab in tabs:
            tab.close()
        context.close()

"""Destructive: a fourth tab finds the room full, the leader's tab closes, and that fourth tab
later takes the free slot over. The tabs share one browser context (one localStorage), so the
tab that takes a closed member's slot finds that member's Raft state and demo store.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import (
    SLOTS,
    Tab,
    open_tab,
    wait_applied,
    wait_for,
    wait_leader,
)

MEMBERS = list(SLOTS)


@pytest.fixture(scope="module")
def cluster(make_cluster: Any) -> Any:
    cluster = make_cluster()
    cluster.closed = []  # (address, lastApplied) of the tabs closed so far
    return cluster


@pytest.fixture(scope="module")
def spare(cluster: Any) -> Tab:
    """A fourth tab in the full room (same context as the members)."""
    wait_leader(cluster.tabs)
    tab = open_tab(cluster.contexts[0], cluster.relay.url, cluster.room,
                   name=f"{cluster.room}#spare", members=SLOTS, wait=False)
    tab.wait_error()
    return tab


def close_tab(cluster: Any, tab: Tab) -> None:
    cluster.closed.append((tab.address, tab.status()["lastApplied"]))
    cluster.tabs.remove(tab)
    tab.close()


def test_fourth_tab_in_a_full_room_shows_room_full(cluster: Any, spare: Tab) -> None:
    text = spare.wait_error()
    assert "RoomFull" in text, text
    assert "is full" in text and all(m in text for m in MEMBERS), text
    assert spare.page.inner_text("#status") == "failed to start"
    assert spare.eval("window.webraft === undefined")
    # The members are undisturbed.
    wait_leader(cluster.tabs)
    assert sorted(t.address for t in cluster.tabs) == MEMBERS


def test_closing_the_leader_tab_elects_a_new_leader_and_loses_nothing(cluster: Any) -> None:
    leader_address, old_term = wait_leader(cluster.tabs)
    leader = next(t for t in cluster.tabs if t.address == leader_address)
    follower = next(t for t in cluster.tabs if t is not leader)
    indices = [follower.propose({"op": "put", "key": f"k{k}", "value": k}) for k in range(5)]
    wait_applied(cluster.tabs, max(indices))
    log = leader.raft_log()
    committed = [e for e in log["entries"] if e[0] <= log["commit"]]
    assert max(indices) <= log["commit"]
    close_tab(cluster, leader)
    new_address, new_term = wait_leader(cluster.tabs)
    assert new_address != leader_address and new_term > old_term
    # Every entry the old leader had committed is in the new leader's log, unchanged.
    new_leader = next(t for t in cluster.tabs if t.address == new_address)
    new_log = {e[0]: e for e in new_leader.raft_log()["entries"]}
    assert [new_log.get(e[0]) for e in committed] == committed
    # And the two remaining tabs commit new proposals, from either of them.
    more = [t.propose({"op": "put", "key": f"after-{t.address}", "value": True})
            for t in cluster.tabs]
    wait_applied(cluster.tabs, max(more))
    stores = [t.kv() for t in cluster.tabs]
    assert stores[0] == stores[1]
    assert all(stores[0][f"k{k}"] == k for k in range(5))


def test_a_new_tab_takes_over_a_free_slot_and_catches_up(cluster: Any, spare: Tab) -> None:
    if not cluster.closed:  # run alone: free a slot first
        wait_leader(cluster.tabs)
        close_tab(cluster, cluster.tabs[-1])
    address, applied_before = cluster.closed[-1]
    wait_leader(cluster.tabs)
    index = cluster.tabs[0].propose({"op": "put", "key": "while-gone", "value": address})
    # Reloading the spare tab retries the claim: it gets the free slot and that member's
    # storage (same context), restores the demo store and applies only what it missed.
    spare.reload()
    spare.wait_booted()
    assert spare.address == address
    cluster.tabs.append(spare)
    wait_leader(cluster.tabs)
    wait_applied([spare], index)
    writes = spare.eval("window.__demoWrites")
    assert writes and min(writes) > applied_before, (writes, applied_before)
    # It is a full member again: its own proposal commits everywhere.
    last = spare.propose({"op": "put", "key": "back", "value": address})
    wait_applied(cluster.tabs, last)
    stores = [t.kv() for t in cluster.tabs]
    assert stores[0] == stores[1] == stores[2]
    assert stores[0]["while-gone"] == stores[0]["back"] == address
    wait_for(lambda: spare.page.inner_text("#address").endswith(f"/{address}"),
             what="the page to show its address")

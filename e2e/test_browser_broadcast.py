"""Three tabs of one browser talk past the relay, over MessagePorts they trade through the
port exchange (``browser/webraft-ports.js``, a SharedWorker), or over BroadcastChannel
without it: while the relay runs, and on their own once it is stopped; a paused tab drops
this traffic as it drops the relay's. The tabs share one context (one browser) and have a
relay of their own, which the test stops. The exchange itself is tested in a blank page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browser_support import (
    SLOTS,
    Relay,
    Tab,
    blank_page,
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


#: Listens on the pair channel of this tab's node and ``peer`` (a channel of the same name in
#: the same tab hears the node's posts and the peer's) and counts the data envelopes on it.
OVERHEAR = """([room, me, peer]) => {
  const name = `webraft/${room}/${[me, peer].sort().join("/")}`;
  const channel = new BroadcastChannel(name);
  window.overheard = 0;
  channel.onmessage = (e) => {
    if (String(e.data).startsWith("webraft2\\ndata\\n")) window.overheard += 1;
  };
  window.stopOverhearing = () => channel.close();
}"""


def test_tabs_of_one_browser_trade_ports_and_commit_past_the_relay(
        room: tuple[Relay, list[Tab]]) -> None:
    relay, tabs = room
    wait_for(lambda: all(len(t.status()["ported"]) == 2 for t in tabs),
             what="every tab linked to the two others by a port")
    for tab in tabs:
        others = sorted(set(SLOTS) - {tab.address})
        assert tab.status()["linked"] == others and tab.status()["ported"] == others
    leader = leader_of(tabs)
    index = leader.propose({"op": "put", "key": "warm", "value": 0})
    wait_applied(tabs, index)
    follower = next(t for t in tabs if t is not leader)
    leader.eval(OVERHEAR, [leader.status()["room"], leader.address, follower.address])
    before = routed(relay)
    for k in range(20):
        index = leader.propose({"op": "put", "key": "linked", "value": k})
    wait_applied(tabs, index)
    assert routed(relay) == before  # not one Raft message through the relay
    # Nor on their BroadcastChannel: the ports carried the appends and the answers.
    assert leader.eval("window.overheard") == 0
    leader.eval("window.stopOverhearing()")


def test_a_tab_gone_offline_and_back_trades_its_ports_again(
        room: tuple[Relay, list[Tab]]) -> None:
    """Offline, a tab leaves the relay, so the others unlink it and close their ports with
    it (saying bye on them); back, it is linked and trades ports again, and commits reach
    it."""
    _, tabs = room
    leader = leader_of(tabs)
    away = next(t for t in tabs if t is not leader)
    others = [t for t in tabs if t is not away]
    away.eval("webraft.setOnline(false)")
    try:
        wait_for(lambda: all(away.address not in t.status()["ported"] for t in others),
                 what="the others to close their ports with the tab gone offline")
        # Each said bye on its port, so the tab closed its ends too: none is left posting
        # into a port nobody listens on.
        wait_for(lambda: away.status()["ported"] == [],
                 what="the tab gone offline to close its ends of the ports")
        index = leader.propose({"op": "put", "key": "away", "value": 1})
        wait_applied(others, index)
    finally:
        away.eval("webraft.setOnline(true)")
    wait_for(lambda: all(len(t.status()["ported"]) == 2 for t in tabs),
             what="every tab linked to the two others by a port again")
    index = leader.propose({"op": "put", "key": "back", "value": 1})
    wait_applied(tabs, index)
    assert away.kv()["away"] == 1 and away.kv()["back"] == 1
    assert all(not t.page_errors for t in tabs), [t.page_errors for t in tabs]


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


@contextlib.contextmanager
def two_tabs(browser: Any, relay: Relay, query: str) -> Iterator[tuple[str, list[Tab]]]:
    """Two demo tabs of one browser with ``query``, in a room of their own: its name, them."""
    context = new_context(browser)
    name = unique_room("two")
    try:
        yield name, [open_tab(context, relay.url, name, name=f"{name}#{i}", members=SLOTS[:2],
                              query=query) for i in range(2)]
    finally:
        context.close()


def test_broadcast_false_sends_everything_through_the_relay(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    """connect({broadcast: false}) (the demo's ?broadcast=0): tabs of one browser never link."""
    relay = start_relay()
    with two_tabs(browser, relay, "&broadcast=0") as (_, tabs):
        leader = leader_of(tabs)
        before = routed(relay)
        index = leader.propose({"op": "put", "key": "relayed", "value": 1})
        wait_applied(tabs, index)
        assert routed(relay) > before
        assert all(t.status()["linked"] == [] for t in tabs)


def test_without_the_port_exchange_tabs_talk_over_their_broadcastchannel(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    """connect({portsURL: false}) (the demo's ?ports=0): linked, no port, and the Raft
    messages go on the pair's BroadcastChannel, past the relay."""
    relay = start_relay()
    with two_tabs(browser, relay, "&ports=0") as (name, tabs):
        wait_for(lambda: all(len(t.status()["linked"]) == 1 for t in tabs),
                 what="both tabs linked")
        leader = leader_of(tabs)
        follower = next(t for t in tabs if t is not leader)
        leader.eval(OVERHEAR, [name, leader.address, follower.address])
        before = routed(relay)
        index = leader.propose({"op": "put", "key": "channel", "value": 1})
        wait_applied(tabs, index)
        assert routed(relay) == before
        assert leader.eval("window.overheard") > 0
        assert all(t.status()["ported"] == [] for t in tabs)


#: Two connections of one page to the port exchange, as two tabs' would be, and what the
#: second one is offered.
EXCHANGE = """async (url) => {
  const open = () => new SharedWorker(url, { name: "webraft-ports" });
  const a = open(), b = open();
  const got = [];
  b.port.onmessage = (e) => {
    got.push({ ...e.data, ports: e.ports.length });
    for (const port of e.ports) port.postMessage(`through ${e.data.fromInstance}`);
  };
  const answers = [];
  const offer = (to, instance, fromInstance) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => answers.push(e.data);
    a.port.postMessage({ op: "offer", room: "r", to, instance, from: "a", fromInstance },
                       [channel.port2]);
  };
  const settle = async (n) => {
    for (let i = 0; i < 500 && (got.length < n || answers.length < n); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  // Garbage first: none of it may stop the worker.
  for (const junk of [null, 42, "offer", { op: "offer" }, { op: "register", room: "r" },
                      { op: "register", room: "r", address: "x".repeat(300), instance: "i" },
                      { op: "offer", room: "r", to: "b", instance: "i1", from: "a" }]) {
    a.port.postMessage(junk);
  }
  // An offer before b registers waits for it; one for another instance of b does not reach it.
  offer("b", "i1", "first");
  b.port.postMessage({ op: "register", room: "r", address: "b", instance: "i1" });
  offer("b", "old", "stale");
  offer("b", "i1", "second");
  await settle(2);
  // Unregistered: an offer waits again, until b (a new instance) registers.
  b.port.postMessage({ op: "unregister", room: "r", address: "b", instance: "i1" });
  offer("b", "i2", "third");
  b.port.postMessage({ op: "register", room: "r", address: "b", instance: "i2" });
  await settle(3);
  return { got, answers };
}"""


def test_the_port_exchange_hands_each_port_to_the_instance_named(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    relay = start_relay()
    context = new_context(browser)
    try:
        page = blank_page(context, relay.url)
        result = page.evaluate(EXCHANGE, f"{relay.url}/webraft/webraft-ports.js")
    finally:
        context.close()
    offers = [(o["to"], o["instance"], o["from"], o["fromInstance"], o["ports"])
              for o in result["got"]]
    assert offers == [("b", "i1", "a", "first", 1), ("b", "i1", "a", "second", 1),
                      ("b", "i2", "a", "third", 1)]
    assert sorted(result["answers"]) == ["through first", "through second", "through third"]

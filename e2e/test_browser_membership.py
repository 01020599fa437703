"""Tabs come and go (automatic membership), logs stay bounded (snapshots), and a CPython
member joins a browser cluster. One room for the whole module, tabs reused across tests (each
Pyodide tab costs seconds of CPU); every tab has its own context (its own localStorage, like
another browser), except where a test says otherwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    ROOT,
    Tab,
    blank_page,
    new_context,
    open_tab,
    summary,
    unique_room,
    wait_applied,
    wait_for,
    wait_leader,
)

GRACE_MS = 15_000  # longer than a reload (Pyodide boots in seconds), short enough to wait for
#: Demo parameters: a short grace period and frequent snapshots, so both are seen quickly.
QUERY = f"&memberGrace={GRACE_MS}&snapshotEntries=20&snapshotTail=5"


class Room:
    def __init__(self, browser: Any, relay: Any) -> None:
        self.browser, self.relay = browser, relay
        self.room = unique_room("membership")
        self.tabs: list[Tab] = []
        self.contexts: list[Any] = []

    def open(self) -> Tab:
        context = new_context(self.browser)
        tab = open_tab(context, self.relay.url, self.room, name=f"{self.room}#{len(self.tabs)}",
                       query=QUERY)
        self.contexts.append(context)
        self.tabs.append(tab)
        return tab

    def close(self, tab: Tab, graceful: bool = False) -> None:
        index = self.tabs.index(tab)
        tab.close(graceful)
        self.contexts.pop(index).close()
        self.tabs.pop(index)

    def leader(self) -> Tab:
        address, _ = wait_leader(self.tabs)
        return next(t for t in self.tabs if t.address == address)

    def config(self, voters: set[str], learners: Collection[str] = frozenset()) -> Tab:
        """Wait until the leader's configuration is that, and committed."""
        def check() -> Tab | None:
            leader = self.leader()
            s = leader.status()
            done = (set(s["members"]) == voters and set(s["learners"]) == set(learners))
            return leader if done else None

        return wait_for(check, 60, f"voters {sorted(voters)} learners {sorted(learners)}",
                        describe=lambda: [t.status()["members"] for t in self.tabs])


@pytest.fixture(scope="module")
def room(browser: Any, relay: Any) -> Any:
    r = Room(browser, relay)
    yield r
    for tab in list(r.tabs):
        r.close(tab)


def test_tabs_opened_one_by_one_up_to_five_then_two_closed(room: Room) -> None:
    first = room.open()
    assert room.config({first.address}).address == first.address  # it founded the cluster
    second = room.open()
    room.config({first.address}, {second.address})  # two voters would be worse than one
    for _ in range(3):
        room.open()
    addresses = {t.address for t in room.tabs}
    assert len(addresses) == 5
    leader = room.config(addresses)
    index = room.tabs[-1].propose({"op": "put", "key": "five", "value": 5})
    wait_applied(room.tabs, index)
    # Close two, the leader among them: the others elect, remove both after the grace
    # period, and keep committing.
    gone = [leader, next(t for t in room.tabs if t is not leader)]
    for tab in gone:
        room.close(tab)
    leader = room.config({t.address for t in room.tabs})
    index = leader.propose({"op": "put", "key": "three", "value": 3})
    wait_applied(room.tabs, index)
    stores = [t.kv() for t in room.tabs]
    assert all(s == stores[0] for s in stores) and stores[0]["five"] == 5


def test_a_reloaded_tab_keeps_its_seat(room: Room) -> None:
    voters = {t.address for t in room.tabs}
    leader = room.config(voters)
    tab = next(t for t in room.tabs if t is not leader)
    address = tab.address
    changes = leader.raft_log()["last"]
    tab.reload()
    tab.wait_booted()
    assert tab.address == address  # sessionStorage: the same node
    leader = room.config(voters)
    index = leader.propose({"op": "put", "key": "after-reload", "value": True})
    wait_applied(room.tabs, index)
    log = leader.raft_log()
    configs = [e for e in log["entries"] if e[2] == 2 and e[0] > changes]
    assert not configs, f"the reload changed the configuration: {configs}"


def test_a_tab_behind_the_compaction_catches_up_through_a_snapshot(room: Room) -> None:
    leader = room.leader()
    tab = next(t for t in room.tabs if t is not leader)
    refreshes = tab.eval("demo.refreshes")
    tab.eval("webraft.setOnline(false)")
    wait_for(lambda: not tab.status()["connected"], what="the tab to disconnect")
    for k in range(60):  # three snapshots' worth, far more than the tail
        leader.propose({"op": "put", "key": f"away{k % 7}", "value": k})
    assert leader.status()["snapshotIndex"] > tab.status()["lastApplied"] + 5
    tab.eval("webraft.setOnline(true)")
    index = leader.propose({"op": "put", "key": "back", "value": 1})
    wait_applied(room.tabs, index)
    assert tab.eval("demo.refreshes") > refreshes  # refresh fired: it loaded a snapshot
    # The cluster view marks this tab's snapshot at the start of its log bars.
    snapshot = tab.status()["snapshotIndex"]
    wait_for(lambda: tab.eval(f"""() => document.querySelector(
               '#logs .logrow[data-id="{tab.address}"] .bar.snap')?.textContent ?? null""")
             == f"▨ ≤{tab.status()['snapshotIndex']}",
             what=f"the view to mark the snapshot (index {snapshot}) in its own log row")
    assert tab.kv() == leader.kv()
    assert tab.kv()["away6"] == 55


def test_a_thousand_proposals_leave_local_storage_bounded(room: Room) -> None:
    leader = room.leader()
    before = [t.status()["storageChars"] for t in room.tabs]
    # Batches of 200 until 1,000 committed (a proposal caught by an election is retried).
    last = leader.eval("""async () => {
        let done = 0, last = 0, k = 0;
        while (done < 1000) {
            const batch = [];
            for (let i = 0; i < 200; i++) {
                batch.push(webraft.propose({op: "put", key: `b${k % 50}`, value: k++}));
            }
            for (const r of await Promise.allSettled(batch)) {
                if (r.status === "fulfilled") { done++; last = Math.max(last, r.value); }
            }
        }
        return last;
    }""", timeout=180)
    wait_applied(room.tabs, last)
    after = [t.status()["storageChars"] for t in room.tabs]
    # 1,000 entries of ~40 characters would be ~70,000 characters with their keys; with a
    # snapshot every 20 entries each node keeps at most ~25 entries and one small snapshot.
    assert all(a < 20_000 for a in after), (before, after)


def start_member(room: Room, tmp_path: Path, *extra: str) -> tuple[Any, str]:
    """Start ``webraft-node --join --auto-membership`` as ``py`` in the room; returns the
    process and its control URL."""
    ws = room.relay.url.replace("http://", "ws://") + "/ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "webraft.member", "--relay", ws, "--room", room.room, *extra,
         "--data", str(tmp_path / "py"), "--address", "py", "--join", "--auto-membership",
         "--grace", str(GRACE_MS / 1000), "--snapshot-entries", "20"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "webraft node py control on http://..."
    if "control on" not in line:
        proc.kill()
        raise AssertionError((line, proc.communicate(timeout=30)[1]))
    return proc, line.rsplit(" ", 1)[1].strip()


def test_a_cpython_member_joins_and_leaves_the_browser_cluster(room: Room,
                                                               tmp_path: Path) -> None:
    """It also listens for direct links, so it offers them to every tab: tabs cannot dial,
    and must drop the offers without an error."""
    leader = room.leader()
    voters = {t.address for t in room.tabs}
    last_error = "() => document.getElementById('last-error').textContent"
    errors_before = [t.eval(last_error) for t in room.tabs]
    proc, control = start_member(room, tmp_path, "--listen", "127.0.0.1:0")
    try:
        assert len(voters) == 3
        room.config(voters, {"py"})  # a fourth voter would not add fault tolerance
        from webraft.member.control import key_path, request

        def put() -> bool:
            status, _ = request(control, "PUT", key_path("from-python"), "hello", timeout=10)
            return status == 200

        wait_for(put, 30, "a put through the CPython member")
        wait_for(lambda: all(t.kv().get("from-python") == "hello" for t in room.tabs), 30,
                 "every tab applied the CPython member's write")
        status, body = request(control, "GET", "/kv", timeout=10)
        assert status == 200 and body["data"] == leader.kv()
        status, body = request(control, "GET", "/status", timeout=10)
        assert status == 200 and body["listen"].startswith("127.0.0.1:")
        assert not any(link["up"] for link in body["links"].values())  # tabs cannot link
        for tab, before in zip(room.tabs, errors_before, strict=True):
            assert "link" not in tab.status()["received"]
            assert tab.eval(last_error) == before  # no error event in the tab
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    room.config(voters)  # removed after the grace period
    index = room.leader().propose({"op": "put", "key": "python-gone", "value": True})
    wait_applied(room.tabs, index)
    assert json.dumps(room.leader().kv()["from-python"]) == '"hello"'


def test_tabs_found_the_cluster_of_a_room_a_joining_cpython_member_entered_first(
        browser: Any, relay: Any, tmp_path: Path) -> None:
    """Issue 12: ``--join`` never founds, so with the old rule (found only in an empty room)
    nobody did. The first tab's founding probe finds the member holding no state and
    founds; the second tab finds the first a founder and waits to be added."""
    room = Room(browser, relay)
    proc, control = start_member(room, tmp_path)
    try:
        first = room.open()
        second = room.open()
        everyone = {first.address, second.address, "py"}

        def formed() -> bool:
            s = room.leader().status()
            return set(s["members"]) | set(s["learners"]) == everyone

        wait_for(formed, 60, "one cluster of both tabs and the CPython member",
                 describe=lambda: [t.status() for t in room.tabs])
        assert room.leader() is first
        index = second.propose({"op": "put", "key": "mixed", "value": 1})
        wait_applied(room.tabs, index)
        from webraft.member.control import request

        def member_applied() -> bool:
            status, body = request(control, "GET", "/kv", timeout=10)
            return status == 200 and body["data"].get("mixed") == 1

        wait_for(member_applied, 30, "the CPython member to apply the tab's write")
    finally:
        for tab in list(room.tabs):
            room.close(tab)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()


#: The takeover test's leader-silence timeout (ms). With the default 200 ms, a loaded
#: machine's late messages (no stall of the tab itself) sometimes made a follower campaign,
#: rightly; the stall this test is about is made longer (STALL_MS) and certain instead.
TAKEOVER_TIMEOUT_MS = 1000
#: How long the takeover test stops every tab (ms), and how long the leader stays stopped
#: after the others resume (ms, well within TAKEOVER_TIMEOUT_MS).
STALL_MS = 3000
LEADER_LATER_MS = 400


def test_a_tab_taking_over_a_closed_tabs_node_leaves_the_leader_alone(
        browser: Any, relay: Any) -> None:
    """Issue 12: tabs of one browser share a renderer's main thread, and a tab booting Pyodide
    blocks it for seconds; the other tabs' overdue election timers then raised the term
    under a healthy leader. Here all tabs share a context, as in one browser, and the new
    tab takes over the closed leader's stored node, whose long log it replays.

    How long booting stops the others depends on the machine, so the tabs are then stopped
    for STALL_MS (the debugger pauses them), the followers resumed first: without the stall
    check their overdue timers fire before the leader can be heard, and they elect one of
    them."""
    context = new_context(browser)
    room = unique_room("takeover")
    # The default snapshots: up to 1,000 entries to replay.
    query = f"&memberGrace={GRACE_MS}&heartbeatTimeout={TAKEOVER_TIMEOUT_MS}"
    tabs = [open_tab(context, relay.url, room, name=f"{room}#{k}", query=query)
            for k in range(3)]
    try:
        def configured() -> bool:
            statuses = [t.status() for t in tabs]
            return any(len(s["members"]) == 3 and s["state"] == "leader" for s in statuses)

        wait_for(configured, 60, "three voters", describe=lambda: summary(tabs))
        leader_address, _ = wait_leader(tabs)
        leader = next(t for t in tabs if t.address == leader_address)
        # A long log, as in the report: the new tab's start-up replays it (on the thread the
        # other tabs share), on top of booting Pyodide.
        # (Setting it up in one browser may itself see an election: that is not checked.)
        leader.eval("""async () => {
          for (let round = 0; round < 30; round++) {
            await Promise.allSettled(Array.from({length: 70}, (_, k) =>
              webraft.propose({op: "put", key: `k${k % 50}`, value: round})));
          }
        }""", timeout=180)
        leader_address, _ = wait_leader(tabs)
        leader = next(t for t in tabs if t.address == leader_address)
        wait_applied(tabs, leader.status()["commitIndex"])
        closed = leader.address
        leader.close(graceful=True)  # hands leadership over first
        tabs.remove(leader)
        leader_address, term = wait_leader(tabs)
        taker = open_tab(context, relay.url, room, name=f"{room}#taker", query=query)
        tabs.append(taker)
        assert taker.address == closed  # the closed tab's node, from localStorage
        new_leader = next(t for t in tabs if t.address == leader_address)
        index = new_leader.propose({"op": "put", "key": "taken-over", "value": 1})
        wait_applied(tabs, index)
        stalls = {t.address: t.status()["stalls"] for t in tabs}
        debuggers = {t.address: t.page.context.new_cdp_session(t.page) for t in tabs}
        for debugger in debuggers.values():
            debugger.send("Debugger.enable")
            debugger.send("Debugger.pause")
        taker.page.wait_for_timeout(STALL_MS)
        for address, debugger in debuggers.items():
            if address != leader_address:
                debugger.send("Debugger.resume")
        taker.page.wait_for_timeout(LEADER_LATER_MS)
        debuggers[leader_address].send("Debugger.resume")
        for debugger in debuggers.values():
            debugger.detach()
        taker.page.wait_for_timeout(2000)
        after = {t.address: t.status()["stalls"] for t in tabs}
        assert all(after[a] > stalls[a] for a in stalls), (stalls, after)  # all were stopped
        assert wait_leader(tabs) == (leader_address, term), summary(tabs)
        assert {t.status()["term"] for t in tabs} == {term}, summary(tabs)
    finally:
        for tab in tabs:
            tab.close()
        context.close()


#: The README's page, as issue 12's report built it: ``connect`` with the raw handlers, the
#: state (a counter) in memory, so a tab rebuilds it from the snapshot its refresh is handed.
#: Frequent snapshots, so that a few hundred entries are compacted.
COUNTER_PAGE = """(room) => {
  window.refreshes = [];
  window.errors = [];
  window.count = 0;
  import("/webraft/webraft.js").then(({ connect }) => connect({
    room, memberGrace: GRACE_MS, snapshotEntries: 50, snapshotTail: 10,
    listeners: {
      apply: (entry, index, cb) => { count += entry.command.add; cb(); },
      refresh: (cb, snapshot) => {
        count = snapshot ? snapshot.data.count : 0;
        refreshes.push(snapshot?.index ?? 0);
        cb(snapshot?.term ?? 0, snapshot?.index ?? 0);
      },
      snapshot: () => ({ count }),
      error: (error) => { errors.push(`${error.name}: ${error.message}`); },
    },
  })).then((raft) => { window.webraft = raft; },
            (error) => { window.failure = `${error.name}: ${error.message}`; });
}""".replace("GRACE_MS", str(GRACE_MS))


def open_counter(context: Any, relay: Any, room: str, name: str) -> Tab:
    tab = Tab(blank_page(context, relay.url), name)
    tab.eval(COUNTER_PAGE, room)
    tab.wait_connected()
    return tab


def test_a_tab_taking_over_a_compacted_node_is_handed_its_snapshot_and_catches_up(
        browser: Any, relay: Any) -> None:
    """Issue 12's report, step by step: three tabs of a page built with ``connect({listeners})``
    commit and compact, the leader's tab is closed, and a new tab takes over its stored node.
    Its refresh handler ran before ``connect()`` resolved, so it could not read
    ``raft.snapshot``: it reported index 0, and the node applied a few entries and stalled
    without an error. The snapshot is now the handler's second argument."""
    context = new_context(browser)
    room = unique_room("refresh")
    tabs: list[Tab] = []
    try:
        for k in range(3):
            tabs.append(open_counter(context, relay, room, f"{room}#{k}"))
        wait_for(lambda: any(len(s["members"]) == 3 and s["state"] == "leader"
                             for s in (t.status() for t in tabs)),
                 60, "three voters", describe=lambda: summary(tabs))
        leader_address, _ = wait_leader(tabs)
        leader = next(t for t in tabs if t.address == leader_address)
        # (Setting it up in one browser may see an election: a proposal may then fail, and
        # the leader is asked again.)
        leader.eval("""async () => {
          for (let round = 0; round < 6; round++) {
            await Promise.allSettled(Array.from({length: 50}, () => webraft.propose({add: 1})));
          }
        }""", timeout=120)
        leader_address, _ = wait_leader(tabs)
        leader = next(t for t in tabs if t.address == leader_address)
        wait_applied(tabs, leader.status()["commitIndex"])
        assert all(t.status()["snapshotIndex"] > 0 for t in tabs), summary(tabs)
        closed = leader.address
        leader.close(graceful=True)
        tabs.remove(leader)
        leader_address, _ = wait_leader(tabs)

        taker = open_counter(context, relay, room, f"{room}#taker")
        tabs.append(taker)
        assert taker.address == closed  # the closed tab's node, from localStorage
        snapshot = taker.status()["snapshotIndex"]
        assert snapshot > 0
        assert taker.eval("refreshes")[0] == snapshot  # it began from the snapshot it was given
        new_leader = next(t for t in tabs if t.address == leader_address)
        index = new_leader.eval("() => webraft.propose({add: 1})")
        wait_applied(tabs, index)
        # The taker's counter, rebuilt from the snapshot and the entries after it, is the
        # others'.
        counts = {t.eval("count") for t in tabs}
        assert len(counts) == 1 and counts.pop() > 0, summary(tabs)
        for tab in tabs:
            assert tab.eval("errors") == [] and tab.page_errors == [], tab.name
    finally:
        for tab in tabs:
            tab.close()
        context.close()


HIDE = """(hidden) => {
    Object.defineProperty(document, "visibilityState", {value: hidden ? "hidden" : "visible",
                                                        configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def timeout_nows(tabs: list[Tab]) -> dict[str, int]:
    """How many TimeoutNow messages (a leader handing over) each tab has received."""
    return {t.address: t.status()["received"].get("timeout_now", 0) for t in tabs}


def wait_handed_over(room: Room, old: Tab, term: int, before: dict[str, int]) -> Tab:
    """Wait for a new leader; check it took over by a TimeoutNow from ``old`` (a handover),
    not by an election timeout; check the cluster commits."""
    wait_for(lambda: room.leader() is not old, 30, "another tab to lead")
    new = room.leader()
    status = new.status()
    assert status["term"] > term
    assert status["received"].get("timeout_now", 0) > before[new.address], status["received"]
    index = new.propose({"op": "put", "key": f"after-{old.name}", "value": 1})
    wait_applied([t for t in room.tabs if t is not old], index)
    return new


def test_a_leader_tab_that_becomes_hidden_hands_leadership_over(room: Room) -> None:
    leader = room.leader()
    term, before = leader.status()["term"], timeout_nows(room.tabs)
    leader.eval(HIDE, True)
    try:
        wait_handed_over(room, leader, term, before)
        assert leader.status()["hidden"]
    finally:
        leader.eval(HIDE, False)


def test_closing_the_leader_tab_hands_leadership_over_first(room: Room) -> None:
    """Closing a tab as a user does (pagehide runs) while it leads: the TimeoutNow goes out
    before the page is gone, so a remaining tab takes over without an election timeout."""
    leader = room.leader()
    assert len(room.tabs) >= 3, "a quorum must remain"
    term, before = leader.status()["term"], timeout_nows(room.tabs)
    room.close(leader, graceful=True)
    wait_handed_over(room, leader, term, before)

"""Three demo tabs, one room: election, replication, the JS and Python APIs, step-down, a tab
going offline and a tab reloading. One cluster is shared by every test here; each test leaves
it healthy (all three tabs members, one leader). Each tab has its own browser context, so one
can lose its network without the others.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from browser_support import (
    CONVERGE_TIMEOUT,
    PROPOSAL_TIMEOUT,
    SLOTS,
    Tab,
    agreed_leader,
    by_address,
    summary,
    wait_applied,
    wait_for,
    wait_leader,
)

MEMBERS = list(SLOTS)


@pytest.fixture(scope="module")
def cluster(make_cluster: Any) -> Any:
    return make_cluster(separate_contexts=True)


@pytest.fixture
def tabs(cluster: Any) -> list[Tab]:
    """The cluster's tabs, all online and running, once they agree on a leader and have
    applied everything (a failed test must not leave a tab offline for the next one)."""
    for tab in cluster.tabs:
        tab.eval("webraft.setOnline(true), webraft.setPaused(false)")
    wait_leader(cluster.tabs)
    commit = max(t.status()["commitIndex"] for t in cluster.tabs)
    wait_applied(cluster.tabs, commit)
    return cluster.tabs


def committed_entries(tab: Tab) -> dict[int, list[Any]]:
    log = tab.raft_log()
    return {e[0]: e for e in log["entries"] if e[0] <= log["commit"]}


def assert_same_committed_prefix(a: Tab, b: Tab) -> None:
    """Every committed index both logs hold has the same entry (term, kind, command)."""
    ea, eb = committed_entries(a), committed_entries(b)
    common = sorted(ea.keys() & eb.keys())
    assert common, (a.name, b.name)
    assert [ea[i] for i in common] == [eb[i] for i in common]


def store_rows(tab: Tab) -> list[str]:
    """The demo's key-value table as the page shows it."""
    return tab.page.locator("#store tbody tr").all_inner_texts()


# ------------------------------------------------------------------------------ election


def test_three_tabs_elect_exactly_one_leader(tabs: list[Tab]) -> None:
    assert sorted(t.address for t in tabs) == MEMBERS
    leader, term = wait_leader(tabs)
    statuses = [t.status() for t in tabs]
    assert [s["address"] for s in statuses if s["state"] == "leader"] == [leader]
    assert {s["term"] for s in statuses} == {term}
    assert all(s["leader"] == leader for s in statuses)
    for s in statuses:
        assert s["members"] == MEMBERS
        assert s["peers"] == sorted(set(MEMBERS) - {s["address"]})
        assert s["connected"]
    # The page shows it too (the demo re-renders every 250 ms).
    wait_for(lambda: all(t.page.inner_text("#leader") == leader for t in tabs),
             what="every page to show the leader")
    wait_for(lambda: sorted(t.page.inner_text("#role") for t in tabs)
             == ["follower", "follower", "leader"], what="the role pills")


# --------------------------------------------------------------------------- replication

RECORD_APPLY = """() => {
  window.__applied = [];
  window.__offApply = webraft.listen("apply", (entry, index, cb) => {
    window.__applied.push([index, entry.term, entry.command]);
    cb();
  });
}"""


def test_follower_proposal_is_applied_in_every_tab_in_the_same_order(tabs: list[Tab]) -> None:
    leader, _ = wait_leader(tabs)
    follower = next(t for t in tabs if t.address != leader)
    for tab in tabs:
        tab.eval(RECORD_APPLY)
    try:
        sequential = [follower.propose({"op": "put", "key": f"seq{k}", "value": k})
                      for k in range(3)]
        burst = follower.eval("""() => Promise.all(Array.from({length: 20},
            (_, k) => webraft.propose({op: "put", key: "burst", value: k})))""")
        indices = sequential + burst
        assert sequential == sorted(sequential) and len(set(indices)) == len(indices)
        wait_applied(tabs, max(indices))
        applied = [t.eval("window.__applied") for t in tabs]
    finally:
        for tab in tabs:
            tab.eval("() => window.__offApply()")
    # Same entries, same order, everywhere; every proposal is there with its own command.
    assert applied[0] == applied[1] == applied[2]
    order = [index for index, _, _ in applied[0]]
    assert order == sorted(order)
    by_index = {index: command for index, _, command in applied[0]}
    for k, index in enumerate(sequential):
        assert by_index[index] == {"op": "put", "key": f"seq{k}", "value": k}
    assert sorted(by_index[i]["value"] for i in burst) == list(range(20))
    # The demo's store agrees, persisted and on screen.
    stores = [t.kv() for t in tabs]
    assert stores[0] == stores[1] == stores[2]
    assert stores[0]["burst"] == by_index[max(burst)]["value"]
    assert all(stores[0][f"seq{k}"] == k for k in range(3))
    wait_for(lambda: store_rows(tabs[0]) == store_rows(tabs[1]) == store_rows(tabs[2]),
             what="the same table in every page")
    for a, b in itertools.pairwise(tabs):
        assert_same_committed_prefix(a, b)


# ------------------------------------------------------------------------------- the APIs

JS_API = """async () => {
  const seen = {on: [], once: [], removed: [], custom: []};
  const on = (index) => seen.on.push(index);
  const off = webraft.listen("updated", on);
  webraft.listenOnce("updated", (index) => seen.once.push(index));
  const removed = (index) => seen.removed.push(index);
  webraft.listen("updated", removed);
  webraft.unlisten("updated", removed);
  const put = (key) => webraft.propose({op: "put", key, value: key});
  const a = await put("api-a");
  const b = await put("api-b");
  off();
  const c = await put("api-c");
  const custom = (...args) => seen.custom.push(args);
  webraft.listen("e2e custom", custom);
  webraft.emit("e2e custom", "hi", {n: 1, nested: {ok: true}}, [2, 3]);
  webraft.unlisten("e2e custom", custom);
  webraft.emit("e2e custom", "not heard");
  return {a, b, c, seen, types: [typeof a, typeof webraft.isLeader, typeof webraft.term]};
}"""


def test_js_api_listeners_getters_and_propose(tabs: list[Tab]) -> None:
    for tab in tabs:
        # Read the getters and the status in one go: leadership may move between two reads.
        got = tab.eval("""() => ({isLeader: webraft.isLeader, leader: webraft.leader,
            state: webraft.state, term: webraft.term, members: webraft.members,
            address: webraft.address, room: webraft.room, wheel: webraft.wheel,
            timings: webraft.timings, status: webraft.status()})""")
        status = got["status"]
        assert got["isLeader"] is (got["state"] == "leader")
        assert got["state"] in ("leader", "follower", "candidate")
        assert (got["state"], got["leader"], got["term"]) == (
            status["state"], status["leader"], status["term"])
        assert (got["address"], got["room"]) == (status["address"], status["room"])
        assert got["members"] == MEMBERS
        assert got["wheel"].endswith(".whl")
        assert got["timings"]["pyodideBoot"] > 0 and got["timings"]["webraftReady"] > 0
    leader, _ = wait_leader(tabs)
    follower = next(t for t in tabs if t.address != leader)
    result = follower.eval(JS_API)
    a, b, c = result["a"], result["b"], result["c"]
    assert result["types"] == ["number", "boolean", "number"]
    assert a < b < c
    seen = result["seen"]
    assert seen["on"] == [a, b]  # then unsubscribed through the function listen returned
    assert seen["once"] == [a]
    assert seen["removed"] == []
    assert seen["custom"] == [["hi", {"n": 1, "nested": {"ok": True}}, [2, 3]]]
    wait_applied(tabs, c)


LOOPBACK_CLUSTER = '''
import asyncio
import json
import sys

import webraft


async def _e2e_loopback_cluster():
    nodes = {}

    class Peer(webraft.NodeInstance):
        def write(self, payload):
            peer = nodes[self.address]
            asyncio.get_running_loop().call_soon(peer.got_data, self.raft.address, payload)

    class Raft(webraft.RaftInterface):
        def create_instance(self, address):
            return Peer(address, self)

    names = ["a", "b", "c"]
    applied = {n: [] for n in names}
    for n in names:
        raft = nodes[n] = Raft(n, members=names, storage=webraft.MemoryStorage())
        raft.listen("apply", lambda entry, index, cb, n=n: (
            applied[n].append([index, entry.command]), cb()))
        for other in names:
            raft.join(other)
        raft.start()
    try:
        first = await nodes["b"].propose({"x": 1})
        second = await nodes["c"].propose({"y": 2})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while any(len(applied[n]) < 2 for n in names) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return json.dumps({
            "indices": [first, second], "applied": applied,
            "leaders": [n for n in names if nodes[n].is_leader],
            "python": list(sys.version_info[:2]), "version": webraft.__version__,
        })
    finally:
        for raft in nodes.values():
            await raft.close()


await _e2e_loopback_cluster()
'''


def test_python_api_inside_pyodide(tabs: list[Tab]) -> None:
    """webraft's Python API in the tab's Pyodide: a 3-node cluster on an in-page loopback."""
    tab = tabs[0]
    result = json.loads(tab.eval("(code) => webraft.pyodide.runPythonAsync(code)",
                                 LOOPBACK_CLUSTER))
    first, second = result["indices"]
    assert isinstance(first, int) and first < second
    expected = [[first, {"x": 1}], [second, {"y": 2}]]
    assert result["applied"] == {"a": expected, "b": expected, "c": expected}
    assert len(result["leaders"]) == 1
    assert result["python"][0] == 3
    # The page's own node is untouched by it.
    wait_leader(tabs)


# ----------------------------------------------------------------------------- step down


def test_step_down_moves_leadership_to_another_tab(tabs: list[Tab]) -> None:
    old, term = wait_leader(tabs)
    old_tab = next(t for t in tabs if t.address == old)
    # The demo's button (enabled only on the leader)...
    button = old_tab.page.locator("#stepdown")
    wait_for(button.is_enabled, what="the step-down button to be enabled on the leader")
    button.click()
    new, new_term = wait_for(
        lambda: (got := agreed_leader(tabs)) and got[0] != old and got,
        what=f"a leader other than {old}", describe=lambda: summary(tabs))
    assert new_term > term
    # ... and the API, which names the tab it hands over to.
    new_tab = next(t for t in tabs if t.address == new)
    target = new_tab.eval("webraft.stepDown()")
    assert target in set(MEMBERS) - {new}
    got_leader, last_term = wait_for(
        lambda: (got := agreed_leader(tabs)) and got[0] == target and got,
        what=f"{target} to lead", describe=lambda: summary(tabs))
    assert last_term > new_term
    # A follower that is not leading has nobody to hand over to.
    assert new_tab.eval("webraft.stepDown()") is None
    # The cluster still commits, from the tab that led first.
    index = old_tab.propose({"op": "put", "key": "after-step-down", "value": got_leader})
    wait_applied(tabs, index)


# ------------------------------------------------------------------------------ sessions

#: Counts, in a tab, the applications of commands that carry a "mark".
COUNT_MARKS = """() => {
  window.__marks = [];
  window.__unmark = webraft.listen("apply", (entry, index, cb) => {
    if (entry.command && entry.command.mark) window.__marks.push([entry.command.mark, index]);
    cb();
  });
}"""


def test_a_session_retried_from_another_tab_across_a_leader_change_applies_once(
        tabs: list[Tab]) -> None:
    """The session table is replicated state: a tab that never saw the session resumes it
    (as a client that moved to another tab would) and retries its first command after the
    leader changed; it gets the original index, and every tab applied the command once."""
    for tab in tabs:
        tab.eval(COUNT_MARKS)
    try:
        leader_address, _ = wait_leader(tabs)
        first_tab, other = [t for t in tabs if t.address != leader_address]
        session = first_tab.eval("""async () => { const s = await webraft.openSession();
            const index = await s.propose({op: "put", key: "s", value: 1, mark: "m1"});
            return {id: s.id, index}; }""")
        by_address(tabs)[leader_address].eval("webraft.stepDown()")
        wait_for(lambda: (got := agreed_leader(tabs)) and got[0] != leader_address,
                 what="a new leader", describe=lambda: summary(tabs))
        retry, fresh = other.eval("""async (id) => {
            const s = webraft.resumeSession(id, 1);
            const retry = await s.propose({op: "put", key: "s", value: 1, mark: "m1"});
            return [retry, await s.propose({op: "put", key: "s", value: 2, mark: "m2"})]; }""",
                                  session["id"])
        assert retry == session["index"] and fresh > retry
        wait_applied(tabs, fresh)
        for tab in tabs:
            assert tab.eval("window.__marks") == [["m1", retry], ["m2", fresh]], tab.name
            assert tab.kv()["s"] == 2
    finally:
        for tab in tabs:
            tab.eval("() => window.__unmark && window.__unmark()")


def test_a_session_command_that_timed_out_offline_is_retried_once_under_its_number(
        tabs: list[Tab]) -> None:
    """A follower tab offline cannot reach the leader: its session proposal times out with
    the command's number; back online, retrying under that number applies it once."""
    leader_address, _ = wait_leader(tabs)
    follower = next(t for t in tabs if t.address != leader_address)
    for tab in tabs:
        tab.eval(COUNT_MARKS)
    try:
        follower.eval("""async () => { window.__session = await webraft.openSession(); }""")
        follower.eval("webraft.setOnline(false)")
        timed_out = follower.eval("""() => window.__session.propose(
            {op: "put", key: "t", value: 1, mark: "late"}, {timeout: 300}).then(
            (index) => ({index}),
            (e) => ({name: e.name, seq: e.seq, mayHaveCommitted: e.mayHaveCommitted}))""")
        assert timed_out == {"name": "ProposalTimeout", "seq": 1, "mayHaveCommitted": True}
        follower.eval("webraft.setOnline(true)")
        index = follower.eval("""(seq) => webraft.resumeSession(window.__session.id, seq)
            .propose({op: "put", key: "t", value: 1, mark: "late"})""", timed_out["seq"])
        wait_applied(tabs, index)
        for tab in tabs:
            assert tab.eval("window.__marks") == [["late", index]], tab.name
    finally:
        follower.eval("webraft.setOnline(true)")
        for tab in tabs:
            tab.eval("() => window.__unmark && window.__unmark()")


# ------------------------------------------------------------------------------- offline


def test_offline_tab_cannot_commit_alone_and_converges_when_back(cluster: Any,
                                                               tabs: list[Tab]) -> None:
    leader_address, _ = wait_leader(tabs)
    leader = next(t for t in tabs if t.address == leader_address)
    tab = next(t for t in tabs if t.address != leader_address)
    context = cluster.context_of(tab)
    # Open WebSockets survive context.set_offline (microsoft/playwright#4910), so take the
    # node off the relay with the demo's switch, then let it try to come back while the
    # network is down: it keeps failing to reconnect until the network returns.
    context.set_offline(True)
    try:
        tab.eval("webraft.setOnline(false)")
        wait_for(lambda: not tab.status()["connected"], what="the tab to disconnect")
        tab.eval("webraft.setOnline(true)")
        error = tab.propose_error({"op": "put", "key": "offline", "value": "alone"})
        assert error is not None, "a tab without network committed on its own"
        assert error["name"] in ("NoLeaderError", "ProposalTimeout"), error
        assert error["mayHaveCommitted"] is (error["name"] == "ProposalTimeout"), error
        assert not tab.status()["connected"]
        # The other two still form a majority and commit.
        index = leader.propose({"op": "put", "key": "while-offline", "value": 1})
        assert tab.status()["lastApplied"] < index
    finally:
        context.set_offline(False)
    # Back: it reconnects by itself, agrees on the leader and catches up.
    wait_for(lambda: tab.status()["connected"], CONVERGE_TIMEOUT + PROPOSAL_TIMEOUT,
             what="the tab to reconnect")
    wait_leader(tabs)
    wait_applied([tab], index)
    final = max(t.status()["commitIndex"] for t in tabs)
    wait_applied(tabs, final)
    stores = [t.kv() for t in tabs]
    assert stores[0] == stores[1] == stores[2]
    assert stores[0]["while-offline"] == 1
    if not error["mayHaveCommitted"]:
        assert "offline" not in stores[0]
    assert_same_committed_prefix(leader, tab)


def test_going_offline_and_back_raises_no_page_error(tabs: list[Tab]) -> None:
    """The socket being closed still fires its close event after the node let go of it:
    its handlers must not be destroyed proxies by then (issue 12)."""
    tab = tabs[0]
    errors = len(tab.page_errors)
    tab.eval("webraft.setOnline(false)")
    wait_for(lambda: not tab.status()["connected"], what="the tab to disconnect")
    tab.page.wait_for_timeout(500)  # the closing handshake's close event
    tab.eval("webraft.setOnline(true)")
    wait_for(lambda: tab.status()["connected"], CONVERGE_TIMEOUT, what="the tab to reconnect")
    assert tab.page_errors[errors:] == []


# -------------------------------------------------------------------------------- reload


def test_reload_restores_state_from_localstorage_and_catches_up(tabs: list[Tab]) -> None:
    leader_address, _ = wait_leader(tabs)
    leader = next(t for t in tabs if t.address == leader_address)
    tab = next(t for t in tabs if t.address != leader_address)
    index = tab.propose({"op": "put", "key": "before-reload", "value": "kept"})
    wait_applied(tabs, index)
    # Away: entries commit while the tab is off the relay, then it reloads.
    tab.eval("webraft.setOnline(false)")
    wait_for(lambda: not tab.status()["connected"], what="the tab to disconnect")
    address = tab.address
    before = tab.raft_log()
    before_store = tab.kv()
    away = [leader.propose({"op": "put", "key": f"away{k}", "value": k}) for k in range(3)]
    assert tab.status()["lastApplied"] == before["applied"] < min(away)
    tab.reload()
    tab.wait_booted()
    # The same node: same address (sessionStorage), its term and log (localStorage).
    assert tab.address == address
    after = tab.raft_log()
    assert after["term"] >= before["term"]
    assert after["last"] >= before["last"]
    old = {e[0]: e for e in before["entries"] if e[0] <= before["commit"]}
    new = {e[0]: e for e in after["entries"]}
    assert old.keys() <= new.keys() or after["first"] > min(old)  # unless compacted
    assert all(new[i] == old[i] for i in old.keys() & new.keys())
    assert tab.eval(f"""() => Object.keys(localStorage).some(
        (k) => k.startsWith("webraft/{tab.status()['room']}/{address}/"))""")
    # It catches up with what was committed while it was away...
    wait_applied([tab], max(away))
    # ... without re-applying what the demo's store already held (restored by `refresh`).
    writes = tab.eval("window.__demoWrites")
    assert writes, "nothing was applied after the reload"
    assert min(writes) > before["applied"], (writes, before["applied"])
    assert set(away) <= set(writes)
    store = tab.kv()
    assert store == leader.kv()
    assert store.items() >= before_store.items()
    assert [store[f"away{k}"] for k in range(3)] == [0, 1, 2]
    wait_for(lambda: any(r.startswith("before-reload") for r in store_rows(tab)),
             what="the restored key on the page")
    wait_leader(tabs)

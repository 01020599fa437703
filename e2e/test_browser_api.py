"""The JavaScript module used directly (not through the demo): connect() in a plain page of
the relay's origin, a one-member room, how proposals that cannot be sent are refused, the
kinds of apply handlers, and the named errors of connect(). Further nodes of the page share
its Pyodide, so all of this costs one boot."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    BOOT_TIMEOUT,
    ROOT,
    Tab,
    blank_page,
    new_context,
    unique_room,
    wait_for,
)

CONNECT = """async (room) => {
  const m = await import("/webraft.js");
  window.__applied = [];
  window.__leaderEvents = 0;
  const raft = await m.connect({
    room, members: ["solo"],
    listeners: {
      apply: (entry, index, cb) => { window.__applied.push([index, entry.command]); cb(); },
      leader: () => { window.__leaderEvents += 1; },
    },
  });
  window.webraft = raft;
  return {exports: Object.keys(m).sort(), address: raft.address,
          loadError: new m.WebRaftLoadError("x").name};
}"""


class SoloTab(Tab):
    """The page of these tests, with what its ``connect()`` returned."""

    connected: dict[str, Any]


@pytest.fixture(scope="module")
def solo(browser: Any, relay: Any) -> Iterator[SoloTab]:
    context = new_context(browser)
    tab = SoloTab(blank_page(context, relay.url), "solo")
    tab.connected = tab.eval(CONNECT, unique_room("solo"), timeout=BOOT_TIMEOUT)
    tab.name = "solo/solo"
    yield tab
    tab.close()
    context.close()


def test_connect_registers_listeners_before_starting(solo: SoloTab) -> None:
    assert solo.connected["address"] == "solo"
    assert {"connect", "createNode", "WebRaft", "WebRaftLoadError"} <= set(
        solo.connected["exports"])
    assert solo.connected["loadError"] == "WebRaftLoadError"
    wait_for(lambda: solo.eval("webraft.isLeader"), what="the one member to lead")
    assert solo.eval("window.__leaderEvents") >= 1
    first = solo.propose({"op": "put", "key": "a", "value": 1})
    second = solo.propose(["any", "json", None])
    assert isinstance(first, int) and second == first + 1
    assert solo.eval("window.__applied") == [[first, {"op": "put", "key": "a", "value": 1}],
                                              [second, ["any", "json", None]]]
    timings = solo.eval("webraft.timings")
    assert timings["pyodideBoot"] > 0 and timings["webraftReady"] > 0
    manifest = json.loads((ROOT / "dist" / "manifest.json").read_text())
    if "WEBRAFT_E2E_DIST" not in os.environ:  # the repository's own wheel
        assert solo.eval("webraft.wheel") == manifest["wheel"]


@pytest.mark.parametrize("command", [
    "undefined",             # JSON.stringify gives undefined, not a string
    "() => 1",               # likewise for a function
    "{big: 1n}",             # JSON.stringify throws
    "{x: 'a'.repeat(300000)}",  # over the 256 KiB command limit
])
def test_unsendable_commands_are_refused_as_invalid(solo: Tab, command: str) -> None:
    """Each is an InvalidCommand that certainly did not commit (webraft.d.ts: a
    ProposalError has a boolean mayHaveCommitted)."""
    wait_for(lambda: solo.eval("webraft.isLeader"), what="the one member to lead")
    error = solo.eval(f"""() => webraft.propose({command}).then(
        (index) => ({{resolved: index}}),
        (e) => ({{name: e.name, mayHaveCommitted: e.mayHaveCommitted,
                  message: String(e.message).slice(0, 300)}}))""")
    assert error.get("name") == "InvalidCommand", error
    assert error["mayHaveCommitted"] is False, error


def free_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SECOND_NODE = """async ([room, members, options]) => {
  const m = await import("/webraft.js");
  const t0 = performance.now();
  try {
    const raft = await m.connect({room, members, ...options});
    const node = raft._node.node;  // the Python BrowserRaft
    const tuned = {hiddenElectionDelay: node.hidden_election_delay,
                   memberGrace: node.member_grace};
    await raft.close();
    return {resolved: raft.address, tuned};
  } catch (e) {
    return {name: e.name, message: String(e.message), isWebRaftError: e instanceof m.WebRaftError,
            isError: e instanceof Error, ms: performance.now() - t0};
  }
}"""


def test_full_room_is_a_named_error(solo: Tab) -> None:
    """A second node of the page (sharing its Pyodide) claims the slot the solo node holds,
    with a session of its own: the relay refuses it and connect() rejects with RoomFull."""
    room = solo.eval("webraft.room")
    key = f"webraft/{room}/tab"
    saved = solo.eval("(key) => sessionStorage.getItem(key)", key)
    solo.eval("(key) => sessionStorage.removeItem(key)", key)  # as a new tab would be
    try:
        got = solo.eval(SECOND_NODE, [room, ["solo"], {}])
    finally:
        solo.eval("([key, value]) => sessionStorage.setItem(key, value)", [key, saved])
    assert got.get("name") == "RoomFull", got
    assert got["isWebRaftError"] and got["isError"], got
    assert "is full" in got["message"] and "Traceback" not in got["message"], got
    # The member holding the slot is undisturbed.
    wait_for(lambda: solo.eval("webraft.isLeader"), what="the solo member to lead")
    assert isinstance(solo.propose({"op": "put", "key": "after-room-full", "value": 1}), int)


def test_options_reach_the_node_in_seconds(solo: Tab) -> None:
    got = solo.eval(SECOND_NODE, [unique_room("tuned"), ["t"],
                                  {"hiddenElectionDelay": 0, "memberGrace": 2500}])
    assert got.get("tuned") == {"hiddenElectionDelay": 0.0, "memberGrace": 2.5}, got
    default = solo.eval("webraft._node.node.hidden_election_delay")
    assert default == 1.0


def test_unreachable_relay_is_a_named_error_within_the_timeout(solo: Tab) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    got = solo.eval(SECOND_NODE, [unique_room("unreachable"), ["a"],
                                  {"relay": url, "connectTimeout": 1500}])
    assert got.get("name") == "RelayUnreachable", got
    assert got["isWebRaftError"], got
    assert url in got["message"] and "1.5 s" in got["message"], got
    assert 1400 <= got["ms"] < 15_000, got


APPLY_KINDS = """async () => {
  const seen = {later: [], promised: [], flaky: [], errors: []};
  let failures = 0;
  const offs = [
    // cb called after the handler returned
    webraft.listen("apply", (entry, index, cb) => {
      setTimeout(() => { seen.later.push(index); cb(); }, 1);
    }),
    // a promise decides; its cb is not needed
    webraft.listen("apply", async (entry, index) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      seen.promised.push(index);
    }),
    // fails once (as a full localStorage would), then succeeds on the retry
    webraft.listen("apply", (entry, index, cb) => {
      if (entry.command.key === "flaky" && failures === 0) {
        failures += 1;
        cb(new DOMException("storage is full", "QuotaExceededError"));
        return;
      }
      seen.flaky.push(index);
      cb();
    }),
    webraft.listen("error", (err) => seen.errors.push([err.name, err.message])),
  ];
  try {
    const indices = await Promise.all(["a", "b", "flaky", "c"].map(
      (key) => webraft.propose({op: "put", key, value: 1})));
    return {indices, seen, failures};
  } finally {
    offs.forEach((off) => off());
  }
}"""


def test_apply_handlers_may_finish_later_return_promises_or_fail(solo: Tab) -> None:
    """The apply adapter keeps the Python API's rules: an entry counts as applied when every
    handler called cb (even later) or its promise settled, in log order; a failure is
    reported as an error event named after the JavaScript error, and the entry retried."""
    wait_for(lambda: solo.eval("webraft.isLeader"), what="the one member to lead")
    got = solo.eval(APPLY_KINDS)
    indices = got["indices"]
    assert indices == sorted(indices) and len(set(indices)) == 4, got
    seen = got["seen"]
    assert seen["later"] == indices and seen["promised"] == indices, got
    assert seen["flaky"] == indices and got["failures"] == 1, got
    assert ["QuotaExceededError", "storage is full"] in seen["errors"], got


def test_a_burst_larger_than_the_window_commits_in_order(solo: Tab) -> None:
    """More proposals at once than the bridge hands to the node at a time (MAX_IN_FLIGHT):
    the rest wait their turn, and every promise settles with its own, increasing index; an
    unsendable command in the middle is refused without holding up the others."""
    wait_for(lambda: solo.eval("webraft.isLeader"), what="the one member to lead")
    got = solo.eval("""async () => {
      const proposals = Array.from({length: 2500}, (_, k) =>
        webraft.propose(k === 1000 ? {big: "x".repeat(300000)} : {op: "put", key: "w", value: k}));
      const outcomes = await Promise.allSettled(proposals);
      return outcomes.map((o) => o.status === "fulfilled" ? o.value : o.reason.name);
    }""", timeout=120)
    assert got[1000] == "InvalidCommand", got[1000]
    indices = got[:1000] + got[1001:]
    assert all(isinstance(i, int) for i in indices), [i for i in indices if not isinstance(i, int)]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert solo.eval("webraft._waiting.size") == 0


SESSIONS = """async () => {
  const m = await import("/webraft.js");
  const outcome = (promise) => promise.then((index) => ({index}),
    (e) => ({name: e.name, mayHaveCommitted: e.mayHaveCommitted, message: String(e.message)}));
  const session = await webraft.openSession();
  const seqBefore = session.nextSeq;
  const first = await session.propose({op: "put", key: "once", value: 1});
  // A retry of seq 1 (as after a lost answer, or from a reloaded page) is not applied again.
  const retry = await outcome(webraft.resumeSession(session.id, seqBefore).propose(
    {op: "put", key: "once", value: 1}));
  const second = await session.propose({op: "put", key: "twice", value: 2});
  let badArgs = null;
  try { webraft.resumeSession(0, 1); } catch (e) { badArgs = e.name; }
  let badTimeout = null;
  try { await session.propose("x", {timeout: -1}); } catch (e) { badTimeout = e.name; }
  return {
    isSession: session instanceof m.WebRaftSession, id: session.id, seqBefore,
    seqAfter: session.nextSeq, first, second, retry, badArgs, badTimeout,
    unknown: await outcome(webraft.resumeSession(session.id + 1e6, 1).propose({op: "x"})),
    invalid: await outcome(session.propose(() => 1)),
  };
}"""


def test_a_session_applies_each_command_once_and_names_its_errors(solo: Tab) -> None:
    wait_for(lambda: solo.eval("webraft.isLeader"), what="the one member to lead")
    before = len(solo.eval("window.__applied"))
    got = solo.eval(SESSIONS)
    assert got["isSession"] and got["id"] > 0, got
    assert got["seqBefore"] == 1 and got["seqAfter"] == 3, got
    assert got["second"] > got["first"], got
    assert got["retry"] == {"index": got["first"]}, got  # the original outcome
    applied = [c for _, c in solo.eval("window.__applied")[before:]]
    assert applied == [{"op": "put", "key": "once", "value": 1},
                       {"op": "put", "key": "twice", "value": 2}], applied
    assert got["unknown"]["name"] == "SessionExpired", got
    # resumed at a number it may have used before: a refusal cannot rule out an earlier apply
    assert got["unknown"]["mayHaveCommitted"] is True, got
    assert got["invalid"]["name"] == "InvalidCommand", got
    assert got["badArgs"] == "TypeError" and got["badTimeout"] == "TypeError", got


REFRESH_FROM_SNAPSHOT = """async (room) => {
  const m = await import("/webraft.js");
  const options = {room, members: ["keeper"], snapshotEntries: 10, snapshotTail: 0};
  const untilLeader = async (raft) => {
    for (let k = 0; k < 200 && !raft.isLeader; k++) await new Promise((r) => setTimeout(r, 50));
  };
  // A node whose log is compacted: its state (a sum) now lives only in its snapshot.
  let sum = 0;
  const first = await m.connect({...options, listeners: {
    apply: (entry, index, cb) => { sum += entry.command.n; cb(); },
    snapshot: () => ({sum}),
  }});
  await untilLeader(first);
  for (let n = 1; n <= 25; n++) await first.propose({n});
  const compacted = first.snapshot.index;
  await first.close();
  // The same node again, in a page that kept nothing: its handlers are given to connect(),
  // so they run before connect() resolves and only see the snapshot they are handed.
  const run = async (refresh) => {
    const seen = {sum: 0, snapshots: [], errors: []};
    const raft = await m.connect({...options, listeners: {
      refresh: (cb, snapshot) => { seen.snapshots.push(snapshot && snapshot.index);
                                   refresh(cb, snapshot, seen); },
      apply: (entry, index, cb) => { seen.sum += entry.command.n; cb(); },
      error: (error) => { seen.errors.push([error.name, error.message]); },
    }});
    await untilLeader(raft);
    await raft.propose({n: 100});
    return {raft, seen};
  };
  const good = await run((cb, snapshot, seen) => {
    if (snapshot === null) { cb(0, 0); return; }
    seen.sum = snapshot.data.sum;
    cb(snapshot.term, snapshot.index);
  });
  await good.raft.close();
  const blind = await m.connect({...options, listeners: {
    refresh: (cb) => cb(0, 0),  // ignores the snapshot it is given
    error: (error) => { window.__blindErrors.push([error.name, error.message]); },
  }});
  window.__blind = blind;
  return {compacted, good: good.seen};
}"""


def test_a_refresh_handler_given_to_connect_loads_the_snapshot_it_is_handed(solo: Tab) -> None:
    """Issue 12: a handler given through connect({listeners}) gets the snapshot as its second
    argument; one that reports an index below the snapshot it must load gets an error event
    that says what to do (and is asked again), instead of the node going on without it."""
    solo.eval("window.__blindErrors = []")
    got = solo.eval(REFRESH_FROM_SNAPSHOT, unique_room("refresh"), timeout=BOOT_TIMEOUT)
    compacted, good = got["compacted"], got["good"]
    assert compacted >= 20, got
    assert good["snapshots"][0] == compacted, got  # the first call already has it
    assert good["sum"] == sum(range(1, 26)) + 100, got
    assert good["errors"] == [], got
    wait_for(lambda: len(solo.eval("window.__blindErrors")) >= 2,
             what="the blind refresh handler to be told twice")
    name, message = solo.eval("window.__blindErrors")[0]
    assert name == "SnapshotNotLoaded", message
    assert f"snapshot at index {compacted}" in message and "cb(snapshot.term" in message
    # Held at the snapshot, though it leads and has committed the entries after it.
    wait_for(lambda: solo.eval("window.__blind.commitIndex") > compacted,
             what="the blind node to commit past its snapshot")
    assert solo.eval("window.__blind.lastApplied") == compacted
    solo.eval("window.__blind.close()")


def readme_snippet() -> str:
    """The README's JavaScript example, as the body of an async function. It imports the
    library from the relay's fixed path; the body imports the same file from the demo's
    path, which this page already loaded (a second URL would be a second module, and a second
    Pyodide in the tab)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From JavaScript", 1)[1]
    code = section.split("```js\n", 1)[1].split("```", 1)[0]
    module = 'import { connect } from "/webraft/webraft.js";'
    assert module in code
    return code.replace(module, 'const { connect } = await import("/webraft.js");')


def test_the_readme_example_runs_as_written(solo: Tab) -> None:
    same = solo.eval("""async () => {
      const [fixed, demo] = await Promise.all(
        ["/webraft/webraft.js", "/webraft.js"].map(async (u) => (await fetch(u)).text()));
      return fixed === demo && fixed.includes("export async function connect");
    }""")
    assert same, "the README's import path serves another file than the page's"
    body = readme_snippet()
    got = solo.eval(f"""async () => {{
      const logged = [];
      const console = {{ log: (text) => logged.push(text) }};
      {body}
      await raft.close();
      return {{count, index, logged}};
    }}""", timeout=BOOT_TIMEOUT)
    assert got["count"] == 1, got
    assert got["logged"] == [f"count is 1 after entry {got['index']}"], got


def test_a_missing_room_is_a_clear_error(solo: Tab) -> None:
    got = solo.eval("""async () => {
      const m = await import("/webraft.js");
      const out = [];
      for (const options of [{}, {room: ""}, {members: ["a"]}]) {
        try { await m.createNode(options); out.push(null); }
        catch (e) { out.push([e.name, e.message, e instanceof m.WebRaftError]); }
      }
      try { await m.connect(); out.push(null); } catch (e) { out.push([e.name, e.message]); }
      return out;
    }""")
    assert all(o is not None and o[0] == "ValueError" and "needs a room" in o[1] for o in got), got


def test_a_ports_url_that_is_no_url_is_a_clear_error(solo: Tab) -> None:
    got = solo.eval("""async () => {
      const m = await import("/webraft.js");
      try { await m.createNode({room: "r", portsURL: "http://[no"}); return null; }
      catch (e) { return [e.name, e.message, e instanceof m.WebRaftError]; }
    }""")
    assert got is not None and got[0] == "ValueError" and got[2] is True, got
    assert got[1].startswith('portsURL "http://[no" is not a URL'), got

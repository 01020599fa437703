"""Browser benchmark: three Chromium tabs (Pyodide) in one room through the relay.

Prints figures, never pass/fail:

* commits/s with many proposals in flight: ``--burst`` proposals fired at once with
  ``Promise.all`` from the leader tab, then from a follower tab (forwarded to the leader);
* commit latency one at a time: ``--sequential`` proposals awaited one after the other, timed
  in the page with ``performance.now()`` (p50, p99), measured before the bursts (it grows with
  the amount of data in localStorage);
* time from opening a tab to being a member that has caught up, split into Pyodide's boot,
  webraft's own start (wheel, slot claim, storage: ``WebRaft.timings``) and catching up with
  ``--prefill`` entries committed before it opened;
* with ``--startup N``: N rounds of three tabs opened together in a new room (automatic
  membership): Pyodide's boot, our own part after it (``webraft.js``'s ``timings``: the
  import of the wheel, then the node: slot claim and storage) and when the last of the three
  became a voter, against the slowest boot;
* with ``--in-flight 1:500,100:5000,10000``: commits/s from the leader tab keeping that many
  proposals in flight (a closed loop over the number after the colon, by default 2,000 or the
  in-flight count if larger; each proposal a 10-byte string as in ``bench/cluster_compare.py``;
  with 1 in flight also the sequential latency). The bridge hands at most 1,000 of a tab's
  proposals to the node at a time (``MAX_IN_FLIGHT`` in ``webraft/browser/bridge.py``); the
  rest wait in the bridge, so 10,000 in flight means 10,000 submitted at once;
* with ``--compare DIR``: instead of all the above, the one-at-a-time latency of this tree's
  wheel and of the wheel in ``DIR`` (another tree's ``dist/``) side by side: two rooms of three
  tabs in one browser and one relay, one per wheel, their tabs opened alternately, taking turns
  for ``--rounds`` rounds of 50 proposals from the leader and 50 from a follower (which room
  goes first alternates too). On a shared 2-core machine two runs of one tree differ by
  1-3 ms, more than most changes of ours: only runs side by side tell them apart;
* with ``--cpu`` (Linux): for the one-at-a-time latency, from the leader and from the
  follower (and in ``--compare``, per wheel and proposer), the CPU time per commit that all
  of this run's Chromium processes and the relay spent (``/proc``, see ``bench/_proc_cpu.py``):
  in all, by kind of process, and the three busiest renderers (the proposing leader's is
  normally the largest), with what those renderers spent per second idle for 2 s before
  (and what that comes to per commit: the tabs' timers, and any work left from their boot).
  On 2 cores a sequential commit is bound by this sum, not by the proposing tab alone. In
  ``--compare`` both rooms share the browser, so each turn is measured on its own and the
  turns are summed per wheel; the other room's tabs are idle meanwhile (their little CPU
  shows as "other renderers", and in the browser process's share);
* with ``--steps``: for the one-at-a-time latency from the leader, the wall time per commit
  of each step of a tab's path (a relay frame in, the node's step, its Ready round, the
  save and its ``setItem``, the answer and its ``WebSocket.send``, applying; the proposal in
  the leader), in the leader and in a follower: each step's method is wrapped in
  ``time.perf_counter`` calls in every tab (a few µs each), and nested steps count in their
  callers too;
* with ``--failovers N``: N samples each of closing the leader tab gracefully (its pagehide
  handler hands leadership over) and of crashing its renderer (CDP ``Page.crash``): the time
  from the close to the first commit of a proposal a surviving tab sends every 10 ms. The
  closed tab is then reopened in its browser context (same localStorage: same member).

The tabs use ``webraft.js``'s ``connect()`` directly with an apply handler that only calls
``cb()`` and a proposal timeout of 120 s (at ~1,000 commits/s the last of 5,000 proposals
fired at once would exceed the default 5 s), so the figures are webraft's (Raft, localStorage
persistence, the Pyodide bridge and the relay), not the demo's key-value store. ``--profile``
adds a cProfile of the leader tab's Python (by own and by cumulative time) during one burst of
the smallest size from the leader; the profiler slows Python down about twofold.

    .venv/bin/python bench/browser_bench.py [--burst 1000,5000] [--sequential 300] [--runs 3]
        [--in-flight 1:500,100:5000,10000] [--failovers N]
        [--heartbeat-timeout MS] [--profile] [--dist DIR] [--compare DIR [--rounds N]]
        [--cpu] [--steps]

``measure(args)`` returns the figures for ``bench/suite.py``.

Needs the browser bundle (``bash .ci/build-browser``) and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import percentile  # bench/ is on the path when a script of it runs
from _proc_cpu import Meter, ProcUnavailable, Usage, require_proc
from _proc_cpu import rows as cpu_rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from browser_support import (  # found through the path above
    ROOT,
    Relay,
    Tab,
    blank_page,
    launch_chromium,
    unique_room,
    wait_for,
)

MEMBERS = ["n1", "n2", "n3"]
TIMEOUT = 300.0  # seconds: the bound on any single measurement
LEADER_TIMEOUT = 60.0
PROBE_LIMIT = 30.0  # seconds: a failover sample that takes longer counts as failed

CONNECT = """async ([room, members, target, options]) => {
  const t0 = performance.now();
  const m = await import("/webraft.js");
  const raft = await m.connect({room, members, ...options,
                                listeners: {apply: (e, i, cb) => cb()}});
  window.webraft = raft;
  const tMember = performance.now();
  // Caught up: everything committed before this tab opened is applied here.
  await new Promise((resolve) => {
    const check = () => (raft.lastApplied >= target ? resolve() : setTimeout(check, 2));
    check();
  });
  const tCaughtUp = performance.now();
  return {address: raft.address, pyodideBoot: raft.timings.pyodideBoot,
          webraftReady: raft.timings.webraftReady, caughtUp: tCaughtUp - tMember,
          total: tCaughtUp - t0, sinceNavigation: tCaughtUp};
}"""

STARTUP = """async (room) => {
  const m = await import("/webraft.js");
  const raft = await m.connect({room, listeners: {apply: (e, i, cb) => cb()}});
  window.webraft = raft;
  while (!raft.members.includes(raft.address)) await new Promise((r) => setTimeout(r, 5));
  return {...m.timings, voter: performance.now(), origin: performance.timeOrigin};
}"""

BURST = """async (n) => {
  // Also watch this tab's event loop: the longest gap between 5 ms timer ticks while it runs
  // (what the node's own timers, its heartbeats among them, suffer), and the longest task.
  let stall = 0, prev = performance.now(), task = 0;
  const watch = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - prev);
    prev = now;
  }, 5);
  const tasks = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) task = Math.max(task, entry.duration);
  });
  tasks.observe({type: "longtask"});  // tasks over 50 ms
  const t0 = performance.now();
  const outcomes = await Promise.allSettled(Array.from({length: n},
      (_, k) => webraft.propose({op: "put", key: "bench", value: k})));
  const ms = performance.now() - t0;
  clearInterval(watch);
  await new Promise((resolve) => setTimeout(resolve, 20));  // long tasks are reported late
  tasks.disconnect();
  let last = 0, ok = 0;
  const failed = {};
  for (const o of outcomes) {
    if (o.status === "fulfilled") { ok += 1; last = Math.max(last, o.value); }
    else failed[o.reason.name] = (failed[o.reason.name] ?? 0) + 1;
  }
  return {ms, last, ok, failed, stall, task};
}"""

SEQUENTIAL = """async (n) => {
  const times = [];
  let last = 0;
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    last = await webraft.propose({op: "put", key: "seq", value: k});
    times.push(performance.now() - t0);
  }
  return {times, last};
}"""

CLOSED_LOOP = """async ([inFlight, total]) => {
  // Keep inFlight proposals outstanding until total have an outcome; each is a 10-byte
  // string. Every proposal's latency is kept (with 1 in flight: the sequential latency).
  let issued = 0, ok = 0, last = 0;
  const failed = {}, times = [];
  const worker = async () => {
    while (issued < total) {
      const k = issued++;
      const t = performance.now();
      try {
        last = Math.max(last, await webraft.propose(`inc:${String(k % 1e6).padStart(6, "0")}`));
        ok += 1;
        times.push(performance.now() - t);
      } catch (e) {
        failed[e.name] = (failed[e.name] ?? 0) + 1;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({length: Math.min(inFlight, total)}, worker));
  return {ms: performance.now() - t0, ok, last, failed, times};
}"""

PROBE = """async (limitMs) => {
  // Failover probe: propose every 10 ms until one commits; the wall clock (Date.now(), the
  // clock Python's time.time() reads) of that commit, or null after limitMs.
  const end = Date.now() + limitMs;
  return await new Promise((resolve) => {
    let done = false;
    const fire = () => {
      if (done) return;
      if (Date.now() > end) { done = true; resolve(null); return; }
      webraft.propose("probe:0000").then(() => {
        if (!done) { done = true; resolve(Date.now()); }
      }, () => {});
      setTimeout(fire, 10);
    };
    fire();
  });
}"""

#: (module, class, method, label): the steps ``--steps`` times in each tab, outermost first.
STEPS = (
    ("webraft.browser.transport", "BrowserConnection", "_on_message", "relay frame in (all)"),
    ("webraft.runtime.interface", "RaftInterface", "_step", "  the node's step"),
    ("webraft.runtime.driver", "Driver", "_drive", "  Ready rounds"),
    ("webraft.runtime.driver", "Driver", "_handle_ready", "    persist and send"),
    ("webraft.storage.localstorage", "LocalStorage", "save", "      save"),
    ("webraft.storage.localstorage", "LocalStorage", "_current", "        meta checked"),
    ("webraft.storage.localstorage", "LocalStorage", "_write", "        setItem"),
    ("webraft.runtime.peers", "TransportPeer", "write", "      messages queued"),
    ("webraft.browser.transport", "BrowserConnection", "_flush", "    WebSocket.send"),
    ("webraft.runtime.applier", "Applier", "take", "    committed entries taken"),
    ("webraft.runtime.applier", "Applier", "pump", "    applied"),
    ("webraft.browser.bridge", "JsNode", "propose_many", "proposals in (all)"),
)
STEPS_ON = """
import importlib as _il, json as _json, time as _time
__bench_steps = {}
def _bench_wrap(module, cls, name, label):
    owner = getattr(_il.import_module(module), cls)
    inner, clock = getattr(owner, name), _time.perf_counter
    __bench_steps[label] = spent = [0.0, 0]
    def timed(*args, **kwargs):
        began = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += clock() - began
            spent[1] += 1
    setattr(owner, name, timed)
def _bench_steps_take():
    out = _json.dumps(__bench_steps)
    for spent in __bench_steps.values():
        spent[:] = [0.0, 0]
    return out
for _step in _json.loads(%r):
    _bench_wrap(*_step)
"""
STEPS_READ = """() => webraft.pyodide.runPython("_bench_steps_take()")"""

PROFILE_ON = """() => webraft.pyodide.runPython(
  "import cProfile as _cp; __bench_prof = _cp.Profile(); __bench_prof.enable()")"""
PROFILE_OFF = """() => webraft.pyodide.runPython(`
__bench_prof.disable()
import io as _io, pstats as _ps
_s = _io.StringIO()
_st = _ps.Stats(__bench_prof, stream=_s)
_st.sort_stats("tottime").print_stats(25)
_st.sort_stats("cumulative").print_stats(25)
_s.getvalue()
`)"""


def open_blank(context: Any, base: str, name: str) -> Tab:
    """A tab named ``name`` on a :func:`~browser_support.blank_page`: webraft.js runs in it."""
    return Tab(blank_page(context, base), name)


def crash(browser: Any, page: Any) -> None:
    """Crash the page's renderer (CDP ``Page.crash``) without waiting for an answer: the
    answer never comes, and a page session's ``send`` would wait for it forever. The message
    goes through the browser session's ``Target.sendMessageToTarget``, which returns at once."""
    session = page.context.new_cdp_session(page)
    target = session.send("Target.getTargetInfo")["targetInfo"]["targetId"]
    session.detach()
    browser_session = browser.new_browser_cdp_session()
    attached = browser_session.send("Target.attachToTarget",
                                    {"targetId": target, "flatten": False})
    browser_session.send("Target.sendMessageToTarget", {
        "sessionId": attached["sessionId"],
        "message": json.dumps({"id": 1, "method": "Page.crash"})})


def start(tab: Tab, room: str, target: int, options: dict[str, Any]) -> Tab:
    """Begin connect() in the tab without waiting for it (see :func:`finish`)."""
    tab.page.evaluate("([src, args]) => { window.__boot = (0, eval)(`(${src})`)(args); }",
                      [CONNECT, [room, MEMBERS, target, options]])
    return tab


def finish(tab: Tab) -> dict[str, Any]:
    result = tab.eval("() => window.__boot", timeout=TIMEOUT)
    tab.name = result["address"]
    return result


def leader_of(tabs: list[Tab]) -> Tab:
    def agreed() -> Tab | None:
        got = [t.eval("[webraft.state, webraft.leader, webraft.term]") for t in tabs]
        leaders = [t for t, g in zip(tabs, got, strict=True) if g[0] == "leader"]
        if len(leaders) == 1 and {g[1] for g in got} == {leaders[0].name}:
            return leaders[0]
        return None

    return wait_for(agreed, LEADER_TIMEOUT, what="one agreed leader",
                    describe=lambda: [t.eval("[webraft.address, webraft.state, webraft.term, "
                                             "webraft.leader, webraft.commitIndex]")
                                      for t in tabs])


def applied_everywhere(tabs: list[Tab], index: int) -> None:
    wait_for(lambda: all(t.eval("webraft.lastApplied") >= index for t in tabs), TIMEOUT,
             what=f"index {index} applied everywhere")


def routed(relay: Relay) -> tuple[int, int]:
    stats = relay.stats()
    return stats["messages_routed"], stats["bytes_routed"]


class Bench:
    def __init__(self, args: argparse.Namespace, relay: Relay, browser: Any) -> None:
        self.args = args
        self.relay = relay
        self.browser = browser
        self.rows: list[tuple[str, str]] = []
        self.figures: dict[str, Any] = {}  # what measure() returns (the suite's column)
        self.incidents: dict[str, str] = {}  # figure key -> what went wrong while measuring
        self.tabs: list[Tab] = []
        self.shared: Any = None  # the one browser context of --broadcast
        self.room = ""
        self.profile = ""
        self.options: dict[str, Any] = {"proposalTimeout": 120_000}
        if args.heartbeat_timeout:
            self.options["heartbeatTimeout"] = args.heartbeat_timeout
        self.hb = args.heartbeat_timeout or 200
        self.meter = Meter(relay.proc.pid, on=args.cpu)

    def open(self, name: str) -> Tab:
        """A tab in a context of its own, so that tabs talk only through the relay (a
        BroadcastChannel reaches the tabs of one context); with ``--broadcast`` all tabs
        share one context, and talk past the relay: over MessagePorts traded through the
        port exchange, or their BroadcastChannels without it (they share its localStorage
        quota, ~5 M characters, too: the browser defaults compact the log every 1,000
        entries, so three nodes fit)."""
        if not self.args.broadcast:
            return open_blank(self.browser.new_context(), self.relay.url, name)
        if self.shared is None:
            self.shared = self.browser.new_context()
        return open_blank(self.shared, self.relay.url, name)

    def storage(self) -> None:
        used = [t.eval("[webraft.address, webraft.status().storageChars, webraft.commitIndex]")
                for t in self.tabs]
        self.row("localStorage used at the end", ", ".join(
            f"{a}: {c:,} chars for {n:,} entries" for a, c, n in sorted(used)))

    def row(self, name: str, value: str) -> None:
        self.rows.append((name, value))

    def join(self) -> None:
        """Two tabs boot at once; after a prefill a third opens and catches up."""
        room = self.room = unique_room("bench")
        first = [start(self.open(f"tab{i}"), room, 0, self.options) for i in range(2)]
        for boot in map(finish, first):
            self.row(f"boot {boot['address']} (2 tabs at once)",
                     f"Pyodide {boot['pyodideBoot']:.0f} ms + webraft "
                     f"{boot['webraftReady']:.0f} ms")
        self.tabs = first
        done = leader_of(first).eval(BURST, self.args.prefill, timeout=TIMEOUT)
        opened = time.monotonic()
        third = self.open("tab2")
        page_load = (time.monotonic() - opened) * 1000
        join = finish(start(third, room, done["last"], self.options))
        self.tabs = [*first, third]
        self.row(f"join {join['address']}: page load", f"{page_load:.0f} ms")
        self.row("  Pyodide boot", f"{join['pyodideBoot']:.0f} ms")
        self.row("  webraft ready (wheel, slot claim, storage)",
                 f"{join['webraftReady']:.0f} ms")
        self.row(f"  caught up with {done['last']} log entries", f"{join['caughtUp']:.0f} ms")
        self.row("  open -> member and caught up", f"{page_load + join['total']:.0f} ms")

    def startup(self) -> None:
        """Three tabs opened together, ``--startup`` times; medians over the rounds."""
        rounds = []
        for _ in range(self.args.startup):
            room = unique_room("startup")
            context = self.browser.new_context()
            try:
                tabs = [open_blank(context, self.relay.url, f"s{i}") for i in range(3)]
                for tab in tabs:
                    tab.page.evaluate(
                        "([src, room]) => { window.__up = (0, eval)(`(${src})`)(room); }",
                        [STARTUP, room])
                got = [tab.eval("() => window.__up", timeout=TIMEOUT) for tab in tabs]
            finally:
                context.close()
            first = min(g["origin"] + g["start"] for g in got)
            rounds.append({
                "boot": max(g["pyodideReady"] - g["start"] for g in got),
                "import": statistics.median(g["webraftImported"] - g["pyodideReady"]
                                            for g in got),
                "node": statistics.median(g["nodeCreated"] - g["webraftImported"] for g in got),
                "members": max(g["origin"] + g["voter"] for g in got) - first,
            })
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        self.row(f"start-up, 3 tabs together (median of {len(rounds)})",
                 f"Pyodide boot {med['boot']:.0f} ms (slowest tab)")
        self.row("  ours: import webraft", f"{med['import']:.0f} ms")
        self.row("  ours: node (slot claim, storage)", f"{med['node']:.0f} ms")
        self.row("  all three voters", f"{med['members']:.0f} ms after the first start, "
                 f"{med['members'] - med['boot']:.0f} ms past the slowest boot")
        self.figures["startup"] = med

    def bursts(self) -> None:
        leader_of(self.tabs).eval(BURST, 500, timeout=TIMEOUT)  # warm-up
        for size in self.args.burst:
            for who in ("leader", "follower"):
                rates, stalls, tasks = [], [], []
                failures: dict[str, int] = {}
                before = routed(self.relay)
                for _ in range(self.args.runs):
                    leader = leader_of(self.tabs)
                    tab = leader if who == "leader" else next(
                        t for t in self.tabs if t is not leader)
                    got = tab.eval(BURST, size, timeout=TIMEOUT)
                    rates.append(got["ok"] / (got["ms"] / 1000))
                    stalls.append(got["stall"])
                    tasks.append(got["task"])
                    for name, count in got["failed"].items():
                        failures[name] = failures.get(name, 0) + count
                    applied_everywhere(self.tabs, got["last"])
                after = routed(self.relay)
                msgs = (after[0] - before[0]) / (self.args.runs * size)
                kib = (after[1] - before[1]) / (self.args.runs * size) / 1024
                self.row(f"commits/s, {size} in flight from the {who}",
                         f"{statistics.median(rates):,.0f} (runs: "
                         f"{', '.join(f'{r:,.0f}' for r in rates)})")
                self.row("  failed proposals", ", ".join(
                    f"{n} {name}" for name, n in sorted(failures.items())) or "none")
                self.row("  longest event-loop stall in the proposing tab",
                         f"{max(stalls):.0f} ms between timer ticks, longest task "
                         f"{max(tasks):.0f} ms (heartbeat timeout: {self.hb} ms)")
                self.row("  relay traffic per proposal", f"{msgs:.3f} messages, {kib:.2f} KiB")

    def latency(self) -> None:
        for who in ("leader", "follower"):
            leader = leader_of(self.tabs)
            tab = leader if who == "leader" else next(t for t in self.tabs if t is not leader)
            idle = self.meter.idle()
            got, used = self.meter.during(tab.eval, SEQUENTIAL, self.args.sequential,
                                          timeout=TIMEOUT)
            times = got["times"]
            self.row(f"latency, {self.args.sequential} one at a time from the {who}",
                     f"p50 {percentile(times, 0.5):.2f} ms, "
                     f"p99 {percentile(times, 0.99):.2f} ms, "
                     f"mean {statistics.fmean(times):.2f} ms")
            if self.args.cpu:
                self.rows += cpu_rows(used, len(times), idle)
            if self.args.steps and who == "leader":
                self.step_rows(tab, len(times))

    def install_steps(self) -> None:
        """``--steps``: wrap each step's method in every tab (their counts start at zero)."""
        code = STEPS_ON % json.dumps(STEPS)
        for tab in self.tabs:
            tab.eval("(code) => webraft.pyodide.runPython(code)", code)

    def step_rows(self, leader: Tab, commits: int) -> None:
        """The steps' wall time per commit in ``leader`` and in one follower, since the last
        read; steps that did not run are left out. The follower is the one whose node took
        the most messages, by whichever link: the one the commits waited for (a tab leader's
        other follower is lazy, and gets its appends batched)."""
        spent_in = {tab.name: {label: (sec, calls) for label, (sec, calls)
                               in json.loads(tab.eval(STEPS_READ)).items()}
                    for tab in self.tabs}
        follower = max((t for t in self.tabs if t is not leader), key=lambda t: spent_in[
            t.name].get(STEPS[1][3], (0.0, 0))[1])
        for name, tab in (("leader", leader), ("a follower", follower)):
            spent = spent_in[tab.name]
            self.row(f"  steps in {name}, ms per commit (calls per commit)", "")
            for *_, label in STEPS:
                sec, calls = spent.get(label, (0.0, 0))
                if calls:
                    self.row(f"    {label}", f"{sec * 1000 / commits:.3f} "
                             f"({calls / commits:.2f})")

    def closed_loops(self) -> None:
        """Commits/s from the leader keeping each of ``--in-flight`` outstanding; with 1 in
        flight also the sequential latency (p50, p99)."""
        for in_flight, total in self.args.in_flight:
            leader = leader_of(self.tabs)
            got = leader.eval(CLOSED_LOOP, [in_flight, total], timeout=TIMEOUT)
            rate = got["ok"] / (got["ms"] / 1000)
            self.figures[f"rate{in_flight}"] = rate
            failed = ", ".join(f"{n} {name}" for name, n in sorted(got["failed"].items()))
            if failed:
                self.incidents[f"rate{in_flight}"] = f"{in_flight:,} in flight: {failed} failed"
            self.row(f"commits/s, {in_flight:,} in flight from the leader ({total:,} proposals)",
                     f"{rate:,.0f}" + (f" ({failed} failed)" if failed else ""))
            if in_flight == 1 and got["times"]:
                times = [t / 1000 for t in got["times"]]
                self.figures["p50"] = percentile(times, 0.50)
                self.figures["p99"] = percentile(times, 0.99)
                self.row("  sequential latency (the same proposals)",
                         f"p50 {self.figures['p50'] * 1e3:.2f} ms, "
                         f"p99 {self.figures['p99'] * 1e3:.2f} ms")
            applied_everywhere(self.tabs, got["last"])

    def failovers(self) -> None:
        """``--failovers`` samples of closing the leader's tab gracefully, then as many of
        crashing it; each time the tab is reopened as the same member before the next."""
        for how in ("close", "crash"):
            samples: list[float | None] = []
            self.figures["tab_" + how] = samples  # kept if a later sample stops the phase
            stalls: list[int] = []
            for i in range(self.args.failovers):
                print(f"tab failover ({how}) {i + 1}/{self.args.failovers} ...",
                      file=sys.stderr, flush=True)
                samples.append(self.failover(how, stalls))
            self.row(f"failover after {'closing' if how == 'close' else 'crashing'} the leader "
                     "tab (ms)", ", ".join("fail" if x is None else f"{x * 1e3:.0f}"
                                           for x in samples))
            self.row("  stalls the surviving tabs detected meanwhile",
                     ", ".join(map(str, stalls)))

    def failover(self, how: str, stalls: list[int]) -> float | None:
        """One sample (seconds, None if nothing committed); appends to ``stalls`` how many
        stalls (``BrowserRaft.stalled``) the surviving tabs detected until the commit."""
        leader = leader_of(self.tabs)
        survivor = next(t for t in self.tabs if t is not leader)
        context = leader.page.context
        self.tabs.remove(leader)
        stalled = sum(t.eval("webraft.status().stalls") for t in self.tabs)
        began = time.time()
        if how == "close":  # as a user closing it: pagehide runs, and hands leadership over
            leader.close(graceful=True)
        else:
            crash(self.browser, leader.page)
        committed = survivor.eval(PROBE, PROBE_LIMIT * 1000, timeout=PROBE_LIMIT + 10)
        stalls.append(sum(t.eval("webraft.status().stalls") for t in self.tabs) - stalled)
        if how == "crash":
            leader.close()
        # Reopen it in its own context: its localStorage brings the same member back.
        target = survivor.eval("webraft.commitIndex")
        reopened = start(open_blank(context, self.relay.url, leader.name), self.room, target,
                         self.options)
        finish(reopened)
        self.tabs.append(reopened)
        leader_of(self.tabs)
        return None if committed is None else committed / 1000 - began

    def profile_leader(self) -> None:
        leader = leader_of(self.tabs)
        leader.eval(PROFILE_ON)
        got = leader.eval(BURST, min(self.args.burst), timeout=TIMEOUT)
        self.profile = (f"{got['ok']} of {min(self.args.burst)} committed at "
                        f"{got['ok'] / (got['ms'] / 1000):,.0f}/s while profiled\n"
                        + leader.eval(PROFILE_OFF))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--burst", type=_ints, default=[1000, 5000],
                    help="proposals in flight at once (comma-separated; empty: none)")
    ap.add_argument("--sequential", type=int, default=300,
                    help="proposals one at a time (0: skip)")
    ap.add_argument("--prefill", type=int, default=2000,
                    help="entries the third tab must catch up with")
    ap.add_argument("--runs", type=int, default=3, help="bursts per proposer (median shown)")
    ap.add_argument("--in-flight", type=_loops, default=[],
                    help="closed loops from the leader keeping N in flight, each N or "
                    "N:PROPOSALS, comma-separated (e.g. 1:500,100:5000,10000)")
    ap.add_argument("--startup", type=int, default=0, metavar="N",
                    help="rounds of three tabs opened together (start-up split)")
    ap.add_argument("--failovers", type=int, default=0,
                    help="samples each of closing and of crashing the leader tab")
    ap.add_argument("--heartbeat-timeout", type=int, metavar="MS",
                    help="followers' leader-silence timeout (default: webraft's, 200 ms)")
    ap.add_argument("--profile", action="store_true",
                    help="print a cProfile of the leader's Python during one burst")
    ap.add_argument("--dist", help="serve this wheel directory instead of dist/")
    ap.add_argument("--compare", metavar="DIR",
                    help="only the sequential latency, side by side with the wheel in DIR "
                    "(another tree's dist/), in two rooms of one browser; --rounds rounds")
    ap.add_argument("--rounds", type=int, default=6,
                    help="with --compare: turns of 50 proposals each, per room and proposer")
    ap.add_argument("--cpu", action="store_true",
                    help="with the one-at-a-time latency (and --compare): CPU ms per commit "
                    "of Chromium's processes and the relay, from Linux's /proc")
    ap.add_argument("--steps", action="store_true",
                    help="with the one-at-a-time latency from the leader: the wall time per "
                    "commit of each step of the leader's and a follower's path")
    ap.add_argument("--broadcast", action="store_true",
                    help="the tabs share one browser context, so they talk past the relay, "
                    "over MessagePorts (BroadcastChannel for a wheel without them; default: "
                    "a context each, so only through the relay)")
    return ap


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _loops(text: str) -> list[tuple[int, int]]:
    """``1:500,100`` -> [(1, 500), (100, 2000)]: in flight, proposals (default 2,000 or the
    in-flight count, whichever is larger)."""
    loops = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        n, _, total = item.partition(":")
        loops.append((int(n), int(total) if total else max(int(n), 2000)))
    return loops


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the phases ``args`` asks for in one browser; returns ``figures`` (``rate<N>`` for
    each of ``--in-flight``, ``p50``/``p99`` in seconds when 1 is among them, ``tab_close``
    and ``tab_crash`` failover samples in seconds), the printable ``rows``, the ``profile``
    text, the ``relay`` URL, ``incidents`` (figure key -> what went wrong while measuring
    it) and ``failed`` (the phase that stopped the run, and why)."""
    from playwright.sync_api import sync_playwright

    relay = Relay(*(["--dist", args.dist] if args.dist else []), log_level="WARNING")
    failed = None
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            bench = Bench(args, relay, browser)
            phases = [bench.join]
            if args.startup:
                phases.append(bench.startup)
            if args.sequential:
                if args.steps:
                    phases.append(bench.install_steps)
                phases.append(bench.latency)
            if args.in_flight:
                phases.append(bench.closed_loops)
            if args.burst:
                phases.append(bench.bursts)
            if args.failovers:
                phases.append(bench.failovers)
            phases.append(bench.storage)
            if args.profile:
                phases.append(bench.profile_leader)
            for phase in phases:
                try:
                    phase()
                except Exception as exc:  # report what was measured, and why it stopped
                    failed = f"{phase.__name__}: {exc}"
                    break
            browser.close()
    finally:
        relay.stop()
    return {"figures": bench.figures, "rows": bench.rows, "profile": bench.profile,
            "relay": relay.url, "incidents": bench.incidents, "failed": failed}


COMPARE_CHUNK = 50  # proposals per turn of a room in --compare


def compare(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--compare``: this tree's wheel ("this") and ``args.compare``'s ("other"), side by
    side (see the module doc); returns the printable rows."""
    from playwright.sync_api import sync_playwright

    wheels = {"this": "dist/", "other": "compare-dist/"}
    with tempfile.TemporaryDirectory() as static:
        # The relay serves the page's module from --static: ours (and its port exchange),
        # and the other wheel next to it. The default wheel route (/dist/) stays this tree's.
        for name in ("webraft.js", "webraft-ports.js"):
            shutil.copy(ROOT / "browser" / name, static)
        shutil.copytree(args.compare, Path(static) / wheels["other"])
        relay = Relay("--static", static, *(["--dist", args.dist] if args.dist else []),
                      log_level="WARNING")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                turns = _side_by_side(args, browser, relay.url, wheels,
                                      Meter(relay.proc.pid, on=args.cpu))
                browser.close()
        finally:
            relay.stop()
    rows = []
    for (wheel, who), got in turns.times.items():
        rows.append((f"{wheel} wheel, {len(got)} one at a time from the {who}",
                     f"p50 {percentile(got, 0.5):.2f} ms, p99 {percentile(got, 0.99):.2f} ms, "
                     f"mean {statistics.fmean(got):.2f} ms"))
        if args.cpu:
            rows += cpu_rows(turns.cpu[(wheel, who)], len(got), turns.idle)
    return rows


@dataclass
class Turns:
    """What ``--compare`` measured per (wheel, proposer): latencies (ms) and, with
    ``--cpu``, the CPU of its turns summed, and of the 2 s before the rounds (all idle)."""

    times: dict[tuple[str, str], list[float]]
    cpu: dict[tuple[str, str], Usage]
    idle: Usage


def _side_by_side(args: argparse.Namespace, browser: Any, url: str,
                  wheels: dict[str, str], meter: Meter) -> Turns:
    rooms = {wheel: unique_room(f"compare-{wheel}") for wheel in wheels}
    shared = {wheel: browser.new_context() for wheel in wheels} if args.broadcast else {}
    tabs: dict[str, list[Tab]] = {wheel: [] for wheel in wheels}
    for i in range(len(MEMBERS)):  # alternately, so that neither room is opened first
        for wheel, dist in wheels.items():
            context = shared[wheel] if args.broadcast else browser.new_context()
            options = {"proposalTimeout": 120_000, "distURL": f"/{dist}"}
            tabs[wheel].append(start(open_blank(context, url, f"{wheel}{i}"), rooms[wheel],
                                     0, options))
    for room in tabs.values():
        for tab in room:
            finish(tab)
    keys = [(wheel, who) for wheel in wheels for who in ("leader", "follower")]
    turns = Turns({key: [] for key in keys}, {key: Usage() for key in keys}, Usage())
    for wheel in wheels:  # warm-up
        leader_of(tabs[wheel]).eval(SEQUENTIAL, COMPARE_CHUNK, timeout=TIMEOUT)
    turns.idle = meter.idle()
    order = list(wheels)
    for k in range(args.rounds):
        for wheel in order if k % 2 == 0 else order[::-1]:
            leader = leader_of(tabs[wheel])
            follower = next(t for t in tabs[wheel] if t is not leader)
            for who, tab in (("leader", leader), ("follower", follower)):
                got, used = meter.during(tab.eval, SEQUENTIAL, COMPARE_CHUNK, timeout=TIMEOUT)
                turns.times[(wheel, who)] += got["times"]
                turns.cpu[(wheel, who)] += used
    return turns


def main() -> int:
    ap = parser()
    args = ap.parse_args()
    if args.compare and not (Path(args.compare) / "manifest.json").is_file():
        ap.error(f"--compare {args.compare}: no manifest.json there (another tree's dist/)")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.steps and (args.compare or not args.sequential):
        ap.error("--steps times the one-at-a-time latency: not with --compare or "
                 "--sequential 0")
    if args.cpu:
        try:
            require_proc()
        except ProcUnavailable as exc:
            ap.error(f"--cpu: {exc}")
    if args.compare:
        rows = compare(args)
        links = "in one browser" if args.broadcast else "through the relay"
        print(f"webraft in two rooms of 3 Chromium tabs {links}: this tree's wheel and "
              f"{args.compare}'s, side by side")
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"  {name:<{width}}  {value}")
        return 0
    result = measure(args)
    links = "in one browser" if args.broadcast else "through the relay"
    print(f"webraft in 3 Chromium tabs {links} ({result['relay']}"
          f"{', wheel from ' + args.dist if args.dist else ''})")
    width = max((len(name) for name, _ in result["rows"]), default=0)
    for name, value in result["rows"]:
        print(f"  {name:<{width}}  {value}")
    if result["profile"]:
        print("\ncProfile of the leader tab's Python during one burst from the leader:")
        print(result["profile"])
    if result["failed"]:
        print(f"\nSTOPPED in {result['failed']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

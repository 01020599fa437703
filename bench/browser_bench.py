"""Browser benchmark: three Chromium tabs (Pyodide) in one room through the relay.

Prints figures, never pass/fail:

* commits/s with many proposals in flight: ``--burst`` proposals fired at once with
  ``Promise.all`` from the leader tab, then from a follower tab (forwarded to the leader);
* commit latency one at a time: ``--sequential`` proposals awaited one after the other, timed
  in the page with ``performance.now()`` (p50, p99), measured before the bursts (it grows with
  the amount of data in localStorage);
* time from opening a tab to being a member that has caught up, split into Pyodide's boot,
  webraft's own start (wheel, slot claim, storage: ``WebRaft.timings``) and catching up with
  ``--prefill`` entries committed before it opened.

The tabs use ``webraft.js``'s ``connect()`` directly with an apply handler that only calls
``cb()`` and a proposal timeout of 120 s (at ~1,000 commits/s the last of 5,000 proposals
fired at once would exceed the default 5 s), so the figures are webraft's (Raft, localStorage
persistence, the Pyodide bridge and the relay), not the demo's key-value store. ``--profile``
adds a cProfile of the leader tab's Python (by own and by cumulative time) during one burst of
the smallest size from the leader; the profiler slows Python down about twofold.

    .venv/bin/python bench/browser_bench.py [--burst 1000,5000] [--sequential 300] [--runs 3]
        [--heartbeat-timeout MS] [--profile] [--dist DIR]

Needs the browser bundle (``bash .ci/build-browser``) and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from browser_support import (  # found through the path above
    CHROMIUM,
    CHROMIUM_ARGS,
    Relay,
    Tab,
    unique_room,
    wait_for,
)

MEMBERS = ["n1", "n2", "n3"]
TIMEOUT = 300.0  # seconds: the bound on any single measurement
LEADER_TIMEOUT = 60.0

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
    """A page of the relay's origin running no script (its 404 text): webraft.js runs in it."""
    tab = Tab(context.new_page(), name)
    tab.page.goto(f"{base}/bench-blank-page")
    return tab


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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def routed(relay: Relay) -> tuple[int, int]:
    stats = relay.stats()
    return stats["messages_routed"], stats["bytes_routed"]


class Bench:
    def __init__(self, args: argparse.Namespace, relay: Relay, browser: Any) -> None:
        self.args = args
        self.relay = relay
        self.browser = browser
        self.rows: list[tuple[str, str]] = []
        self.tabs: list[Tab] = []
        self.profile = ""
        self.options: dict[str, Any] = {"proposalTimeout": 120_000}
        if args.heartbeat_timeout:
            self.options["heartbeatTimeout"] = args.heartbeat_timeout
        self.hb = args.heartbeat_timeout or 200

    def open(self, name: str) -> Tab:
        """A tab in a context of its own: localStorage (~5 M characters) is per origin and
        context, and webraft never compacts its log, so three nodes sharing one would run out
        of quota after ~20,000 small entries and stop the cluster for good."""
        return open_blank(self.browser.new_context(), self.relay.url, name)

    def storage(self) -> None:
        used = [t.eval("[webraft.address, webraft.status().storageChars, webraft.commitIndex]")
                for t in self.tabs]
        self.row("localStorage used at the end", ", ".join(
            f"{a}: {c:,} chars for {n:,} entries" for a, c, n in sorted(used)))

    def row(self, name: str, value: str) -> None:
        self.rows.append((name, value))

    def join(self) -> None:
        """Two tabs boot at once; after a prefill a third opens and catches up."""
        room = unique_room("bench")
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

    def bursts(self) -> None:
        leader_of(self.tabs).eval(BURST, 500, timeout=TIMEOUT)  # warm-up
        for size in self.args.burst:
            for who in ("leader", "follower"):
                rates, stalls, tasks, failures = [], [], [], {}
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
            times = tab.eval(SEQUENTIAL, self.args.sequential, timeout=TIMEOUT)["times"]
            self.row(f"latency, {self.args.sequential} one at a time from the {who}",
                     f"p50 {pct(times, 0.5):.2f} ms, p99 {pct(times, 0.99):.2f} ms, "
                     f"mean {statistics.fmean(times):.2f} ms")

    def profile_leader(self) -> None:
        leader = leader_of(self.tabs)
        leader.eval(PROFILE_ON)
        got = leader.eval(BURST, min(self.args.burst), timeout=TIMEOUT)
        self.profile = (f"{got['ok']} of {min(self.args.burst)} committed at "
                        f"{got['ok'] / (got['ms'] / 1000):,.0f}/s while profiled\n"
                        + leader.eval(PROFILE_OFF))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--burst", type=lambda v: [int(x) for x in v.split(",")],
                    default=[1000, 5000], help="proposals in flight at once (comma-separated)")
    ap.add_argument("--sequential", type=int, default=300, help="proposals one at a time")
    ap.add_argument("--prefill", type=int, default=2000,
                    help="entries the third tab must catch up with")
    ap.add_argument("--runs", type=int, default=3, help="bursts per proposer (median shown)")
    ap.add_argument("--heartbeat-timeout", type=int, metavar="MS",
                    help="followers' leader-silence timeout (default: webraft's, 200 ms)")
    ap.add_argument("--profile", action="store_true",
                    help="print a cProfile of the leader's Python during one burst")
    ap.add_argument("--dist", help="serve this wheel directory instead of dist/")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    relay = Relay(*(["--dist", args.dist] if args.dist else []), log_level="WARNING")
    failed = None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            bench = Bench(args, relay, browser)
            phases = [bench.join, bench.latency, bench.bursts, bench.storage]
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

    print(f"webraft in 3 Chromium tabs through the relay ({relay.url}"
          f"{', wheel from ' + args.dist if args.dist else ''})")
    width = max((len(name) for name, _ in bench.rows), default=0)
    for name, value in bench.rows:
        print(f"  {name:<{width}}  {value}")
    if bench.profile:
        print("\ncProfile of the leader tab's Python during one burst from the leader:")
        print(bench.profile)
    if failed:
        print(f"\nSTOPPED in {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

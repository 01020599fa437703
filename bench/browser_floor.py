"""The browser's own floor for a tab commit: what Chromium and the machine cost, no Pyodide.

Owns the floor benchmark (plain JavaScript in three Chromium tabs, the real relay as a
subprocess). Must not import webraft beyond the wire constants (:mod:`webraft.transport.wire`),
nor load Pyodide or ``webraft.js`` into the tabs (only the port exchange, a SharedWorker that
hands the tabs their ports and then idles): its figures are the platform's alone, the part of
``bench/browser_bench.py``'s sequential commit latency that no change of ours removes.

Measured in each of three set-ups, ``--rounds`` sequential rounds each (p50, p99, mean):

* **relay**: each tab in a browser context of its own, joined to one room of the relay with a
  ``hello``; it sends a ``send`` frame, or a ``batch`` frame when a message goes to two tabs
  (as webraft's tabs do, and as ``browser_bench.py`` without ``--broadcast`` runs them);
* **BroadcastChannel**: the three tabs in one context, a channel per pair of tabs (as
  webraft's BroadcastChannel links without their port exchange);
* **MessagePort**: the three tabs in one context, a ``MessagePort`` per pair of tabs, handed
  over by the relay's ``/webraft/webraft-ports.js`` (as webraft's links with it, and
  ``browser_bench.py --broadcast``).

and in each, these rounds, each timed by the leader tab A with ``performance.now()``:

* **ping-pong**: A sends a ~150-character message to B, which answers;
* **commit pattern**: what a Raft commit does, without Raft. A writes a ``--value-chars``
  localStorage value (its meta), sends the message to B and C; each of B and C writes its own
  value and answers; A settles at the first answer and writes its commit index. The round
  after starts at once (the second answer arrives during it, as in Raft);
* **commit pattern without storage**: the same with no ``setItem``, so the storage share
  shows.

The phases take turns in ``--blocks`` blocks, so a change of the machine's load reaches them
alike. In the commit pattern each ``setItem`` and A's sending are timed too; tight loops of
``setItem`` and of sends (that ask for no answer) in A show what a call costs when nothing
waits on it. ``performance.now()`` steps by 100 µs in these pages, as in webraft's (pages that
are not cross-origin isolated; Chromium jitters the steps, so means stay unbiased): a p50 of a
single call is coarse, its mean is not. Isolating the page through Playwright's routing would
make its requests to 127.0.0.1 fail Chromium's local-network-access checks.

With ``--cpu`` (Linux) it also prints, for the commit pattern in each set-up, the CPU time
per round that all of this run's Chromium processes and the relay spent (``/proc``, see
``bench/_proc_cpu.py``), laid out as ``browser_bench.py --cpu`` lays out a commit's: the
same figures for the platform alone and for ours.

    .venv/bin/python bench/browser_floor.py [--rounds 300] [--blocks 5] [--warmup 30]
        [--value-chars 300] [--message-chars 150] [--round-timeout MS] [--cpu]

Needs Chromium at /usr/bin/chromium and Playwright; not the wheel or Pyodide (the relay serves
its pages, and these tabs load only its 404 text).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from _common import ROOT, percentile  # bench/ is on the path when a script of it runs
from _proc_cpu import Meter, ProcUnavailable, Usage, require_proc
from _proc_cpu import rows as cpu_rows

sys.path.insert(0, str(ROOT / "e2e"))

from browser_support import (  # found through the path above
    Relay,
    Tab,
    blank_page,
    launch_chromium,
    unique_room,
    wait_for,
)

from webraft.transport.wire import PROTOCOL_VERSION, WS_PATH

TABS = ("a", "b", "c")  # a leads: it sends, b and c answer
#: Seconds any one page evaluation may take (a whole phase of rounds included).
EVAL_TIMEOUT = 300.0

#: Installs ``window.floor`` in a tab: a link to its peers (the relay or BroadcastChannels)
#: and the answering side of a round. Every message is JSON text, parsed once on arrival, as
#: webraft's transports do.
SETUP = """async ([link, room, me, peers, wsUrl, version, valueChars, portsUrl]) => {
  const F = window.floor = {me, room, waiting: null, storeMs: [], pad: "x".repeat(valueChars)};
  const key = `floor/${room}/${me}`;
  // The answering side: b and c write their own value when asked (d.s), then answer.
  const receive = (from, d) => {
    if (d.ok) {  // an answer, to the leader: the round's first settles it, later ones not
      if (F.waiting !== null && d.k === F.waiting.k) {
        const w = F.waiting;
        F.waiting = null;
        w.resolve();
      }
      return;
    }
    if (d.q) return;  // a tight loop's: no answer
    if (d.s) {
      const t = performance.now();
      localStorage.setItem(key, `${d.k}:${F.pad}`);
      F.storeMs.push(performance.now() - t);
    }
    F.send(from, JSON.stringify({k: d.k, by: me, ok: true}));
  };
  if (link === "relay") {
    const ws = new WebSocket(wsUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`${me}: cannot open ${wsUrl}`));
    });
    const welcome = new Promise((resolve) => {
      ws.onmessage = (e) => resolve(JSON.parse(e.data));
    });
    ws.send(JSON.stringify({type: "hello", v: version, room, address: me}));
    const w = await welcome;
    if (w.type !== "welcome") throw new Error(`${me}: relay answered ${JSON.stringify(w)}`);
    ws.onmessage = (e) => {
      const frame = JSON.parse(e.data);
      if (frame.type === "msg") receive(frame.from, frame.data);
      else if (frame.type === "batch") for (const d of frame.msgs) receive(frame.from, d);
      else if (frame.type === "error") console.error("relay:", frame.code, frame.message);
    };
    // The relay's frames, laid out as webraft's transports write them (its fast path): what
    // one task sends goes as one frame, a batch when it is for more than one peer.
    F.send = (to, data) => ws.send(`{"type":"send","to":"${to}","data":${data}}`);
    F.sendAll = (targets, data) => {
      if (targets.length === 1) return F.send(targets[0], data);
      const msgs = targets.map((to) => `{"to":"${to}","data":${data}}`).join(",");
      ws.send(`{"type":"batch","msgs":[${msgs}]}`);
    };
    F.close = () => ws.close();
  } else if (link === "port") {
    // Ports through the exchange: the first of each pair (by name) offers; an offer to a tab
    // not registered yet waits there for it.
    const exchange = new SharedWorker(portsUrl, {name: "webraft-ports"});
    const ports = {};
    const listen = (peer, port) => {
      port.onmessage = (e) => receive(peer, JSON.parse(e.data));
      ports[peer] = port;
    };
    exchange.port.onmessage = (e) => listen(e.data.from, e.ports[0]);
    exchange.port.postMessage({op: "register", room, address: me, instance: me});
    for (const peer of peers.filter((peer) => me < peer)) {
      const channel = new MessageChannel();
      listen(peer, channel.port1);
      exchange.port.postMessage({op: "offer", room, to: peer, instance: peer, from: me,
                                 fromInstance: me}, [channel.port2]);
    }
    F.linked = () => peers.every((peer) => ports[peer] !== undefined);
    F.send = (to, data) => ports[to].postMessage(data);
    F.sendAll = (targets, data) => { for (const to of targets) F.send(to, data); };
    F.close = () => { Object.values(ports).forEach((p) => p.close()); exchange.port.close(); };
  } else {
    const channels = {};
    for (const peer of peers) {
      const channel = new BroadcastChannel(`floor/${room}/${[me, peer].sort().join("/")}`);
      channel.onmessage = (e) => receive(peer, JSON.parse(e.data));
      channels[peer] = channel;
    }
    F.send = (to, data) => channels[to].postMessage(data);
    F.sendAll = (targets, data) => { for (const to of targets) F.send(to, data); };
    F.close = () => Object.values(channels).forEach((c) => c.close());
  }
  return true;
}"""

#: The leader's rounds: ``n`` one after the other, each bounded by ``timeoutMs``.
ROUNDS = """async ([n, targets, store, messageChars, timeoutMs]) => {
  const times = [], storeMs = [], sendMs = [];
  const key = `floor/${floor.room}/${floor.me}`;
  const head = JSON.stringify({k: 0, s: store ? 1 : 0, p: ""}).length;
  const body = "m".repeat(Math.max(0, messageChars - head - 4));  // k takes ~4 digits
  const timed = (into, fn) => {
    const t = performance.now();
    fn();
    into.push(performance.now() - t);
  };
  for (let round = 0; round < n; round++) {
    const k = floor.next = (floor.next ?? 0) + 1;  // unique across calls: no stale answer fits
    const t0 = performance.now();
    let timer;
    const answered = new Promise((resolve, reject) => {
      floor.waiting = {k, resolve};
      timer = setTimeout(() => reject(new Error(`round ${k}: no answer in ${timeoutMs} ms`)),
                         timeoutMs);
    });
    if (store) timed(storeMs, () => localStorage.setItem(key, `${k}:${floor.pad}`));
    const message = JSON.stringify({k, s: store ? 1 : 0, p: body});
    timed(sendMs, () => floor.sendAll(targets, message));
    try {
      await answered;
    } finally {
      clearTimeout(timer);
      floor.waiting = null;
    }
    if (store) timed(storeMs, () => localStorage.setItem(`${key}/commit`, String(k)));
    times.push(performance.now() - t0);
  }
  await new Promise((resolve) => setTimeout(resolve, 20));  // the last slower answer
  return {times, storeMs, sendMs};
}"""

#: ``setItem`` of a value-sized string, then a send of a message-sized one to ``to``, ``n``
#: times each in one task: what a call costs when nothing waits on it (the sends ask for no
#: answer).
TIGHT = """async ([n, to, messageChars]) => {
  const store = [], send = [];
  const key = `floor/${floor.room}/${floor.me}/tight`;
  for (let k = 0; k < n; k++) {
    const t = performance.now();
    localStorage.setItem(key, `${k}:${floor.pad}`);
    store.push(performance.now() - t);
  }
  localStorage.removeItem(key);
  const quiet = JSON.stringify({k: 0, q: 1, p: "m".repeat(Math.max(0, messageChars - 20))});
  for (let k = 0; k < n; k++) {
    const t = performance.now();
    floor.send(to, quiet);
    send.push(performance.now() - t);
  }
  await new Promise((resolve) => setTimeout(resolve, 50));  // let them drain
  return {store, send};
}"""


@dataclass
class Link:
    """One set-up's figures: phase name -> samples (ms); with ``--cpu`` the CPU its commit
    pattern's rounds took, and what was spent in the 2 s of idling before them."""

    name: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    cpu: Usage | None = None
    idle: Usage | None = None


def setup(tabs: list[Tab], link: str, relay_url: str, args: argparse.Namespace) -> None:
    room = unique_room("floor")
    ws_url = relay_url.replace("http", "ws", 1) + WS_PATH
    for tab in tabs:  # one after the other: each is in the room before the next sends
        peers = [t.name for t in tabs if t is not tab]
        tab.eval(SETUP, [link, room, tab.name, peers, ws_url, PROTOCOL_VERSION,
                         args.value_chars, f"{relay_url}/webraft/webraft-ports.js"])
    if link == "port":
        wait_for(lambda: all(tab.eval("() => floor.linked()") for tab in tabs),
                 what="every tab's ports to its peers")


def rounds(leader: Tab, n: int, targets: list[Tab], store: bool,
           args: argparse.Namespace) -> dict[str, list[float]]:
    got: dict[str, list[float]] = leader.eval(
        ROUNDS, [n, [t.name for t in targets], store, args.message_chars, args.round_timeout],
        timeout=EVAL_TIMEOUT)
    return got


def follower_stores(tabs: list[Tab]) -> list[float]:
    """What the answering tabs' setItem calls took since the last call (and forget them)."""
    return [t for tab in tabs
            for t in tab.eval("() => floor.storeMs.splice(0)", timeout=EVAL_TIMEOUT)]


def measure_link(tabs: list[Tab], name: str, args: argparse.Namespace, meter: Meter) -> Link:
    """The phases in turns of ``--blocks`` blocks, so that a change of the machine's load
    during the run reaches them all alike; then the tight loops. With a ``meter`` that is
    on, the CPU of the commit pattern's blocks too (only theirs is kept)."""
    leader, *followers = tabs
    phases = [("ping-pong a <-> b", followers[:1], False),
              ("commit pattern, no setItem", followers, False),
              ("commit pattern", followers, True)]
    result = Link(name)
    for _, targets, store in phases:
        rounds(leader, args.warmup, targets, store, args)
    idle, cpu = meter.idle(), Usage()
    for block in range(args.blocks):
        n = args.rounds // args.blocks + (block < args.rounds % args.blocks)
        for label, targets, store in phases:
            follower_stores(followers)  # drop what earlier rounds wrote
            got, used = meter.during(rounds, leader, n, targets, store, args)
            result.samples.setdefault(label, []).extend(got["times"])
            if store:
                cpu += used
                for part, samples in (("  a: setItem (meta, commit index)", got["storeMs"]),
                                      ("  a: sending to b and c", got["sendMs"]),
                                      ("  b, c: setItem", follower_stores(followers))):
                    result.samples.setdefault(part, []).extend(samples)
    if meter.on:
        result.cpu, result.idle = cpu, idle
    tight = leader.eval(TIGHT, [args.rounds, followers[0].name, args.message_chars],
                        timeout=EVAL_TIMEOUT)
    result.samples["a: setItem in a tight loop"] = tight["store"]
    result.samples["a: one send in a tight loop"] = tight["send"]
    for tab in tabs:
        tab.eval("() => floor.close()")
    return result


def measure(browser: Any, relay: Relay, args: argparse.Namespace) -> list[Link]:
    """Both set-ups in ``browser`` against ``relay``; each closes its tabs. With ``--cpu``,
    this process's Chromium and ``relay``'s process are measured."""
    relay_url = relay.url
    meter = Meter(relay.proc.pid, on=args.cpu)
    links = []
    contexts = [browser.new_context() for _ in TABS]
    try:
        tabs = [Tab(blank_page(ctx, relay_url), name) for ctx, name in zip(contexts, TABS,
                                                                       strict=True)]
        setup(tabs, "relay", relay_url, args)
        links.append(measure_link(tabs, "relay", args, meter))
    finally:
        for ctx in contexts:
            ctx.close()
    for link, name in (("broadcast", "BroadcastChannel"), ("port", "MessagePort")):
        shared = browser.new_context()
        try:
            tabs = [Tab(blank_page(shared, relay_url), tab) for tab in TABS]
            setup(tabs, link, relay_url, args)
            links.append(measure_link(tabs, name, args, meter))
        finally:
            shared.close()
    return links


def table(links: list[Link]) -> list[str]:
    """Rows: the phase, then p50 / p99 / mean (ms) for each set-up."""
    names = list(dict.fromkeys(name for link in links for name in link.samples))
    width = max(len(n) for n in names)
    head = f"{'':<{width}}" + "".join(f"  {link.name + ': p50 / p99 / mean (ms)':>38}"
                                      for link in links)
    lines = [head]
    for name in names:
        cells = []
        for link in links:
            got = link.samples.get(name) or []
            cells.append(f"{percentile(got, 0.5):.3f} / {percentile(got, 0.99):.3f} / "
                         f"{statistics.fmean(got):.3f}" if got else "-")
        lines.append(f"{name:<{width}}" + "".join(f"  {c:>38}" for c in cells))
    return lines


def cpu_table(links: list[Link]) -> list[str]:
    """Lines: for each set-up measured with ``--cpu``, the commit pattern's CPU per round."""
    lines = []
    for link in links:
        if link.cpu is None or link.idle is None:
            continue
        got = cpu_rows(link.cpu, len(link.samples["commit pattern"]), link.idle)
        width = max(len(name) for name, _ in got)
        lines += [f"{link.name}:"] + [f"{name:<{width}}  {value}" for name, value in got]
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=300, help="measured rounds per phase")
    ap.add_argument("--warmup", type=int, default=30,
                    help="rounds run and dropped before each phase")
    ap.add_argument("--blocks", type=int, default=5,
                    help="the phases take turns in this many blocks of their rounds")
    ap.add_argument("--value-chars", type=int, default=300,
                    help="characters of each localStorage value (our meta: a few hundred)")
    ap.add_argument("--message-chars", type=int, default=150,
                    help="characters of the leader's message (a small append)")
    ap.add_argument("--round-timeout", type=int, default=5000, metavar="MS",
                    help="a round with no answer by then fails the run")
    ap.add_argument("--cpu", action="store_true",
                    help="also the commit pattern's CPU ms per round of Chromium's processes "
                    "and the relay, from Linux's /proc")
    return ap


def main() -> int:
    from playwright.sync_api import sync_playwright

    args = parser().parse_args()
    if min(args.rounds, args.blocks, args.warmup + 1, args.value_chars,
           args.message_chars) < 1 or args.blocks > args.rounds:
        parser().error("--rounds, --blocks, --value-chars and --message-chars must be "
                       "positive, --blocks at most --rounds, --warmup not negative")
    if args.cpu:
        try:
            require_proc()
        except ProcUnavailable as exc:
            parser().error(f"--cpu: {exc}")
    load = os.getloadavg()
    began = time.monotonic()
    relay = Relay(log_level="WARNING")
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                links = measure(browser, relay, args)
            finally:
                browser.close()
    finally:
        relay.stop()
    print(f"browser floor, no Pyodide: 3 Chromium tabs, {args.rounds} rounds per phase, "
          f"{args.message_chars}-char messages, {args.value_chars}-char values; load "
          f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({time.monotonic() - began:.0f} s)")
    print("\n".join(table(links)))
    if args.cpu:
        print("\ncommit pattern, CPU per round:")
        print("\n".join(cpu_table(links)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

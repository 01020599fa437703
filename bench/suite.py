"""The benchmark suite: five setups, one after another, one Markdown table side by side.

Columns: a 3-node webraft cluster in one process (``bench/cluster_bench.py``), 3 CPython
webraft member processes over the relay, the same linked to each other directly (TCP, no
relay), and a 3-process PySyncObj cluster on the same machine (``bench/cluster_compare.py``),
and 3 Chromium tabs running webraft in Pyodide through the relay (``bench/browser_bench.py``).
Same workload everywhere: a counter, each command a 10-byte string, proposed by the leader
(the load generator runs in the leader's process or tab). Rows: commits/s with 1, 100 and
10,000 proposals in flight, sequential commit latency, failover after the leader dies
abruptly and after a graceful hand-over.

    .venv/bin/python bench/suite.py [--quick] [--write docs/benchmarks.md]
        [--failovers N] [--tab-failovers N] [--skip SETUP ...]

The setups never run at the same time: they would compete for the cores. The figures move
with the machine's load; this prints them and never judges them. PySyncObj is not a
dependency of webraft: ``.venv/bin/pip install -e '.[bench]'`` (its column says n/a without it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common  # bench/ is on the path when a script of it runs
import cluster_compare

#: The columns, in order; the process clusters' keys are cluster_compare's.
HEADERS = {"inprocess": "in-process, 3 nodes", "relay": "3 CPython members over the relay",
           "direct": "3 CPython members, direct links", "pysyncobj": "PySyncObj, 3 processes",
           "tabs": "3 Chromium tabs", "tabs_bc": "3 Chromium tabs, one browser"}
SETUPS = tuple(HEADERS)
PROCESSES = tuple(cluster_compare.CLUSTERS)
#: What --skip leaves out: one column, or all three process clusters (one cluster_compare
#: run measures them, their failover samples taking turns).
SKIPS = {"inprocess": ("inprocess",), **{key: (key,) for key in PROCESSES},
         "processes": PROCESSES, "tabs": ("tabs", "tabs_bc"), "tabs_bc": ("tabs_bc",)}
IN_FLIGHT = (1, 100, 10_000)
#: Every metric key of a column (the failover keys name lists of samples).
METRICS = ("rate1", "rate100", "rate10000", "p50", "p99", "kill", "transfer")
#: A failover sample over this many seconds is counted (issue 6: PySyncObj had 11 of 30).
SLOW_FAILOVER = 1.9


@dataclass
class Column:
    """One setup's figures: rates in commits/s, latencies and failover samples in seconds
    (a failover sample of None never committed). ``na`` maps a metric key the setup cannot
    measure to the reason, ``about`` one it measures differently to what it measured (both
    become footnotes); ``marks`` flags figures from a disturbed phase; ``notes`` says what
    disturbed them."""

    figures: dict[str, float] = field(default_factory=dict)
    kill: list[float | None] | None = None
    transfer: list[float | None] | None = None
    na: dict[str, str] = field(default_factory=dict)
    about: dict[str, str] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- formatting


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    ms = x * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def failover_cells(samples: list[float | None]) -> tuple[str, str, str]:
    """Median; p90 / max; how many of the samples took over SLOW_FAILOVER (a sample that
    never committed counts as slow) — the three failover rows of one column."""
    ok = [x for x in samples if x is not None]
    lost = len(samples) - len(ok)
    if not ok:
        return "-", "-", f"{lost} of {len(samples)}"
    slow = sum(1 for x in ok if x > SLOW_FAILOVER) + lost
    spread = f"{fmt_ms(_common.percentile(ok, 0.9))} / {fmt_ms(max(ok))}"
    if lost:
        spread += f" ({lost} never committed)"
    return fmt_ms(statistics.median(ok)), spread, f"{slow} of {len(samples)}"


def metric_rows(columns: dict[str, Column]) -> tuple[list[list[str]], list[str]]:
    """The table's body (metric name, then one cell per column) and its numbered footnotes:
    each distinct text of ``na`` and ``about`` becomes one footnote, referenced as ``[k]``."""
    footnotes: list[str] = []

    def ref(note: str) -> str:
        if note not in footnotes:
            footnotes.append(note)
        return f"[{footnotes.index(note) + 1}]"

    def cell(col: Column, key: str, text: str) -> str:
        if key in col.na:
            return f"n/a {ref(col.na[key])}"
        about = f" {ref(col.about[key])}" if key in col.about else ""
        return text + col.marks.get(key, "") + about

    rows: list[list[str]] = []
    cols = list(columns.values())

    def add(name: str, key: str, texts: list[str]) -> None:
        """One row: ``texts`` holds each column's rendered figure, in the order of ``cols``."""
        rows.append([name] + [cell(col, key, text) for col, text in zip(cols, texts, strict=True)])

    for n in IN_FLIGHT:
        add(f"commits/s, {n:,} in flight", f"rate{n}",
            [fmt_rate(c.figures.get(f"rate{n}")) for c in cols])
    for q in ("p50", "p99"):
        add(f"sequential commit latency {q} (ms)", q, [fmt_ms(c.figures.get(q)) for c in cols])
    names = ("failover after kill -9 of the leader: median (ms)", "  p90 / max (ms)",
             f"  samples over {SLOW_FAILOVER} s")
    for k, name in enumerate(names):
        add(name, "kill", [failover_cells(c.kill)[k] if c.kill else "-" for c in cols])
    add("failover by graceful transfer: median (ms)", "transfer",
        [failover_cells(c.transfer)[0] if c.transfer else "-" for c in cols])
    return rows, footnotes


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table padded to line up in a terminal too; figures right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + (":" if i else "-")
                             for i, w in enumerate(widths)) + " |"
    return "\n".join([line(header), rule, *map(line, rows)])


# ---------------------------------------------------------------------------- the setups


def in_process(quick: bool) -> Column:
    import cluster_bench

    col = Column(figures=asyncio.run(cluster_bench.measure(quick)))
    reason = ("the in-process cluster shares one process and one event loop: killing the "
              "leader's process kills all three nodes, so it has no failover to measure")
    col.na = {"kill": reason, "transfer": reason}
    return col


def processes(quick: bool, failovers: int, keys: list[str]) -> dict[str, Column]:
    """The process clusters named by ``keys`` (of ``PROCESSES``), measured by one
    cluster_compare run; PySyncObj's column is n/a when it is not installed."""
    have_pysyncobj = _common.package_version("pysyncobj") is not None
    clusters = [key for key in keys if key != "pysyncobj" or have_pysyncobj]

    async def run() -> dict[str, Any]:
        async with cluster_compare.relay_env() as env:
            return await cluster_compare.measure(env, quick, failovers, clusters)

    try:
        figures = asyncio.run(run())
    finally:
        cluster_compare.kill_all()
    return process_columns(figures, keys)


def process_columns(figures: dict[str, Any], keys: list[str]) -> dict[str, Column]:
    """A column for each of ``keys`` from cluster_compare.measure()'s ``figures``; the one
    that has no figures is PySyncObj, not installed."""
    columns: dict[str, Column] = {}
    for key in keys:
        summary = figures["summary"].get(key)
        if summary is None:
            columns[key] = Column(na=dict.fromkeys(
                METRICS, "PySyncObj is not installed: .venv/bin/pip install -e '.[bench]'"))
            continue
        col = _summary_column(summary, HEADERS[key])
        col.kill = figures["kill"][key] or None
        col.transfer = figures["transfer"].get(key) or None
        columns[key] = col
    ps, nb = columns.get("pysyncobj"), figures["nobatch"]
    if ps is None:
        return columns
    ps.na["transfer"] = "PySyncObj has no leadership transfer"
    if nb is not None:
        best = (f"PySyncObj waits for its next batch of AppendEntries (every 0.1 s); with "
                f"appendEntriesUseBatch=False, its low-latency setting: 1 in flight "
                f"{fmt_rate(nb.get('rate1'))}/s, sequential p50 {fmt_ms(nb.get('p50'))} ms, "
                f"p99 {fmt_ms(nb.get('p99'))} ms")
        ps.about.update(dict.fromkeys(("rate1", "p50", "p99"), best))
        ps.notes += [f"{n} (appendEntriesUseBatch=False)" for n in
                     _summary_column(nb, HEADERS["pysyncobj"]).notes]
    return columns


def _summary_column(summary: dict[str, Any], header: str) -> Column:
    """A Column from cluster_compare.summarize(): its ``*`` marks and incidents carried over."""
    col = Column(figures={k: summary[k] for k in ("rate1", "rate100", "rate10000", "p50", "p99")
                          if summary.get(k) is not None})
    for key in ("1", "100", "10000"):
        if summary.get(f"mark{key}"):
            col.marks[f"rate{key}"] = "*"
    if summary.get("markseq"):
        col.marks.update(p50="*", p99="*")
    col.notes = [f"{header}, {incident}" for incident in summary["incidents"]]
    return col


def tabs(quick: bool, failovers: int, broadcast: bool = False) -> Column:
    """The tabs' column: a browser context each, so they talk through the relay; or with
    ``broadcast`` one context, so they talk past the relay, over MessagePorts (without failovers: a
    crash there may take the context's other tabs along, as they can share a renderer)."""
    import browser_bench

    loops = "1:100,100:1000,10000" if quick else "1:500,100:5000,10000"
    args = browser_bench.parser().parse_args([
        "--burst", "", "--sequential", "0", "--prefill", "100", "--in-flight", loops,
        "--failovers", "0" if broadcast else str(failovers),
        *(["--broadcast"] if broadcast else [])])
    result = browser_bench.measure(args)
    figures = dict(result["figures"])
    col = Column(kill=figures.pop("tab_crash", None), transfer=figures.pop("tab_close", None),
                 figures=figures)
    col.about = {
        "rate10000": "tabs: 10,000 submitted at once; the bridge hands at most 1,000 of a "
                     "tab's proposals to the node at a time, the others wait in the bridge",
        "kill": "tabs: the leader tab's renderer crashes (CDP Page.crash), the nearest a page "
                "has to kill -9",
        "transfer": "tabs: the leader tab is closed as a user closes it; its pagehide handler "
                    "hands leadership over"}
    if broadcast:
        col.na = dict.fromkeys(("kill", "transfer"), "tabs in one browser: measured "
                               "through the relay only")
    for key, incident in result["incidents"].items():
        col.marks[key] = "*"
        col.notes.append(f"3 Chromium tabs, {incident}")
    if result["failed"]:
        col.notes.append(f"3 Chromium tabs: stopped in {result['failed']}")
    return col


# ---------------------------------------------------------------------------- the page


def machine_facts() -> list[tuple[str, str]]:
    """Taken when the run starts: the code measured is the checkout's at that time."""
    ram = _common.ram_bytes()
    return [
        ("CPU", f"{_common.cpu_model()}, {os.cpu_count()} cores "
                f"({len(os.sched_getaffinity(0))} usable)"),
        ("RAM", f"{ram / 2**30:.1f} GiB" if ram else "?"),
        ("OS", _common.os_name()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Chromium", _common.chromium_version() or "?"),
        ("Pyodide", _common.pyodide_version() or "?"),
        ("PySyncObj", _common.package_version("pysyncobj") or "not installed"),
        ("websockets", _common.package_version("websockets") or "?"),
        ("webraft", f"git {_common.git_revision()}"),
    ]


def wheel_fact() -> tuple[str, str]:
    """The wheel the relay serves to the tabs (dist/, from ``bash .ci/build-browser``), taken
    just before they load it: it is built separately, so it may be older than the checkout."""
    wheels = sorted((_common.ROOT / "dist").glob("webraft-*.whl"),
                    key=lambda path: path.stat().st_mtime)
    if not wheels:
        return "tabs' wheel", "none in dist/ (bash .ci/build-browser)"
    built = datetime.datetime.fromtimestamp(wheels[-1].stat().st_mtime, datetime.UTC)
    return "tabs' wheel", f"dist/{wheels[-1].name}, built {built:%Y-%m-%d %H:%M:%S} UTC"


METHOD = f"""\
- Workload: a counter; every command is a 10-byte string (`inc:000042`); the load generator
  runs in the leader (its process, or its tab), so the figures are those of the consensus
  path. Commits/s: a closed loop keeping 1, 100 or 10,000 proposals outstanding until a fixed
  number committed. Sequential latency: one proposal at a time, from proposing to its
  commit being known to the proposer. The phases run in one order on one cluster per setup:
  1 in flight, sequential, 100 in flight, 10,000 in flight (a phase can change what the next
  one measures, so the order is the same everywhere; the heaviest runs last, so that an
  election it may cause disturbs no other). Proposals per phase, in that order, in a full run
  (`--quick`: a fifth, at least the in-flight count; tabs 100 / 1,000 / 10,000): in-process
  2,000 / 5,000 / 50,000 / 100,000; over the relay and over direct links 2,000 / 3,000 /
  20,000 / 100,000; PySyncObj 100 / 500 / 5,000 / 100,000 (its batching makes one at a time
  slow); tabs 500 / 5,000 / 10,000 in flight, the latency from the 1-in-flight loop.
- In-process: three nodes in one asyncio loop, messages serialized to JSON and delivered on
  the next loop iteration; MemoryStorage. Over the relay: three `RelayRaft` processes
  (MemoryStorage) and one relay process on 127.0.0.1 with its rate limits off
  (`--rate 0 --byte-rate 0`).
  Direct links: three `DirectRaft` processes (MemoryStorage) linked to each other over TCP
  on 127.0.0.1, no relay: each member dials the two others, and a link is one-way (the
  dialer writes, the acceptor reads), so a pair has two connections; the acceptor admits a
  link on an HMAC-SHA256 proof of the cluster's token over a fresh challenge, then every
  line is one JSON message. PySyncObj: three processes, its TCP transport and in-memory
  journal, `SyncObjConf()` defaults (batched AppendEntries every 0.1 s). Tabs: three
  Chromium tabs (each in its own browser context), webraft in Pyodide persisting to
  localStorage, through one relay.
- Timeouts are every library's defaults: webraft heartbeat 0.05 s, a follower campaigns after
  0.20 s of leader silence, election 0.15-0.30 s, proposal timeout 5 s (120 s in the tabs,
  so that 10,000 submitted at once do not expire); PySyncObj election timeout 0.4-1.4 s.
- 10,000 in flight in the tabs: the bridge hands at most 1,000 of a tab's proposals to the
  node at a time (`MAX_IN_FLIGHT`); the other 9,000 wait in the bridge, so it means 10,000
  submitted at once.
- Failover, processes: each sample on a fresh cluster; SIGKILL the leader's process (or have
  it call `transfer_leadership()`), then a surviving member proposes every 10 ms; the figure
  is the time from the kill (or the call) to that member's first commit. Tabs: the same
  probe in a surviving tab after crashing the leader's renderer (CDP `Page.crash`, the
  abrupt case) or closing its tab as a user would (its `pagehide` handler hands leadership
  over: the graceful case); the tab is then reopened as the same member for the next sample.
  The setups over processes take turns, sample by sample. Over {SLOW_FAILOVER} s counts
  samples that took longer (or never committed). Through the relay, a killed or closed
  member's connection closes and the relay tells the room; over direct links, the survivors'
  links to it break. Either way a webraft follower whose leader left campaigns within a
  heartbeat (0.05 s) instead of waiting out its 0.20 s timeout; a leader that stops answering
  but keeps its connections would take that longer path. PySyncObj's TCP transport has no
  such signal.
- The machine is shared and small: figures swing with its load from run to run (tens of
  percent). A `*` marks a figure from a phase during which the term changed, proposals
  failed or the leader stepped down."""


def render(args: argparse.Namespace, columns: dict[str, Column], facts: list[tuple[str, str]],
           command: str, when: datetime.datetime, elapsed: float) -> str:
    rows, footnotes = metric_rows(columns)
    table = markdown_table(["metric", *(HEADERS[k] for k in columns)], rows)
    kind = "a `--quick` run (fewer proposals and failover samples)" if args.quick else \
        "a full run"
    samples = (f"{args.failovers} failover samples per process cluster and kind, "
               f"{args.tab_failovers} per kind in the tabs")
    lines = ["# Benchmarks", "",
             f"Produced by {kind} of `bench/suite.py` on {when:%Y-%m-%d %H:%M} UTC "
             f"({samples}; {elapsed / 60:.0f} min):", "", "```sh", command, "```", "",
             "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in facts]
    lines += ["", "## Results", "", table, ""]
    lines += [f"- [{k}] {reason}" for k, reason in enumerate(footnotes, 1)]
    notes = [n for col in columns.values() for n in col.notes]
    if notes:
        lines += ["", "Incidents (figures marked `*`, and what stopped a setup):", ""]
        lines += [f"- {n}" for n in notes]
    samples_text = [f"- {HEADERS[k]}, {what}: " + ", ".join(
        "fail" if x is None else f"{x * 1e3:.0f}" for x in got)
        for k, col in columns.items()
        for what, got in (("abrupt", col.kill), ("graceful", col.transfer)) if got]
    if samples_text:
        lines += ["", "Failover samples (ms):", "", *samples_text]
    lines += ["", "## Method", "", METHOD, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer proposals and failover samples (about 2 minutes)")
    ap.add_argument("--write", metavar="PATH", help="also write the Markdown page here")
    ap.add_argument("--failovers", type=int,
                    help="failover samples per process cluster and kind (default 30, --quick 5)")
    ap.add_argument("--tab-failovers", type=int,
                    help="samples per kind (crash, close) in the tabs (default 5, --quick 2)")
    ap.add_argument("--skip", action="append", choices=SKIPS, default=[],
                    help="leave setups out (repeatable; processes: the three process clusters)")
    args = ap.parse_args()
    if args.failovers is None:
        args.failovers = 5 if args.quick else 30
    if args.tab_failovers is None:
        args.tab_failovers = 2 if args.quick else 5
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    when = datetime.datetime.now(datetime.UTC)
    began = time.monotonic()
    facts = machine_facts()

    skipped = {key for name in args.skip for key in SKIPS[name]}
    columns = dict.fromkeys(SETUPS, Column(na=dict.fromkeys(METRICS, "not run (--skip)")))
    steps: list[tuple[tuple[str, ...], str, Callable[[list[str]], dict[str, Column]]]] = [
        (SKIPS["inprocess"], "in-process cluster",
         lambda keys: {"inprocess": in_process(args.quick)}),
        (SKIPS["processes"], "CPython members over the relay and direct links, then PySyncObj",
         lambda keys: processes(args.quick, args.failovers, keys)),
        (("tabs",), "3 Chromium tabs",
         lambda keys: {"tabs": tabs(args.quick, args.tab_failovers)}),
        (SKIPS["tabs_bc"], "3 Chromium tabs in one browser",
         lambda keys: {"tabs_bc": tabs(args.quick, 0, broadcast=True)})]
    for keys, what, run in steps:
        wanted = [key for key in keys if key not in skipped]
        if not wanted:
            continue
        if "tabs" in wanted or ("tabs_bc" in wanted and "tabs" in skipped):
            facts.append(wheel_fact())
        print(f"== {what} ...", file=sys.stderr, flush=True)
        try:
            columns.update(run(wanted))
        except Exception as exc:  # the other setups' figures are still worth a table
            traceback.print_exc()
            first_line = (str(exc).splitlines() or [""])[0][:200]
            failed = Column(na=dict.fromkeys(
                METRICS, f"{what}: the run failed ({type(exc).__name__}: {first_line})"))
            columns.update(dict.fromkeys(wanted, failed))
    page = render(args, columns, facts, command, when, time.monotonic() - began)
    print(page)
    if args.write:
        Path(args.write).write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())

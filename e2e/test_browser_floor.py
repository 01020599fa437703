"""``bench/browser_floor.py`` runs: a few rounds of each phase over the relay, over
BroadcastChannel and over MessagePort give a figure for every row of its table (no Pyodide
is loaded), and with ``--cpu`` a CPU time for every kind of process the commit pattern keeps
busy."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from browser_support import Relay

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import browser_floor  # found through the path above

ROUNDS = 5
#: Rounds with ``--cpu``: /proc counts CPU in 10 ms ticks, and a follower's renderer spends
#: ~0.1-0.3 ms a round, so fewer could read as none.
CPU_ROUNDS = 200


def test_floor_times_every_phase_in_every_setup(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    # A relay of its own: the shared one insists on a current wheel, which no page here loads.
    relay = start_relay()
    args = browser_floor.parser().parse_args(
        ["--rounds", str(ROUNDS), "--warmup", "1", "--blocks", "2"])
    links = browser_floor.measure(browser, relay, args)

    assert [link.name for link in links] == ["relay", "BroadcastChannel", "MessagePort"]
    for link in links:
        got = {name: len(samples) for name, samples in link.samples.items()}
        # each round's first answer came after its follower's setItem; the other's may still
        # be on its way when they are collected
        assert ROUNDS <= got.pop("  b, c: setItem") <= 2 * ROUNDS, link.name
        assert got == {
            "ping-pong a <-> b": ROUNDS,
            "commit pattern, no setItem": ROUNDS,
            "commit pattern": ROUNDS,
            "  a: setItem (meta, commit index)": 2 * ROUNDS,
            "  a: sending to b and c": ROUNDS,
            "a: setItem in a tight loop": ROUNDS,
            "a: one send in a tight loop": ROUNDS,
        }, link.name
        for name, samples in link.samples.items():
            assert all(0 <= t < args.round_timeout for t in samples), (link.name, name)
        # a round waits for an answer from another tab: never free
        assert statistics.fmean(link.samples["ping-pong a <-> b"]) > 0, link.name
    lines = browser_floor.table(links)
    assert len(lines) == 1 + len(links[0].samples)


def test_floor_cpu_counts_every_busy_process(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    relay = start_relay()
    args = browser_floor.parser().parse_args(
        ["--rounds", str(CPU_ROUNDS), "--warmup", "1", "--blocks", "1", "--cpu"])
    links = browser_floor.measure(browser, relay, args)

    for link in links:
        assert link.cpu is not None and link.idle is not None, link.name
        kinds = link.cpu.by_kind()
        # every commit-pattern round keeps these busy, over each link (a port's messages
        # pass no other process)
        busy = {"relay": ["renderer", "browser", "relay", "NetworkService"],
                "BroadcastChannel": ["renderer", "browser"],
                "MessagePort": ["renderer"]}[link.name]
        assert all(kinds.get(kind, 0) > 0 for kind in busy), (link.name, kinds)
        # the three tabs' renderers: a sends, b and c write and answer
        assert len(link.cpu.renderers()) >= len(browser_floor.TABS), link.name
        assert all(s > 0 for s in list(link.cpu.renderers().values())[:3]), link.name
        # the idle CPU before was read for those same renderers
        assert set(list(link.cpu.renderers())[:3]) <= set(link.idle.renderers()), link.name
    lines = browser_floor.cpu_table(links)
    assert [line for line in lines if not line.startswith(" ")] == [
        "relay:", "BroadcastChannel:", "MessagePort:"]
    totals = [line for line in lines if line.startswith("  CPU per commit")]
    assert len(totals) == 3 and len(lines) == 9
    assert all(float(line.rsplit("  ", 1)[1].split(":")[0]) > 0 for line in totals), totals

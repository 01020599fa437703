"""``bench/browser_floor.py`` runs: a few rounds of each phase over the relay and over
BroadcastChannel give a figure for every row of its table (no Pyodide is loaded)."""

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


def test_floor_times_every_phase_in_both_setups(
        browser: Any, start_relay: Callable[..., Relay]) -> None:
    # A relay of its own: the shared one insists on a current wheel, which no page here loads.
    relay = start_relay()
    args = browser_floor.parser().parse_args(
        ["--rounds", str(ROUNDS), "--warmup", "1", "--blocks", "2"])
    links = browser_floor.measure(browser, relay.url, args)

    assert [link.name for link in links] == ["relay", "BroadcastChannel"]
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

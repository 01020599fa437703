"""``bench/browser_bench.py --steps`` runs: three tabs commit a few proposals one at a time,
and every step of the leader's and a follower's path it times was reached (its wrapper
counted calls), so the figures the docs cite come from code that still exists."""

from __future__ import annotations

import re
import subprocess
import sys

from browser_support import ROOT

SEQUENTIAL = 20
ROW = re.compile(r"^\s{6,}(\S.*?)\s{2,}(\d+\.\d{3}) \((\d+\.\d{2})\)$")


def test_steps_times_each_step_of_the_leader_and_a_follower() -> None:
    run = subprocess.run(
        [sys.executable, "bench/browser_bench.py", "--burst", "", "--prefill", "0",
         "--sequential", str(SEQUENTIAL), "--steps"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    sections: dict[str, dict[str, tuple[float, float]]] = {}
    current = None
    for line in run.stdout.splitlines():
        if "steps in" in line:
            current = line.split("steps in ")[1].split(",")[0]
            sections[current] = {}
        elif current is not None and (match := ROW.match(line)):
            label, ms, calls = match.groups()
            sections[current][label.strip()] = (float(ms), float(calls))
        elif current is not None and not line.startswith("    "):
            current = None
    assert set(sections) == {"leader", "a follower"}, run.stdout
    leader, follower = sections["leader"], sections["a follower"]
    # The leader proposed each command once and heard answers; a follower took each append
    # from a relay frame, persisted it with a setItem, answered and applied.
    assert leader["proposals in (all)"][1] == 1.0
    for steps in (leader, follower):
        for label in ("relay frame in (all)", "the node's step", "Ready rounds",
                      "persist and send", "save", "setItem", "applied"):
            ms, calls = steps[label]
            assert ms > 0 and calls > 0, (label, steps)
    assert follower["setItem"][1] >= 1.0  # one write per append at least

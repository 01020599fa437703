"""Availability under faults of a 3-process ``webraft-node`` cluster on direct links, as its
clients see it (issue 14's closing figures).

    .venv/bin/python bench/fault_bench.py [--trials N] [--hold SECONDS] [--root TREE]...

Every member runs with its default timeouts; every link goes through the fault proxy of
``tests/fault`` (loopback only). Per trial:

* **leader kill**: four clients write, read and CAS through random members; the leader is
  killed with SIGKILL and restarted ``--hold`` seconds later. Figures, from the last
  acknowledged write before the kill on: the longest gap between two acknowledged writes of
  any client (how long the cluster took no write), and the longest such gap of one client
  (how long one client's request waited: a write stuck on a dead leader shows here, while
  the other clients go on through the new one).
* **leader cut**: the same, with the leader cut off from its peers by the proxy (both ways)
  for ``--hold`` seconds instead.
* **10% loss**: every link loses 10% of its messages; five clients make 30 proposals each
  (``PUT``), one attempt each, through random members. Figure: acknowledged and failed, and
  the errors of the failed.

Each run's history is also checked (linearizability, durability); a problem is printed.
``--root`` runs the members from another source tree (a checkout of an older commit); given
more than once, the trees take turns within each trial, so that a before/after comparison
sees the same load on both sides. Prints figures, medians and the load average, never judges
them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import ROOT

sys.path.insert(0, str(ROOT))

from tests.fault.client import Workload, check
from tests.fault.procs import Cluster
from tests.fault.proxy import Faults
from tests.fault.scenarios import SCENARIOS, Scenario, longest_gap, run

PROPOSALS_PER_CLIENT = 30
LOSS_CLIENTS = 5


async def gaps(tmp: Path, name: str, hold: float, seed: int,
               root: Path) -> tuple[float, float]:
    """The longest write gap of one run of scenario ``name`` held ``hold`` seconds: of all
    clients together, and of one client."""
    marks: list[float] = []
    scenario: Scenario = SCENARIOS[name]

    async def marked(cluster: Cluster, spend: float, rng: random.Random) -> None:
        marks.append(time.monotonic())
        await scenario(cluster, spend, rng)

    outcome = await run(tmp, marked, duration=2 * hold, seed=seed, root=root)
    for problem in outcome.problems:
        print("PROBLEM:", problem)
    records = outcome.records
    one = max(longest_gap([r for r in records if r.client == c], since=marks[0])
              for c in {r.client for r in records})
    return longest_gap(records, since=marks[0]), one


async def lossy(tmp: Path, seed: int, root: Path) -> Counter[str]:
    """Proposals of one run at 10% loss, by outcome (``ok`` or the last error)."""
    async with Cluster(tmp, 3, seed=seed, root=root) as cluster:
        await cluster.wait_leader()
        cluster.network.set(Faults(drop=0.1))
        workload = Workload(cluster.controls(), clients=LOSS_CLIENTS, seed=seed,
                            mix=(0, 0, 0, 1), attempts=1)
        async with asyncio.timeout(600):  # each proposal waits out one timeout at most
            await workload.run(asyncio.Event(), max_ops=PROPOSALS_PER_CLIENT)
        cluster.network.heal()
        for problem in check(workload.records, await cluster.converged()):
            print("PROBLEM:", problem)
    return Counter("ok" if r.status == "ok" else r.error for r in workload.records)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--hold", type=float, default=6.0,
                        help="seconds a leader stays killed or cut off (default: 6, beyond "
                             "the 5 s proposal timeout)")
    parser.add_argument("--root", type=Path, action="append",
                        help="a source tree the members run (default: this one); give it "
                             "more than once to compare trees, which then take turns")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.trials <= 50 or not 0.5 <= args.hold <= 60:
        parser.error("--trials must be 1-50 and --hold 0.5-60 s")
    roots = [root.resolve() for root in args.root or [ROOT]]
    for root in roots:
        # Members run `python -m webraft.member` there: elsewhere they would import the
        # installed webraft and silently measure this tree.
        if not (root / "webraft" / "member").is_dir():
            parser.error(f"--root {root}: not a webraft source tree")
    if len(set(roots)) != len(roots):
        parser.error("--root: each tree once (their samples would merge)")
    print(f"members from {', '.join(map(str, roots))}; {args.trials} trials; leader held "
          f"{args.hold:g} s; load average {_load()}")
    samples: dict[Path, dict[str, list[tuple[float, float]]]] = {
        root: {"leader-kill": [], "leader-cut": []} for root in roots}
    acked: dict[Path, list[int]] = {root: [] for root in roots}
    for trial in range(args.trials):
        seed = args.seed + trial
        for root in roots:
            label = f"trial {trial + 1}" + (f" {root}" if len(roots) > 1 else "")
            for name, runs in samples[root].items():
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(await gaps(Path(tmp), name, args.hold, seed, root))
                print(f"{label} {name}: longest gap without a successful write "
                      f"{runs[-1][0]:.2f} s (one client's: {runs[-1][1]:.2f} s); load "
                      f"average {_load()}", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                outcomes = await lossy(Path(tmp), seed, root)
            acked[root].append(outcomes["ok"])
            failed = {k: v for k, v in outcomes.items() if k != "ok"}
            print(f"{label} 10% loss: {outcomes['ok']} of "
                  f"{LOSS_CLIENTS * PROPOSALS_PER_CLIENT} proposals acknowledged, failed: "
                  f"{failed or 'none'}", flush=True)
    for root in roots:
        if len(roots) > 1:
            print(f"members from {root}:")
        for name, runs in samples[root].items():
            for label, figures in (("gap", [r[0] for r in runs]),
                                   ("one client's gap", [r[1] for r in runs])):
                print(f"median {name} {label}: {statistics.median(figures):.2f} s "
                      f"(all: {', '.join(f'{s:.2f}' for s in figures)})")
        print(f"median acknowledged at 10% loss: {statistics.median(acked[root]):g} of "
              f"{LOSS_CLIENTS * PROPOSALS_PER_CLIENT} (all: {acked[root]})")
    print(f"load average at the end: {_load()}")


def _load() -> str:
    """The 1, 5 and 15 minute load averages: what else the machine was doing."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    asyncio.run(main())

"""Command line: run simulator seeds and print a summary."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from .cluster import Scenario, Simulation, Stats


def _run(seed: int) -> tuple[int, Stats | None, str]:
    try:
        return seed, Simulation(Scenario.from_seed(seed)).run(), ""
    except AssertionError as exc:
        return seed, None, str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webraft.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed of the batch")
    parser.add_argument("--seed", type=int, help="run this one seed and print its stats")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else list(range(args.start,
                                                                args.start + args.seeds))
    began = time.perf_counter()
    if args.jobs > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_run, seeds, chunksize=4))
    else:
        results = [_run(s) for s in seeds]
    failures = [(seed, err) for seed, stats, err in results if stats is None]
    total = Stats()
    for _, stats, _ in results:
        if stats is not None:
            total.add(stats)
    for seed, err in failures:
        print(f"FAIL seed {seed}: {err}")
    elapsed = time.perf_counter() - began
    print(f"{len(seeds) - len(failures)} passed, {len(failures)} failed "
          f"({len(seeds)} seeds in {elapsed:.1f}s)")
    print(f"events {total.events}, messages {total.messages} ({total.dropped} dropped), "
          f"crashes {total.crashes}, partitions {total.partitions}, "
          f"leadership transfers {total.transfers}, membership changes {total.membership}, "
          f"elections {total.elections}, proposals {total.proposals}, reads {total.reads}, "
          f"snapshots {total.snapshots} (installed from a leader {total.installs}), "
          f"registers checked linearizable {total.linearizability_checks}, "
          f"entries committed {total.committed}, "
          f"sessions opened {total.sessions_opened} (session retries {total.session_retries}, "
          f"duplicates filtered {total.duplicates}, refused as expired {total.expired}, "
          f"of which applied by an earlier attempt {total.expired_applied}), "
          f"slowest recovery {total.recovery_time:.2f}s (virtual)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: run simulator seeds and print a summary (``webraft-sim``).

Owns the command line only; imports :mod:`.cluster` and the standard library, never the runtime
directly.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields

from .cluster import LivenessFailure, SafetyViolation, Stats, run_seed


def _run(seed: int, trace: bool = False) -> tuple[int, Stats | None, str]:
    try:
        return seed, run_seed(seed, trace), ""
    except (SafetyViolation, LivenessFailure) as exc:
        return seed, None, str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="webraft-sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed of the batch")
    parser.add_argument("--seed", type=int, help="run this one seed and print its stats")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="with --seed: print a trace of every node step")
    args = parser.parse_args(argv)
    # The faults make the runtime log errors by the thousand; the checks judge them instead.
    logging.getLogger("webraft").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    seeds = [args.seed] if args.seed is not None else list(range(args.start,
                                                                args.start + args.seeds))
    began = time.perf_counter()
    if args.seed is not None:
        results = [_run(args.seed, args.verbose)]
    elif args.jobs > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_run, seeds, chunksize=8))
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
          f"({len(seeds)} seeds in {elapsed:.1f}s, {len(seeds) / elapsed:.1f} seeds/s)")
    print(", ".join(f"{f.name.replace('_', ' ')} {getattr(total, f.name):.6g}"
                    for f in fields(total)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The long fault run: ``python -m tests.fault --members 5 --duration 600 --seed N``.

Owns the command line only (see ``docs/fault-testing.md``); imports :mod:`.scenarios`. Runs
the random schedule (:func:`~.scenarios.nemesis`), or one named scenario, against real
``webraft-node`` processes on loopback, prints the faults, a summary and any problem, and
exits 1 if the history is not linearizable or an acknowledged write was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from .scenarios import SCENARIOS, nemesis, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault", description=__doc__)
    parser.add_argument("--members", type=int, default=5, choices=(3, 5, 7))
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of faults (default: 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--keys", type=int, default=0,
                        help="register keys (default: one per 10 s, at least 3, so that each "
                             "key's history stays small enough to check)")
    parser.add_argument("--scenario", choices=["random", *SCENARIOS], default="random")
    parser.add_argument("--keep", type=Path, help="keep data and logs in this directory")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 24 * 3600:
        parser.error("--duration must be 1 s to 24 h")
    keys = args.keys or max(3, int(args.duration / 10))
    scenario = nemesis if args.scenario == "random" else SCENARIOS[args.scenario]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="webraft-fault-") as scratch:
        tmp = args.keep or Path(scratch)
        outcome = asyncio.run(run(tmp, scenario, members=args.members, duration=args.duration,
                                  seed=args.seed, clients=args.clients, keys=keys))
    for line in outcome.faults:
        print(line)
    print(f"seed {args.seed}, {args.members} members, {time.monotonic() - start:.0f} s: "
          f"{outcome.summary()}")
    for problem in outcome.problems:
        print("PROBLEM:", problem)
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())

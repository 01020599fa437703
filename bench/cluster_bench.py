"""Benchmark (not a test): a 3-node webraft cluster in one process.

Nodes talk through an in-memory transport that serializes every message to JSON text and
back (as a real transport would) and delivers it on the next loop iteration. Prints commits/s
with 1, 100 and 10,000 proposals in flight, with the CPU time per commit, and the sequential
commit latency (p50/p99), measured right after the 1-in-flight phase; each command is a
10-byte string (``inc:000042``): phases and workload as in the other benchmarks.
``measure()`` returns the figures for ``bench/suite.py``.

    python bench/cluster_bench.py [--quick] [--json]
    python bench/cluster_bench.py [--quick] --compare TREE [TREE ...] [--rounds N]

``--compare`` measures the webraft of each source TREE and of this one in turns, each in a
fresh process, for ``--rounds`` rounds, and prints every round and the medians per tree: on
a machine whose figures swing from run to run, only trees measured side by side compare.

All three nodes share one CPU core here, so these figures are a floor for a deployment where
each node has its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import command, percentile  # bench/ is on the path when a script runs

import webraft


class LoopbackNode(webraft.NodeInstance):
    """Delivers to the peer's RaftInterface through JSON, on the next loop iteration."""

    def write(self, payload: dict[str, Any]) -> None:
        peer = CLUSTER[self.address]
        text = json.dumps(payload, separators=(",", ":"))
        asyncio.get_running_loop().call_soon(peer.got_data, self.raft.address, json.loads(text))


class BenchRaft(webraft.RaftInterface):
    def create_instance(self, address: str) -> webraft.NodeInstance:
        return LoopbackNode(address, self)


CLUSTER: dict[str, BenchRaft] = {}


async def start_cluster(n: int = 3) -> BenchRaft:
    names = [f"n{i}" for i in range(n)]
    CLUSTER.clear()
    for name in names:
        CLUSTER[name] = BenchRaft(name, members=names)
    for name in names:
        for other in names:
            if other != name:
                CLUSTER[name].join(other)
        CLUSTER[name].listen("apply", lambda entry, index, cb: cb())
        CLUSTER[name].start()
    while True:
        leaders = [r for r in CLUSTER.values() if r.is_leader]
        if leaders:
            return leaders[0]
        await asyncio.sleep(0.01)


async def throughput(leader: BenchRaft, in_flight: int, total: int) -> tuple[float, float]:
    """Commits per second keeping ``in_flight`` proposals outstanding, and the CPU seconds of
    this process per commit."""
    done = 0
    began, cpu = time.perf_counter(), time.process_time()

    async def worker(count: int) -> None:
        nonlocal done
        for i in range(count):
            await leader.propose(command(i))
            done += 1

    if in_flight >= total:
        await asyncio.gather(*(leader.propose(command(i)) for i in range(total)))
    else:
        per = total // in_flight
        await asyncio.gather(*(worker(per) for _ in range(in_flight)))
        total = per * in_flight
    return total / (time.perf_counter() - began), (time.process_time() - cpu) / total


async def latency(leader: BenchRaft, count: int) -> tuple[float, float]:
    """p50 and p99 of the commit latency, one proposal at a time (seconds)."""
    samples = []
    for i in range(count):
        t = time.perf_counter()
        await leader.propose(command(i))
        samples.append(time.perf_counter() - t)
    return percentile(samples, 0.50), percentile(samples, 0.99)


async def measure(quick: bool = False) -> dict[str, float]:
    """``rate1``, ``rate100``, ``rate10000`` (commits/s with that many in flight), ``cpu1``,
    ``cpu100``, ``cpu10000`` (CPU seconds per commit then), ``p50`` and ``p99`` (sequential
    commit latency, seconds), all on one fresh cluster."""
    scale = 0.2 if quick else 1.0
    leader = await start_cluster()
    try:
        await latency(leader, 200)  # warm up
        # The phase order of every setup of the suite (see bench/cluster_compare.py): the
        # sequential phase right after 1 in flight, the heaviest phase last.
        figures: dict[str, float] = {}
        figures["rate1"], figures["cpu1"] = await throughput(leader, 1, int(2000 * scale))
        figures["p50"], figures["p99"] = await latency(leader, int(5000 * scale))
        for in_flight, total in ((100, 50000), (10000, 100000)):
            figures[f"rate{in_flight}"], figures[f"cpu{in_flight}"] = await throughput(
                leader, in_flight, int(total * scale))
        return figures
    finally:
        for raft in CLUSTER.values():
            await raft.close()


def compare(others: list[Path], rounds: int, quick: bool) -> None:
    """Measure the webraft of ``others`` and of this tree in turns, one fresh process each;
    then the median of each figure per tree."""
    trees = {f"t{i}": tree.resolve() for i, tree in enumerate(others, 1)}
    trees["this"] = Path(__file__).resolve().parent.parent
    for name, tree in trees.items():
        print(f"{name}: {tree}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    keys = [k for n in (1, 100, 10000) for k in (f"rate{n}", f"cpu{n}")] + ["p50"]
    print(f"{'round':>5} {'tree':<5} {'load':>5}" + "".join(
        f" {f'{n}/s':>9} {f'us/c@{n}':>9}" for n in (1, 100, 10000)) + f" {'p50 ms':>7}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(1, rounds + 1):
        for name, tree in trees.items():
            load = os.getloadavg()[0]
            run = subprocess.run(
                [sys.executable, __file__, "--json"] + (["--quick"] if quick else []),
                env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
            if run.returncode:  # e.g. a leader change under load failed a proposal
                last = run.stderr.strip().splitlines()[-1:] or ["no output"]
                print(f"{round_:>5} {name:<5} {load:>5.2f} failed: {last[0]}", flush=True)
                continue
            f = json.loads(run.stdout.splitlines()[-1])
            if not f.pop("webraft").startswith(str(tree)):
                raise SystemExit(f"{name}: did not import the webraft of {tree}")
            runs[name].append(f)
            print(_row(f"{round_:>5}", name, f"{load:>5.2f}", f), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    for name, figures in runs.items():
        if figures:
            print(_row("  med", name, "", {k: statistics.median(f[k] for f in figures)
                                           for k in keys}))


def _row(first: str, name: str, load: str, f: dict[str, float]) -> str:
    return f"{first} {name:<5} {load:>5}" + "".join(
        f" {f[f'rate{n}']:>9,.0f} {f[f'cpu{n}'] * 1e6:>9.1f}" for n in (1, 100, 10000)) + \
        f" {f['p50'] * 1e3:>7.3f}"


async def main(quick: bool, as_json: bool) -> None:
    figures = await measure(quick)
    if as_json:
        print(json.dumps({**figures, "webraft": webraft.__file__}))
        return
    print("webraft in-process 3-node cluster (JSON loopback transport, one core)")
    for in_flight in (1, 100, 10000):
        print(f"  {in_flight:>6} in flight: {figures[f'rate{in_flight}']:>9,.0f} commits/s, "
              f"{figures[f'cpu{in_flight}'] * 1e6:.1f} us CPU per commit")
    print(f"  sequential latency: p50 {figures['p50'] * 1e3:.3f} ms, "
          f"p99 {figures['p99'] * 1e3:.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer proposals")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--compare", type=Path, nargs="+", metavar="TREE",
                        help="also measure the webraft of these source trees, in turns")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for tree in args.compare or ():
        if not (tree / "webraft" / "__init__.py").is_file():
            parser.error(f"--compare {tree}: not a webraft source tree")
    if args.compare is not None:
        compare(args.compare, args.rounds, args.quick)
    else:
        asyncio.run(main(args.quick, args.json))

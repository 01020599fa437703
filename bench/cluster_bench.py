"""Benchmark (not a test): a 3-node webraft cluster in one process.

Nodes talk through an in-memory transport that serializes every message to JSON text and
back (as a real transport would) and delivers it on the next loop iteration. Prints commits/s
with 1, 100 and 10,000 proposals in flight and the sequential commit latency (p50/p99),
measured right after the 1-in-flight phase; each command is a 10-byte string
(``inc:000042``): phases and workload as in the other benchmarks. ``measure()`` returns the
figures for ``bench/suite.py``.

    python bench/cluster_bench.py [--quick]

All three nodes share one CPU core here, so these figures are a floor for a deployment where
each node has its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from _common import percentile  # bench/ is on the path when a script of it runs

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


async def throughput(leader: BenchRaft, in_flight: int, total: int) -> float:
    """Commits per second keeping ``in_flight`` proposals outstanding."""
    done = 0
    began = time.perf_counter()

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
    return total / (time.perf_counter() - began)


async def latency(leader: BenchRaft, count: int) -> tuple[float, float]:
    """p50 and p99 of the commit latency, one proposal at a time (seconds)."""
    samples = []
    for i in range(count):
        t = time.perf_counter()
        await leader.propose(command(i))
        samples.append(time.perf_counter() - t)
    return percentile(samples, 0.50), percentile(samples, 0.99)


def command(i: int) -> str:
    """The workload every setup of the suite shares: a 10-byte counter increment."""
    return f"inc:{i % 1_000_000:06d}"


async def measure(quick: bool = False) -> dict[str, float]:
    """``rate1``, ``rate100``, ``rate10000`` (commits/s with that many in flight), ``p50`` and
    ``p99`` (sequential commit latency, seconds), all on one fresh cluster."""
    scale = 0.2 if quick else 1.0
    leader = await start_cluster()
    try:
        await latency(leader, 200)  # warm up
        # The phase order of every setup of the suite (see bench/cluster_compare.py): the
        # sequential phase right after 1 in flight, the heaviest phase last.
        figures = {"rate1": await throughput(leader, 1, int(2000 * scale))}
        figures["p50"], figures["p99"] = await latency(leader, int(5000 * scale))
        for in_flight, total in ((100, 50000), (10000, 100000)):
            figures[f"rate{in_flight}"] = await throughput(leader, in_flight, int(total * scale))
        return figures
    finally:
        for raft in CLUSTER.values():
            await raft.close()


async def main(quick: bool) -> None:
    figures = await measure(quick)
    print("webraft in-process 3-node cluster (JSON loopback transport, one core)")
    for in_flight in (1, 100, 10000):
        print(f"  {in_flight:>6} in flight: {figures[f'rate{in_flight}']:>9,.0f} commits/s")
    print(f"  sequential latency: p50 {figures['p50'] * 1e3:.3f} ms, "
          f"p99 {figures['p99'] * 1e3:.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer proposals")
    asyncio.run(main(parser.parse_args().quick))

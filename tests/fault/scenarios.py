"""Fault scenarios: a cluster, a workload, faults on a schedule, then the verdict.

Owns :func:`run`, the :data:`SCENARIOS` (one fault each, for CI and the benchmark), the long
run's random schedule (:func:`nemesis`), and :class:`Outcome`. Imports the harness
(:mod:`.procs`, :mod:`.proxy`, :mod:`.client`); nothing here judges how long anything took.

A scenario is a coroutine given the running :class:`~.procs.Cluster` and the time to spend;
it injects its faults and undoes them before it returns. :func:`run` then heals the network,
continues stopped members, restarts dead ones, lets the clients finish, waits until every
member holds the same store, and checks the history against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .client import INF, Record, Workload, check
from .procs import ROOT, Cluster, Node
from .proxy import Faults

__all__ = ["SCENARIOS", "Outcome", "Scenario", "longest_gap", "nemesis", "run"]

Scenario = Callable[[Cluster, float, random.Random], Awaitable[None]]


@dataclass
class Outcome:
    """What one run did: its history, the final store, the faults it injected, and the
    problems :func:`~.client.check` found (empty: linearizable and durable)."""

    records: list[Record]
    final: dict[str, object]
    faults: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    terms: tuple[int, int] = (0, 0)  # the leader's term before the faults, and after

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records:
            name = f"{record.kind}:{record.status}"
            out[name] = out.get(name, 0) + 1
        return dict(sorted(out.items()))

    def summary(self) -> str:
        verdict = "OK" if not self.problems else f"{len(self.problems)} PROBLEM(S)"
        return (f"{verdict}: {len(self.records)} operations {self.counts()}, "
                f"{len(self.final)} keys, {self.dropped} messages dropped, longest gap "
                f"without a successful write {longest_gap(self.records):.2f} s")


def longest_gap(records: list[Record], since: float = -INF) -> float:
    """The longest time, as the clients saw it, between two successive acknowledged writes
    (of any kind: put, CAS, own key), from the last one before ``since`` on."""
    done = sorted(r.ret for r in records if r.kind != "r" and r.status == "ok" and r.ret != INF)
    first = max((i for i, t in enumerate(done) if t <= since), default=0)
    return max((b - a for a, b in itertools.pairwise(done[first:])), default=0.0)


def _log(what: str, faults: list[str], start: float) -> None:
    faults.append(f"{time.monotonic() - start:7.2f}s {what}")


async def leader_kill(cluster: Cluster, spend: float, rng: random.Random) -> None:
    """SIGKILL the leader; restart it (same data) halfway through."""
    leader = await cluster.wait_leader()
    await leader.kill()
    await asyncio.sleep(spend / 2)
    await leader.start()
    await leader.wait_serving()
    await asyncio.sleep(spend / 2)


async def leader_cut(cluster: Cluster, spend: float, rng: random.Random) -> None:
    """Cut the leader off from every peer, both ways; heal halfway through."""
    leader = await cluster.wait_leader()
    cluster.network.isolate(leader.name)
    await asyncio.sleep(spend / 2)
    cluster.network.heal()
    await asyncio.sleep(spend / 2)


async def follower_stop(cluster: Cluster, spend: float, rng: random.Random) -> None:
    """SIGSTOP a follower; SIGCONT it halfway through."""
    leader = await cluster.wait_leader()
    follower = rng.choice([n for n in cluster.nodes.values() if n is not leader])
    follower.signal(signal.SIGSTOP)
    await asyncio.sleep(spend / 2)
    follower.signal(signal.SIGCONT)
    await asyncio.sleep(spend / 2)


async def lossy(cluster: Cluster, spend: float, rng: random.Random) -> None:
    """Lose 10% of the messages on every link."""
    cluster.network.set(Faults(drop=0.1))
    await asyncio.sleep(spend)
    cluster.network.heal()


SCENARIOS: dict[str, Scenario] = {
    "leader-kill": leader_kill,
    "leader-cut": leader_cut,
    "follower-stop": follower_stop,
    "lossy": lossy,
}


async def nemesis(cluster: Cluster, spend: float, rng: random.Random,
                  faults: list[str] | None = None) -> None:
    """The long run's schedule: one random fault after another, each held a few seconds,
    with a quiet second between; nothing left faulty at the end."""
    log = faults if faults is not None else []
    start = time.monotonic()
    end = start + spend
    while time.monotonic() < end - 2:
        hold = min(rng.uniform(1, 6), max(0.5, end - time.monotonic() - 1))
        nodes = list(cluster.nodes.values())
        leader = await cluster.leader()
        victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(nodes)
        fault = rng.choice(("kill", "stop", "isolate", "partition", "one-way", "lossy", "slow",
                            "reset"))
        _log(f"{fault} {victim.name} for {hold:.1f}s", log, start)
        network = cluster.network
        if fault == "kill":
            await victim.kill()
        elif fault == "stop":
            victim.signal(signal.SIGSTOP)
        elif fault == "isolate":
            network.isolate(victim.name)
        elif fault == "partition":
            names = cluster.names[:]
            rng.shuffle(names)
            cut = rng.randrange(1, len(names))
            network.partition(names[:cut], names[cut:])
        elif fault == "one-way":
            network.cut([victim.name], [n for n in cluster.names if n != victim.name])
        elif fault == "lossy":
            network.set(Faults(drop=rng.choice((0.05, 0.1, 0.3))))
        elif fault == "slow":
            network.set(Faults(delay=0.05, jitter=0.2), src=[victim.name])
        else:
            network.reset(victim.name)
        await asyncio.sleep(hold)
        await _undo(cluster)
        await asyncio.sleep(1.0)


async def _undo(cluster: Cluster) -> None:
    """Heal the network, continue stopped members, restart dead ones."""
    cluster.network.heal()
    for node in cluster.nodes.values():
        if node.stopped:
            node.signal(signal.SIGCONT)
        if not node.up:
            await node.start()
    for node in cluster.nodes.values():
        await node.wait_serving()


async def _term(node: Node) -> int:
    status = await node.status()
    assert status is not None, f"{node.name} stopped answering"
    return int(status["term"])


async def run(tmp: Path, scenario: Scenario, *, members: int = 3, duration: float = 8.0,
              seed: int = 0, clients: int = 4, keys: int = 3, warmup: float = 1.0,
              extra: tuple[str, ...] = (), root: Path = ROOT) -> Outcome:
    """One run: ``warmup`` seconds of traffic, the scenario for ``duration`` seconds, then
    recovery and the check. Raises AssertionError if the cluster never recovers."""
    rng = random.Random(seed)
    async with Cluster(tmp, members, seed=seed, extra=extra, root=root) as cluster:
        before = await _term(await cluster.wait_leader())
        workload = Workload(cluster.controls(), clients=clients, keys=keys, seed=seed)
        stop = asyncio.Event()
        traffic = asyncio.create_task(workload.run(stop))
        faults: list[str] = []
        try:
            await asyncio.sleep(warmup)
            if scenario is nemesis:
                await nemesis(cluster, duration, rng, faults)
            else:
                faults.append(f"{scenario.__name__} for {duration:.1f}s")
                await scenario(cluster, duration, rng)
            await _undo(cluster)
            stop.set()
            async with asyncio.timeout(120):  # each operation's attempts are bounded
                await traffic
        finally:
            stop.set()
            if not traffic.done():
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic
        final = await cluster.converged()
        after = await _term(await cluster.wait_leader())
        outcome = Outcome(workload.records, final, faults, dropped=cluster.network.dropped(),
                          terms=(before, after))
        outcome.problems = check(workload.records, final)
        return outcome

"""One PySyncObj member process for ``bench/cluster_compare.py`` (not meant to be run by hand).

A ``SyncObj`` with its own TCP transport and in-memory journal (the library's defaults, unless
``--no-batch``) whose ``@replicated`` method ``inc`` adds one to a counter. Driven through
stdin like ``bench/_webraft_member.py`` (same commands, same JSON answers on stdout); the
load generator runs in this process's main thread while PySyncObj's tick thread does Raft,
as in PySyncObj's own benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from _common import PROBE_INTERVAL, PROBE_LIMIT, command, emit  # bench/ is on the path
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated


class Counter(SyncObj):
    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self.counter = 0

    @replicated
    def inc(self, cmd: str) -> int:
        self.counter += 1
        return self.counter


def throughput(obj: Counter, in_flight: int, total: int, timeout: float) -> dict[str, Any]:
    """Closed loop: keep ``in_flight`` proposals outstanding until ``total`` completed."""
    slots = threading.Semaphore(in_flight)
    finished = threading.Event()
    counts = [0, 0]  # ok, failed; only the tick thread (callbacks) writes them

    def on_done(result: Any, error: int) -> None:
        counts[0 if error == FAIL_REASON.SUCCESS else 1] += 1
        slots.release()
        if counts[0] + counts[1] == total:
            finished.set()

    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + timeout
    for i in range(total):
        if not slots.acquire(timeout=max(0.0, deadline - time.perf_counter())):
            break
        obj.inc(command(i), callback=on_done)
    finished.wait(max(0.0, deadline - time.perf_counter()))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ok, failed = counts
    return {"in_flight": in_flight, "total": total, "ok": ok, "failed": failed,
            "seconds": wall, "rate": ok / wall, "cpu": cpu / wall}


def latency(obj: Counter, count: int) -> dict[str, Any]:
    samples: list[float] = []
    failed = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        try:
            obj.inc(command(i), sync=True, timeout=5)
        except Exception:
            failed += 1
            continue
        samples.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    return {"total": count, "ok": len(samples), "failed": failed, "samples": samples,
            "cpu": (time.process_time() - cpu0) / wall}


def bench(obj: Counter, spec: dict[str, Any], timeout: float) -> None:
    if not obj._isLeader():
        emit("bench", error="not the leader")
        return
    latency(obj, spec.get("warmup", 20))
    phases = []
    for phase in spec["phases"]:  # ["inflight", N, total] or ["sequential", count]
        name = f"inflight{phase[1]}" if phase[0] == "inflight" else "sequential"
        term0, leader0 = obj.raftCurrentTerm, obj._isLeader()
        emit("phase", name=name, edge="start")
        if phase[0] == "inflight":
            result = throughput(obj, phase[1], phase[2], timeout)
        else:
            result = latency(obj, phase[1])
        emit("phase", name=name, edge="end")
        phases.append({"name": name, **result, "terms": [term0, obj.raftCurrentTerm],
                       "leader": [leader0, obj._isLeader()]})
    emit("bench", phases=phases)


def probe(obj: Counter) -> None:
    first = threading.Event()
    at: list[float] = []

    def on_done(result: Any, error: int) -> None:
        if error == FAIL_REASON.SUCCESS and not at:
            at.append(time.monotonic())
            first.set()

    attempts = 0
    deadline = time.monotonic() + PROBE_LIMIT
    while not first.is_set() and time.monotonic() < deadline:
        obj.inc(command(attempts), callback=on_done)
        attempts += 1
        first.wait(PROBE_INTERVAL)
    leader = obj._getLeader()
    emit("probe", t_commit=at[0] if at else None, attempts=attempts,
         leader=leader.address if leader is not None else None, term=obj.raftCurrentTerm)


def status(obj: Counter, name: str) -> None:
    leader = obj._getLeader()
    peers = sum(1 for node in obj.otherNodes if obj.isNodeConnected(node))
    emit("status", name=name, leader=leader.address if leader is not None else None,
         is_leader=obj._isLeader(), peers=peers, commit=obj.raftCommitIndex,
         term=obj.raftCurrentTerm, ready=obj.isReady())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--self", dest="self_addr", required=True, help="HOST:PORT")
    p.add_argument("--partners", required=True, help="HOST:PORT,HOST:PORT")
    p.add_argument("--no-batch", action="store_true",
                   help="appendEntriesUseBatch=False (send at once instead of every "
                   "appendEntriesPeriod)")
    p.add_argument("--phase-timeout", type=float, default=30.0)
    args = p.parse_args()
    conf = SyncObjConf(appendEntriesUseBatch=not args.no_batch)
    obj = Counter(args.self_addr, args.partners.split(","), conf)
    obj.waitBinded()
    emit("started", name=args.self_addr)
    try:
        for line in sys.stdin:
            word, _, rest = line.strip().partition(" ")
            if word == "status":
                status(obj, args.self_addr)
            elif word == "warm":
                try:
                    obj.inc(command(0), sync=True, timeout=10)
                    emit("warm", index=obj.raftCommitIndex)
                except Exception as exc:
                    emit("warm", error=repr(exc))
            elif word == "bench":
                bench(obj, json.loads(rest), args.phase_timeout)
            elif word == "probe":
                probe(obj)
            elif word == "quit":
                break
    except KeyboardInterrupt:
        pass
    finally:
        obj.destroy()


if __name__ == "__main__":
    main()

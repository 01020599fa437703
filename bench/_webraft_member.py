"""One webraft member process for ``bench/cluster_compare.py`` (not meant to be run by hand).

A :class:`~webraft.transport.websocket.RelayRaft` (or, ``--direct``, a
:class:`~webraft.transport.direct_raft.DirectRaft`) whose state machine is a counter: every
committed command (a 10-byte string such as ``inc:000042``) adds one. The process is driven by
its parent through stdin, one command per line, and answers with one JSON object per line on
stdout (``{"ev": ...}``); it exits on ``quit`` or when stdin closes (its parent is gone).

* ``status``: who leads as far as this node knows, how many peers it sees, its commit index.
* ``warm``: propose one command and wait for it (checks the forwarding path).
* ``bench JSON``: on the leader, run the workload (load generated in this process, so the
  figures are those of the consensus path): its phases in the order given, each commits/s
  keeping N proposals in flight or the sequential commit latency. Optionally profiles phases
  (cProfile or py-spy).
* ``transfer``: if leading, hand leadership over (``transfer_leadership()``); reports the
  ``time.monotonic()`` of the call and the target.
* ``probe``: failover probe: propose every 10 ms until one proposal commits, report the
  ``time.monotonic()`` of that commit (CLOCK_MONOTONIC is system-wide on Linux, so the parent
  compares it with the instant it sent SIGKILL to the leader).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import PROBE_INTERVAL, PROBE_LIMIT, command, emit  # bench/ is on the path

from webraft import MemoryStorage
from webraft.transport.direct_raft import DirectRaft
from webraft.transport.websocket import RelayRaft


class Member:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counter = 0
        storage: Any
        if args.storage == "sqlite":
            from webraft.storage.sqlite import SQLiteStorage

            Path(args.data).mkdir(parents=True, exist_ok=True)
            storage = SQLiteStorage(Path(args.data) / "raft.sqlite3", threaded=True)
        else:
            storage = MemoryStorage()
        self.storage = storage
        members = args.members.split(",")
        self.node: RelayRaft | DirectRaft
        if args.direct:
            # --direct n1=127.0.0.1:7001,n2=...: every member's link address, ours included.
            where = {name: addr.rpartition(":") for name, addr in
                     (item.split("=", 1) for item in args.direct.split(","))}
            endpoints = {name: (host, int(port)) for name, (host, _, port) in where.items()}
            self.node = DirectRaft(args.name, listen=endpoints.pop(args.name), peers=endpoints,
                                   room=args.room, token=args.token, members=members,
                                   storage=storage)
        else:
            self.node = RelayRaft(args.name, url=args.relay, room=args.room, members=members,
                                  storage=storage)
        self.node.listen("apply", self._apply)
        self.max_lag = 0.0  # longest event-loop stall seen by the lag monitor, in seconds
        if args.trace:
            for event in ("leader", "follower", "candidate", "heartbeat timeout",
                          "start election"):
                self.node.listen(event, lambda *a, event=event: self.trace(event, *a))

    def trace(self, *what: Any) -> None:
        print(f"{time.monotonic():.3f} {self.args.name} term {self.node.term}:", *what,
              file=sys.stderr, flush=True)

    async def watch_lag(self) -> None:
        """Measure how late a 10 ms sleep wakes up: the loop's longest stall."""
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lag = time.perf_counter() - t - 0.01
            if lag > self.max_lag:
                self.max_lag = lag
            if self.args.trace and lag > 0.1:
                self.trace(f"event loop stalled {lag * 1e3:.0f} ms")

    def _apply(self, entry: Any, index: int, cb: Any) -> None:
        self.counter += 1
        cb()

    # ------------------------------------------------------------------ workloads

    async def throughput(self, in_flight: int, total: int) -> dict[str, Any]:
        """Closed loop: keep ``in_flight`` proposals outstanding until ``total`` completed."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        issued = ok = failed = 0
        errors: Counter[str] = Counter()
        propose = self.node.propose

        def issue() -> None:
            nonlocal issued
            fut = propose(command(issued))
            issued += 1
            fut.add_done_callback(on_done)

        def on_done(fut: asyncio.Future[int]) -> None:
            nonlocal ok, failed
            exc = None if fut.cancelled() else fut.exception()
            if fut.cancelled() or exc is not None:
                failed += 1
                errors[type(exc).__name__] += 1
            else:
                ok += 1
            if issued < total:
                issue()
            elif ok + failed == total and not finished.done():
                finished.set_result(None)

        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(min(in_flight, total)):
            issue()
        with contextlib.suppress(TimeoutError):  # what is left counts as "no outcome"
            await asyncio.wait_for(asyncio.shield(finished), timeout=self.args.phase_timeout)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        issued = total  # stop issuing if the phase timed out
        return {"in_flight": in_flight, "total": total, "ok": ok, "failed": failed,
                "seconds": wall, "rate": ok / wall, "cpu": cpu / wall,
                "errors": dict(errors)}

    async def latency(self, count: int) -> dict[str, Any]:
        samples: list[float] = []
        failed = 0
        errors: Counter[str] = Counter()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            try:
                await self.node.propose(command(i))
            except Exception as exc:
                failed += 1
                errors[type(exc).__name__] += 1
                continue
            samples.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
        return {"total": count, "ok": len(samples), "failed": failed, "samples": samples,
                "cpu": (time.process_time() - cpu0) / wall, "errors": dict(errors)}

    async def bench(self, spec: dict[str, Any]) -> None:
        if not self.node.is_leader:
            emit("bench", error=f"{self.args.name} is not the leader")
            return
        await self.latency(spec.get("warmup", 200))
        profile = spec.get("profile")  # {"dir": ..., "phases": [...], "py_spy": path|None}
        phases = []
        for phase in spec["phases"]:  # ["inflight", N, total] or ["sequential", count]
            name = f"inflight{phase[1]}" if phase[0] == "inflight" else "sequential"
            async with self.profiled(profile, name):
                term0, leader0, self.max_lag = self.node.term, self.node.is_leader, 0.0
                emit("phase", name=name, edge="start")
                if phase[0] == "inflight":
                    result = await self.throughput(phase[1], phase[2])
                else:
                    result = await self.latency(phase[1])
                emit("phase", name=name, edge="end")
            phases.append({"name": name, **result, "terms": [term0, self.node.term],
                           "leader": [leader0, self.node.is_leader], "max_lag": self.max_lag})
        emit("bench", phases=phases, storage=self.args.storage)

    @contextlib.asynccontextmanager
    async def profiled(self, profile: dict[str, Any] | None, phase: str) -> Any:
        if not profile or phase not in profile["phases"]:
            yield
            return
        out = Path(profile["dir"])
        out.mkdir(parents=True, exist_ok=True)
        if profile.get("py_spy"):
            path = out / f"{phase}.collapsed"
            spy = subprocess.Popen(
                [profile["py_spy"], "record", "--pid", str(os.getpid()), "--rate", "250",
                 "--format", "raw", "--output", str(path), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # let it attach before the phase starts
            try:
                yield
            finally:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
                for _ in range(300):  # never block the loop: heartbeats must go on
                    if spy.poll() is not None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    spy.kill()
                    spy.wait()
            return
        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            prof.dump_stats(out / f"{phase}.prof")

    async def probe(self) -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[float] = loop.create_future()
        attempts = 0

        def on_done(fut: asyncio.Future[int]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return
            if not first.done():
                first.set_result(time.monotonic())

        deadline = time.monotonic() + PROBE_LIMIT
        while not first.done() and time.monotonic() < deadline:
            self.node.propose(command(attempts)).add_done_callback(on_done)
            attempts += 1
            await asyncio.wait([first], timeout=PROBE_INTERVAL)
        emit("probe", t_commit=first.result() if first.done() else None, attempts=attempts,
             leader=self.node.leader, term=self.node.term)

    # ------------------------------------------------------------------ driving

    def status(self) -> None:
        node = self.node
        emit("status", name=self.args.name, leader=node.leader, is_leader=node.is_leader,
             peers=len(node.nodes), connected=node.connected,
             commit=node.commit_index,
             term=node.term)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read_stdin, daemon=True).start()
        self.node.start()
        lag_task = loop.create_task(self.watch_lag())
        emit("started", name=self.args.name, pid=os.getpid())
        try:
            while (line := await lines.get()) is not None:
                word, _, rest = line.strip().partition(" ")
                if word == "status":
                    self.status()
                elif word == "warm":
                    try:
                        index = await asyncio.wait_for(self.node.propose(command(0)), 10)
                        emit("warm", index=index)
                    except Exception as exc:
                        emit("warm", error=repr(exc))
                elif word == "bench":
                    await self.bench(json.loads(rest))
                elif word == "probe":
                    await self.probe()
                elif word == "transfer":
                    t = time.monotonic()
                    emit("transfer", t=t, to=self.node.transfer_leadership())
                elif word == "quit":
                    break
        finally:
            lag_task.cancel()
            await self.node.close()
            if hasattr(self.storage, "close"):
                self.storage.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--members", required=True)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--relay", help="the relay's URL: members talk through it")
    where.add_argument("--direct", metavar="NAME=HOST:PORT,...",
                       help="every member's link address: members link to each other")
    p.add_argument("--room", required=True)
    p.add_argument("--token", help="with --direct: the token every link proves (HMAC)")
    p.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    p.add_argument("--data", help="directory for --storage sqlite")
    p.add_argument("--phase-timeout", type=float, default=30.0)
    p.add_argument("--trace", action="store_true",
                   help="log role changes and event-loop stalls over 100 ms to stderr")
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Member(args).run())


if __name__ == "__main__":
    main()

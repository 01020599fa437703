"""Benchmark (not a test): 3-process webraft clusters against a 3-process PySyncObj cluster.

One command, one table, every cluster on this machine in the same run, loopback only:

* webraft over the relay: three CPython member processes (``bench/_webraft_member.py``:
  ``RelayRaft``, MemoryStorage by default, ``--storage sqlite`` for SQLiteStorage in threaded
  mode) talking through ONE relay process (``python -m webraft_relay --port 0 --rate 0
  --byte-rate 0``: the relay's per-connection rate limits are off so that they do not cap the
  consensus path being measured).
* webraft over direct links: the same member processes as ``DirectRaft``, linked to each other
  over TCP on 127.0.0.1 (each dials the two others: one-way links, accepted on an HMAC proof
  of the cluster's token), no relay.
* PySyncObj: three processes (``bench/_pysyncobj_member.py``) on its own TCP transport and
  in-memory journal, ``SyncObjConf()`` defaults.

The load generator runs inside the leader process (as in PySyncObj's own benchmarks), so the
figures are those of the consensus path. Workload: a counter; each command is a 10-byte string
(``inc:000042``). Measured, in this order on one cluster per setup: commits/s keeping 1
proposal in flight (closed loop over a fixed number of proposals), the sequential commit
latency (one at a time), commits/s with 100 and then 10,000 in flight (last, because it can
cause an election). Then the failover time: SIGKILL the leader (or have it hand leadership
over), a surviving follower proposes every 10 ms, and the figure is the time from the kill to
its first commit (each sample on a fresh cluster, library-default timeouts; the setups take
turns, sample by sample). A figure marked ``*`` comes from a phase during which the term
changed, proposals failed or the load generator's node stopped leading; the notes say which.
PySyncObj is also run with ``appendEntriesUseBatch=False`` for its best latency.

    python bench/cluster_compare.py [--quick] [--failovers N] [--storage memory|sqlite]
                                    [--skip relay|direct|pysyncobj ...] [--logs DIR] [--trace]
    python bench/cluster_compare.py --profile DIR [--py-spy PATH]   # webraft leader only

``--profile`` runs only the webraft workload (over the relay) and profiles the leader process
during the sequential and the 10,000-in-flight phases (cProfile, or py-spy sampling when
``--py-spy`` names its executable, e.g. from ``pip install --target /tmp/pyspy py-spy``), then
prints the hottest functions. ``--trace`` makes the webraft members log role changes and
event-loop stalls over 100 ms to their stderr, which ``--logs DIR`` keeps (one file per
process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import pstats
import re
import secrets
import shlex
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _common import (  # bench/ is on the path when a script of it runs
    ROOT,
    git_revision,
    machine,
    package_version,
    percentile,
)

BENCH = Path(__file__).resolve().parent
URL_LINE = re.compile(r"listening on (http://\S+) \((ws://\S+)\)")
IN_FLIGHT = (1, 100, 10_000)

# Phases, in order: ["inflight", N, proposals] or ["sequential", proposals]. The same order
# for every spec, as the phases before one change what it measures: the sequential phase comes
# second, right after 1 in flight (webraft's sequential latency came out up to a third higher
# in trials when it ran after 20,000 proposals at 100 in flight), and the heaviest phase runs
# last, so that an election it may cause cannot disturb the others. PySyncObj with its
# default batching sends AppendEntries only every appendEntriesPeriod (0.1 s), so its
# one-at-a-time phases run at about ten commits a second: fewer of them fit in the time budget.
WEBRAFT_SPEC = {"warmup": 200, "phases": [["inflight", 1, 2000], ["sequential", 3000],
                                          ["inflight", 100, 20_000], ["inflight", 10_000, 100_000]]}
PYSYNCOBJ_SPEC = {"warmup": 5, "phases": [["inflight", 1, 100], ["sequential", 500],
                                          ["inflight", 100, 5000], ["inflight", 10_000, 100_000]]}
PYSYNCOBJ_NOBATCH_SPEC = {"warmup": 50, "phases": [["inflight", 1, 2000], ["sequential", 2000]]}


# ---------------------------------------------------------------------------- child processes

PROCS: set[asyncio.subprocess.Process] = set()


def _child_setup() -> None:
    """In the child: die with the parent (Linux), even if the parent is SIGKILLed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def spawn(argv: list[str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=err, start_new_session=True,  # Ctrl-C reaches only us; we clean up
            preexec_fn=_child_setup, limit=64 << 20)
    PROCS.add(proc)
    return proc


async def reap(proc: asyncio.subprocess.Process, grace: float = 3.0) -> None:
    if proc.returncode is None:
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    PROCS.discard(proc)


def kill_all() -> None:
    """Last resort (also on Ctrl-C): SIGKILL every child still running."""
    for proc in list(PROCS):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


class Worker:
    """A member process driven through stdin, answering JSON lines on stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, name: str, argv: list[str], logdir: Path) -> Worker:
        log = logdir / f"{name.replace(':', '_')}.log"
        return cls(name, await spawn(argv, log), log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, ev: str, timeout: float,
                     on_other: Callable[[dict[str, Any]], None] | None = None
                     ) -> dict[str, Any]:
        """The next line with ``"ev": ev``; ``on_other`` sees the other JSON lines."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    tail = self.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail}")
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(msg, dict) and msg.get("ev") == ev:
                    return msg
                if on_other is not None and isinstance(msg, dict):
                    on_other(msg)

    async def ask(self, line: str, ev: str, timeout: float = 10.0,
                  on_other: Callable[[dict[str, Any]], None] | None = None
                  ) -> dict[str, Any]:
        await self.send(line)
        return await self.expect(ev, timeout, on_other)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.send("quit")
                assert self.proc.stdin is not None
                self.proc.stdin.close()
        await reap(self.proc)


async def stop_all(workers: list[Worker]) -> None:
    await asyncio.gather(*(w.stop() for w in workers))


async def wait_for_leader(workers: list[Worker], timeout: float = 30.0) -> int:
    """Poll until every member names the same leader and sees both peers; its index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [await w.ask("status", "status") for w in workers]
        leaders = {s["leader"] for s in states}
        if len(leaders) == 1 and None not in leaders and all(s["peers"] == 2 for s in states):
            return next(i for i, s in enumerate(states) if s["is_leader"])
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no stable leader within {timeout} s: {states}")


# ---------------------------------------------------------------------------- the two clusters


@dataclass
class Env:
    tmp: Path
    relay_url: str
    relay_pid: int
    storage: str
    clusters: int = 0
    trace: bool = False


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def start_relay(tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await spawn([sys.executable, "-m", "webraft_relay", "--port", "0", "--rate", "0",
                        "--byte-rate", "0", "--static", "", "--pyodide-dir", "", "--dist", ""],
                       tmp / "relay.log")
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    match = URL_LINE.search(line)
    if match is None:
        raise RuntimeError(f"relay did not start: {line!r} {(tmp / 'relay.log').read_text()}")
    return proc, match.group(2)


async def webraft_cluster(env: Env, direct: bool = False) -> tuple[list[Worker], int]:
    """Three webraft members, through the relay or (``direct``) linked to each other."""
    env.clusters += 1
    room = f"bench{env.clusters}"
    names = ["n1", "n2", "n3"]
    if direct:
        # A fresh token per cluster, which every link's handshake proves (HMAC), as in a
        # deployment: the handshake costs what it would there.
        where = ["--direct", ",".join(f"{name}=127.0.0.1:{port}"
                                      for name, port in zip(names, free_ports(3), strict=True)),
                 "--token", secrets.token_hex(16)]
    else:
        where = ["--relay", env.relay_url]
    workers = []
    for name in names:
        argv = [sys.executable, str(BENCH / "_webraft_member.py"), "--name", name,
                "--members", ",".join(names), *where, "--room", room,
                "--storage", env.storage, "--data", str(env.tmp / room / name)]
        if env.trace:
            argv.append("--trace")
        workers.append(await Worker.start(f"webraft-{room}-{name}", argv, env.tmp))
    try:
        for w in workers:
            await w.expect("started", 30)
        return workers, await wait_for_leader(workers)
    except BaseException:
        await stop_all(workers)
        raise


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def pysyncobj_cluster(env: Env, no_batch: bool = False) -> tuple[list[Worker], int]:
    env.clusters += 1
    # PySyncObj's TCP transport lets the node with the greater address connect to the lesser
    # and retries a failed connect only every connectionRetryTime (5 s): start them in
    # increasing address order, each once the previous one listens.
    addrs = sorted(f"127.0.0.1:{p}" for p in free_ports(3))
    workers: list[Worker] = []
    try:
        for addr in addrs:
            argv = [sys.executable, str(BENCH / "_pysyncobj_member.py"), "--self", addr,
                    "--partners", ",".join(a for a in addrs if a != addr)]
            if no_batch:
                argv.append("--no-batch")
            w = await Worker.start(f"pysyncobj-{env.clusters}-{addr}", argv, env.tmp)
            workers.append(w)
            await w.expect("started", 30)
        return workers, await wait_for_leader(workers)
    except BaseException:
        await stop_all(workers)
        raise


@dataclass(frozen=True)
class Cluster:
    """One kind of 3-process cluster measured: its column's label, how to start one, the
    workload its leader runs, whether it can hand leadership over (PySyncObj cannot), and
    whether the relay process works for it (its CPU is then counted with the members')."""

    label: str
    start: Callable[[Env], Awaitable[tuple[list[Worker], int]]]
    spec: dict[str, Any]
    transfer: bool
    relay: bool


#: Every kind of cluster, in the table's order (the keys name them on the command line).
CLUSTERS = {
    "relay": Cluster("webraft relay", webraft_cluster, WEBRAFT_SPEC, transfer=True, relay=True),
    "direct": Cluster("webraft direct", partial(webraft_cluster, direct=True), WEBRAFT_SPEC,
                      transfer=True, relay=False),
    "pysyncobj": Cluster("PySyncObj", pysyncobj_cluster, PYSYNCOBJ_SPEC, transfer=False,
                         relay=False),
}

async def run_bench(make: Callable[[], Awaitable[tuple[list[Worker], int]]],
                    spec: dict[str, Any], relay_pid: int | None = None) -> dict[str, Any]:
    """Run ``spec`` on the leader of a fresh cluster; adds the CPU each process used in each
    phase (``cores``: CPU seconds per wall second, from /proc)."""
    workers, leader = await make()
    pids = {"leader": workers[leader].pid}
    pids.update({f"follower{k}": w.pid for k, w in
                 enumerate((w for i, w in enumerate(workers) if i != leader), 1)})
    if relay_pid is not None:
        pids["relay"] = relay_pid
    marks: dict[str, tuple[float, dict[str, float]]] = {}
    cores: dict[str, dict[str, float]] = {}

    def on_phase(msg: dict[str, Any]) -> None:
        if msg.get("ev") != "phase":
            return
        now, cpu = time.monotonic(), {k: cpu_seconds(p) for k, p in pids.items()}
        if msg["edge"] == "start":
            marks[msg["name"]] = (now, cpu)
        elif msg["name"] in marks:
            t0, cpu0 = marks[msg["name"]]
            cores[msg["name"]] = {k: (cpu[k] - cpu0[k]) / (now - t0) for k in pids}

    try:
        result = await workers[leader].ask("bench " + json.dumps(spec), "bench", timeout=600,
                                           on_other=on_phase)
        if "error" in result:
            raise RuntimeError(result["error"])
        result["cores"] = cores
        return result
    finally:
        await stop_all(workers)


async def failover(make: Callable[[], Awaitable[tuple[list[Worker], int]]],
                   transfer: bool = False) -> float | None:
    """On a fresh cluster, kill -9 the leader (or, ``transfer``, have it hand leadership over:
    webraft only, PySyncObj has none); seconds until a survivor's proposal commits."""
    workers, leader = await make()
    try:
        survivor = workers[(leader + 1) % 3]
        warm = await survivor.ask("warm", "warm", 15)
        if "error" in warm:
            raise RuntimeError(f"warm-up proposal failed: {warm['error']}")
        await asyncio.sleep(0.2)
        if transfer:
            answer = await workers[leader].ask("transfer", "transfer", 10)
            if answer["to"] is None:
                return None
            start = answer["t"]
        else:
            start = time.monotonic()
            os.kill(workers[leader].pid, signal.SIGKILL)
        probe = await survivor.ask("probe", "probe", 40)
        return None if probe["t_commit"] is None else probe["t_commit"] - start
    finally:
        await stop_all(workers)


# ---------------------------------------------------------------------------- reporting


def versions() -> str:
    dists = ("webraft", "websockets", "pysyncobj")
    return ", ".join([f"git {git_revision()}"]
                     + [f"{dist} {package_version(dist) or '?'}" for dist in dists])


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}/s"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:,.1f} ms" if x >= 0.01 else f"{x * 1e3:.2f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Figures by key (rate1, rate100, rate10000, p50, p99) plus what went wrong, if anything:
    a phase whose term changed, whose proposals failed or got no outcome, or that did not run
    on the leader all along is marked ``*`` and explained under the table."""
    out: dict[str, Any] = {"incidents": [], "stalls": {}, "cores": result.get("cores", {})}
    for t in result["phases"]:
        name = t["name"]
        key = name.removeprefix("inflight") if name != "sequential" else "seq"
        if name == "sequential":
            samples = t["samples"]
            out["p50"] = percentile(samples, 0.50) if samples else None
            out["p99"] = percentile(samples, 0.99) if samples else None
            out["nlat"] = len(samples)
        else:
            out[f"rate{key}"] = t["rate"]
            out[f"n{key}"] = f"{t['ok']:,}"
        (term0, term1), (lead0, lead1) = t["terms"], t["leader"]
        lost = t["total"] - t["ok"] - t["failed"]
        if term0 != term1 or t["failed"] or lost or not (lead0 and lead1):
            what = [f"term {term0}->{term1}"]
            if not lead0:
                what.append("the load generator's node was no longer the leader")
            elif not lead1:
                what.append("the leader lost leadership")
            if t["failed"]:
                what.append(f"{t['failed']:,} proposals failed"
                            + (f" {t['errors']}" if t.get("errors") else ""))
            if lost:
                what.append(f"{lost:,} proposals had no outcome when the phase timed out")
            out["incidents"].append(f"{name}: " + ", ".join(what))
            out[f"mark{key}"] = "*"
        if "max_lag" in t:
            out["stalls"][name] = t["max_lag"]
    return out


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  " + row[0].ljust(widths[0]) + "  " +
              "  ".join(cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:])))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def report(args: argparse.Namespace, figures: dict[str, Any], elapsed: float) -> None:
    """The table (a column per cluster measured, then each webraft cluster's ratio to
    PySyncObj when it ran) and the notes that say how its figures came about."""
    summary: dict[str, dict[str, Any]] = figures["summary"]
    kill, transfer, nb = figures["kill"], figures["transfer"], figures["nobatch"]
    label = {key: CLUSTERS[key].label for key in summary}
    webraft = [key for key in summary if key != "pysyncobj"]
    compared = webraft if "pysyncobj" in summary else []
    rows = [["metric", *label.values(), *(f"{key}/PySyncObj" for key in compared)]]

    def add(metric: str, values: dict[str, float | None], fmt: Callable[[float | None], str],
            mark: str = "", compare: bool = True) -> None:
        """One row: a cluster missing from ``values`` cannot measure it (n/a); ``mark`` names
        the summary key that flags a disturbed phase."""
        cells = [fmt(values[key]) + summary[key].get(mark, " ") if key in values else "n/a "
                 for key in summary]
        ratios = [ratio(values[key], values["pysyncobj"]) if compare else ""
                  for key in compared]
        rows.append([metric, *cells, *ratios])

    for n in IN_FLIGHT:
        add(f"commits/s, {n:,} in flight", {k: s.get(f"rate{n}") for k, s in summary.items()},
            fmt_rate, f"mark{n}")
    for q in ("p50", "p99"):
        add(f"sequential commit latency {q}", {k: s.get(q) for k, s in summary.items()}, fmt_ms,
            "markseq")
    if any(kill.values()):
        add("failover after kill -9, median",
            {k: _of_committed(statistics.median, xs) for k, xs in kill.items()}, fmt_ms)
        for name, fn in (("min", min), ("max", max)):
            add(f"failover after kill -9, {name}",
                {k: _of_committed(fn, xs) for k, xs in kill.items()}, fmt_ms, compare=False)
    if any(transfer.values()):
        add("failover by leadership transfer, median",
            {k: _of_committed(statistics.median, xs) for k, xs in transfer.items()}, fmt_ms,
            compare=False)
    print()
    print("3-member clusters, one process per member, 127.0.0.1; load generated in the leader")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(f"command: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print()
    print_table(rows)
    print()
    print("notes:")
    storage = {"memory": "MemoryStorage",
               "sqlite": "SQLiteStorage (threaded=True, fsync per save)"}[args.storage]
    if "relay" in summary:
        print(f"  webraft relay: RelayRaft, {storage}, one relay process (--rate 0 "
              "--byte-rate 0: the relay's rate limits off)")
    if "direct" in summary:
        print(f"  webraft direct: DirectRaft, {storage}, linked over TCP on 127.0.0.1 (each "
              "member dials the two others: one-way links, HMAC proof of the token), no relay")
    if webraft:
        print("  webraft: default timing (heartbeat 0.05 s, follower timeout 0.20 s + up to "
              "0.05 s, election 0.15-0.30 s, CheckQuorum 0.20 s, proposal_timeout 5 s)")
    if "pysyncobj" in summary:
        print("  PySyncObj: SyncObjConf() defaults: TCP transport, in-memory journal, "
              "appendEntriesUseBatch=True, appendEntriesPeriod 0.1 s, autoTickPeriod 0.05 s, "
              "election timeout raftMinTimeout..raftMaxTimeout = 0.4-1.4 s")
    print("  proposals committed per phase (1 / 100 / 10,000 in flight): " + "; ".join(
        f"{label[k]} {s['n1']} / {s['n100']} / {s['n10000']}" for k, s in summary.items()))
    for key, res in summary.items():
        for incident in res["incidents"]:
            print(f"  * {label[key]} {incident}")
        if res["stalls"]:
            print(f"  {label[key]} leader's longest event-loop stall per phase: " + ", ".join(
                f"{k} {v * 1e3:.0f} ms" for k, v in res["stalls"].items()))
    print("  latency samples: " + ", ".join(f"{label[k]} {s['nlat']}" for k, s in summary.items())
          + (" (PySyncObj's default batching waits for the next 0.1 s AppendEntries round, so "
             "fewer fit)" if "pysyncobj" in summary else ""))
    if nb is not None:
        print(f"  PySyncObj with appendEntriesUseBatch=False (its low-latency setting): "
              f"1 in flight {fmt_rate(nb.get('rate1'))}, sequential p50 {fmt_ms(nb['p50'])}, "
              f"p99 {fmt_ms(nb['p99'])} ({nb['nlat']} samples)")
    print("  CPU busy per process during each phase (1.00 = one core; this machine has "
          f"{os.cpu_count()}):")
    for phase in dict.fromkeys(p for s in summary.values() for p in s["cores"]):  # run order
        print(f"    {phase:<15} " + "; ".join(
            f"{label[k]} {_cores(s['cores'].get(phase))}" for k, s in summary.items()))
    if any(kill.values()):
        print("  failover: fresh cluster per sample; SIGKILL the leader, a follower proposes "
              "every 10 ms; time from the kill to its first commit. samples (ms): " + "; ".join(
                  f"{label[k]} {_list(xs)}" for k, xs in kill.items()))
    if any(transfer.values()):
        print("  leadership transfer: the leader calls transfer_leadership(); time from the "
              "call to a follower's first commit. samples (ms): " + "; ".join(
                  f"{label[k]} {_list(xs)}" for k, xs in transfer.items()))
    print(f"  total run time {elapsed:.0f} s")


def _of_committed(fn: Callable[[list[float]], float], samples: list[float | None]
                  ) -> float | None:
    """``fn`` of the failover samples that committed; None if none did."""
    ok = [x for x in samples if x is not None]
    return fn(ok) if ok else None


def _cores(by_proc: dict[str, float] | None) -> str:
    if not by_proc:
        return "-"
    parts = [f"{k} {v:.2f}" for k, v in by_proc.items()]
    return ", ".join(parts) + f" (sum {sum(by_proc.values()):.2f})"


def _list(xs: list[float | None]) -> str:
    return "[" + ", ".join("fail" if x is None else f"{x * 1e3:.0f}" for x in xs) + "]"


# ---------------------------------------------------------------------------- profiling


def print_cprofile(path: Path, top: int) -> None:
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    print(f"\n{path.stem}: cProfile, {total:.2f} s of profiled time; top by own time")
    print(f"  {'own%':>6} {'cum%':>6} {'calls':>10}  function")
    for (file, line, func), (_cc, nc, tt, ct, _callers) in entries[:top]:
        where = f"{_short(file)}:{line}" if line else file
        print(f"  {100 * tt / total:6.1f} {100 * ct / total:6.1f} {nc:>10}  {func} ({where})")


def print_collapsed(path: Path, top: int) -> None:
    """py-spy's raw output, per function (lines merged): own time, then inclusive time of the
    functions of webraft, the relay client, websockets and json (not the event loop's)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", _short(f)) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    idle = sum(n for name, n in own.items() if name.startswith("EpollSelector.select"))
    busy = max(1, total - idle)
    print(f"\n{path.stem}: py-spy, {total} samples, {100 * idle / max(1, total):.0f}% waiting "
          "in epoll; top by own time (% of all samples, % of busy samples)")
    for name, n in own.most_common(top):
        share = "" if name.startswith("EpollSelector.select") else f"{100 * n / busy:6.1f}%"
        print(f"  {100 * n / total:6.1f}% {share:>7}  {name}")
    print(f"{path.stem}: top by inclusive time (webraft, websockets, json)")
    mine = Counter({k: v for k, v in incl.items() if _MINE.search(k)})
    for name, n in mine.most_common(top):
        print(f"  {100 * n / total:6.1f}%  {name}")


_LINE = re.compile(r":\d+\)$")
_MINE = re.compile(r"\((webraft|relay|websockets|json)/")


def _short(text: str) -> str:
    """Paths relative to the checkout, site-packages or the standard library."""
    return _PREFIX.sub("", text.replace(str(ROOT) + "/", ""))


_PREFIX = re.compile(r"[^\s(]*?(?:site-packages|lib/python3\.\d+)/")


async def profile(args: argparse.Namespace, env: Env) -> None:
    out = Path(args.profile).resolve()
    spec: dict[str, Any] = dict(WEBRAFT_SPEC)
    spec["phases"] = [["sequential", 5000], ["inflight", 10_000, 100_000]]
    spec["profile"] = {"dir": str(out), "phases": ["inflight10000", "sequential"],
                       "py_spy": args.py_spy}
    result = summarize(await run_bench(lambda: webraft_cluster(env), spec))
    print(f"webraft leader profiled: 10,000 in flight {fmt_rate(result['rate10000'])}, "
          f"sequential p50 {fmt_ms(result['p50'])} p99 {fmt_ms(result['p99'])}"
          " (profiler overhead included)")
    for incident in result["incidents"]:
        print(f"  * {incident} (a profile of a leader that stepped down mixes in follower work)")
    for phase in ("inflight10000", "sequential"):
        if args.py_spy:
            print_collapsed(out / f"{phase}.collapsed", args.top)
        else:
            print_cprofile(out / f"{phase}.prof", args.top)


# ---------------------------------------------------------------------------- main


@contextlib.asynccontextmanager
async def relay_env(storage: str = "memory", trace: bool = False,
                    logs: str | None = None) -> AsyncIterator[Env]:
    """A relay process (and a directory for the members' logs) for the time of the block."""
    with tempfile.TemporaryDirectory(prefix="cluster_compare.") as tmpdir:
        tmp = Path(tmpdir)
        if logs:
            tmp = Path(logs).resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        relay, url = await start_relay(tmp)
        try:
            yield Env(tmp, url, relay.pid, storage, trace=trace)
        finally:
            if relay.returncode is None:
                relay.send_signal(signal.SIGTERM)
            await reap(relay)


async def measure(env: Env, quick: bool = False, failovers: int = 5,
                  clusters: Collection[str] = tuple(CLUSTERS), extra: bool = True
                  ) -> dict[str, Any]:
    """Run the workloads and the failover samples of ``clusters`` (keys of :data:`CLUSTERS`),
    one cluster at a time (never two at once: they would compete for the cores); the failover
    samples take turns, so that a change in the machine's load touches every setup alike.
    Returns, by key: ``summary`` (:func:`summarize` results), ``kill`` (failover samples in
    seconds after SIGKILL; None for a sample that never committed) and ``transfer`` (the same
    after a leadership transfer, for the clusters that have one); and ``nobatch``, PySyncObj
    with ``appendEntriesUseBatch=False`` (None when not run)."""
    chosen = {key: cluster for key, cluster in CLUSTERS.items() if key in clusters}
    scale = 0.2 if quick else 1.0

    def scaled(spec: dict[str, Any]) -> dict[str, Any]:
        return {**spec, "phases": [
            [*ph[:-1], max(ph[1] if ph[0] == "inflight" else 50, int(ph[-1] * scale))]
            for ph in spec["phases"]]}

    figures: dict[str, Any] = {
        "summary": {}, "nobatch": None, "kill": {key: [] for key in chosen},
        "transfer": {key: [] for key, cluster in chosen.items() if cluster.transfer}}
    for key, cluster in chosen.items():
        print(f"{cluster.label} workload ...", file=sys.stderr, flush=True)
        figures["summary"][key] = summarize(await run_bench(
            partial(cluster.start, env), scaled(cluster.spec),
            env.relay_pid if cluster.relay else None))
    if extra and "pysyncobj" in chosen:
        print("PySyncObj appendEntriesUseBatch=False ...", file=sys.stderr, flush=True)
        figures["nobatch"] = summarize(await run_bench(
            partial(pysyncobj_cluster, env, no_batch=True), scaled(PYSYNCOBJ_NOBATCH_SPEC)))
    for i in range(failovers):
        print(f"failover {i + 1}/{failovers} ...", file=sys.stderr, flush=True)
        for key, cluster in chosen.items():
            figures["kill"][key].append(await failover(partial(cluster.start, env)))
            if cluster.transfer:
                figures["transfer"][key].append(
                    await failover(partial(cluster.start, env), transfer=True))
    return figures


async def amain(args: argparse.Namespace) -> None:
    began = time.monotonic()
    async with relay_env(args.storage, args.trace, args.logs) as env:
        if args.profile:
            await profile(args, env)
            return
        figures = await measure(env, args.quick, args.failovers,
                                [key for key in CLUSTERS if key not in args.skip],
                                extra=not args.no_extra)
    report(args, figures, time.monotonic() - began)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a fifth of the proposals")
    p.add_argument("--failovers", type=int, default=5,
                   help="samples per cluster and kind (default 5)")
    p.add_argument("--storage", choices=["memory", "sqlite"], default="memory",
                   help="webraft storage (default: memory, like PySyncObj's default journal)")
    p.add_argument("--skip", action="append", choices=CLUSTERS, default=[],
                   help="leave a cluster out (repeatable)")
    p.add_argument("--no-extra", action="store_true",
                   help="skip the PySyncObj appendEntriesUseBatch=False latency run")
    p.add_argument("--logs", metavar="DIR", help="keep the processes' stderr logs here")
    p.add_argument("--trace", action="store_true",
                   help="webraft members log role changes and event-loop stalls (see --logs)")
    p.add_argument("--profile", metavar="DIR", help="profile the webraft leader only")
    p.add_argument("--py-spy", metavar="PATH", help="with --profile: sample with this py-spy")
    p.add_argument("--top", type=int, default=20, help="with --profile: functions to show")
    args = p.parse_args()
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        kill_all()


if __name__ == "__main__":
    main()

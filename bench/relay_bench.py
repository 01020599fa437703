"""Relay benchmark: throughput against a bare websockets forwarder, and idle connection cost.

Not a test: it prints figures. Everything runs on loopback with bounded loops (about 30 s):

1. Throughput. A receiver process and a sender process (separate interpreters, like separate
   tabs) connect to a server process; the sender blasts N pre-encoded frames to the receiver.
   Measured: wall time from the first send to the last receive, and the server process's CPU
   time (from /proc). The same clients then run against a bare websockets server that forwards
   frames verbatim (no JSON, no rooms, no limits): the floor any relay built on websockets
   sits on. Both single ``send`` frames and ``batch`` frames are measured.
2. Idle connections. One process opens many connections spread over rooms of 10 and the
   relay's RSS growth is divided by the number of connections.
3. Abuse (issue 13, point 1). Flooder processes send maximal frames that are costly to
   validate (``[{},{},...]``, 1 MiB) into one room while a pair in another room plays
   ping-pong; the pair's round trips are reported (p50, p99, max), without the flood, and for
   each ``--flooders`` count (default 3 and 10) with it under the default limits and with
   byte pacing off (``--byte-rate 0``). The flooders run at the lowest CPU priority.
4. Redis (``--only redis``, not in the default run: it needs ``redis-server``). ``--pairs``
   sender/receiver pairs, one room each, blast messages at once; the aggregate rate is
   measured on one relay, on two relay processes sharing a private Redis with each room's
   pair on one relay (the scale-out case), and on two with every sender on one relay and
   every receiver on the other (each message crosses Redis). Server CPU sums the relays and
   Redis.

Usage: ``python bench/relay_bench.py [--messages N] [--batch B] [--idle K] [--flooders N ...]
[--only NAME]``
(the ``_bare``, ``_recv``, ``_send`` and ``_flood`` subcommands are its own child processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"listening on (http://\S+) \((ws://\S+)\)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_GIVE_UP = 10.0  # seconds without a message before a receiver reports what it has
MAX_FRAME = 1 << 20  # the relay's default --max-message-size
FLOOD_MAX_FRAMES = 2000  # per flooder: a bound on the loop besides its time limit


# -- helpers shared by the parent and the children ------------------------------------------------


def raise_fd_limit() -> None:
    """Idle-connection runs need thousands of sockets; lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def payload(i: int) -> dict[str, Any]:
    """Roughly the size and shape of a small Raft AppendEntries."""
    return {
        "t": "append",
        "term": 7,
        "leader": "tx",
        "prev": [i, 7],
        "commit": i - 1,
        "entries": [{"term": 7, "index": i + 1, "cmd": ["set", f"key-{i % 97}", i]}],
    }


def hello(address: str, room: str = "bench") -> str:
    return json.dumps({"type": "hello", "v": 1, "room": room, "address": address})


def frames(count: int, batch: int) -> list[str]:
    """Pre-encoded sender frames, so the sender's JSON cost stays out of the measurement."""
    if batch <= 1:
        return [json.dumps({"type": "send", "to": "rx", "data": payload(i)}) for i in range(count)]
    out = []
    for start in range(0, count, batch):
        msgs = [{"to": "rx", "data": payload(i)} for i in range(start, min(count, start + batch))]
        out.append(json.dumps({"type": "batch", "msgs": msgs}))
    return out


# -- child processes ----------------------------------------------------------------------------


async def bare_server(port: int) -> None:
    """Forward every frame from /tx to /rx verbatim: websockets' own cost, nothing else."""
    receivers: list[ServerConnection] = []
    ready = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/rx":
            receivers.append(ws)
            ready.set()
            await ws.wait_closed()
            return
        await ready.wait()
        rx = receivers[0]
        async for message in ws:
            await rx.send(message)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(
            f"bare forwarder listening on http://127.0.0.1:{port}/ (ws://127.0.0.1:{port}/)",
            flush=True,
        )
        await asyncio.Event().wait()


async def receiver(url: str, expected: int, bare: bool, room: str = "bench") -> None:
    """Count delivered messages (a batch frame carries several) until all have arrived."""
    async with connect(url + ("rx" if bare else ""), compression=None, max_size=None) as ws:
        if not bare:
            await ws.send(hello("rx", room))
            await ws.recv()  # welcome
        print("ready", flush=True)
        cpu_start = own_cpu()
        got = 0
        first = last = 0.0
        while got < expected:
            try:
                async with asyncio.timeout(IDLE_GIVE_UP):
                    raw = await ws.recv()
            except TimeoutError:
                break
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "batch":
                got += len(frame["msgs"])
            elif kind in ("msg", "send"):
                got += 1
            else:
                continue  # join notices
            last = time.monotonic()
            if not first:
                first = last
        print(
            json.dumps(
                {"received": got, "first": first, "last": last, "cpu": own_cpu() - cpu_start}
            ),
            flush=True,
        )


async def sender(url: str, count: int, batch: int, bare: bool, room: str = "bench") -> None:
    prepared = frames(count, batch)
    async with connect(url + ("tx" if bare else ""), compression=None, max_size=None) as ws:
        if not bare:
            await ws.send(hello("tx", room))
            welcome = json.loads(await ws.recv())
            assert "rx" in welcome["peers"], welcome
        cpu_start, start = own_cpu(), time.monotonic()
        for frame in prepared:
            await ws.send(frame)
        report = {"start": start, "sent": time.monotonic(), "cpu": own_cpu() - cpu_start}
        print(json.dumps(report), flush=True)


async def flood(url: str, address: str, seconds: float) -> None:
    """Send maximal ``[{},{},...]`` frames (the costliest to validate per byte) to ourselves
    for ``seconds``, never reading: what one abusive tab of issue 13 did."""
    data = "[" + ",".join(["{}"] * ((MAX_FRAME - 64) // 3)) + "]"
    frame = '{"type":"send","to":"' + address + '","data":' + data + "}"
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "v": 1, "room": "abuse", "address": address}))
        await ws.recv()  # welcome
        print("ready", flush=True)
        sent, deadline = 0, time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while time.monotonic() < deadline and sent < FLOOD_MAX_FRAMES:
                    await ws.send(frame)
                    sent += 1
        print(json.dumps({"sent": sent}), flush=True)


# -- the parent ---------------------------------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=raise_fd_limit,
    )


def start_server(bare: bool) -> tuple[subprocess.Popen[str], str]:
    """The bare forwarder, or a relay with its limits out of the way of throughput."""
    if bare:
        return read_url(spawn(__file__, "_bare"))
    return start_relay(*OPEN_LIMITS)


#: Relay flags that keep its limits out of the way of throughput.
OPEN_LIMITS = ("--rate", "0", "--byte-rate", "0", "--max-outbound-bytes", str(1 << 30),
               "--max-connections", "100000", "--max-batch", "100000")


def start_relay(*flags: str) -> tuple[subprocess.Popen[str], str]:
    """A relay process without static routes; ``flags`` override its defaults."""
    no_files = ("--static", "", "--pyodide-dir", "", "--dist", "")
    return read_url(spawn("-m", "webraft_relay", "--port", "0", *no_files, *flags))


def read_url(proc: subprocess.Popen[str]) -> tuple[subprocess.Popen[str], str]:
    assert proc.stdout is not None
    match = URL_LINE.search(proc.stdout.readline())
    assert match, "server did not start"
    return proc, match[2]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=15)


def throughput(bare: bool, count: int, batch: int) -> dict[str, float]:
    server, url = start_server(bare)
    try:
        base = url.rstrip("/") + "/" if bare else url
        rx = spawn(__file__, "_recv", base, str(count), "--bare" if bare else "--relay")
        assert rx.stdout is not None
        assert rx.stdout.readline().strip() == "ready"
        cpu_before = cpu_seconds(server.pid)
        tx = spawn(__file__, "_send", base, str(count), str(batch), "--bare" if bare else "--relay")
        tx_out, _ = tx.communicate(timeout=120)
        rx_out, _ = rx.communicate(timeout=120)
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        stop(server)
    sent, got = json.loads(tx_out), json.loads(rx_out)
    wall = got["last"] - sent["start"]
    return {
        "received": got["received"],
        "wall": wall,
        "rate": got["received"] / wall,
        "cpu": cpu,
        "cpu_us": cpu / max(1, got["received"]) * 1e6,
        "tx_cpu": sent["cpu"],
        "rx_cpu": got["cpu"],
    }


async def open_idle(url: str, count: int, room_size: int) -> list[Any]:
    """Open ``count`` joined connections, a bounded number of handshakes in flight at once."""

    async def one(i: int) -> Any:
        ws = await connect(url, compression=None)
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "v": 1,
                    "room": f"room-{i // room_size}",
                    "address": f"n{i % room_size}",
                }
            )
        )
        await ws.recv()  # welcome
        return ws

    conns: list[Any] = []
    for start in range(0, count, 100):
        conns += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
    return conns


def idle_connections(count: int, room_size: int = 10) -> dict[str, float]:
    raise_fd_limit()
    server, url = start_server(bare=False)

    async def run() -> dict[str, float]:
        before = rss_bytes(server.pid)
        started = time.monotonic()
        conns = await open_idle(url, count, room_size)
        opened = time.monotonic() - started
        # Let the relay drain the join notices it queued, then measure.
        probe = conns[-1]
        await probe.send('{"type":"ping"}')
        while json.loads(await probe.recv())["type"] != "pong":
            pass
        after = rss_bytes(server.pid)
        await asyncio.gather(*(ws.close() for ws in conns))
        return {
            "count": count,
            "open_s": opened,
            "rss_before": before,
            "rss_after": after,
            "per_conn": (after - before) / count,
        }

    try:
        return asyncio.run(run())
    finally:
        stop(server)


async def ping_pong(url: str, seconds: float, limit: int = 5000) -> list[float]:
    """Round trips (ms) of a pair in room ``quiet``: x sends, y echoes, for ``seconds``."""

    async def join(address: str) -> Any:
        ws = await connect(url, compression=None)
        await ws.send(json.dumps({"type": "hello", "v": 1, "room": "quiet", "address": address}))
        await ws.recv()  # welcome
        return ws

    x = await join("x")
    y = await join("y")
    await x.recv()  # join of y

    async def echo() -> None:
        async for raw in y:
            frame = json.loads(raw)
            if frame["type"] == "msg":
                await y.send(json.dumps({"type": "send", "to": "x", "data": frame["data"]}))

    echoing = asyncio.create_task(echo())
    rtts: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(rtts) < limit:
            start = time.perf_counter()
            await x.send(json.dumps({"type": "send", "to": "y", "data": len(rtts)}))
            async with asyncio.timeout(30):
                await x.recv()
            rtts.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.005)  # a heartbeat-like pace, not a flood of its own
    finally:
        echoing.cancel()
        await x.close()
        await y.close()
    return rtts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def abuse(flooders: int, seconds: float, *flags: str) -> dict[str, Any]:
    """Pair round trips in one room while ``flooders`` flood another (0: no flood)."""
    server, url = start_relay(*flags)
    floods: list[subprocess.Popen[str]] = []
    try:
        for i in range(flooders):
            proc = spawn(__file__, "_flood", url, f"f{i}", str(seconds))
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            floods.append(proc)
        cpu_before = cpu_seconds(server.pid)
        rtts = asyncio.run(ping_pong(url, seconds))
        cpu = cpu_seconds(server.pid) - cpu_before
        sent = sum(json.loads(proc.communicate(timeout=60)[0])["sent"] for proc in floods)
        stats = json.loads(
            urllib.request.urlopen(url.replace("ws://", "http://").removesuffix("ws") + "stats")
            .read()
        )
    finally:
        for proc in floods:
            if proc.poll() is None:
                proc.kill()
        stop(server)
    return {
        "n": len(rtts),
        "p50": percentile(rtts, 0.5),
        "p99": percentile(rtts, 0.99),
        "max": max(rtts),
        "cpu": cpu / seconds,
        "sent": sent,
        "paced": stats["paced"],
    }


def report_abuse(flooders: list[int], seconds: float) -> None:
    print(
        f"abuse: {'/'.join(map(str, flooders))} connections send 1 MiB [{{}},...] frames into "
        f"room A for {seconds:g} s; a pair in room B measures round trips every ~5 ms"
    )
    print(
        f"{'run':<40}{'trips':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'relay CPU':>11}{'flood frames':>14}{'paced':>8}"
    )
    runs: list[tuple[str, int, tuple[str, ...]]] = [("no flood", 0, ())]
    for n in flooders:
        runs.append((f"{n} flooders, default limits", n, ()))
        runs.append((f"{n} flooders, --byte-rate 0 (no pacing)", n, ("--byte-rate", "0")))
    for label, n, flags in runs:
        r = abuse(n, seconds, *flags)
        print(
            f"{label:<40}{r['n']:>7}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['max']:>9.2f}"
            f"{r['cpu']:>10.0%}{r['sent']:>14}{r['paced']:>8}"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        return child(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, default=30_000, help="messages per run with one frame per message"
    )
    parser.add_argument("--batch", type=int, default=100, help="messages per batch frame")
    parser.add_argument(
        "--batch-messages", type=int, default=200_000, help="messages per run with batch frames"
    )
    parser.add_argument("--idle", type=int, default=2000, help="idle connections to open")
    parser.add_argument("--repeat", type=int, default=2, help="throughput runs; best is shown")
    parser.add_argument("--flooders", type=int, nargs="+", default=[3, 10],
                        help="abusive connections (one run per value)")
    parser.add_argument("--abuse-seconds", type=float, default=5.0, help="flood duration")
    parser.add_argument("--pairs", type=int, default=2, help="sender/receiver pairs (redis)")
    parser.add_argument(
        "--only", choices=["throughput", "idle", "abuse", "redis"], help="run one scenario only"
    )
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback; "
        f"payload ~{len(json.dumps(payload(12345)))} B per message"
    )
    if args.only in (None, "throughput"):
        report_throughput(args)
    if args.only in (None, "idle"):
        report_idle(args.idle)
    if args.only in (None, "abuse"):
        report_abuse(args.flooders, args.abuse_seconds)
    if args.only == "redis":
        report_redis(args)
    return 0


def report_throughput(args: argparse.Namespace) -> None:
    print(
        f"{'run':<34}{'msg/s':>10}{'wall s':>9}{'server CPU s':>14}{'CPU us/msg':>12}"
        f"{'sender/receiver CPU s':>24}"
    )
    results: dict[str, dict[str, float]] = {}
    for label, bare, batch, count in (
        ("relay, one frame per message", False, 1, args.messages),
        ("bare forwarder, same frames", True, 1, args.messages),
        (f"relay, batch frames of {args.batch}", False, args.batch, args.batch_messages),
        ("bare forwarder, same batch frames", True, args.batch, args.batch_messages),
    ):
        # Best of --repeat runs: on a shared machine the fastest run is the least disturbed.
        runs = [throughput(bare, count, batch) for _ in range(args.repeat)]
        r = results[label] = max(runs, key=lambda run: run["rate"])
        lost = "" if r["received"] == count else f"  (only {r['received']} of {count} arrived)"
        print(
            f"{label:<34}{r['rate']:>10.0f}{r['wall']:>9.2f}{r['cpu']:>14.2f}"
            f"{r['cpu_us']:>12.1f}{r['tx_cpu']:>15.2f} /{r['rx_cpu']:>6.2f}{lost}"
        )
    labels = list(results)
    for relay_label, bare_label in ((labels[0], labels[1]), (labels[2], labels[3])):
        rel, ref = results[relay_label], results[bare_label]
        print(
            f"ratio relay/bare ({relay_label.split(', ')[1]}): throughput "
            f"{rel['rate'] / ref['rate']:.2f}x, server CPU per message "
            f"{rel['cpu_us'] / ref['cpu_us']:.2f}x"
        )


def report_idle(count: int) -> None:
    idle = idle_connections(count)
    print(
        f"idle: {idle['count']} connections in rooms of 10 opened in {idle['open_s']:.1f} s; "
        f"relay RSS {idle['rss_before'] / 2**20:.1f} -> {idle['rss_after'] / 2**20:.1f} MiB, "
        f"{idle['per_conn'] / 1024:.1f} KiB per connection"
    )


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a free loopback port, without persistence."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is missing (.ci/setup installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}"
        time.sleep(0.01)
    proc.kill()
    raise SystemExit("redis-server did not start")


def pairs_throughput(
    layout: list[tuple[str, str]], count: int, batch: int, servers: list[int]
) -> dict[str, float]:
    """Pair ``i`` joins room ``bench<i>``, its sender at ``layout[i][0]`` and its receiver at
    ``layout[i][1]``; all pairs send at once. Rate: every message over the span from the
    first send to the last receive."""
    rxs = []
    for i, (_, rx_url) in enumerate(layout):
        rx = spawn(__file__, "_recv", rx_url, str(count), "--relay", f"bench{i}")
        assert rx.stdout is not None
        assert rx.stdout.readline().strip() == "ready"
        rxs.append(rx)
    cpu_before = sum(cpu_seconds(pid) for pid in servers)
    txs = [spawn(__file__, "_send", tx_url, str(count), str(batch), "--relay", f"bench{i}")
           for i, (tx_url, _) in enumerate(layout)]
    sent = [json.loads(tx.communicate(timeout=180)[0]) for tx in txs]
    got = [json.loads(rx.communicate(timeout=180)[0]) for rx in rxs]
    cpu = sum(cpu_seconds(pid) for pid in servers) - cpu_before
    received = sum(g["received"] for g in got)
    wall = max(g["last"] for g in got) - min(s["start"] for s in sent)
    return {"received": received, "rate": received / wall, "wall": wall, "cpu": cpu,
            "cpu_us": cpu / max(1, received) * 1e6}


def redis_run(redis: tuple[str, int] | None, cross: bool, pairs: int, count: int,
              batch: int) -> dict[str, float]:
    """One relay (``redis`` None), or two on Redis (its URL and pid): rooms split between
    them, or (``cross``) senders on one and receivers on the other."""
    redis_url = None if redis is None else redis[0]
    flags = () if redis_url is None else ("--redis", redis_url)
    relays = [start_relay(*OPEN_LIMITS, *flags) for _ in range(1 if redis_url is None else 2)]
    try:
        urls = [url for _, url in relays]
        if len(urls) == 1:
            layout = [(urls[0], urls[0])] * pairs
        elif cross:
            layout = [(urls[0], urls[1])] * pairs
        else:
            layout = [(urls[i % 2], urls[i % 2]) for i in range(pairs)]
        servers = [proc.pid for proc, _ in relays] + ([] if redis is None else [redis[1]])
        return pairs_throughput(layout, count, batch, servers)
    finally:
        for proc, _ in relays:
            stop(proc)


def report_redis(args: argparse.Namespace) -> None:
    """Aggregate routed messages/s: one relay, then two relay processes on one Redis."""
    with tempfile.TemporaryDirectory() as directory:
        redis, url = start_redis(directory)
        try:
            print(f"redis: {args.pairs} pairs, one room each, all sending at once; "
                  f"best of {args.repeat}")
            print(f"{'run':<70}{'msg/s':>10}{'wall s':>9}{'server CPU s':>14}"
                  f"{'CPU us/msg':>12}")
            for frame_label, batch, count in (
                ("one frame per message", 1, args.messages),
                (f"batch frames of {args.batch}", args.batch, args.batch_messages),
            ):
                per_pair = max(1, count // args.pairs)
                shared = (url, redis.pid)
                setups = (
                    ("1 relay", None, False),
                    ("2 relays on Redis, each room on one relay", shared, False),
                    ("2 relays on Redis, every message crosses Redis", shared, True),
                )
                # Interleaved, so that a busy spell of the machine hits every setup alike.
                runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in setups}
                for _ in range(args.repeat):
                    for label, on_redis, cross in setups:
                        runs[label].append(redis_run(on_redis, cross, args.pairs, per_pair, batch))
                results = {}
                for label in runs:
                    r = results[label] = max(runs[label], key=lambda run: run["rate"])
                    total = per_pair * args.pairs
                    lost = "" if r["received"] == total else f"  ({r['received']} of {total})"
                    print(f"{label + ', ' + frame_label:<70}{r['rate']:>10.0f}{r['wall']:>9.2f}"
                          f"{r['cpu']:>14.2f}{r['cpu_us']:>12.1f}{lost}")
                one, split, across = (r["rate"] for r in results.values())
                print(f"ratio 2 relays / 1 ({frame_label}): rooms split {split / one:.2f}x, "
                      f"every message across Redis {across / one:.2f}x")
        finally:
            redis.kill()
            redis.wait(timeout=10)


def child(argv: list[str]) -> int:
    kind, rest = argv[0], argv[1:]
    if kind == "_bare":
        asyncio.run(bare_server(0))
    elif kind == "_recv":
        asyncio.run(receiver(rest[0], int(rest[1]), rest[2] == "--bare", *rest[3:4]))
    elif kind == "_send":
        asyncio.run(sender(rest[0], int(rest[1]), int(rest[2]), rest[3] == "--bare", *rest[4:5]))
    elif kind == "_flood":
        # On loopback the flooders share the relay's cores, which real attackers on other
        # machines do not: at the lowest priority they take only what is left over, so the
        # round trips measure the relay rather than the scheduler.
        os.nice(19)
        asyncio.run(flood(rest[0], rest[1], float(rest[2])))
    else:
        raise SystemExit(f"unknown child {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

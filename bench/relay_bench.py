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

Usage: ``python bench/relay_bench.py [--messages N] [--batch B] [--idle K]``
(the ``_bare``, ``_recv`` and ``_send`` subcommands are its own child processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"listening on (http://\S+) \((ws://\S+)\)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_GIVE_UP = 10.0  # seconds without a message before a receiver reports what it has


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


def hello(address: str) -> str:
    return json.dumps({"type": "hello", "v": 1, "room": "bench", "address": address})


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


async def receiver(url: str, expected: int, bare: bool) -> None:
    """Count delivered messages (a batch frame carries several) until all have arrived."""
    async with connect(url + ("rx" if bare else ""), compression=None, max_size=None) as ws:
        if not bare:
            await ws.send(hello("rx"))
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


async def sender(url: str, count: int, batch: int, bare: bool) -> None:
    prepared = frames(count, batch)
    async with connect(url + ("tx" if bare else ""), compression=None, max_size=None) as ws:
        if not bare:
            await ws.send(hello("tx"))
            welcome = json.loads(await ws.recv())
            assert "rx" in welcome["peers"], welcome
        cpu_start, start = own_cpu(), time.monotonic()
        for frame in prepared:
            await ws.send(frame)
        report = {"start": start, "sent": time.monotonic(), "cpu": own_cpu() - cpu_start}
        print(json.dumps(report), flush=True)


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
    if bare:
        proc = spawn(__file__, "_bare")
    else:
        proc = spawn(
            "-m",
            "webraft_relay",
            "--port",
            "0",
            "--static",
            "",
            "--pyodide-dir",
            "",
            "--dist",
            "",
            "--rate",
            "0",
            "--max-outbound-bytes",
            str(1 << 30),
            "--max-connections",
            "100000",
            "--max-batch",
            "100000",
        )
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
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback; "
        f"payload ~{len(json.dumps(payload(12345)))} B per message"
    )
    print(
        f"{'run':<34}{'msg/s':>10}{'wall s':>9}{'server CPU s':>14}{'CPU us/msg':>12}"
        f"{'sender/receiver CPU s':>24}"
    )
    results = {}
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
        rel, bare = results[relay_label], results[bare_label]
        print(
            f"ratio relay/bare ({relay_label.split(', ')[1]}): throughput "
            f"{rel['rate'] / bare['rate']:.2f}x, server CPU per message "
            f"{rel['cpu_us'] / bare['cpu_us']:.2f}x"
        )
    idle = idle_connections(args.idle)
    print(
        f"idle: {idle['count']} connections in rooms of 10 opened in {idle['open_s']:.1f} s; "
        f"relay RSS {idle['rss_before'] / 2**20:.1f} -> {idle['rss_after'] / 2**20:.1f} MiB, "
        f"{idle['per_conn'] / 1024:.1f} KiB per connection"
    )
    return 0


def child(argv: list[str]) -> int:
    kind, rest = argv[0], argv[1:]
    if kind == "_bare":
        asyncio.run(bare_server(0))
    elif kind == "_recv":
        asyncio.run(receiver(rest[0], int(rest[1]), rest[2] == "--bare"))
    elif kind == "_send":
        asyncio.run(sender(rest[0], int(rest[1]), int(rest[2]), rest[3] == "--bare"))
    else:
        raise SystemExit(f"unknown child {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Catch-up time of a restarted member of a 3-process ``webraft-node`` cluster on direct links.

    .venv/bin/python bench/rejoin_bench.py [--trials N] [--down SECONDS] [--root TREE]

Each trial starts members a, b and c (loopback only), kills a follower with SIGKILL, writes to
the leader every 50 ms while it is down (its peers' redial back-off grows meanwhile), restarts
it and measures until it has applied the leader's commit index: from the restart (which
includes Python's start-up) and from the member's "control on" line. ``--root`` runs another
source tree (a checkout of an older commit) for a side-by-side comparison. Prints figures,
never judges them; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
NAMES = ("a", "b", "c")
GUARD = 30.0  # longest any single wait may take, in seconds
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(url: str, method: str = "GET", path: str = "/status",
            body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    try:
        with _OPENER.open(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def poll(check: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            value = check()
            if value:
                return value
        time.sleep(0.005)
    raise SystemExit(f"rejoin_bench: no answer within {GUARD} s")


def start(root: Path, name: str, ports: dict[str, int],
          data: Path) -> tuple[subprocess.Popen[str], str]:
    """Start member ``name``; return it and its control URL."""
    flags = ["--listen", f"127.0.0.1:{ports[name]}"]
    for other, port in ports.items():
        if other != name:
            flags += ["--peer", f"{other}=127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "webraft.member", *flags, "--data", str(data / name),
         "--address", name, "--members", ",".join(NAMES)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " control on " not in line:
        proc.kill()
        raise SystemExit(f"rejoin_bench: {name} did not start: {line!r}")
    proc.stdout.readline()  # the links line
    return proc, line.split(" control on ")[1].strip()


def trial(root: Path, down: float) -> tuple[float, float, int]:
    """One kill and restart: (seconds from spawn, seconds from its start-up line, writes)."""
    with tempfile.TemporaryDirectory() as tmp:
        data, ports = Path(tmp), dict(zip(NAMES, free_ports(len(NAMES)), strict=True))
        members = {name: start(root, name, ports, data) for name in NAMES}
        try:
            def leader() -> str | None:
                for name, (_, url) in members.items():
                    if request(url)[1]["state"] == "leader":
                        return name
                return None

            lead = poll(leader)
            victim = next(name for name in NAMES if name != lead)
            lead_url = members[lead][1]
            poll(lambda: request(lead_url, "PUT", "/kv/k0", 0)[0] == 200)
            members[victim][0].send_signal(signal.SIGKILL)
            members[victim][0].wait()
            writes, until = 1, time.monotonic() + down
            while time.monotonic() < until:
                request(lead_url, "PUT", f"/kv/k{writes}", writes)
                writes += 1
                time.sleep(0.05)
            target = request(lead_url)[1]["commit_index"]
            spawned = time.monotonic()
            members[victim] = proc, url = start(root, victim, ports, data)
            announced = time.monotonic()
            poll(lambda: request(url)[1]["last_applied"] >= target)
            done = time.monotonic()
            return done - spawned, done - announced, writes
        finally:
            for proc, _ in members.values():
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--down", type=float, default=8.0, help="seconds the member is down")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="source tree to run (default: this checkout)")
    args = parser.parse_args()
    results = []
    for number in range(args.trials):
        from_spawn, from_start, writes = trial(args.root.resolve(), args.down)
        results.append((from_spawn, from_start))
        print(f"trial {number}: {writes} writes while down {args.down:g} s; caught up "
              f"{from_spawn:.3f} s after the restart, {from_start:.3f} s after its start-up "
              "line", flush=True)
    print(f"max: {max(r[0] for r in results):.3f} s after the restart, "
          f"{max(r[1] for r in results):.3f} s after its start-up line")


if __name__ == "__main__":
    main()

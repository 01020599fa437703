"""``webraft-node`` processes for the fault tests: start, SIGKILL, restart, SIGSTOP, SIGCONT.

Owns :class:`Node` and :class:`Cluster`. Imports the proxy (:class:`Network`), the clients'
:func:`~.client.http` and the standard library only, never webraft: the members are separate
processes (``python -m webraft.member``) of the source tree ``root``, so the harness can run
an older checkout for a before/after comparison.

Every member's ports are picked before any member starts (members must be told each other's
addresses), after the proxies bound theirs (so that none takes one of them), and kept across
restarts: a restarted member has the same control URL, link port and data
directory. :meth:`Cluster.close` kills and reaps every process, whatever state it was left in
(a stopped one is continued first, so that it can die); use the cluster as an async context
manager so that a failing test leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .client import Lost, NotSent, http
from .proxy import HOST, Network

__all__ = ["GUARD", "ROOT", "Cluster", "Node", "free_ports"]

ROOT = Path(__file__).resolve().parents[2]
#: Longest any single wait may take, in seconds: a hang guard, never a timing expectation.
GUARD = 30.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (held together so that they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class Node:
    """One member: its ports, data directory, and current process (None while down)."""

    def __init__(self, cluster: Cluster, name: str, control: int, listen: int) -> None:
        self.cluster = cluster
        self.name = name
        self.control = control
        self.listen = listen
        self.data = cluster.tmp / f"data-{name}"
        self.proc: asyncio.subprocess.Process | None = None
        self.stopped = False
        self.starts = 0

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start the process (on its data directory, if it holds state already)."""
        assert not self.up, f"{self.name} is running"
        cluster = self.cluster
        self.starts += 1
        log = cluster.logs / f"{self.name}.{self.starts}.log"
        with log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "webraft.member", "--data", str(self.data),
                "--address", self.name, "--members", ",".join(cluster.names),
                "--listen", f"{HOST}:{self.listen}", *cluster.network.peer_flags(self.name),
                "--control", f"{HOST}:{self.control}", "--log-level", "WARNING",
                *cluster.extra, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=cluster.root, env={**os.environ, "PYTHONPATH": str(cluster.root)})
        self.stopped = False

    async def wait_serving(self) -> None:
        """Until its control server answers (it started, or it was restarted)."""
        deadline = time.monotonic() + GUARD
        while True:
            with contextlib.suppress(NotSent, Lost):
                status, _ = await http(self.control, "GET", "/status", timeout=2.0)
                if status == 200:
                    return
            if not self.up:
                raise AssertionError(f"{self.name} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not serving within {GUARD}s")
            await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        if self.up:
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.stopped = sig == signal.SIGSTOP or (self.stopped and sig != signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.kill()
        async with asyncio.timeout(GUARD):
            await self.proc.wait()
        self.proc = None
        self.stopped = False

    async def restart(self) -> None:
        """SIGKILL, then start again on the same data directory."""
        await self.kill()
        await self.start()

    async def status(self) -> dict[str, Any] | None:
        """Its ``GET /status``, or None if it does not answer now."""
        with contextlib.suppress(NotSent, Lost):
            code, answer = await http(self.control, "GET", "/status", timeout=1.0)
            if code == 200 and isinstance(answer, dict):
                return answer
        return None

    def log_tail(self, chars: int = 2000) -> str:
        logs = sorted(self.cluster.logs.glob(f"{self.name}.*.log"))
        return logs[-1].read_text(errors="replace")[-chars:] if logs else ""


class Cluster:
    """``size`` members (``n1``, ``n2``, ...) on direct links, each link through a proxy.

    ``extra`` flags go to every member (``--proposal-timeout``, ...); ``root`` is the source
    tree whose ``webraft`` the members run.
    """

    def __init__(self, tmp: Path, size: int = 3, *, seed: int = 0,
                 extra: tuple[str, ...] = (), root: Path = ROOT) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.names = [f"n{i}" for i in range(1, size + 1)]
        self.extra = extra
        self.root = root
        self.network = Network(self.names, seed)
        self.nodes: dict[str, Node] = {}

    async def start(self) -> None:
        """Start the proxies, pick the members' ports, start every member; returns once
        each serves."""
        await self.network.start()
        ports = free_ports(2 * len(self.names))
        self.nodes = {name: Node(self, name, ports[2 * i], ports[2 * i + 1])
                      for i, name in enumerate(self.names)}
        self.network.aim({n.name: n.listen for n in self.nodes.values()})
        for node in self.nodes.values():
            await node.start()
        for node in self.nodes.values():
            await node.wait_serving()

    def controls(self) -> list[int]:
        return [node.control for node in self.nodes.values()]

    async def leader(self) -> Node | None:
        """The member that every running, not stopped, member follows in one term."""
        live = [n for n in self.nodes.values() if n.up and not n.stopped]
        statuses = [await n.status() for n in live]
        if not statuses or any(s is None for s in statuses):
            return None
        leaders = {(s["leader"], s["term"]) for s in statuses if s is not None}
        if len(leaders) != 1:
            return None
        name, _ = leaders.pop()
        node = self.nodes.get(name) if isinstance(name, str) else None
        return node if node is not None and node in live else None

    async def wait_leader(self, exclude: Node | None = None) -> Node:
        """Until the running members agree on one leader (other than ``exclude``)."""
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            leader = await self.leader()
            if leader is not None and leader is not exclude:
                return leader
            await asyncio.sleep(0.05)
        raise AssertionError(f"no leader within {GUARD}s")

    async def converged(self) -> dict[str, Any]:
        """Until every member applied the same commit index and holds the same store;
        returns that store."""
        deadline = time.monotonic() + GUARD
        last: object = None
        while time.monotonic() < deadline:
            last = await self._same_store()
            if isinstance(last, dict):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"members did not converge within {GUARD}s: {last}")

    async def _same_store(self) -> dict[str, Any] | str:
        statuses = {n.name: await n.status() for n in self.nodes.values()}
        commits = {(s["commit_index"], s["last_applied"]) if s else None
                   for s in statuses.values()}
        if len(commits) != 1 or None in commits:
            return f"statuses differ: {commits}"
        stores = []
        for node in self.nodes.values():
            try:
                code, answer = await http(node.control, "GET", "/kv", timeout=2.0)
            except (NotSent, Lost):
                return f"{node.name} does not answer"
            if code != 200:
                return f"{node.name} answered {code}"
            stores.append(answer["data"])
        if any(store != stores[0] for store in stores):
            return "stores differ"
        return dict(stores[0])

    async def close(self) -> None:
        """Continue, kill and reap every member; close the proxies."""
        for node in self.nodes.values():
            if node.up and node.stopped:
                node.signal(signal.SIGCONT)
            with contextlib.suppress(Exception):
                await node.kill()
        await self.network.close()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

"""Helpers for the member tests: start relays and members (processes, or in-process
members with their control servers), poll their state.

Every wait is a poll of a condition with a deadline that only guards against hangs; nothing
asserts on how long anything took.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from webraft import MemoryStorage, NodeConfig, RaftInterface
from webraft.member.control import ControlServer, key_path, request
from webraft.member.kv import KVStore
from webraft.member.metrics import Metrics
from webraft.storage import Storage
from webraft.transport.websocket import relay_transport

ROOT = Path(__file__).resolve().parents[2]
GUARD = 15.0  # seconds; a hang guard, not a timing expectation
RELAY_LINE = re.compile(r"webraft relay listening on http://127\.0\.0\.1:(\d+)/ \((ws://\S+)\)")
NODE_LINE = re.compile(r"webraft node (\S+) control on (http://127\.0\.0\.1:\d+)")
LINKS_LINE = re.compile(r"webraft node (\S+) links on (\S+):(\d+)$")


def poll(predicate: Callable[[], Any], timeout: float = GUARD, what: str = "") -> Any:
    """Call ``predicate`` until it returns something truthy (returned); fail after ``timeout``.

    Exceptions count as "not yet" (a node that is restarting refuses connections), but the
    last one is shown if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what} (last error: {last!r})")
        time.sleep(0.02)


class Proc:
    """A child process whose first stdout line is its start-up announcement."""

    def __init__(self, args: list[str], name: str, logs: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.err_path = logs / f"{name}.{time.monotonic_ns()}.err"
        with self.err_path.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, *args], stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
                text=True, env={**os.environ, **(env or {})})
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line)
        self._lines.put("")

    def first_line(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """The next line not read yet (the first one, on the first call), matched."""
        try:
            line = self._lines.get(timeout=GUARD)
        except queue.Empty:
            raise AssertionError(f"{self.name} printed nothing; stderr: {self.stderr()}") from None
        match = pattern.search(line)
        assert match, f"{self.name} said {line!r}; stderr: {self.stderr()}"
        return match

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self) -> int:
        return self.popen.wait(timeout=GUARD)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=GUARD)


class Relay:
    """``python -m webraft_relay`` on 127.0.0.1 (a free port, or ``port``)."""

    def __init__(self, logs: Path, port: int = 0) -> None:
        self.proc = Proc(["-m", "webraft_relay", "--port", str(port), "--static", ""], "relay",
                         logs)
        match = self.proc.first_line(RELAY_LINE)
        self.port = int(match[1])
        self.ws_url = match[2]


class Member:
    """``python -m webraft.member`` for one address, on its own data directory.

    Through the relay at ``relay_url``, on the direct links ``links`` describe
    (``--listen``/``--peer`` flags) with ``relay_url=None``, or both. With ``--listen``,
    :attr:`link_port` is where it listens, read from its second line.
    """

    def __init__(self, address: str, relay_url: str | None, data: Path, logs: Path,
                 members: str | None = "a,b,c", extra: list[str] | None = None, *,
                 links: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.address = address
        founding = ["--members", members] if members else ["--join"]
        transport = (["--relay", relay_url, "--room", "demo"] if relay_url is not None
                     else []) + list(links or [])
        self.proc = Proc(["-m", "webraft.member", *transport,
                          "--data", str(data), "--address", address, *founding,
                          "--control", "127.0.0.1:0", *(extra or [])], f"node-{address}",
                         logs, env)
        match = self.proc.first_line(NODE_LINE)
        assert match[1] == address
        self.control = match[2]
        self.link_port: int | None = None
        if "--listen" in (links or []):
            links_match = self.proc.first_line(LINKS_LINE)
            assert links_match[1] == address
            self.link_port = int(links_match[3])

    def get(self, path: str) -> Any:
        status, answer = request(self.control, "GET", path, timeout=5)
        assert status == 200, (status, answer)
        return answer

    def status(self) -> dict[str, Any]:
        return self.get("/status")

    def kv(self) -> dict[str, Any]:
        return self.get("/kv")["data"]

    def metrics(self) -> list[str]:
        """The lines of its ``GET /metrics`` (Prometheus text)."""
        with urllib.request.urlopen(self.control + "/metrics", timeout=5) as response:
            return response.read().decode().splitlines()

    def put(self, key: str, value: Any) -> tuple[int, Any]:
        return request(self.control, "PUT", key_path(key), value, timeout=10)


async def serve(relay_url: str, name: str, members: list[str], config: NodeConfig,
                storage: Storage | None = None,
                metrics: Metrics | None = None) -> tuple[RaftInterface, KVStore, ControlServer]:
    """An in-process relay member (its storage and transport counted by ``metrics``, if
    given), its KV store and its started control server; the member is started."""
    storage = storage or MemoryStorage()
    relay, _, transport = relay_transport(name, url=relay_url, room="demo")
    if metrics is not None:
        storage, transport = metrics.timed(storage), metrics.counted(transport)
    node = RaftInterface(name, members=members, config=config, storage=storage,
                         transport=transport)
    kv = KVStore()
    kv.attach(node)
    if metrics is not None:
        metrics.watch(node, kv, relay)
    server = ControlServer(node, kv, transport=relay, metrics=metrics)
    await server.start()
    node.start()
    return node, kv, server


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now.

    Direct-link members must know each other's ports before any of them starts, so port 0
    will not do; the sockets are held together so that the ports differ.
    """
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def leader_of(members: list[Member]) -> Member | None:
    """The member every given member follows in one term, or None."""
    statuses = {m.address: m.status() for m in members}
    leaders = [a for a, s in statuses.items() if s["state"] == "leader"]
    if len(leaders) != 1:
        return None
    term = statuses[leaders[0]]["term"]
    if all(s["leader"] == leaders[0] and s["term"] == term for s in statuses.values()):
        return next(m for m in members if m.address == leaders[0])
    return None


def converged(members: list[Member]) -> dict[str, Any] | None:
    """``{"commit_index", "data"}`` once every member applied the same commit index and holds
    the same KV; None before."""
    statuses = [m.status() for m in members]
    commits = {s["commit_index"] for s in statuses}
    if len(commits) != 1 or any(s["last_applied"] != s["commit_index"] for s in statuses):
        return None
    stores = [m.kv() for m in members]
    if any(s != stores[0] for s in stores):
        return None
    return {"commit_index": commits.pop(), "data": stores[0]}


class Cluster(ABC):
    """The member processes of one test and the writes they acknowledged; subclasses say
    how a member starts (through a relay, on direct links)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.members: dict[str, Member] = {}
        self.acked: dict[str, Any] = {}  # writes the cluster acknowledged

    @abstractmethod
    def start(self, address: str, members: str | None = "a,b,c",
              extra: tuple[str, ...] = ("--snapshot-entries", "5")) -> Member:
        """Start member ``address`` (``members=None``: with ``--join``)."""

    def live(self) -> list[Member]:
        return [m for m in self.members.values() if m.proc.popen.poll() is None]

    def write(self, via: Member, key: str, value: Any) -> None:
        """PUT until acknowledged; a 503/504 while the cluster settles is retried (a put is
        idempotent, so retrying one that may have committed is harmless)."""
        def attempt() -> bool:
            status, answer = via.put(key, value)
            if status == 200:
                assert isinstance(answer["index"], int) and answer["index"] > 0
                return True
            assert status in (503, 504), (status, answer)  # no leader yet, or timed out
            return False

        poll(attempt, what=f"PUT {key} through {via.address} acknowledged")
        self.acked[key] = value

    def converge(self, members: list[Member] | None = None) -> dict[str, Any]:
        """Wait until ``members`` (default: all) hold one KV at one commit index, which has
        every acknowledged write; returns it."""
        state = poll(lambda: converged(members or list(self.members.values())),
                     what="the nodes at one commit index with one KV")
        assert self.acked.items() <= state["data"].items(), "an acknowledged write is missing"
        return state

    def stop(self) -> dict[str, int]:
        """SIGTERM every member; each must exit 0 without a traceback. Returns the codes."""
        for member in self.live():
            member.proc.signal(signal.SIGTERM)
        codes = {m.address: m.proc.wait() for m in self.members.values()}
        assert all(code == 0 for code in codes.values()), codes
        for member in self.members.values():
            assert "Traceback" not in member.proc.stderr(), member.proc.stderr()
        return codes

    def kill_all(self) -> None:
        for member in self.members.values():
            member.proc.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()  # whatever the test left running


def join_three(cluster: Cluster, auto: tuple[str, ...]) -> tuple[Member, Member, Member]:
    """a founds a cluster alone; b and c join (``--join``, with ``auto`` flags such as
    ``--auto-membership``): b waits as a learner (two voters would tolerate no more failures
    than one) until c comes; then a write through each, and all converge."""
    a = cluster.start("a", "a", auto)
    poll(lambda: leader_of([a]), what="the founder leads")
    cluster.write(a, "before", 1)
    b = cluster.start("b", None, auto)
    poll(lambda: a.status()["learners"] == ["b"], what="b added as a learner")
    c = cluster.start("c", None, auto)
    poll(lambda: sorted(a.status()["members"]) == ["a", "b", "c"], what="three voters")
    for member in (a, b, c):
        cluster.write(member, f"via-{member.address}", member.address)
    assert cluster.converge()["data"]["before"] == 1
    return a, b, c

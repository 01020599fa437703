"""A fault-injecting TCP proxy for the direct links between ``webraft-node`` processes.

Owns :class:`LinkProxy` (one directed link) and :class:`Network` (every link of a cluster,
with partitions). Imports only the standard library: it knows the links' framing from
``docs/direct-links.md`` (newline-delimited JSON), not from webraft's code.

A direct link is one-way: the dialer X writes Raft messages, the acceptor Y reads them. So
each ordered pair (X, Y) gets its own proxy: X is told (``--peer Y=HOST:PORT``) to dial the
proxy, which dials Y. The dialer's first line is its hello, every later line is one Raft
message; the acceptor only sends a challenge, a welcome, or an error line before it closes.

Faults act on whole messages, never on the handshake or on bytes, so what a member sees is
what a lossy network does to Raft traffic, not a corrupt stream (that is the transport tests'
business):

* **drop**: each message is lost with probability ``drop`` (the connection stays up, as a
  datagram network would lose a packet; Raft retransmits what matters);
* **delay**: each message is held ``delay`` seconds plus up to ``jitter``, in order (TCP
  never reorders within a connection);
* **cut**: every message is lost (``drop=1``); the connection stays up and new ones still
  complete their handshake, as they would across a partition that lets TCP's own packets
  through but nothing else: a link blackholed, which the dialer cannot notice;
* **reset**: every connection of the link is closed at once (the dialer redials).

Everything is bounded: each held message is one entry of a queue that a slow link caps
(:data:`MAX_HELD`, beyond which messages are dropped, as a router's queue would); loopback
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["HOST", "MAX_HELD", "Faults", "LinkProxy", "Network"]

HOST = "127.0.0.1"
#: Messages one connection may hold back (delayed) before it drops new ones.
MAX_HELD = 10_000
#: Longest line passed on; the members' own limit is 8 MiB.
MAX_LINE = 16 << 20


@dataclass
class Faults:
    """What one link does to the messages it carries (see the module docstring)."""

    drop: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    cut: bool = False


@dataclass
class _Counts:
    passed: int = 0
    dropped: int = 0


class _Pipe:
    """One accepted connection and the one it opened to the acceptor."""

    def __init__(self, link: LinkProxy, down_r: asyncio.StreamReader,
                 down_w: asyncio.StreamWriter) -> None:
        self.link = link
        self.down_r, self.down_w = down_r, down_w
        self.up_w: asyncio.StreamWriter | None = None
        self.held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_HELD)
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        try:
            up_r, self.up_w = await asyncio.open_connection(HOST, self.link.target)
        except OSError:
            self.close()  # the acceptor is down: the dialer sees a refused link, as it would
            return
        self.tasks = [asyncio.create_task(self._messages()), asyncio.create_task(self._send()),
                      asyncio.create_task(self._replies(up_r))]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        self.close()

    async def _messages(self) -> None:
        """Dialer to acceptor: the hello passes untouched, each later line is a message."""
        assert self.up_w is not None
        loop = asyncio.get_running_loop()
        first = True
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            while line := await self.down_r.readuntil(b"\n"):
                if first:
                    first = False
                    self.up_w.write(line)
                    continue
                faults, counts = self.link.faults, self.link.counts
                if faults.cut or (faults.drop and self.link.rng.random() < faults.drop):
                    counts.dropped += 1
                    continue
                wait = faults.delay + (self.link.rng.uniform(0, faults.jitter)
                                       if faults.jitter else 0.0)
                try:
                    self.held.put_nowait((loop.time() + wait, line))
                except asyncio.QueueFull:
                    counts.dropped += 1

    async def _send(self) -> None:
        """Pass on held messages in order, each once its time came."""
        assert self.up_w is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while True:
                due, line = await self.held.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if self.link.faults.cut:  # cut while it was held: lost with the rest
                    self.link.counts.dropped += 1
                    continue
                if self.up_w.is_closing():
                    return  # the acceptor is gone (run() closes the dialer's side too)
                self.up_w.write(line)
                self.link.counts.passed += 1
                if self.held.empty():
                    await self.up_w.drain()

    async def _replies(self, up_r: asyncio.StreamReader) -> None:
        """Acceptor to dialer: its challenge, welcome or error, untouched."""
        with contextlib.suppress(OSError):
            while data := await up_r.read(1 << 16):
                self.down_w.write(data)
                await self.down_w.drain()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in (self.down_w, self.up_w):
            if writer is not None:
                writer.close()


class LinkProxy:
    """Listens on :attr:`port` (loopback) and forwards to the acceptor's ``target`` port,
    applying :attr:`faults` to each message."""

    def __init__(self, source: str, dest: str, target: int, rng: random.Random) -> None:
        self.source, self.dest, self.target = source, dest, target
        self.rng = rng
        self.faults = Faults()
        self.counts = _Counts()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pipe = _Pipe(self, reader, writer)
        self._pipes.add(pipe)
        try:
            await pipe.run()
        finally:
            self._pipes.discard(pipe)

    def reset(self) -> None:
        """Close every connection of this link (the dialer redials)."""
        for pipe in list(self._pipes):
            pipe.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.reset()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None


@dataclass
class Network:
    """The proxies of every directed link between ``names``; see :meth:`start`."""

    names: list[str]
    seed: int = 0
    links: dict[tuple[str, str], LinkProxy] = field(default_factory=dict)

    async def start(self) -> None:
        """One proxy per ordered pair, each on a port of its own; :meth:`aim` them next.

        They bind before the members' ports are picked, so that none takes one of those."""
        rng = random.Random(self.seed)
        for src in self.names:
            for dst in self.names:
                if src != dst:
                    link = LinkProxy(src, dst, 0, random.Random(rng.random()))
                    await link.start()
                    self.links[src, dst] = link

    def aim(self, listen_ports: dict[str, int]) -> None:
        """Forward each link to its acceptor's ``--listen`` port."""
        for (_, dst), link in self.links.items():
            link.target = listen_ports[dst]

    def peer_flags(self, name: str) -> list[str]:
        """The ``--peer`` flags that make member ``name`` dial its peers through us."""
        flags = []
        for (src, dst), link in self.links.items():
            if src == name:
                flags += ["--peer", f"{dst}={HOST}:{link.port}"]
        return flags

    def _pairs(self, a: Iterable[str], b: Iterable[str]) -> list[LinkProxy]:
        return [self.links[x, y] for x in a for y in b if x != y]

    def set(self, faults: Faults, src: Iterable[str] | None = None,
            dst: Iterable[str] | None = None) -> None:
        """Give the links from ``src`` to ``dst`` (default: all) these faults."""
        for link in self._pairs(src or self.names, dst or self.names):
            link.faults = Faults(faults.drop, faults.delay, faults.jitter, faults.cut)

    def cut(self, src: Iterable[str], dst: Iterable[str]) -> None:
        """Lose every message from ``src`` to ``dst`` (one way)."""
        for link in self._pairs(src, dst):
            link.faults.cut = True

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut both ways between every two of ``groups``; members in no group are cut off
        from everyone."""
        sets = [set(g) for g in groups]
        placed = set().union(*sets)
        sets += [{n} for n in self.names if n not in placed]
        for i, a in enumerate(sets):
            for b in sets[i + 1:]:
                self.cut(a, b)
                self.cut(b, a)

    def isolate(self, name: str) -> None:
        """Cut ``name`` off from every other member, both ways."""
        others = [n for n in self.names if n != name]
        self.partition([name], others)

    def heal(self) -> None:
        """No fault on any link."""
        self.set(Faults())

    def reset(self, name: str) -> None:
        """Close every connection to and from ``name``."""
        for (src, dst), link in self.links.items():
            if name in (src, dst):
                link.reset()

    def dropped(self) -> int:
        return sum(link.counts.dropped for link in self.links.values())

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()

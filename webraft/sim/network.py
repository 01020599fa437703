"""A simulated network: lossy, duplicating, reordering links, partitions and presence.

Owns :class:`Network` and its faults. Imports nothing of webraft: the transport that plugs a
node into it is :mod:`.node`'s.

It owns who can reach whom. Messages travel with a random virtual delay (now and then a long
one, which reorders them), may be dropped or duplicated, and are blocked by partitions
(symmetric, one-way, split brain) without anyone being told, as a silent link would. Presence
is separate: a node that *vanishes* is announced to the others with ``leave`` (and they to it)
and comes back with ``join``, as a relay or a dropped direct link would tell a transport.

Each node incarnation is an :class:`Endpoint`; a crashed one is dead, so nothing it still has
scheduled reaches anyone. It must not import the runtime: it talks to whatever the endpoint's
``handler`` is (anything with ``join``, ``leave`` and ``got_messages``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Receiver(Protocol):
    """What the network calls on a node: the transport callbacks of the runtime."""

    def join(self, address: str) -> None: ...

    def leave(self, address: str) -> None: ...

    def got_messages(self, address: str, payloads: list[Any]) -> None: ...


@dataclass(slots=True)
class LinkFaults:
    """How one scenario's links behave."""

    drop: float = 0.05
    duplicate: float = 0.02
    delay: tuple[float, float] = (0.0005, 0.004)
    slow: float = 0.05  # share of messages delayed a lot (so they overtake each other)
    slow_delay: tuple[float, float] = (0.01, 0.1)


@dataclass(slots=True)
class Endpoint:
    """One incarnation of a node on the network."""

    address: str
    receiver: Receiver
    alive: bool = True
    peers: dict[str, None] = field(default_factory=dict)  # told "join" and not "leave" since


@dataclass(slots=True)
class NetStats:
    messages: int = 0
    dropped: int = 0
    duplicated: int = 0
    partitions: int = 0
    vanished: int = 0


class Network:
    """All links between the simulated nodes. ``on_send(src, dst, payload)`` sees every
    message a live node sends; ``after(address)`` runs after each delivery."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random,
                 faults: LinkFaults, on_send: Callable[[str, str, Any], None],
                 after: Callable[[str], None]) -> None:
        self._loop = loop
        self._rng = rng
        self.faults = faults
        self._on_send = on_send
        self._after = after
        self.endpoints: dict[str, Endpoint] = {}  # the current incarnation of each address
        self.blocked: dict[tuple[str, str], None] = {}  # (src, dst) pairs that lose everything
        self.vanished: dict[str, None] = {}
        self.faulty = True
        self.stats = NetStats()

    # -- incarnations and presence ---------------------------------------------------

    def attach(self, address: str, receiver: Receiver) -> Endpoint:
        """A new incarnation of ``address`` comes up and meets every reachable node."""
        ep = self.endpoints[address] = Endpoint(address, receiver)
        self._meet_all(address)
        return ep

    def detach(self, address: str) -> None:
        """``address`` crashed: it sends nothing more; the others see it leave."""
        ep = self.endpoints.pop(address, None)
        if ep is None:
            return
        ep.alive = False
        for other in self._live():
            self._part(other, address)

    def vanish(self, address: str) -> None:
        """``address`` becomes unreachable, and every node is told so."""
        if address in self.vanished:
            return
        self.vanished[address] = None
        self.stats.vanished += 1
        ep = self.endpoints.get(address)
        for other in self._live():
            if other.address != address:
                self._part(other, address)
                if ep is not None:
                    self._part(ep, other.address)

    def appear(self, address: str) -> None:
        if address in self.vanished:
            del self.vanished[address]
            self._meet_all(address)

    def _meet_all(self, address: str) -> None:
        if address in self.vanished:
            return
        ep = self.endpoints.get(address)
        if ep is None:
            return
        for other in self._live():
            if other.address != address and other.address not in self.vanished:
                self._meet(other, address)
                self._meet(ep, other.address)

    @staticmethod
    def _meet(ep: Endpoint, peer: str) -> None:
        if peer not in ep.peers:
            ep.peers[peer] = None
            ep.receiver.join(peer)

    @staticmethod
    def _part(ep: Endpoint, peer: str) -> None:
        if peer in ep.peers:
            del ep.peers[peer]
            ep.receiver.leave(peer)

    def _live(self) -> list[Endpoint]:
        return [ep for ep in self.endpoints.values() if ep.alive]

    # -- partitions --------------------------------------------------------------------

    def partition(self) -> None:
        """Replace the current partition by a random new one (or by none)."""
        rng, ids = self._rng, sorted(self.endpoints)
        self.blocked = {}
        self.stats.partitions += 1
        if len(ids) < 2:
            return
        choice = rng.random()
        if choice < 0.3:  # one node isolated
            a = rng.choice(ids)
            for b in ids:
                if b != a:
                    self.blocked[(a, b)] = self.blocked[(b, a)] = None
        elif choice < 0.5:  # one direction of one link
            a, b = rng.sample(ids, 2)
            self.blocked[(a, b)] = None
        elif choice < 0.8:  # split brain
            group = rng.sample(ids, rng.randint(1, len(ids) - 1))
            for a in group:
                for b in ids:
                    if b not in group:
                        self.blocked[(a, b)] = self.blocked[(b, a)] = None
        # else: healed

    def heal(self) -> None:
        """No more faults: every link works and every node is reachable."""
        self.faulty = False
        self.blocked = {}
        for address in list(self.vanished):
            self.appear(address)

    # -- messages ------------------------------------------------------------------------

    def send(self, src: Endpoint, dst: str, payload: Any) -> None:
        if not src.alive:
            return
        self._on_send(src.address, dst, payload)
        stats, rng, faults = self.stats, self._rng, self.faults
        stats.messages += 1
        copies = 1
        if self.faulty:
            if rng.random() < faults.drop:
                stats.dropped += 1
                return
            if rng.random() < faults.duplicate:
                stats.duplicated += 1
                copies = 2
        for _ in range(copies):
            lo, hi = faults.slow_delay if rng.random() < faults.slow else faults.delay
            self._loop.call_later(rng.uniform(lo, hi), self._deliver, src.address, dst,
                                  payload)

    def _deliver(self, src: str, dst: str, payload: Any) -> None:
        ep = self.endpoints.get(dst)
        if (ep is None or (src, dst) in self.blocked or src in self.vanished
                or dst in self.vanished):
            self.stats.dropped += 1
            return
        ep.receiver.got_messages(src, [payload])
        self._after(dst)

"""An in-memory cluster for the runtime tests: real asyncio, a JSON wire, cuttable links.

* :class:`Network` delivers every ``write`` with ``loop.call_soon`` after a strict JSON
  round-trip (so a payload that is not JSON fails the sender's ``write``, as a real socket
  would). Links between pairs can be cut and restored; ``drop`` filters lose chosen messages.
* :class:`FastRaft` is a :class:`webraft.RaftInterface` with small timeouts (all tunable via
  :class:`Timing`, which makes its :class:`webraft.NodeConfig`) that records every seed
  event and every applied command; it reaches its peers the seed's way, through
  ``create_instance``.
* :class:`Cluster` builds N of them, restarts a node on its own ``MemoryStorage``, and waits
  for a stable leader.

Nothing here asserts on timing: tests wait for conditions with :func:`until`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from support import stable_leader, until

import webraft

#: The seed's events that FastRaft records with a passive listener. ``apply`` and ``refresh``
#: are not among them: merely listening to those changes behaviour (the node waits for the
#: callbacks), so ``apply`` is recorded by the optional apply handler instead.
EVENTS = ("join", "leave", "leader", "candidate", "follower", "state changed",
          "heartbeat timeout", "start election", "updated", "error")





def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> Any:
    """From another thread: run ``fn(*args)`` on ``loop`` (atomically) and return its result."""
    out: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            out.set_result(fn(*args))
        except BaseException as exc:
            out.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return out.result(timeout=30)


@dataclass(frozen=True)
class Timing:
    heartbeat_frequency: float = 0.01
    heartbeat_timeout: float = 0.05
    election_min: float = 0.05
    election_max: float = 0.10
    proposal_timeout: float = 3.0
    message_timeout: float = 3.0
    forward_proposals: bool = True
    max_command_bytes: int | None = None  # None: the library's default
    snapshot_entries: int | None = None  # None: the library's default
    snapshot_tail: int | None = None
    auto_membership: bool = False
    read_lease: bool = False
    member_grace: float = 20.0

    def config(self) -> webraft.NodeConfig:
        """The node's configuration; None fields keep the library's defaults."""
        optional = {name: value for name, value in (
            ("max_command_bytes", self.max_command_bytes),
            ("snapshot_entries", self.snapshot_entries),
            ("snapshot_tail", self.snapshot_tail)) if value is not None}
        return webraft.NodeConfig(
            heartbeat_frequency=self.heartbeat_frequency,
            heartbeat_timeout=self.heartbeat_timeout,
            election_timeout=(self.election_min, self.election_max),
            proposal_timeout=self.proposal_timeout, message_timeout=self.message_timeout,
            forward_proposals=self.forward_proposals, auto_membership=self.auto_membership,
            read_lease=self.read_lease, member_grace=self.member_grace, **optional)


#: Slower timing for tests whose loop is shared with a busy thread (hypothesis).
RELAXED = Timing(heartbeat_frequency=0.02, heartbeat_timeout=0.3, election_min=0.3,
                 election_max=0.5)


class Network:
    """Delivery between nodes registered by address; see the module docstring."""

    def __init__(self) -> None:
        self.nodes: dict[str, webraft.RaftInterface] = {}
        self.cut_links: set[frozenset[str]] = set()
        self.drops: list[Callable[[str, str, dict[str, Any]], bool]] = []
        self.log: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=2000)

    def blocked(self, src: str, dst: str, payload: dict[str, Any]) -> bool:
        if frozenset((src, dst)) in self.cut_links:
            return True
        return any(drop(src, dst, payload) for drop in self.drops)

    def send(self, src: str, dst: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, allow_nan=False)  # raises in write() if not strict JSON
        self.log.append((src, dst, json.loads(data)))
        if self.blocked(src, dst, payload):
            return
        asyncio.get_running_loop().call_soon(self._deliver, src, dst, data)

    def _deliver(self, src: str, dst: str, data: str) -> None:
        payload = json.loads(data)
        node = self.nodes.get(dst)
        if node is None or self.blocked(src, dst, payload):
            return  # gone, or cut while in flight
        peer = node.nodes.get(src)
        if peer is not None:
            peer.got_data(payload)
        else:
            node.got_data(src, payload)

    def cut(self, a: str, b: str) -> None:
        self.cut_links.add(frozenset((a, b)))

    def restore(self, a: str, b: str) -> None:
        self.cut_links.discard(frozenset((a, b)))

    def isolate(self, a: str) -> None:
        for b in self.nodes:
            if b != a:
                self.cut(a, b)

    def heal(self) -> None:
        self.cut_links.clear()
        self.drops.clear()


class MemNode(webraft.NodeInstance):
    def __init__(self, address: str, raft: FastRaft) -> None:
        super().__init__(address, raft)
        self.closed = False

    def write(self, payload: dict[str, Any]) -> None:
        self.raft.net.send(self.raft.address, self.address, payload)

    def close(self) -> None:
        self.closed = True


class FastRaft(webraft.RaftInterface):
    """A node with small timeouts that records its events (``events``) and applies
    (``applied``: ``(index, command)`` in apply order)."""

    def __init__(self, address: str, net: Network, *, members: Iterable[str] | None = None,
                 storage: webraft.Storage | None = None, timing: Timing = Timing(),
                 record_apply: bool = True) -> None:
        self.net = net
        self.timing = timing
        super().__init__(address, members=members, storage=storage, config=timing.config())
        self.events: list[tuple[Any, ...]] = []
        self.applied: list[tuple[int, Any]] = []
        for name in EVENTS:
            self.listen(name, lambda *args, name=name: self._record(name, args))
        if record_apply:
            self.listen("apply", self._record_apply)

    def _record(self, name: str, args: tuple[Any, ...]) -> None:
        self.events.append((name, *args))

    def _record_apply(self, entry: webraft.Entry, index: int, cb: Callable[..., None]) -> None:
        self.applied.append((index, entry.command))
        self.events.append(("apply", index))
        cb()

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.events if e[0] == name]

    def create_instance(self, address: str) -> MemNode:
        return MemNode(address, self)


class Cluster:
    """N :class:`FastRaft` nodes on one :class:`Network`, each with its own MemoryStorage."""

    def __init__(self, names: Iterable[str] = ("a", "b", "c"), timing: Timing = Timing(),
                 **timing_overrides: Any) -> None:
        self.names = list(names)
        self.timing = replace(timing, **timing_overrides)
        self.net = Network()
        self.storages = {n: webraft.MemoryStorage() for n in self.names}
        self.nodes: dict[str, FastRaft] = {}
        self.closed: set[str] = set()
        self.retired: list[FastRaft] = []  # closed incarnations, closed again at teardown

    def build(self, name: str, **kwargs: Any) -> FastRaft:
        """A new incarnation of ``name`` on its storage, registered and joined, not started."""
        kwargs.setdefault("timing", self.timing)
        node = FastRaft(name, self.net, members=self.names, storage=self.storages[name],
                        **kwargs)
        for peer in self.names:
            node.join(peer)
        self.nodes[name] = node
        self.net.nodes[name] = node
        self.closed.discard(name)
        return node

    def start(self) -> Cluster:
        for name in self.names:
            if name not in self.nodes:
                self.build(name)
            self.nodes[name].start()
        return self

    def live(self) -> list[FastRaft]:
        return [n for name, n in self.nodes.items() if name not in self.closed]

    async def stop(self, name: str) -> FastRaft:
        node = self.nodes[name]
        self.net.nodes.pop(name, None)
        self.closed.add(name)
        await node.close()
        self.retired.append(node)
        return node

    async def restart(self, name: str, *, before_start: Callable[[FastRaft], Any] | None = None,
                      **kwargs: Any) -> FastRaft:
        """Close ``name`` (if running) and start a new node on the same storage."""
        if name not in self.closed:
            await self.stop(name)
        node = self.build(name, **kwargs)
        if before_start is not None:
            before_start(node)
        node.start()
        return node

    async def leader(self, among: Iterable[str] | None = None,
                     timeout: float = 5.0) -> FastRaft:
        """Wait for a stable leader among ``among`` (default: every live node)."""
        def check() -> FastRaft | None:
            names = list(among) if among is not None else [
                n for n in self.names if n not in self.closed]
            return stable_leader(self.nodes[n] for n in names)  # type: ignore[return-value]

        return await until(check, timeout, "a stable leader")

    def cut(self, a: str, b: str) -> None:
        self.net.cut(a, b)

    def restore(self, a: str, b: str) -> None:
        self.net.restore(a, b)

    def isolate(self, a: str) -> None:
        for b in self.names:
            if b != a:
                self.net.cut(a, b)

    def heal(self) -> None:
        self.net.heal()

    async def converged(self, timeout: float = 5.0) -> None:
        """Wait until every live node applied the same entries as far as the leader commits."""
        def check() -> bool:
            live = self.live()
            lead = stable_leader(live)
            if lead is None:
                return False
            return all(n.last_applied == lead.commit_index
                       and n.commit_index == lead.commit_index for n in live)

        await until(check, timeout, "all nodes applied the leader's commit index")

    async def close(self) -> None:
        for node in [*self.nodes.values(), *self.retired]:
            await node.close()

    async def __aenter__(self) -> Cluster:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

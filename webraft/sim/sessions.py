"""Simulated clients that propose through sessions (Raft thesis §6.3), and their checks.

A client opens a session, then proposes register writes as ``[client, seq, ack, command]``
entries, at most :data:`IN_FLIGHT` at a time, each until its outcome is known: when no answer
comes (a dropped message or answer, a deposed leader, a crashed node) it retries the *same*
``seq``, at the same node or at another one, as :meth:`ClientSession.propose` does. Some
clients stall for a while, so that, with a small session capacity, newer sessions expire
theirs; a client told its session expired gives up (new clients keep opening sessions).

The nodes apply session entries through the runtime's own
:class:`~webraft.runtime.sessions.SessionTable`; what each application decided is checked by
:meth:`SafetyChecker.on_session` (the same everywhere, each ``(client, seq)`` applied at one
index only). :class:`SessionClients` checks what the clients were told: an answer is the
index of the first application; a command refused as expired never applies after that (an
earlier attempt may have applied it before its answer was lost and the session expired: that
is counted, not refused); every answered command is in the final state of every node. Like
plain proposals, the clients stop when the faults do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.messages import SESSION, Entry
from ..core.sessions import DUPLICATE, EXPIRED, OPEN
from .checker import SafetyViolation
from .linearizability import INF, Op

if TYPE_CHECKING:
    from .cluster import SimNode, Simulation

#: Commands of one client waiting for their outcome at a time (so ``ack`` trails ``seq``).
IN_FLIGHT = 2


@dataclass(slots=True)
class _Pending:
    """A command of a client whose outcome the client does not know yet."""

    value: str  # the register write
    call: float  # when the client first proposed it
    node: str = ""  # where the latest attempt went: whose answer the client waits for
    attempt: int = 0


@dataclass(slots=True)
class SimClient:
    name: int  # the client's number in the simulation (its session id is an index)
    id: int = 0  # the session id, 0 until the open is answered
    next_seq: int = 1
    pending: dict[int, _Pending] = field(default_factory=dict)
    opening: str = ""  # the node whose answer to the open the client waits for
    open_attempt: int = 0
    idle_until: float = 0.0  # a stalled client sends nothing (no retries either) until then
    expired: bool = False

    @property
    def ack(self) -> int:
        """The lowest seq still waiting for its outcome (the table may forget those below)."""
        return min(self.pending, default=self.next_seq)


class SessionClients:
    """The session clients of one :class:`~webraft.sim.cluster.Simulation`."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.clients: list[SimClient] = []
        self.by_id: dict[int, SimClient] = {}  # session id -> client
        self.requests: dict[int, tuple[SimClient, int, int]] = {}  # -> (client, seq, attempt)
        self.open_slots: dict[tuple[str, int], tuple[SimClient, int]] = {}  # (node, index)->
        self.calls: dict[tuple[int, int], tuple[str, float]] = {}  # (id, seq) -> (value, call)
        self.answers: dict[tuple[int, int], tuple[int, float]] = {}  # -> (index, when)
        self.refused: dict[tuple[int, int], int] = {}  # answered "expired" -> at which index

    # -- the clients' actions ------------------------------------------------------------

    def act(self) -> None:
        """One client action: open a session, propose a command, or stall a while."""
        sim, rng = self.sim, self.sim.rng
        if rng.random() < sim.sc.session_opens:
            self.clients.append(client := SimClient(len(self.clients)))
            sim.stats.sessions_opened += 1
            self._open(client)
            return
        ready = [c for c in self.clients if c.id and not c.expired and len(c.pending) < IN_FLIGHT
                 and c.idle_until <= sim.now]
        if not ready:
            return
        client = rng.choice(ready)
        if rng.random() < 0.05:
            client.idle_until = sim.now + rng.uniform(0.3, 2.0)
            return
        seq = client.next_seq
        client.next_seq += 1
        value = f"s{client.name}.{seq}"
        client.pending[seq] = _Pending(value, sim.now)
        self.calls[(client.id, seq)] = (value, sim.now)
        self._attempt(client, seq)

    def _node(self, previous: str) -> SimNode | None:
        """Where the next attempt goes: often the same node, sometimes another one."""
        sim = self.sim
        node = sim.nodes.get(previous)
        if node is not None and node.core is not None and sim.rng.random() < 0.5:
            return node
        live = [n for n in sim.nodes.values() if n.core is not None]
        return sim.rng.choice(live) if live else None

    def _open(self, client: SimClient) -> None:
        client.open_attempt += 1
        node = self._node(client.opening)
        client.opening = node.id if node is not None else ""
        if node is not None:
            req = self.sim.submit(node, [0, 0, 0, None], SESSION)
            self.requests[req] = (client, 0, client.open_attempt)
        self._retry_later(client, 0, client.open_attempt)

    def _attempt(self, client: SimClient, seq: int) -> None:
        pending = client.pending[seq]
        pending.attempt += 1
        node = self._node(pending.node)
        pending.node = node.id if node is not None else ""
        if node is not None:
            req = self.sim.submit(node, [client.id, seq, client.ack, pending.value], SESSION)
            self.requests[req] = (client, seq, pending.attempt)
        self._retry_later(client, seq, pending.attempt)

    def _retry_later(self, client: SimClient, seq: int, attempt: int,
                     failed: bool = False) -> None:
        """Try again if no answer came by then (a proposal timeout, growing with each
        attempt), or soon if the attempt ``failed`` for sure (refused, its node crashed)."""
        rng = self.sim.rng
        delay = rng.uniform(0.05, 0.1) if failed else min(0.25 * 2 ** attempt, 2.0)
        self.sim._at(self.sim.now + delay * rng.uniform(1.0, 1.5), "client retry",
                     client.name, seq, attempt)

    def retry(self, name: int, seq: int, attempt: int) -> None:
        client = self.clients[name]
        if seq == 0:
            current = client.open_attempt if not client.id else -1
        else:
            pending = client.pending.get(seq)
            current = pending.attempt if pending is not None else -1
        if current != attempt or not self.sim.faulty:
            # Answered meanwhile, or a newer attempt has its own timer; or the faults are
            # over, and so are the clients (as with plain proposals): the liveness phase
            # must not depend on a stream of retries to a node catching up through snapshots.
            return
        if client.idle_until > self.sim.now:
            self.sim._at(client.idle_until, "client retry", name, seq, attempt)
            return
        self.sim.stats.session_retries += 1
        if seq == 0:
            self._open(client)
        else:
            self._attempt(client, seq)

    # -- what the nodes tell them --------------------------------------------------------

    def on_proposed(self, node: SimNode, req: int, index: int, term: int) -> None:
        """``node`` appended request ``req`` at ``index`` (or its leader did), or refused it
        (``index`` 0: no leader, or one handing over)."""
        found = self.requests.pop(req, None)
        if found is None:
            return
        client, seq, attempt = found
        if not index:
            self._retry_later(client, seq, attempt, failed=True)
        elif not seq:
            self.open_slots[(node.id, index)] = (client, term)

    def on_crash(self, node_id: str) -> None:
        """Clients waiting on ``node_id`` lose their connection to it, and retry soon."""
        for client in self.clients:
            if client.opening == node_id and not client.id:
                client.opening = ""
                self._retry_later(client, 0, client.open_attempt, failed=True)
            for seq, pending in client.pending.items():
                if pending.node == node_id:
                    pending.node = ""
                    self._retry_later(client, seq, pending.attempt, failed=True)
        self.open_slots = {k: v for k, v in self.open_slots.items() if k[0] != node_id}

    def on_apply(self, node: SimNode, entry: Entry, verdict: str, result: int) -> None:
        """``node`` applied session entry ``entry`` (the table said ``verdict, result``):
        answer the client waiting for it there, unless the answer is lost."""
        sim = self.sim
        if verdict == OPEN:
            found = self.open_slots.pop((node.id, entry.index), None)
            if found is None or found[1] != entry.term:
                return
            client = found[0]
            if client.id or client.opening != node.id or self._lost():
                return
            client.id = result
            self.by_id[result] = client
            return
        cid, seq = entry.command[0], entry.command[1]
        client = self.by_id.get(cid)
        pending = client.pending.get(seq) if client is not None else None
        if client is None or pending is None or pending.node != node.id or self._lost():
            return
        del client.pending[seq]
        key = (cid, seq)
        if verdict == EXPIRED:
            client.expired = True
            self.refused[key] = entry.index
            return
        first = sim.checker.first_applied.get(key)
        if verdict == DUPLICATE and not result:
            raise SafetyViolation(f"{node.id}: seq {seq} of session {cid} answered 'acknowledged "
                                  "already' while the client still waits for it")
        if result != first:
            raise SafetyViolation(f"{node.id}: seq {seq} of session {cid} answered with index "
                                  f"{result}, but it was first applied at {first}")
        self.answers[key] = (result, sim.now)

    def _lost(self) -> bool:
        sim = self.sim
        return sim.faulty and sim.rng.random() < sim.sc.drop

    # -- checks at the end ---------------------------------------------------------------

    def check(self) -> None:
        """Answered commands are in every node's state; refused ones were never applied;
        nodes that applied the same entries hold the same session table."""
        sim = self.sim
        first = sim.checker.first_applied
        for key, index in self.refused.items():
            if key in first:
                # An earlier attempt applied, its answer was lost, and the session expired
                # before the retry: the client is told "expired" although the command took
                # effect (the runtime's SessionExpired says "not applied"; see the report).
                # It can only have applied before the session expired, never after.
                if first[key] > index:
                    raise SafetyViolation(f"seq {key[1]} of session {key[0]} was refused as "
                                          f"expired at {index} but applied at {first[key]}")
                sim.stats.expired_applied += 1
        for key, (index, _) in self.answers.items():
            value = self.calls[key][0]
            for node in sim.nodes.values():
                if len(node.applied) >= index and node.applied[index - 1] != value:
                    raise SafetyViolation(f"{node.id}: acknowledged {value!r} is not at {index}")
        tables: dict[int, tuple[str, Any]] = {}
        for node in sim.nodes.values():
            if node.core is None:
                continue
            table = node.sessions.to_json()
            other = tables.setdefault(len(node.applied), (node.id, table))
            if other[1] != table:
                raise SafetyViolation(f"{node.id} and {other[0]} applied {len(node.applied)} "
                                      "entries but hold different session tables")

    def writes(self) -> list[Op]:
        """The register writes of the sessions for the linearizability check: each applied
        command takes effect at its first application, returning when its client heard so."""
        first = self.sim.checker.first_applied
        return [Op("w", value, call, self.answers.get(key, (0, INF))[1], order=first[key])
                for key, (value, call) in self.calls.items() if key in first]

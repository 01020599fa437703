"""A deterministic simulation of a Raft cluster on a virtual clock.

Everything random comes from one ``random.Random(seed)``, events are ordered by (time,
sequence number) and nothing iterates over a set, so a seed replays exactly, whatever
``PYTHONHASHSEED`` is. The simulation drives real :class:`~webraft.core.RaftCore` objects the
way the asyncio runtime does (persist, then send, then apply, then advance), with disk writes
that take time, so a crash loses exactly what was not yet persisted.

A run has two phases. During the *fault phase* the network drops, duplicates, delays and
reorders messages, partitions come and go (symmetric, one-way, split brain), nodes crash and
restart, and clients propose commands to random nodes, some through sessions whose retries
must apply once (:mod:`webraft.sim.sessions`). Then everything heals, and the
*liveness phase* requires that a leader is elected and a final proposal commits everywhere
within a bounded virtual time. :class:`~webraft.sim.checker.SafetyChecker` checks the safety
properties throughout.
"""

from __future__ import annotations

import heapq
import json
import random
import zlib
from dataclasses import dataclass, field, fields
from typing import Any

from ..core.events import RoleChanged
from ..core.messages import COMMAND, SESSION, Entry, Message, decode, encode
from ..core.raft import LEADER, CoreConfig, RaftCore, Ready
from ..core.sessions import APPLY, DUPLICATE, EXPIRED, SessionTable, unpack_snapshot
from ..core.state import ClusterConfig, StorageUpdate, StoredState
from ..storage.memory import MemoryStorage
from .checker import SafetyChecker, SafetyViolation
from .linearizability import INF, Op, linearizable, linearizable_in_log_order
from .sessions import SessionClients

#: Client commands write one of this many registers (a key-value store), chosen by the command.
KEYS = 4


def key_of(command: Any) -> int | None:
    """The register a command writes (None for no-ops and configurations)."""
    return zlib.crc32(command.encode()) % KEYS if isinstance(command, str) else None


def read_register(applied: list[Any], key: int) -> Any:
    """The value of register ``key`` in a state machine that applied ``applied``."""
    for command in reversed(applied):
        if key_of(command) == key:
            return command
    return None


@dataclass(slots=True)
class Scenario:
    """The knobs of one run; :meth:`from_seed` derives a varied scenario from a seed."""

    seed: int
    nodes: int = 3
    fault_time: float = 3.0  # virtual seconds of faults
    settle_time: float = 8.0  # bound for the liveness phase
    drop: float = 0.05
    duplicate: float = 0.02
    delay: tuple[float, float] = (0.0005, 0.004)
    slow: float = 0.05  # chance that a message is delayed a lot (reordering)
    fault_rate: float = 2.0  # partitions/crashes per virtual second
    crash_share: float = 0.4  # share of faults that are crashes
    proposal_rate: float = 40.0  # client proposals per virtual second
    disk_delay: tuple[float, float] = (0.0002, 0.003)
    max_append_entries: int = 32  # small batches leave logs half-replicated more often
    max_inflight: int = 8
    leader_crash: float = 0.5  # share of crashes that hit the leader
    spares: int = 0  # nodes outside the initial configuration, for membership changes
    membership: float = 0.0  # share of faults that are membership changes
    snapshot_every: int = 0  # a node snapshots after applying this many entries (0: never)
    snapshot_tail: int = 0  # entries a snapshot leaves in the log
    snapshot_chunk: int = 1 << 20  # characters per InstallSnapshot chunk
    lease_reads: bool = False  # leaders answer reads from their lease
    sessions: float = 0.0  # share of the clients' writes that go through sessions
    session_opens: float = 0.1  # share of session client actions that open a session
    session_capacity: int = 4096  # sessions a node keeps (small: sessions expire)

    @classmethod
    def from_seed(cls, seed: int) -> Scenario:
        rng = random.Random(f"scenario-{seed}")
        return cls(
            seed=seed,
            nodes=rng.choice((3, 3, 5)),
            drop=rng.choice((0.0, 0.02, 0.1, 0.2)),
            duplicate=rng.choice((0.0, 0.02, 0.1)),
            slow=rng.choice((0.0, 0.05, 0.2)),
            fault_rate=rng.choice((0.5, 2.0, 5.0)),
            crash_share=rng.choice((0.0, 0.3, 0.6)),
            proposal_rate=rng.choice((10.0, 50.0, 200.0)),
            max_append_entries=rng.choice((1, 2, 4, 32)),
            max_inflight=rng.choice((1, 4, 16)),
            leader_crash=rng.choice((0.2, 0.5, 0.9)),
            spares=rng.choice((0, 1, 2)),
            membership=rng.choice((0.0, 0.2, 0.4)),
            snapshot_every=rng.choice((0, 0, 3, 10, 40)),
            snapshot_tail=rng.choice((0, 1, 5, 50)),
            snapshot_chunk=rng.choice((16, 200, 1 << 20)),
            lease_reads=rng.random() < 0.5,
            sessions=rng.choice((0.0, 0.3, 0.6)),
            session_opens=rng.choice((0.05, 0.2)),
            session_capacity=rng.choice((2, 4, 4096)),
        )

    def replay_command(self) -> str:
        return f"python -m webraft.sim --seed {self.seed}"


@dataclass(slots=True)
class SimNode:
    id: str
    disk: MemoryStorage = field(default_factory=MemoryStorage)
    core: RaftCore | None = None
    generation: int = 0  # bumped by a crash: in-flight work of the old life is void
    busy: bool = False  # a Ready is being persisted
    timer_at: float = float("inf")
    #: The state machine: what entries 1, 2, ... did, in order: their command (for a session
    #: entry, its command if the session table applied it, else None).
    applied: list[Any] = field(default_factory=list)
    sessions: SessionTable = field(default_factory=SessionTable)
    since_snapshot: int = 0


@dataclass(slots=True)
class Stats:
    events: int = 0
    messages: int = 0
    dropped: int = 0
    crashes: int = 0
    partitions: int = 0
    elections: int = 0
    transfers: int = 0
    membership: int = 0
    reads: int = 0
    linearizability_checks: int = 0  # registers whose history was checked (not given up)
    snapshots: int = 0
    installs: int = 0
    proposals: int = 0
    committed: int = 0
    sessions_opened: int = 0
    session_retries: int = 0  # attempts of a command (or an open) after the first
    duplicates: int = 0  # session entries the table did not apply again
    expired: int = 0  # session entries refused because their session had expired
    expired_applied: int = 0  # commands refused as expired that an earlier attempt applied
    recovery_time: float = 0.0

    def add(self, other: Stats) -> None:
        """Fold another run's stats in: counts add up, the slowest recovery is kept."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, max(mine, theirs) if f.name == "recovery_time"
                    else mine + theirs)


class Simulation:
    """One seeded run. ``run()`` returns :class:`Stats` or raises :class:`SafetyViolation`
    (or :class:`LivenessFailure`); the exception message ends with the replay command."""

    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.rng = random.Random(scenario.seed)
        self.now = 0.0
        self._seq = 0
        self._queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self.ids = [f"n{i}" for i in range(scenario.nodes + scenario.spares)]
        self.initial = self.ids[:scenario.nodes]  # every node bootstraps with these voters
        self.nodes = {i: SimNode(i) for i in self.ids}
        self.blocked: dict[tuple[str, str], bool] = {}
        self.checker = SafetyChecker()
        self.stats = Stats()
        self.faulty = True
        self._req = 0
        self.acked: dict[int, tuple[int, int]] = {}  # request -> (index, term)
        self.commands: dict[int, Any] = {}  # request -> command
        self.reads: dict[int, tuple[int, int, float]] = {}  # read -> (floor, key, call time)
        # The clients' history for the linearizability check: writes by request, reads done.
        self.writes: dict[int, tuple[str, float]] = {}  # request -> (proposing node, call)
        self.write_ret: dict[int, float] = {}  # request -> when its node applied it
        self.waiting_writes: dict[tuple[str, int], tuple[int, int]] = {}  # (node, index)->
        self.waiting_reads: list[tuple[str, int, int, float]] = []  # (node, index, key, call)
        self.history: list[tuple[int, Op]] = []  # (key, completed read)
        self.clients = SessionClients(self)
        for node in self.nodes.values():
            self._boot(node)

    # -- plumbing ---------------------------------------------------------------------

    def _at(self, when: float, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, kind, args))

    def _boot(self, node: SimNode) -> None:
        stored = node.disk.load() or StoredState.bootstrap(self.initial)
        self.checker.on_restart(node.id, stored.hard, stored.snapshot.index)
        rng = self.rng
        cfg = CoreConfig(
            id=node.id,
            follower_timeout=lambda: 0.2 + rng.uniform(0, 0.05),
            election_timeout=lambda: rng.uniform(0.15, 0.3),
            heartbeat_interval=0.05,
            quorum_timeout=0.2,
            max_inflight=self.sc.max_inflight,
            max_append_entries=self.sc.max_append_entries,
            snapshot_chunk=self.sc.snapshot_chunk,
            lease_reads=self.sc.lease_reads,
        )
        node.core = RaftCore(cfg, stored, applied=0, now=self.now)
        # The state machine restarts from the snapshot, as an application's refresh would.
        self._load(node, stored.snapshot.index, stored.snapshot_data)
        node.since_snapshot = 0
        node.busy = False
        node.timer_at = float("inf")
        self._after(node)

    def _after(self, node: SimNode) -> None:
        """After any input: check, start persisting the next Ready, re-arm the timer."""
        core = node.core
        assert core is not None
        self.checker.on_state(node.id, core)
        if not node.busy and core.has_ready():
            rd = core.ready()
            node.busy = True
            lo, hi = self.sc.disk_delay
            self._at(self.now + self.rng.uniform(lo, hi), "persisted", node.id,
                     node.generation, rd, core.state == LEADER)
        deadline = core.next_deadline
        if deadline < node.timer_at:
            node.timer_at = deadline
            self._at(deadline, "timer", node.id, node.generation)

    def _persisted(self, node: SimNode, rd: Ready, was_leader: bool) -> None:
        core = node.core
        assert core is not None
        if rd.hard is not None or rd.entries or rd.snapshot is not None:
            update = StorageUpdate(rd.hard, tuple(rd.entries), rd.snapshot, rd.snapshot_data,
                                   rd.compact_to)
            node.disk.write(update)
            self.checker.on_persist(node.id, update, was_leader)
        for dst, msg in rd.messages:
            self.checker.on_send(node.id, dst, msg)
            self._send(node.id, dst, msg)
        for result in rd.proposals:
            if result.index:
                self.acked[result.id] = (result.index, result.term)
                if result.id in self.writes:
                    self.waiting_writes[(node.id, result.index)] = (result.id, result.term)
            self.clients.on_proposed(node, result.id, result.index, result.term)
        for read in rd.reads:
            self._check_read(node, read.id, read.index)
        if rd.install and rd.snapshot is not None and rd.snapshot_data is not None:
            self._load(node, rd.snapshot.index, rd.snapshot_data)
            self.checker.on_install(node.id, rd.snapshot, node.applied)
            self.stats.installs += 1
        if rd.committed:
            leaders = {n.id: n.core for n in self.nodes.values() if n.core is not None}
            self.checker.on_commit(node.id, core, rd.committed, leaders)
            node.since_snapshot += len(rd.committed)
            for entry in rd.committed:
                node.applied.append(self._apply(node, entry))
                waiting = self.waiting_writes.pop((node.id, entry.index), None)
                if waiting is not None and waiting[1] == entry.term:
                    self.write_ret[waiting[0]] = self.now  # the client hears "done"
        if self.waiting_reads:
            self._finish_reads(node)
        for event in rd.events:
            if isinstance(event, RoleChanged) and event.role == "leader":
                self.stats.elections += 1
        core.advance(rd)
        if (self.sc.snapshot_every and node.since_snapshot >= self.sc.snapshot_every
                and len(node.applied) > core.log.snapshot.index):  # not behind an install
            node.since_snapshot = 0
            sessions = node.sessions.to_json()
            self.checker.on_session_table(node.id, len(node.applied), sessions)
            core.compact(len(node.applied), json.dumps({"state": node.applied,
                                                        "sessions": sessions}),
                         self.sc.snapshot_tail)
            self.stats.snapshots += 1
        node.busy = False
        self._after(node)

    def _load(self, node: SimNode, index: int, data: str | None) -> None:
        """Make ``node``'s state machine and session table those of the snapshot at ``index``
        (the runtime's snapshot layout: ``{"state": ..., "sessions": ...}``)."""
        capacity = self.sc.session_capacity
        if index and data:
            node.applied, node.sessions = unpack_snapshot(data, capacity)
            self.checker.on_session_table(node.id, index, node.sessions.to_json())
        else:
            node.applied, node.sessions = [], SessionTable(capacity)

    def _apply(self, node: SimNode, entry: Entry) -> Any:
        """Apply a committed entry to ``node``'s state machine; return what it wrote."""
        if entry.kind != SESSION:
            return entry.command
        verdict, result = node.sessions.apply(entry)
        if self.checker.on_session(node.id, entry, verdict, result):
            self.stats.duplicates += verdict == DUPLICATE
            self.stats.expired += verdict == EXPIRED
        self.clients.on_apply(node, entry, verdict, result)
        return entry.command[3] if verdict == APPLY else None

    def _send(self, src: str, dst: str, msg: Message) -> None:
        self.stats.messages += 1
        if self.faulty and (self.blocked.get((src, dst)) or self.rng.random() < self.sc.drop):
            self.stats.dropped += 1
            return
        wire = encode(msg)
        copies = 2 if self.faulty and self.rng.random() < self.sc.duplicate else 1
        for _ in range(copies):
            lo, hi = self.sc.delay
            delay = self.rng.uniform(lo, hi)
            if self.faulty and self.rng.random() < self.sc.slow:
                delay += self.rng.uniform(0.01, 0.15)
            self._at(self.now + delay, "deliver", src, dst, wire)

    # -- events -------------------------------------------------------------------------

    def _handle(self, kind: str, args: tuple[Any, ...]) -> None:
        if kind == "deliver":
            src, dst, wire = args
            node = self.nodes[dst]
            if node.core is None or (self.faulty and self.blocked.get((src, dst))):
                return
            node.core.tick(self.now)
            node.core.step(src, decode(wire))
            self._after(node)
        elif kind == "persisted":
            node_id, generation, rd, was_leader = args
            node = self.nodes[node_id]
            if node.core is not None and node.generation == generation:
                self._persisted(node, rd, was_leader)
        elif kind == "timer":
            node_id, generation = args
            node = self.nodes[node_id]
            if node.core is None or node.generation != generation:
                return
            if self.now >= node.timer_at:
                node.timer_at = float("inf")
            node.core.tick(self.now)
            self._after(node)
        elif kind == "fault":
            if self.faulty:
                self._fault()
                self._at(self.now + self.rng.expovariate(self.sc.fault_rate), "fault")
        elif kind == "restart":
            node = self.nodes[args[0]]
            if node.core is None:
                self._boot(node)
        elif kind == "propose":
            self._propose()
            if self.faulty:
                self._at(self.now + self.rng.expovariate(
                    self.sc.proposal_rate * (1 - self.sc.sessions)), "propose")
        elif kind == "read":
            self._read()
            if self.faulty:
                self._at(self.now + self.rng.expovariate(self.sc.proposal_rate / 2), "read")
        elif kind == "client":
            self.clients.act()
            if self.faulty:
                self._at(self.now + self.rng.expovariate(self.sc.proposal_rate
                                                         * self.sc.sessions), "client")
        elif kind == "client retry":
            self.clients.retry(*args)

    def _fault(self) -> None:
        rng, ids = self.rng, self.ids
        if rng.random() < self.sc.crash_share:
            live = [i for i in ids if self.nodes[i].core is not None]
            leader = self._leader()
            if leader is not None and rng.random() < self.sc.leader_crash:
                live = [leader.id]
            if live:
                victim = self.nodes[rng.choice(live)]
                victim.core = None
                victim.generation += 1
                # Its clients never hear back: their operations stay pending (unknown).
                self.waiting_reads = [r for r in self.waiting_reads if r[0] != victim.id]
                self.waiting_writes = {k: v for k, v in self.waiting_writes.items()
                                       if k[0] != victim.id}
                self.clients.on_crash(victim.id)
                self.stats.crashes += 1
                self._at(self.now + rng.uniform(0.05, 1.0), "restart", victim.id)
            return
        leader = self._leader()
        if leader is not None and rng.random() < self.sc.membership:
            self._change_membership(leader)
            return
        if leader is not None and rng.random() < 0.15:
            assert leader.core is not None
            if leader.core.transfer_leadership() is not None:
                self.stats.transfers += 1
                self._after(leader)
            return
        self.stats.partitions += 1
        self.blocked = {}
        choice = rng.random()
        if choice < 0.3:
            a = rng.choice(ids)
            for b in ids:
                if b != a:
                    self.blocked[(a, b)] = self.blocked[(b, a)] = True
        elif choice < 0.5:
            a, b = rng.sample(ids, 2)
            self.blocked[(a, b)] = True
        elif choice < 0.8:
            group = rng.sample(ids, rng.randint(1, len(ids) - 1))
            for a in group:
                for b in ids:
                    if b not in group:
                        self.blocked[(a, b)] = self.blocked[(b, a)] = True
        # else: heal

    def _change_membership(self, leader: SimNode) -> None:
        """Add a node that is not a member (as a learner: it is promoted once caught up), or
        remove a member, the leader included."""
        core = leader.core
        assert core is not None
        config = core.cluster
        outside = [i for i in self.ids if i not in config.members]
        if outside and (len(config.voters) < 3 or self.rng.random() < 0.5):
            new = ClusterConfig(config.voters, (*config.learners, self.rng.choice(outside)))
        elif len(config.voters) > 1:
            gone = self.rng.choice(config.voters)
            new = ClusterConfig(tuple(v for v in config.voters if v != gone), config.learners)
        else:
            return
        self._req += 1
        self.commands[self._req] = new.to_json()
        core.change_config(self._req, new)
        self.stats.membership += 1
        self._after(leader)

    def _read(self) -> None:
        """A client reads through a random node; remember what had completed by then."""
        live = [n for n in self.nodes.values() if n.core is not None]
        if not live:
            return
        node = self.rng.choice(live)
        self._req += 1
        self.reads[self._req] = (self.checker.max_committed, self.rng.randrange(KEYS), self.now)
        assert node.core is not None
        node.core.read_index(self._req)
        self.stats.reads += 1
        self._after(node)

    def _check_read(self, node: SimNode, req: int, index: int) -> None:
        """Linearizable reads: a read index covers every write that completed (was applied
        somewhere) before the read began, so no read can miss an acknowledged write."""
        began = self.reads.pop(req, None)
        if began is None or index == 0:
            return  # not ours, or refused (no leader could confirm): the client retries
        floor, key, call = began
        if index < floor:
            raise SafetyViolation(f"{node.id}: read {req} got index {index}, but entry {floor} "
                                  "had already committed when it began: a stale read")
        self.waiting_reads.append((node.id, index, key, call))
        self._finish_reads(node)

    def _finish_reads(self, node: SimNode) -> None:
        """Reads of ``node`` whose index it has applied return the register's value now."""
        applied = len(node.applied)
        still = []
        for read in self.waiting_reads:
            node_id, index, key, call = read
            if node_id != node.id:
                still.append(read)
            elif applied >= index:
                value = read_register(node.applied, key)
                self.history.append((key, Op("r", value, call, self.now)))
            elif node.core is not None:
                still.append(read)
        self.waiting_reads = still

    def _propose(self) -> None:
        live = [n for n in self.nodes.values() if n.core is not None]
        if live:
            self._propose_to(self.rng.choice(live), f"c{self._req + 1}")
            self.stats.proposals += 1

    # -- running ------------------------------------------------------------------------

    def run(self) -> Stats:
        try:
            return self._run()
        except SafetyViolation as exc:
            raise SafetyViolation(f"seed {self.sc.seed}: {exc} at t={self.now:.4f}\n"
                                  f"replay: {self.sc.replay_command()}") from None

    def _run(self) -> Stats:
        self._at(0.0, "fault")
        self._at(0.0, "propose")
        self._at(0.0, "read")
        if self.sc.sessions:
            self._at(0.0, "client")
        self._loop_until(self.sc.fault_time)
        # Heal: no more faults; every crashed node comes back.
        self.faulty = False
        self.blocked = {}
        healed_at = self.now
        for node in self.nodes.values():
            if node.core is None:
                self._at(self.now, "restart", node.id)
        deadline = healed_at + self.sc.settle_time
        markers: list[int] = []
        next_marker = self.now
        while self.now < deadline:
            self._loop_until(min(self.now + 0.05, deadline))
            if self._settled(markers):
                self.stats.recovery_time = self.now - healed_at
                self.stats.committed = self.checker.max_committed
                self._check_outcomes()
                self.clients.check()
                self._check_linearizable()
                return self.stats
            leader = self._leader()
            if leader is not None and self.now >= next_marker:
                # A marker can be refused, or appended by a leader that is then deposed (or
                # removed) before it commits: propose a fresh one now and then until one does.
                markers.append(self._propose_to(leader, f"marker-{len(markers)}"))
                next_marker = self.now + 0.5
        raise LivenessFailure(
            f"seed {self.sc.seed}: no agreement {self.sc.settle_time}s after healing "
            f"(leader={leader.id if (leader := self._leader()) else None}, "
            f"markers proposed={len(markers)}, "
            f"commits={[n.core.log.commit for n in self.nodes.values() if n.core]})\n"
            f"replay: {self.sc.replay_command()}")

    def _loop_until(self, until: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= until:
            when, _, kind, args = heapq.heappop(queue)
            self.now = when
            self.stats.events += 1
            self._handle(kind, args)
        self.now = max(self.now, until)

    def _leader(self) -> SimNode | None:
        leaders = [n for n in self.nodes.values() if n.core is not None
                   and n.core.state == LEADER]
        return max(leaders, key=lambda n: n.core.term) if leaders else None  # type: ignore[union-attr]

    def _propose_to(self, node: SimNode, command: str) -> int:
        """A client writes a register through ``node``, once (no retry, no session)."""
        req = self.submit(node, command)
        self.writes[req] = (node.id, self.now)
        return req

    def submit(self, node: SimNode, command: Any, kind: int = COMMAND) -> int:
        """Propose one entry at ``node``; return its request id (its outcome comes in a
        Ready's proposal results)."""
        self._req += 1
        self.commands[self._req] = command
        assert node.core is not None
        node.core.propose(self._req, [command], kind)
        self._after(node)
        return self._req

    def _settled(self, markers: list[int]) -> bool:
        """A marker committed and every member applied everything committed."""
        index = next((self.acked[m][0] for m in markers if m in self.acked
                      and self.checker.committed.get(self.acked[m][0], (0, None))[1]
                      == self.commands[m]), None)
        if index is None:
            return False
        leader = self._leader()
        if leader is None or leader.core is None:
            return False
        members = leader.core.cluster.members  # removed nodes are left behind for good
        cores = [self.nodes[m].core for m in members]
        if any(c is None for c in cores):
            return False
        commits = {c.log.commit for c in cores}  # type: ignore[union-attr]
        return (len(commits) == 1 and min(commits) >= index
                and all(self.checker.applied.get(m) == min(commits) for m in members))

    def _check_linearizable(self) -> None:
        """The clients' history of every register is linearizable: reads (through
        ``read_index``) and writes (done once the proposing node applied them) fit one order
        that respects real time."""
        per_key: dict[int, list[Op]] = {k: [] for k in range(KEYS)}
        slot = {command: index for index, (_, command) in self.checker.committed.items()
                if isinstance(command, str)}
        for req, (_, call) in self.writes.items():
            command = self.commands[req]
            if command not in slot:
                # Never committed, so it never took effect (the simulation proposes each
                # command once): leaving it out is the only order that can explain the reads.
                assert req not in self.write_ret
                continue
            per_key[key_of(command)].append(Op(  # type: ignore[index]
                "w", command, call, self.write_ret.get(req, INF), order=slot[command]))
        for op in self.clients.writes():
            per_key[key_of(op.value)].append(op)  # type: ignore[index]
        for key, op in self.history:
            per_key[key].append(op)
        for key, ops in per_key.items():
            verdict = linearizable_in_log_order(ops)
            if len(ops) <= 40:  # small enough for the general search: both must agree
                general = linearizable(ops)
                if general is not None and general != verdict:
                    raise AssertionError(f"seed {self.sc.seed}: linearizability checkers "
                                         f"disagree on register {key}")
            if not verdict:
                raise SafetyViolation(f"the history of register {key} ({len(ops)} operations) "
                                      "is not linearizable")
            self.stats.linearizability_checks += 1

    def _check_outcomes(self) -> None:
        """Every appended proposal ended: committed at its slot, or the slot holds another
        entry; and no command was committed twice."""
        seen: dict[Any, int] = {}
        for index, (_, command) in self.checker.committed.items():
            if isinstance(command, str):  # not a configuration, no-op or session entry
                if command in seen:
                    raise SafetyViolation(f"command {command!r} committed at {seen[command]} "
                                          f"and {index}")
                seen[command] = index
        for req, (index, term) in self.acked.items():
            got = self.checker.committed.get(index)
            if got is None:
                # Past the final commit index: a deposed leader's slot that no one has
                # overwritten yet. The caller's future would time out ("may still commit").
                if index <= self.checker.max_committed:
                    raise SafetyViolation(f"slot {index} below the commit index is missing")
                continue
            if got[0] == term and got[1] != self.commands[req]:
                raise SafetyViolation(f"proposal {req} at ({index}, {term}) holds {got[1]!r}")


class LivenessFailure(AssertionError):
    """The cluster did not recover within the bound after faults stopped."""


def run_seed(seed: int) -> Stats:
    """Run the scenario of ``seed``; raise on any violation."""
    return Simulation(Scenario.from_seed(seed)).run()

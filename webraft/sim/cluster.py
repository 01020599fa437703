"""One seeded simulation of a cluster of real runtime nodes, on a virtual clock.

It owns the scenario (:class:`Scenario`, derived from the seed), the nodes' lives (start,
crash, restart), the faults and the end of a run. Every node is a real
:class:`~webraft.runtime.RaftInterface` (:mod:`webraft.sim.node`) with a simulated storage
(:mod:`.storage`), network (:mod:`.network`) and application (:mod:`.app`), all on one
:class:`~webraft.sim.loop.VirtualLoop`. Everything random comes from one
``random.Random(seed)`` and nothing iterates a set, so a seed replays exactly, whatever
``PYTHONHASHSEED`` is. It must not import a real transport, a storage backend or anything
with I/O: the simulation is the whole world its nodes see.

A run has two phases. During the *fault phase* links drop, duplicate, delay and reorder
messages, partitions come and go, nodes vanish and reappear (presence), crash and restart,
disks fail, handlers are slow or fail, membership changes and leadership moves, while the
clients (:mod:`.workload`) write and read. Then everything heals, and the *liveness phase*
requires that a leader is elected and a final proposal is applied by every member within a
bounded virtual time. :class:`~webraft.sim.checker.SafetyChecker` checks the safety
properties after every step; the clients' outcomes and linearizability are checked at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import signal
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import WebraftError
from ..runtime import NodeConfig, RaftInterface
from .app import AppDisk, AppFaults, AppStats, KVApp
from .checker import SafetyChecker, SafetyViolation
from .loop import VirtualLoop
from .network import LinkFaults, Network
from .node import build_node, start_node
from .storage import Disk, DiskFaults, SimStorage
from .workload import ClientStats, Workload


class LivenessFailure(AssertionError):
    """The cluster did not recover within the bound after faults stopped, or a run did not
    end within its CPU-time limit (a callback that never returns: a livelock)."""


#: Seconds of this process's CPU one run may take: a detector of callbacks that never
#: return, not a speed limit. Most seeds take well under one, but a busy one (seed 23: 63,000
#: messages) took 4 s on a slow machine and once ran past a limit of 5. CPU time, not real
#: time: on a loaded machine a healthy seed may wait for a core for many seconds, while a
#: callback that never returns burns CPU all along.
CPU_LIMIT = 30.0


class _Hung(SystemExit):
    """Raised by the alarm: a SystemExit, the one kind asyncio lets out of a callback."""


def _alarm(signum: int, frame: object) -> None:
    raise _Hung


@dataclass(slots=True)
class Scenario:
    """The knobs of one run; :meth:`from_seed` derives a varied scenario from a seed."""

    seed: int
    nodes: int = 3
    spares: int = 0  # nodes outside the initial configuration, for membership changes
    fault_time: float = 2.0  # virtual seconds of faults
    settle_time: float = 10.0  # bound for the liveness phase
    links: LinkFaults = field(default_factory=LinkFaults)
    disks: DiskFaults = field(default_factory=DiskFaults)
    app: AppFaults = field(default_factory=AppFaults)
    config: NodeConfig = field(default_factory=NodeConfig)
    legacy: float = 0.2  # share of node incarnations built the seed's way (create_instance)
    fault_rate: float = 2.0  # faults per virtual second
    crash: float = 0.3  # share of faults that are crashes
    leader_crash: float = 0.5  # share of crashes that hit the leader
    presence: float = 0.15  # share of faults that make a node vanish or reappear
    membership: float = 0.0  # share of faults that are membership changes
    transfer: float = 0.1  # share of faults that move leadership
    write_rate: float = 40.0
    read_rate: float = 20.0
    session_rate: float = 0.0

    @classmethod
    def from_seed(cls, seed: int) -> Scenario:
        rng = random.Random(f"scenario-{seed}")
        auto = rng.random() < 0.3
        return cls(
            seed=seed,
            nodes=rng.choice((3, 3, 5)),
            spares=rng.choice((0, 1, 2)),
            links=LinkFaults(
                drop=rng.choice((0.0, 0.02, 0.1, 0.2)),
                duplicate=rng.choice((0.0, 0.02, 0.1)),
                slow=rng.choice((0.0, 0.05, 0.2)),
            ),
            disks=DiskFaults(
                sync=rng.choice((0.0, 0.5, 1.0)),
                errors=rng.choice((0.0, 0.0, 0.05)),
            ),
            app=AppFaults(
                slow=rng.choice((0.0, 0.1, 0.4)),
                fail=rng.choice((0.0, 0.0, 0.05)),
                persist=rng.choice((0.0, 0.3, 1.0)),
            ),
            config=NodeConfig(
                proposal_timeout=rng.choice((0.3, 1.0, 3.0)),
                message_timeout=rng.choice((0.2, 0.5)),
                snapshot_entries=rng.choice((4096, 3, 10, 40)),
                snapshot_tail=rng.choice((0, 1, 5, 50)),
                read_lease=rng.random() < 0.3,
                auto_membership=auto,
                member_grace=rng.choice((0.3, 1.0)),
                max_voters=rng.choice((3, 5)),
                max_append_entries=rng.choice((1, 4, 32, 1024)),
                max_inflight=rng.choice((1, 4, 64)),
                snapshot_chunk=rng.choice((48, 400, 64 * 1024)),
                # Drawn from a stream of its own, so that adding it changed no other draw.
                lazy_interval=random.Random(f"lazy-{seed}").choice((0.0, 0.0, 0.005, 0.04)),
            ),
            legacy=rng.choice((0.0, 0.3)),
            fault_rate=rng.choice((0.5, 2.0, 5.0)),
            crash=rng.choice((0.0, 0.3, 0.5)),
            leader_crash=rng.choice((0.2, 0.5, 0.9)),
            presence=rng.choice((0.0, 0.15, 0.3)),
            membership=0.0 if auto else rng.choice((0.0, 0.2, 0.4)),
            transfer=rng.choice((0.0, 0.1, 0.2)),
            write_rate=rng.choice((10.0, 40.0, 150.0)),
            read_rate=rng.choice((5.0, 20.0)),
            session_rate=rng.choice((0.0, 5.0, 20.0)),
        )

    def replay_command(self) -> str:
        return f"webraft-sim --seed {self.seed}"


@dataclass(slots=True)
class Member:
    """One address and what it keeps across its incarnations."""

    address: str
    initial: bool  # in the cluster's first configuration (spares start outside any)
    disk: Disk = field(default_factory=Disk)
    app_disk: AppDisk = field(default_factory=AppDisk)
    raft: RaftInterface | None = None
    app: KVApp | None = None
    storage: SimStorage | None = None
    lives: int = 0


@dataclass(slots=True)
class Stats:
    """What one run (or, added up, a batch) did."""

    steps: int = 0
    messages: int = 0
    dropped: int = 0
    crashes: int = 0
    partitions: int = 0
    vanished: int = 0
    transfers: int = 0
    membership: int = 0
    elections: int = 0
    saves: int = 0
    save_errors: int = 0
    applied: int = 0
    handler_failures: int = 0
    snapshots: int = 0
    loads: int = 0
    committed: int = 0
    proposals: int = 0
    acknowledged: int = 0
    refused: int = 0
    reads: int = 0
    sessions_opened: int = 0
    session_retries: int = 0
    #: Committed copies of a session number after its first: resends the table applied as none.
    copies: int = 0
    registers_checked: int = 0
    virtual_time: float = 0.0
    recovery_time: float = 0.0

    def add(self, other: Stats) -> None:
        """Fold another run's stats in: counts add up, the slowest recovery is kept."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, max(mine, theirs) if f.name == "recovery_time"
                    else mine + theirs)


class Simulation:
    """One seeded run. ``run()`` returns :class:`Stats` or raises :class:`SafetyViolation`
    (or :class:`LivenessFailure`); the exception message ends with the replay command.
    ``trace`` prints one line per node event (``-v``)."""

    def __init__(self, scenario: Scenario, trace: bool = False) -> None:
        self.sc = scenario
        self.rng = random.Random(scenario.seed)
        self.trace = trace
        self.loop = VirtualLoop()
        self.loop.set_exception_handler(self._loop_error)
        self.checker = SafetyChecker(on_failure=self.loop.stop)
        self.config = scenario.config.replace(rng=self.rng)
        self.faulty = True
        self.app_stats = AppStats()
        self.network = Network(self.loop, self.rng, scenario.links, self.checker.on_send,
                               self._observe)
        ids = [f"n{i}" for i in range(scenario.nodes + scenario.spares)]
        self.initial = ids[:scenario.nodes]
        self.members = {a: Member(a, a in self.initial) for a in ids}
        self.workload = Workload(self, scenario.write_rate, scenario.read_rate,
                                 scenario.session_rate)
        self.stats = Stats()
        self._digest = hashlib.sha256()
        self._errors: list[str] = []

    # -- the view the clients and checks have ------------------------------------------

    def now(self) -> float:
        return self.loop.time()

    def pick(self) -> tuple[RaftInterface, KVApp] | None:
        live = [m for m in self.members.values() if m.raft is not None]
        if not live:
            return None
        m = self.rng.choice(live)
        assert m.raft is not None and m.app is not None
        return m.raft, m.app

    def _observe(self, address: str) -> None:
        """After a step of ``address``: check its core, and note it in the trace."""
        m = self.members[address]
        raft = m.raft
        if raft is None:
            return
        core = raft.core
        cores = {a: x.raft.core for a, x in self.members.items() if x.raft is not None}
        with contextlib.suppress(SafetyViolation):  # recorded: the run stops
            self.checker.observe(address, core, cores)
        line = (f"{self.now():.6f} {address} {core.state} t{core.term} "
                f"c{core.log.commit} l{core.log.last_index} a{raft.last_applied}")
        self._digest.update(line.encode())
        if self.trace:
            print(line)

    def leader(self) -> RaftInterface | None:
        leaders = [m.raft for m in self.members.values()
                   if m.raft is not None and m.raft.is_leader]
        return max(leaders, key=lambda r: r.term) if leaders else None

    # -- lives -------------------------------------------------------------------------

    def _start(self, m: Member) -> None:
        m.lives += 1
        storage = SimStorage(m.address, m.disk, self.loop, self.rng, self.sc.disks,
                             self.checker, lambda: m.raft is not None and m.raft.is_leader)
        stored = m.disk.load()
        if stored is not None:
            self.checker.on_restart(m.address, stored.hard, stored.snapshot.index)
        raft = build_node(m.address, members=self.initial if m.initial else [],
                          storage=storage, config=self.config, network=self.network,
                          legacy=self.rng.random() < self.sc.legacy)
        app = KVApp(m.address, raft, m.app_disk, self.loop, self.rng, self.sc.app,
                    self.checker, self.app_stats, self._observe)
        raft.listen("error", lambda exc: None)  # faults are expected; checks judge them
        raft.listen("leader", lambda *_: self._count_election())
        m.raft, m.app, m.storage = raft, app, storage
        start_node(raft)
        self._observe(m.address)

    def _count_election(self) -> None:
        self.stats.elections += 1

    def _crash(self, m: Member) -> None:
        """Power loss: nothing more reaches the disk, the network or the application."""
        raft, app, storage = m.raft, m.app, m.storage
        assert raft is not None and app is not None and storage is not None
        m.raft = m.app = m.storage = None
        self.stats.crashes += 1
        self.stats.saves += storage.saves
        self.stats.save_errors += storage.failures
        app.dead = True
        self.network.detach(m.address)
        # close() stops the incarnation's timers and fails its callers; the storage is dead
        # first, so the save in progress is lost and nothing more is written.
        closing = self.loop.create_task(raft.close())
        storage.crash()
        closing.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _restart_later(self, m: Member) -> None:
        await asyncio.sleep(self.rng.uniform(0.05, 1.0))
        if m.raft is None:
            self._start(m)

    # -- faults --------------------------------------------------------------------------

    async def _faults(self) -> None:
        sc, rng = self.sc, self.rng
        while True:
            await asyncio.sleep(rng.expovariate(sc.fault_rate))
            if not self.faulty:
                return
            r = rng.random()
            if r < sc.crash:
                self._crash_one()
            elif (r := r - sc.crash) < sc.presence:
                self._presence()
            elif (r := r - sc.presence) < sc.membership:
                self._change_membership()
            elif r - sc.membership < sc.transfer:
                leader = self.leader()
                if leader is not None and leader.transfer_leadership() is not None:
                    self.stats.transfers += 1
            else:
                self.network.partition()

    def _crash_one(self) -> None:
        live = [m for m in self.members.values() if m.raft is not None]
        leader = self.leader()
        if leader is not None and self.rng.random() < self.sc.leader_crash:
            live = [self.members[leader.address]]
        if live:
            victim = self.rng.choice(live)
            self._crash(victim)
            self.loop.create_task(self._restart_later(victim))

    def _presence(self) -> None:
        net = self.network
        if net.vanished and self.rng.random() < 0.6:
            net.appear(self.rng.choice(sorted(net.vanished)))
        else:
            net.vanish(self.rng.choice(sorted(self.members)))

    def _change_membership(self) -> None:
        """Add a node that is not a member (as a learner: it is promoted once caught up), or
        remove a member, the leader included."""
        leader = self.leader()
        if leader is None:
            return
        voters, members = leader.members, leader.learners + leader.members
        outside = [a for a in self.members if a not in members]
        if outside and (len(voters) < 3 or self.rng.random() < 0.5):
            fut = leader.add_member(self.rng.choice(outside))
        elif len(voters) > 1:
            fut = leader.remove_member(self.rng.choice(voters))
        else:
            return
        self.stats.membership += 1
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    # -- running -------------------------------------------------------------------------

    def run(self) -> Stats:
        previous = signal.signal(signal.SIGVTALRM, _alarm)
        signal.setitimer(signal.ITIMER_VIRTUAL, CPU_LIMIT)
        try:
            return self._run()
        finally:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            signal.signal(signal.SIGVTALRM, previous)

    def _run(self) -> Stats:
        clean = True
        try:
            try:
                self.loop.run_until_complete(self._main())
            except RuntimeError:
                if self.checker.failure is None:
                    raise
            except _Hung:
                clean = False  # stopped inside a callback: the nodes cannot be closed
                raise LivenessFailure(f"still running after {CPU_LIMIT:.0f} CPU seconds (a "
                                      "callback that never returns?)") from None
            if self.checker.failure is not None:
                raise self.checker.failure
            if self._errors:
                raise SafetyViolation(f"the runtime raised: {self._errors[0]}")
        except (SafetyViolation, LivenessFailure) as exc:
            raise type(exc)(f"seed {self.sc.seed}: {exc} at t={self.now():.4f}\n"
                            f"replay: {self.sc.replay_command()} (-v for a trace)") from None
        finally:
            if clean:
                with contextlib.suppress(_Hung):  # closing can hang the same way
                    self._shutdown()
            if not self.loop.is_closed():
                self.loop.close()
        return self.stats

    def digest(self) -> str:
        """A fingerprint of everything observed: equal for equal runs."""
        return self._digest.hexdigest()

    def boot(self) -> None:
        """Start every node (from inside the loop)."""
        for m in self.members.values():
            self._start(m)

    async def _main(self) -> None:
        self.boot()
        faults = self.loop.create_task(self._faults())
        self.workload.start()
        await asyncio.sleep(self.sc.fault_time)
        # Heal: no more faults; every crashed node comes back.
        self.faulty = False
        self.network.heal()
        faults.cancel()
        for m in self.members.values():
            if m.raft is None:
                self._start(m)
        await self._settle()
        self._finish()

    async def _settle(self) -> None:
        healed = self.now()
        deadline = healed + self.sc.settle_time
        markers: list[Any] = []
        next_marker = healed
        while self.now() < deadline:
            await asyncio.sleep(0.05)
            if self._settled(markers):
                self.stats.recovery_time = self.now() - healed
                return
            leader = self.leader()
            if leader is not None and self.now() >= next_marker:
                # A marker can be refused, or appended by a leader that is then deposed (or
                # removed) before it commits: propose a fresh one now and then until one does.
                markers.append(self.workload.propose(leader, f"marker-{len(markers)}"))
                next_marker = self.now() + 0.5
        leader = self.leader()
        raise LivenessFailure(
            f"no agreement {self.sc.settle_time}s after healing "
            f"(leader={leader.address if leader else None}, markers proposed={len(markers)}, "
            f"commits={[(a, m.raft.commit_index) for a, m in self.members.items() if m.raft]})")

    def _settled(self, markers: list[Any]) -> bool:
        """A marker was applied, and every member applied everything committed."""
        index = next((w.index for w in markers if w.index), 0)
        leader = self.leader()
        if not index or leader is None:
            return False
        rafts = [self.members[a].raft for a in leader.learners + leader.members]
        commits = {r.commit_index for r in rafts if r is not None}
        return (None not in rafts and len(commits) == 1 and min(commits) >= index
                and all(r is not None and r.last_applied == r.commit_index for r in rafts))

    def _finish(self) -> None:
        self.workload.check()
        st, ws, net = self.stats, self.workload.stats, self.network.stats
        st.committed, st.copies = self.checker.max_committed, self.checker.copies
        for name in ClientStats.__slots__:
            if hasattr(st, name):
                setattr(st, name, getattr(ws, name))
        st.messages, st.dropped = net.messages, net.dropped
        st.partitions, st.vanished = net.partitions, net.vanished
        app = self.app_stats
        st.applied, st.handler_failures = app.applied, app.failed
        st.snapshots, st.loads = app.snapshots, app.loads
        for m in self.members.values():
            if m.storage is not None:
                st.saves += m.storage.saves
                st.save_errors += m.storage.failures

    def _shutdown(self) -> None:
        """Close every node and let the loop settle, so nothing outlives the run."""
        loop = self.loop
        self.workload.stop()
        self.stats.steps = loop.steps
        self.stats.virtual_time = loop.time()
        rafts = [m.raft for m in self.members.values() if m.raft is not None]
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(self._close_all(rafts))
        loop.close()

    @staticmethod
    async def _close_all(rafts: list[RaftInterface]) -> None:
        await asyncio.gather(*(r.close() for r in rafts), return_exceptions=True)
        loop = asyncio.get_running_loop()
        this = asyncio.current_task()
        await asyncio.gather(*(t for t in asyncio.all_tasks(loop) if t is not this),
                             return_exceptions=True)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception escaped a callback or a task: a bug in the runtime (or here)."""
        exc = context.get("exception")
        if isinstance(exc, WebraftError | SafetyViolation):
            return  # an abandoned operation's error, or a violation already recorded
        self._errors.append(f"{context.get('message')}: {exc!r}")
        loop.stop()


def run_seed(seed: int, trace: bool = False) -> Stats:
    """Run the scenario of ``seed``; raise on any violation."""
    return Simulation(Scenario.from_seed(seed), trace).run()

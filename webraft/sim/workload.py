"""The simulated clients, and the checks of what they were told.

It owns the clients' history: plain proposals at random nodes (so followers forward them),
linearizable reads (``read_index``, then the node's registers), and clients that write
through sessions (``open_session``, then ``resume_session`` on another node after a failure,
retrying the same number: exactly once). At the end it checks every outcome a caller was
told (an index holds the caller's command; "certainly not committed" was true) and that the
history of every register is linearizable. It must not import the cluster (it is handed
one, typed by :class:`Cluster`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ProposalError, SessionExpired, WebraftError
from ..runtime import RaftInterface
from .app import KEYS, KVApp, key_of
from .checker import SafetyChecker, SafetyViolation
from .linearizability import INF, Op, linearizable, linearizable_in_log_order

#: Attempts of one session command before its client gives up (its outcome stays unknown).
SESSION_ATTEMPTS = 6
#: Session clients running at once.
SESSION_CLIENTS = 3


class Cluster(Protocol):
    """What the clients need from the simulation."""

    rng: random.Random
    checker: SafetyChecker
    faulty: bool

    def now(self) -> float: ...

    def pick(self) -> tuple[RaftInterface, KVApp] | None:
        """A random live node and its application, or None."""


@dataclass(slots=True)
class Write:
    """One command a client wrote, and what it was told."""

    value: str
    call: float
    ret: float = INF  # when the caller learned it was applied (INF: never)
    index: int = 0  # where the caller was told it was applied
    refused: bool = False  # the caller was told it certainly did not commit


@dataclass(slots=True)
class ClientStats:
    proposals: int = 0
    acknowledged: int = 0
    refused: int = 0
    reads: int = 0
    reads_done: int = 0
    sessions_opened: int = 0
    session_commands: int = 0
    session_retries: int = 0
    registers_checked: int = 0


@dataclass(slots=True)
class Workload:
    """The clients of one simulation; ``rates`` are operations per virtual second."""

    sim: Cluster
    write_rate: float
    read_rate: float
    session_rate: float
    writes: list[Write] = field(default_factory=list)
    reads: list[tuple[str, Op]] = field(default_factory=list)
    stats: ClientStats = field(default_factory=ClientStats)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _clients: int = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for body in (self._writer, self._reader, self._session_starter):
            self._tasks.append(loop.create_task(body()))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _every(self, rate: float) -> bool:
        """Wait a random interval; False once the faults (and the clients) are over."""
        if not rate:
            return False
        await asyncio.sleep(self.sim.rng.expovariate(rate))
        return self.sim.faulty

    # -- plain writes --------------------------------------------------------------------

    async def _writer(self) -> None:
        while await self._every(self.write_rate):
            picked = self.sim.pick()
            if picked is not None:
                self.propose(picked[0], f"c{len(self.writes)}")

    def propose(self, raft: RaftInterface, value: str) -> Write:
        write = Write(value, self.sim.now())
        self.writes.append(write)
        self.stats.proposals += 1
        raft.propose(value).add_done_callback(
            lambda fut: self._answered(raft.address, write, fut))
        return write

    def _answered(self, node: str, write: Write, fut: asyncio.Future[int]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            self._told_index(node, write, fut.result())
        elif isinstance(exc, ProposalError) and not exc.may_have_committed:
            self._told_refused(node, write, exc)

    def _told_index(self, node: str, write: Write, index: int) -> None:
        write.index, write.ret = index, self.sim.now()
        self.stats.acknowledged += 1
        held = self.sim.checker.app_values.get(index)
        if held != write.value:
            self.sim.checker.fail(f"{node}: {write.value!r} was acknowledged at index {index}, "
                                  f"where the application applied {held!r}")

    def _told_refused(self, node: str, write: Write, exc: BaseException) -> None:
        write.refused = True
        self.stats.refused += 1
        if write.value in self.sim.checker.value_index:
            self.sim.checker.fail(f"{node}: {write.value!r} was refused ({exc!r}) but applied "
                                  f"at {self.sim.checker.value_index[write.value]}")

    # -- reads ---------------------------------------------------------------------------

    async def _reader(self) -> None:
        loop = asyncio.get_running_loop()
        while await self._every(self.read_rate):
            picked = self.sim.pick()
            if picked is not None:
                self._tasks.append(loop.create_task(self._read(*picked)))

    async def _read(self, raft: RaftInterface, app: KVApp) -> None:
        key = str(self.sim.rng.randrange(KEYS))
        call = self.sim.now()
        self.stats.reads += 1
        try:
            await raft.read_index()
        except WebraftError:
            return
        if app.dead:
            return  # the node crashed: the client never heard back
        self.stats.reads_done += 1
        self.reads.append((key, Op("r", app.read(key), call, self.sim.now())))

    # -- sessions ------------------------------------------------------------------------

    async def _session_starter(self) -> None:
        loop = asyncio.get_running_loop()
        running: list[asyncio.Task[None]] = []
        while await self._every(self.session_rate):
            running = [t for t in running if not t.done()]
            if len(running) < SESSION_CLIENTS:
                self._clients += 1
                task = loop.create_task(self._session_client(self._clients))
                running.append(task)
                self._tasks.append(task)

    async def _session_client(self, name: int) -> None:
        """Open a session, then write commands one at a time, each until its outcome is
        known, resuming the session on another node when one fails."""
        sim = self.sim
        picked = sim.pick()
        if picked is None:
            return
        try:
            session = await picked[0].open_session()
        except WebraftError:
            return  # it may have opened a session nobody will use: harmless
        self.stats.sessions_opened += 1
        seq = 1
        while sim.faulty:
            write = Write(f"s{name}.{seq}", sim.now())
            self.writes.append(write)
            self.stats.session_commands += 1
            for attempt in range(SESSION_ATTEMPTS):
                node = session.raft.address
                try:
                    index = await session.propose(write.value)
                except SessionExpired as exc:
                    if not exc.may_have_committed:
                        self._told_refused(node, write, exc)
                    return
                except WebraftError:
                    picked = sim.pick()
                    if picked is None or attempt == SESSION_ATTEMPTS - 1:
                        return
                    self.stats.session_retries += 1
                    session = picked[0].resume_session(session.id, seq)
                    continue
                self._told_index(node, write, index)
                break
            seq += 1
            if sim.rng.random() < 0.3:  # the client moves to another node
                picked = sim.pick()
                if picked is not None:
                    session = picked[0].resume_session(session.id, seq)
            await asyncio.sleep(sim.rng.expovariate(self.session_rate or 1.0))

    # -- checks at the end ---------------------------------------------------------------

    def check(self) -> None:
        """Every outcome told still holds, and every register's history is linearizable."""
        checker = self.sim.checker
        per_key: dict[str, list[Op]] = {str(k): [] for k in range(KEYS)}
        for write in self.writes:
            index = checker.value_index.get(write.value)
            if index is None:
                if write.index:
                    raise SafetyViolation(f"{write.value!r} was acknowledged at {write.index} "
                                          "but is in no application's state")
                continue  # never applied anywhere: it never took effect
            if write.refused:
                raise SafetyViolation(f"{write.value!r} was refused but applied at {index}")
            if write.index and write.index != index:
                raise SafetyViolation(f"{write.value!r} was acknowledged at {write.index} but "
                                      f"applied at {index}")
            per_key[key_of(write.value)].append(Op("w", write.value, write.call, write.ret,
                                                   order=index))
        for key, op in self.reads:
            per_key[key].append(op)
        for key, ops in per_key.items():
            verdict = linearizable_in_log_order(ops)
            if len(ops) <= 30:  # small enough for the general search: both must agree
                general = linearizable(ops)
                if general is not None and general != verdict:
                    raise AssertionError(f"linearizability checkers disagree on register {key}")
            if not verdict:
                raise SafetyViolation(f"the history of register {key} ({len(ops)} operations) "
                                      "is not linearizable")
            self.stats.registers_checked += 1

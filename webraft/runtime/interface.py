"""The asyncio runtime: the seed's ``RaftInterface`` and ``NodeInstance`` around the core.

This layer owns everything the core must not touch: the event loop's clock and timers, the
storage, the peers' transports, the application's handlers and the callers' futures. It runs
unchanged on CPython's asyncio and on Pyodide's WebLoop (it never blocks, never starts a
thread and never calls ``asyncio.run``).

One *drive* task performs the core's Ready loop: persist, then send, then hand committed
entries to the *apply* task, then advance. Messages and proposals that arrive while a save is
in progress are stepped into the core at once and leave together in the next Ready, which is
where batching under load comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.messages import (
    COMMAND,
    MAX_COMMAND_BYTES,
    MAX_DEPTH,
    SESSION,
    Entry,
    check_command,
    decode,
    encode,
)
from ..core.raft import LEADER, PUBLIC_STATE, CoreConfig, ProposalResult, RaftCore, ReadState, Ready
from ..core.sessions import APPLY, DUPLICATE, EXPIRED, SessionTable, unpack_snapshot
from ..core.state import ClusterConfig, SnapshotMeta, StorageUpdate, StoredState
from ..errors import (
    InvalidCommand,
    LeadershipLost,
    MembershipChangeError,
    MessageError,
    NoLeaderError,
    NotLeaderError,
    ProposalError,
    ProposalTimeout,
    RaftClosed,
    SessionExpired,
    WebraftError,
)
from ..storage import MemoryStorage, Storage
from .events import EventEmitter, seed_events
from .sessions import ClientSession

logger = logging.getLogger("webraft")

#: Default of :attr:`RaftInterface.max_command_bytes`: with its envelope, one command always
#: fits in a relay frame (1 MiB) and in one AppendEntries.
DEFAULT_MAX_COMMAND_BYTES = 256 * 1024
#: Longest the application's apply handlers run in one go before yielding to the event loop.
APPLY_SLICE = 0.01
#: Pause between two such slices.
APPLY_PAUSE = 0.002
#: Proposals of one loop turn travel in batches of at most this many bytes of commands.
BATCH_BYTES = 256 * 1024


class NodeInstance:
    """One peer as seen from this node: subclass it and implement :meth:`write`.

    Feed whatever the transport receives from this peer to :meth:`got_data`. The address is
    the peer's identity: the transport must make sure data given to this instance really comes
    from that peer (the relay stamps senders for exactly this reason).
    """

    #: Seconds to wait for this peer to answer a forwarded request before giving up on it.
    message_timeout: float = 3.0

    def __init__(self, address: str, raft: RaftInterface) -> None:
        self.address = address
        self.raft = raft

    def write(self, payload: dict[str, Any]) -> None:
        """Deliver a JSON-serializable ``payload`` to the peer (best effort; Raft retries)."""
        raise NotImplementedError("NodeInstance subclasses must implement write()")

    def got_data(self, payload: Any) -> None:
        """Hand the runtime data received from this peer."""
        self.raft.got_data(self.address, payload)

    def close(self) -> None:
        """Called when the peer leaves or the node closes; release the connection here."""


@dataclass(slots=True)
class _Batch:
    """Proposals that travel together until they have log indexes."""

    commands: list[Any]
    futures: list[asyncio.Future[int]]
    kind: int = COMMAND
    sent_to: str | None = None  # the leader it was forwarded to, None when local or parked
    sent: bool = False  # ever handed to a leader that might have appended it
    timer: asyncio.TimerHandle | None = None  # waiting for the forwarded-to leader's answer

    def expire(self, timeout: float) -> None:
        """``proposal_timeout`` is over: fail whatever has no outcome yet."""
        if self.sent:
            exc: ProposalError = ProposalTimeout(f"no outcome within {timeout} s")
        else:
            exc = NoLeaderError("no leader became known in time")
        for fut in self.futures:
            _fail(fut, exc)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot of the application's state machine: its state ``data`` (what the
    ``snapshot`` handler returned, after a JSON round trip) once it had applied entry
    ``index`` of term ``term``."""

    index: int
    term: int
    data: Any


@dataclass(frozen=True, slots=True)
class _Load:
    """In the apply queue: the application must load this snapshot before going on."""

    meta: SnapshotMeta
    text: str


@dataclass(slots=True)
class _Waiter:
    term: int
    future: asyncio.Future[int]


@dataclass(slots=True)
class _ApplyState:
    queue: deque[Entry | _Load] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None  # set while a handler completes asynchronously
    resume: asyncio.Handle | None = None  # the next slice of a long backlog, when scheduled
    gate: asyncio.Future[None] | None = None  # open once the application told us its index
    skip_to: int = 0
    skip_term: int | None = None
    loading: _Load | None = None  # the snapshot a refresh handler is loading
    pumping: bool = False  # inside _pump_apply's loop: an entry may be half applied
    # Applied since the last snapshot, in entries and approximate bytes.
    since_snapshot: int = 0
    since_snapshot_bytes: int = 0


class _Callback:
    """The ``cb`` given to an apply handler: records the outcome, wakes a waiter if any."""

    __slots__ = ("called", "error", "future")

    def __init__(self) -> None:
        self.called = False
        self.error: BaseException | None = None
        self.future: asyncio.Future[BaseException | None] | None = None

    def __call__(self, exc: object = None) -> None:
        if self.called:
            return
        self.called = True
        if exc is not None:
            self.error = exc if isinstance(exc, BaseException) else WebraftError(str(exc))
        if self.future is not None and not self.future.done():
            self.future.set_result(self.error)


class RaftInterface(EventEmitter):
    """A Raft node: subclass it, implement :meth:`create_instance`, and drive it.

    ``members`` is the voting configuration of a brand-new cluster (the same list on every
    node, this node included); it is ignored when ``storage`` already holds state.

    Timing (seconds; override the properties to tune): a follower that hears nothing from a
    leader for ``heartbeat_timeout`` (plus a random fraction of ``heartbeat_frequency``, so
    that followers do not all start at once) emits ``heartbeat timeout`` and ``start
    election``; a candidate that has not won after ``election_timeout`` (random, drawn anew
    each time) starts another round; a leader sends heartbeats every ``heartbeat_frequency``
    and steps down if a majority has not answered within ``heartbeat_timeout`` (CheckQuorum).

    Restarts: if a ``refresh`` handler is registered when :meth:`start` runs, it is called
    with a callback ``cb(term, index)``; the application loads its state and reports the last
    entry it applied, and the node applies only entries after it. Without a handler, the
    application is assumed to start empty and every committed entry is applied again.

    Snapshots: register a ``snapshot`` handler ``(index, term) -> state`` (or an awaitable of
    it) returning the application's state as JSON-serializable data, as of entry ``index``
    (applying waits while it runs). Every ``snapshot_entries`` entries or ``snapshot_bytes``
    bytes applied, the node takes one and drops the log it covers except a tail of
    ``snapshot_tail`` entries. A node that must load a snapshot (a follower that fell behind
    past the leader's compaction, or a restart whose application state is older than the
    node's snapshot) emits ``refresh`` with a callback: the handler loads
    ``raft.snapshot.data`` and calls ``cb()`` (or ``cb(term, index)`` of that snapshot).
    Without a ``snapshot`` handler the log is never compacted.
    """

    def __init__(self, address: str, *, members: Iterable[str] | None = None,
                 storage: Storage | None = None) -> None:
        super().__init__()
        if not isinstance(address, str) or not address:
            raise ValueError("address must be a non-empty string")
        self.address = address
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.nodes: dict[str, NodeInstance] = {}
        self._rng = random.Random()
        stored = self.storage.load()
        if stored is None:
            voters = list(members) if members is not None else [address]
            if len(set(voters)) != len(voters) or not all(isinstance(v, str) and v
                                                          for v in voters):
                raise ValueError("members must be distinct non-empty addresses")
            stored = StoredState.bootstrap(voters)
        stored.check()
        self.core = RaftCore(CoreConfig(
            id=address,
            follower_timeout=self._follower_timeout,
            election_timeout=lambda: self.election_timeout,
            heartbeat_interval=self.heartbeat_frequency,
            quorum_timeout=self.heartbeat_timeout,
            auto_promote=not self.auto_membership,  # then promotion follows its policy
            lease_reads=self.read_lease,
        ), stored)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._closed = False
        self._driving = False  # a round is running (or awaiting storage)
        self._kicked = False  # a round is scheduled for the next loop turn
        self._receiving = False  # inside got_messages: it runs the round itself
        self._drive_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._outbox: list[tuple[Any, int, asyncio.Future[int], int]] = []
        self._outbox_since = 0.0  # when the oldest proposal in the outbox was made
        self._expiring: deque[tuple[float, _Batch]] = deque()  # (deadline, batch), in order
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._applied_term = 0  # term of the newest entry applied
        self._batches: dict[int, _Batch] = {}  # by request id, until they have indexes
        self._parked: list[_Batch] = []  # waiting for a leader
        self._waiters: dict[int, _Waiter] = {}  # by log index, until applied
        self._config_requests: dict[int, asyncio.Future[int]] = {}  # by request id
        self._read_requests: dict[int, tuple[asyncio.Future[int], str | None]] = {}
        self._index_watchers: dict[int, list[asyncio.Future[None]]] = {}  # until applied
        # Request ids are random per incarnation so a restarted node never reuses one.
        self._next_req = self._rng.randrange(1 << 52)
        self._apply = _ApplyState()
        self._last_applied = stored.snapshot.index
        # Client sessions: the replicated table, this node's callers waiting on a (client,
        # seq), and outcomes of session entries applied here, kept until their waiter runs.
        self._sessions = SessionTable()
        if stored.snapshot.index:
            self._sessions = unpack_snapshot(stored.snapshot_data or "")[1]
        self._session_waiters: dict[tuple[int, int], asyncio.Future[int]] = {}
        self._session_outcomes: dict[int, tuple[tuple[int, int], str, int]] = {}
        self._gone: dict[str, float] = {}  # member -> loop time it was last seen leaving
        self._membership_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ overridables

    def create_instance(self, address: str) -> NodeInstance:
        """Return the :class:`NodeInstance` that talks to ``address``."""
        raise NotImplementedError("RaftInterface subclasses must implement create_instance()")

    @property
    def election_timeout(self) -> float:
        """Seconds a candidate waits for votes; random in [0.15, 0.30], drawn on each read."""
        return self._rng.uniform(0.15, 0.30)

    @property
    def heartbeat_frequency(self) -> float:
        """Seconds between a leader's heartbeats."""
        return 0.05

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds of leader silence after which a follower campaigns."""
        return 0.20

    @property
    def proposal_timeout(self) -> float:
        """Longest a :meth:`propose` call waits for its outcome."""
        return 5.0

    @property
    def max_command_bytes(self) -> int:
        """Largest command :meth:`propose` accepts, in bytes of (ASCII-escaped) JSON.

        Every command travels inside one message to each peer; transports with a frame limit
        lower it so that no entry can be too large to replicate.
        """
        return DEFAULT_MAX_COMMAND_BYTES

    @property
    def snapshot_entries(self) -> int:
        """Take a snapshot after this many entries were applied since the last one."""
        return 4096

    @property
    def snapshot_bytes(self) -> int:
        """... or after this many bytes of entries (approximate JSON size) were applied."""
        return 1 << 20

    @property
    def snapshot_tail(self) -> int:
        """Entries a snapshot leaves in the log, so that followers slightly behind catch up
        with entries rather than the whole snapshot."""
        return 1024

    @property
    def read_lease(self) -> bool:
        """Let the leader answer :meth:`read_index` from its lease, without a quorum round.

        Off by default, and unsafe wherever clocks do not advance steadily: a leader whose tab
        was paused (or whose clock jumped) may believe in a lease that expired meanwhile, and
        then answer a read that misses newer writes. It also turns off the fast failover on
        the transport's ``leave`` of the leader (followers would stop honouring the lease).
        """
        return False

    @property
    def auto_membership(self) -> bool:
        """Let the transport's presence drive membership (off by default; on for tabs).

        While this node leads it adds every reachable peer that is not a member (as a
        learner), promotes caught-up learners while there are fewer than ``max_voters``
        voters, keeping their number odd when it can (an even number tolerates no more
        failures than one less), and removes members unreachable for longer than
        ``member_grace``, one change at a time. A node built with ``members=[]`` starts
        outside any cluster and waits to be added.
        """
        return False

    @property
    def member_grace(self) -> float:
        """Seconds a member may be unreachable (a reloading tab) before it is removed."""
        return 20.0

    @property
    def max_voters(self) -> int:
        """Most voters automatic membership makes; further members stay learners."""
        return 5

    @property
    def forward_proposals(self) -> bool:
        """Forward proposals made on a follower to the leader (the seed's behaviour)."""
        return True

    def _follower_timeout(self) -> float:
        return self.heartbeat_timeout + self._rng.uniform(0, self.heartbeat_frequency)

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> str:
        """``"follower"``, ``"candidate"`` or ``"leader"``."""
        return PUBLIC_STATE[self.core.state]

    @property
    def is_leader(self) -> bool:
        return self.core.state == LEADER

    @property
    def leader(self) -> str | None:
        """Address of the leader this node knows of, or None."""
        return self.core.leader

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def commit_index(self) -> int:
        return self.core.log.commit

    @property
    def last_applied(self) -> int:
        """Index of the last entry the application has fully applied."""
        return self._last_applied

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot a ``refresh`` handler must load (while one is loading), otherwise the
        node's newest snapshot; None before the first one."""
        load = self._apply.loading
        meta, text = (load.meta, load.text) if load else (self.core.log.snapshot,
                                                          self.core.snapshot_data)
        if meta.index == 0:
            return None
        return Snapshot(meta.index, meta.term, unpack_snapshot(text)[0])

    @property
    def members(self) -> tuple[str, ...]:
        """Current voting members (the newest configuration in the log)."""
        return self.core.cluster.voters

    @property
    def learners(self) -> tuple[str, ...]:
        """Members that receive the log but do not vote yet."""
        return self.core.cluster.learners

    def add_member(self, address: str) -> asyncio.Future[int]:
        """Add ``address`` to the cluster (leader only).

        It joins as a learner, which does not count for elections or commitment, and the
        leader promotes it to voter once it has caught up (Raft thesis §4.2.1): a new member
        can never stall commitment while it downloads the log. The future resolves to the
        index of the configuration entry once it is committed and applied here; follow
        ``membership changed`` events to see the promotion.
        """
        config = self.core.cluster
        if address in config.members:
            return self._config_refused(f"{address!r} is already a member")
        return self._change_config(ClusterConfig(config.voters, (*config.learners, address)))

    def remove_member(self, address: str) -> asyncio.Future[int]:
        """Remove ``address`` (leader only; this node too: it steps down once that commits)."""
        config = self.core.cluster
        if address not in config.members:
            return self._config_refused(f"{address!r} is not a member")
        return self._change_config(ClusterConfig(
            tuple(v for v in config.voters if v != address),
            tuple(a for a in config.learners if a != address)))

    def _reconcile_membership(self) -> None:
        """Automatic membership (see :attr:`auto_membership`): at most one change per round."""
        loop = self._loop_or_running()
        self._membership_timer = loop.call_later(2 * self.heartbeat_frequency,
                                                 self._reconcile_membership)
        core = self.core
        if (not self.is_leader or core.config_index > core.log.commit
                or core.transferee is not None):
            return
        config, now = core.cluster, loop.time()
        new: ClusterConfig | None = None
        for member in config.members:
            if (member != self.address and member not in self.nodes
                    and now - self._gone.setdefault(member, now) >= self.member_grace):
                new = ClusterConfig(tuple(v for v in config.voters if v != member),
                                    tuple(a for a in config.learners if a != member))
                break
        if new is None:
            joined = sorted(a for a in self.nodes if a not in config.members)
            if joined:
                new = ClusterConfig(config.voters, (*config.learners, joined[0]))
        if new is None:
            caught_up = [a for a in config.learners if a in self.nodes and a in core.progress
                         and core.progress[a].match >= core.log.commit]
            voters = len(config.voters)
            if caught_up and voters < self.max_voters and (voters % 2 == 0
                                                           or len(caught_up) >= 2):
                promoted = caught_up[0]
                new = ClusterConfig((*config.voters, promoted),
                                    tuple(a for a in config.learners if a != promoted))
        if new is not None:
            self._change_config(new).add_done_callback(self._membership_done)

    def _membership_done(self, fut: asyncio.Future[int]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            logger.info("%s: automatic membership change failed: %r", self.address,
                        fut.exception())

    def _change_config(self, config: ClusterConfig) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.set_exception(RaftClosed(may_have_committed=False))
        elif not self.is_leader:
            fut.set_exception(NotLeaderError("membership changes are made on the leader",
                                             leader=self.leader))
        else:
            req = self._next_req
            self._next_req += 1
            self._config_requests[req] = fut
            self.core.change_config(req, config)
            self._kick()
        return fut

    @staticmethod
    def _config_refused(message: str) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.set_exception(MembershipChangeError(message))
        return fut

    # ------------------------------------------------------------------ peers

    def join(self, address: str) -> None:
        """Peer ``address`` became reachable: create its NodeInstance, emit ``join``."""
        if address == self.address or address in self.nodes:
            return
        self.nodes[address] = self.create_instance(address)
        self._gone.pop(address, None)
        self.emit("join", address)

    def leave(self, address: str) -> None:
        """Peer ``address`` became unreachable: drop its NodeInstance, emit ``leave``."""
        node = self.nodes.pop(address, None)
        if node is None:
            return
        self._close_node(node)
        if self._loop is not None:
            self._gone[address] = self._loop.time()
        self.emit("leave", address)
        if address == self.core.leader and self._loop is not None and not self.read_lease:
            # Our leader is gone: campaign soon rather than after a whole heartbeat timeout.
            self.core.tick(self._now())
            self.core.leader_unreachable(self._rng.uniform(0, self.heartbeat_frequency))
            self._kick()

    def got_data(self, address: str, payload: Any) -> None:
        """Data received from peer ``address``. Never raises; bad input is dropped.

        The node acts on it in a callback, so that every message of one loop turn shares a
        Ready round; a transport that reads several at once uses :meth:`got_messages`.
        """
        if self._step(address, payload) and not self._receiving:
            self._kick()

    def got_messages(self, address: str, payloads: Iterable[Any]) -> None:
        """Messages from ``address`` that arrived together (one frame, one read), each through
        :meth:`got_data`, then handled now in one Ready round: the answers leave in this turn
        of the loop, which saves a loop turn (in a tab, a browser task) on every message hop.
        Never raises.

        Called from inside the node's own apply loop (an apply or ``updated`` handler feeding
        it through a synchronous transport), the round waits for the next loop turn instead:
        it may commit entries, which must not be applied while an earlier one is half done.
        """
        receiving = self._receiving
        self._receiving = True
        try:
            for payload in payloads:
                self.got_data(address, payload)
        finally:
            self._receiving = receiving
        if self._apply.pumping:
            self._kick()
        else:
            self._round_now()

    def _step(self, address: str, payload: Any) -> bool:
        """Feed one message to the core; False if it was dropped (or the node is closed)."""
        if self._closed:
            return False
        try:
            msg = decode(payload)
            self.core.tick(self._now())
            self.core.step(address, msg)
        except MessageError as exc:
            logger.warning("%s: dropped message from %r: %s", self.address, address, exc)
            self.emit("error", exc)
            return False
        except Exception as exc:  # a bug must not take the node down with it
            logger.exception("%s: failed to handle a message from %r", self.address, address)
            self.emit("error", exc)
            return False
        return True

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start timers and processing; needs a running asyncio loop."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        if self.listeners("refresh"):
            self._request_refresh()  # the application tells where it is
        else:
            self._need_snapshot(0)  # it starts empty
        if self.auto_membership:
            self._reconcile_membership()
        self._kick()

    async def close(self) -> None:
        """Stop timers, fail pending proposals; storage keeps everything saved so far."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self._membership_timer is not None:
            self._membership_timer.cancel()
        if self._drive_task is not None:
            # Let a save in progress finish: storage must not be left half-written.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._drive_task)
        for batch in [*self._batches.values(), *self._parked]:
            if batch.timer is not None:
                batch.timer.cancel()
            for fut in batch.futures:
                _fail(fut, RaftClosed(may_have_committed=batch.sent))
        for _, _, fut, _ in self._outbox:
            _fail(fut, RaftClosed(may_have_committed=False))
        for waiter in self._waiters.values():
            _fail(waiter.future, RaftClosed())
        for fut in self._config_requests.values():
            _fail(fut, RaftClosed())
        self._config_requests.clear()
        for fut, _ in self._read_requests.values():
            _fail(fut, RaftClosed(may_have_committed=False))
        self._read_requests.clear()
        for watchers in self._index_watchers.values():
            for watcher in watchers:
                _fail(watcher, RaftClosed(may_have_committed=False))
        self._index_watchers.clear()
        self._batches.clear()
        self._parked.clear()
        self._outbox.clear()
        self._waiters.clear()
        if self._apply.task is not None:
            self._apply.task.cancel()
        if self._apply.resume is not None:
            self._apply.resume.cancel()
        for node in list(self.nodes.values()):
            self._close_node(node)

    async def __aenter__(self) -> RaftInterface:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read_index(self) -> int:
        """Wait until reading this node's state machine is linearizable; return the index.

        ReadIndex (Raft thesis §6.4): the leader confirms with a majority that it still leads
        (one heartbeat round, shared by every read waiting at that moment) and hands out its
        commit index; this node (leader or follower) then waits until it has applied that
        index. Anything read from the state machine afterwards reflects every write that
        completed before this call started. Raises :class:`~webraft.errors.NoLeaderError`
        when no leader could confirm within ``proposal_timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.proposal_timeout
        while True:
            if self._closed:
                raise RaftClosed(may_have_committed=False)
            index = await self._ask_read_index()
            if index:
                break
            if loop.time() >= deadline:
                raise NoLeaderError("no leader confirmed a read index in time")
            await asyncio.sleep(self.heartbeat_frequency)
        if self._last_applied < index:
            watcher: asyncio.Future[None] = loop.create_future()
            self._index_watchers.setdefault(index, []).append(watcher)
            await watcher
        return index

    def _ask_read_index(self) -> asyncio.Future[int]:
        loop = self._loop_or_running()
        fut: asyncio.Future[int] = loop.create_future()
        req = self._next_req
        self._next_req += 1
        asked = None if self.is_leader else self.leader
        self._read_requests[req] = (fut, asked)
        self.core.read_index(req)
        if asked is not None:  # a lost request or answer must not hang the read
            timeout = self.nodes[asked].message_timeout if asked in self.nodes else 1.0
            loop.call_later(timeout, self._on_read, ReadState(req, 0, asked))
        self._kick()
        return fut

    def _on_read(self, state: ReadState) -> None:
        pending = self._read_requests.get(state.id)
        if pending is None or pending[1] != state.src:
            return  # answered already, or an answer from someone we did not ask
        del self._read_requests[state.id]
        if not pending[0].done():
            pending[0].set_result(state.index)

    def transfer_leadership(self, to: str | None = None) -> str | None:
        """If this node leads, hand leadership to ``to`` (default: the most up-to-date voter).

        Returns the target, or None when there is nothing to do. Meanwhile proposals wait
        (they are retried with the new leader); if the target has not taken over within an
        election timeout, this node simply leads on.
        """
        target = self.core.transfer_leadership(to)
        self._kick()
        return target

    # ------------------------------------------------------------------ proposals

    def propose(self, command: Any) -> asyncio.Future[int]:
        """Replicate ``command``; the future resolves to its log index once it is committed
        and applied on this node. Failures are :class:`~webraft.errors.ProposalError`\\ s
        (see :mod:`webraft.errors` for which ones mean "may still commit"; a client session,
        :meth:`open_session`, makes retrying those safe)."""
        return self._propose(command, COMMAND)

    def propose_decoded(self, command: Any) -> asyncio.Future[int]:
        """:meth:`propose` for a command that ``json.loads`` just made and nobody else holds
        (the browser bridge's): it is JSON-normal and private already, so the copy
        :meth:`propose` takes is skipped. The size limit and the checks still apply."""
        return self._propose(command, COMMAND, decoded=True)

    async def open_session(self) -> ClientSession:
        """Open a client session whose proposals apply exactly once (Raft thesis §6.3)."""
        return ClientSession(self, await self._propose([0, 0, 0, None], SESSION))

    def resume_session(self, client_id: int, next_seq: int) -> ClientSession:
        """A session opened earlier (by this or another node), e.g. after the client restarted.

        ``next_seq`` is the number of the next proposal: past every number used before for
        new commands, or a number whose outcome the client never learned to retry that
        command (it is applied at most once)."""
        return ClientSession(self, client_id, next_seq, resumed=True)

    async def _propose_in_session(self, session: ClientSession, seq: int, command: Any,
                                  timeout: float | None) -> int:
        """Propose ``command`` as ``seq`` of ``session`` until its outcome is known."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (6 * self.proposal_timeout if timeout is None else timeout)
        key = (session.id, seq)
        outcome = self._session_waiters[key] = loop.create_future()
        delay = self.heartbeat_frequency
        # A number is surely new on its first attempt in a session this client opened; a
        # resumed session may be retrying it (e.g. after the client restarted).
        first_attempt = not session.resumed
        try:
            while True:
                attempt = self._propose([session.id, seq, session.ack, command], SESSION)
                attempt.add_done_callback(_consume)
                remaining = deadline - loop.time()
                if remaining > 0:
                    await asyncio.wait((outcome, attempt), timeout=remaining,
                                       return_when=asyncio.FIRST_COMPLETED)
                if outcome.done():
                    error = outcome.exception()
                    if isinstance(error, SessionExpired) and not first_attempt:
                        raise SessionExpired(f"{error}; an earlier attempt of seq {seq} may "
                                             "have been applied", may_have_committed=True)
                    return outcome.result()
                first_attempt = False
                error = attempt.exception() if attempt.done() else None
                if isinstance(error, InvalidCommand | RaftClosed):
                    raise error
                if loop.time() >= deadline:
                    raise ProposalTimeout(f"session {session.id} seq {seq}: no outcome in time",
                                          seq=seq)
                # Unknown outcome, or certainly not applied: the same number again is safe.
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.proposal_timeout)
        finally:
            del self._session_waiters[key]

    def _propose(self, command: Any, kind: int, decoded: bool = False) -> asyncio.Future[int]:
        # A plain Future, not loop.create_future(): Pyodide's loop makes futures whose every
        # completion costs a browser task, and a burst resolves thousands of these.
        fut: asyncio.Future[int] = asyncio.Future(loop=asyncio.get_running_loop())
        if self._closed:
            fut.set_exception(RaftClosed(may_have_committed=False))
            return fut
        if not self.is_leader and not self.forward_proposals:
            fut.set_exception(NotLeaderError(leader=self.leader))
            return fut
        try:
            command, size = _normalize(command, self.max_command_bytes, decoded)
        except InvalidCommand as exc:
            fut.set_exception(exc)
            return fut
        self._outbox.append((command, size, fut, kind))
        if len(self._outbox) == 1:
            self._outbox_since = self._loop_or_running().time()
            self._arm_expiry()
        self._kick()
        return fut

    def _flush_outbox(self) -> None:
        """Turn the proposals of this loop turn into batches of bounded size."""
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        batches: list[_Batch] = []
        size = BATCH_BYTES
        kind = COMMAND
        for command, nbytes, fut, entry_kind in outbox:
            if fut.done():
                continue  # cancelled by its caller before it left: never propose it
            if size + nbytes > BATCH_BYTES or entry_kind != kind:
                batches.append(_Batch([], [], entry_kind))
                size, kind = 0, entry_kind
            batches[-1].commands.append(command)
            batches[-1].futures.append(fut)
            size += nbytes
        loop = self._loop_or_running()
        deadline = loop.time() + self.proposal_timeout
        for batch in batches:
            self._expiring.append((deadline, batch))
            self._submit(batch)
        self._arm_expiry()

    def _arm_expiry(self) -> None:
        if self._expiry_timer is None and not self._closed:
            self._expiry_timer = self._loop_or_running().call_later(self.proposal_timeout,
                                                                    self._expire_batches)

    def _expire_batches(self) -> None:
        """One timer for all pending proposals: batches expire in the order they were made."""
        self._expiry_timer = None
        loop = self._loop_or_running()
        expiring = self._expiring
        now = loop.time()
        while expiring and expiring[0][0] <= now:
            expiring.popleft()[1].expire(self.proposal_timeout)
        if self._outbox and self._outbox_since + self.proposal_timeout <= now:
            # Never proposed: the Ready loop is stuck (storage keeps failing) since then.
            outbox, self._outbox = self._outbox, []
            exc = ProposalTimeout("not proposed within the proposal timeout: storage is failing",
                                  may_have_committed=False)
            for _, _, fut, _ in outbox:
                _fail(fut, exc)
        dues = [expiring[0][0]] if expiring else []
        if self._outbox:
            dues.append(self._outbox_since + self.proposal_timeout)
        if dues and not self._closed:
            self._expiry_timer = loop.call_later(max(0.0, min(dues) - now),
                                                 self._expire_batches)

    def _submit(self, batch: _Batch) -> None:
        if not self.is_leader and self.leader not in self.nodes:
            self._park(batch)  # no leader, or none we can reach
            return
        req = self._next_req
        self._next_req += 1
        self._batches[req] = batch
        batch.sent = True
        if not self.is_leader:
            batch.sent_to = self.leader
            batch.timer = self._loop_or_running().call_later(
                self.nodes[batch.sent_to].message_timeout, self._forward_timed_out, req)
        self.core.propose(req, batch.commands, batch.kind)

    def _forward_timed_out(self, req: int) -> None:
        batch = self._batches.pop(req, None)
        if batch is not None:
            for fut in batch.futures:
                _fail(fut, ProposalTimeout("the leader did not answer in time"))

    def _on_proposal(self, result: ProposalResult) -> None:
        config_change = self._config_requests.pop(result.id, None)
        if config_change is not None:
            if result.index:
                self._await_entry(config_change, result.index, result.term)
            else:
                _fail(config_change, MembershipChangeError(result.error or "not the leader"))
            return
        batch = self._batches.get(result.id)
        if batch is None or result.src != batch.sent_to:
            return  # already timed out, or an answer from someone we did not ask
        del self._batches[result.id]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if result.index == 0:
            # Not appended anywhere: retry with the next leader. Only batches that were
            # never appended reach here, so a later NoLeaderError stays truthful.
            batch.sent = False
            self._park(batch)
            return
        for k, fut in enumerate(batch.futures):
            if not fut.done():
                self._await_entry(fut, result.index + k, result.term)

    def _await_entry(self, fut: asyncio.Future[int], index: int, term: int) -> None:
        """Resolve ``fut`` when the entry ``(index, term)`` is applied here, or fail it when
        another entry takes that slot."""
        if index <= self._last_applied:  # answers can be overtaken by the entries
            self._applied_waiter(_Waiter(term, fut), index, self.core.log.term_at(index))
        else:
            self._waiters[index] = _Waiter(term, fut)

    def _park(self, batch: _Batch) -> None:
        batch.sent_to = None
        if not self._parked:
            self._loop_or_running().call_later(self.heartbeat_frequency, self._retry_parked)
        self._parked.append(batch)

    def _retry_parked(self) -> None:
        if self._closed or not self._parked:
            return
        if not self.is_leader and self.leader not in self.nodes:
            self._loop_or_running().call_later(self.heartbeat_frequency, self._retry_parked)
            return
        parked, self._parked = self._parked, []
        for batch in parked:
            live = [(c, f) for c, f in zip(batch.commands, batch.futures, strict=True)
                    if not f.done()]
            if live:
                batch.commands = [c for c, _ in live]
                batch.futures = [f for _, f in live]
                self._submit(batch)
        self._kick()

    # ------------------------------------------------------------------ the Ready loop

    def _now(self) -> float:
        return self._loop.time() - self._t0 if self._loop is not None else 0.0

    def _loop_or_running(self) -> asyncio.AbstractEventLoop:
        return self._loop if self._loop is not None else asyncio.get_running_loop()

    def _kick(self) -> None:
        if self._kicked or self._driving or self._closed or self._loop is None:
            return
        self._kicked = True
        self._loop.call_soon(self._kicked_round)

    def _kicked_round(self) -> None:
        self._kicked = False
        self._round_now()

    def _round_now(self) -> None:
        """Run Ready rounds now, unless one is in progress (it picks up the new work)."""
        if not self._driving and not self._closed and self._loop is not None:
            self._driving = True
            self._drive()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self._closed:
            return
        self.core.tick(self._now())
        if self._driving:
            self._arm_timer()  # the round in progress picks up what the tick produced
        else:
            # Already a callback of the loop: run the round now rather than in one more
            # (on Pyodide every callback is a browser task). _drive re-arms the timer.
            self._driving = True
            self._drive()

    def _arm_timer(self) -> None:
        if self._closed or self._loop is None:
            return
        at = self._t0 + self.core.next_deadline
        # Only ever move the timer earlier: a later deadline is picked up when it fires.
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            # A relative, non-negative delay: Pyodide's WebLoop refuses to schedule in the
            # past, which a deadline that is already due would be.
            self._timer = self._loop.call_later(max(0.0, at - self._loop.time()),
                                                self._on_timer)

    def _drive(self) -> None:
        """Run Ready rounds until there is no work, synchronously while storage is.

        A storage whose ``save`` returns an awaitable hands the rest of the round to a task;
        ``_driving`` stays set meanwhile, so rounds never overlap.
        """
        try:
            while not self._closed:
                self._flush_outbox()
                if not self.core.has_ready():
                    break
                rd = self.core.ready()
                if rd.hard is not None or rd.entries or rd.snapshot is not None:
                    update = StorageUpdate(rd.hard, tuple(rd.entries), rd.snapshot,
                                           rd.snapshot_data, rd.compact_to)
                    try:
                        pending = self.storage.save(update)
                    except Exception as exc:
                        self._storage_failed(exc)
                        pending = self._persist_retry(update)
                    if pending is not None:
                        self._drive_task = self._loop_or_running().create_task(
                            self._finish_round(pending, update, rd))
                        return
                self._handle_ready(rd)
        except Exception as exc:  # pragma: no cover - a bug; report it, keep the node alive
            logger.exception("%s: Ready loop failed", self.address)
            self.emit("error", exc)
        self._driving = False
        self._arm_timer()

    async def _finish_round(self, pending: Awaitable[None], update: StorageUpdate,
                            rd: Ready) -> None:
        try:
            await pending
        except Exception as exc:
            self._storage_failed(exc)
            await self._persist_retry(update)
        except asyncio.CancelledError:
            self._driving = False
            raise
        self._drive_task = None
        if self._closed:
            self._driving = False
            return
        self._handle_ready(rd)
        self._drive()

    def _storage_failed(self, exc: BaseException) -> None:
        logger.error("%s: storage failed: %r", self.address, exc)
        self.emit("error", exc)

    async def _persist_retry(self, update: StorageUpdate) -> None:
        """Save until it succeeds: nothing that depends on it may be sent before."""
        delay = 0.01
        while not self._closed:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                pending = self.storage.save(update)
                if pending is not None:
                    await pending
                return
            except Exception as exc:
                self._storage_failed(exc)
        raise RaftClosed("closed while storage was failing")

    def _handle_ready(self, rd: Ready) -> None:
        """Everything after persistence: send, resolve, emit, apply; then advance."""
        nodes = self.nodes
        for dst, msg in rd.messages:
            node = nodes.get(dst)
            if node is None:
                continue  # not reachable right now; Raft will retry
            try:
                node.write(encode(msg))
            except Exception as exc:
                logger.warning("%s: write to %r failed: %r", self.address, dst, exc)
                self.emit("error", exc)
        for result in rd.proposals:
            self._on_proposal(result)
        for read in rd.reads:
            self._on_read(read)
        for event in rd.events:
            for name, *args in seed_events(event):
                self.emit(name, *args)
        if self._parked and (self.is_leader or self.leader in self.nodes):
            self._retry_parked()  # a leader appeared: no need to wait for the retry timer
        self.core.advance(rd)
        if rd.install and rd.snapshot is not None and rd.snapshot_data is not None:
            # Everything still queued is older than the snapshot, which replaces it.
            self._apply.queue.clear()
            self._apply.queue.append(_Load(rd.snapshot, rd.snapshot_data))
        if rd.committed:
            self._apply.queue.extend(rd.committed)
        if rd.install or rd.committed:
            self._pump_apply()

    # ------------------------------------------------------------------ applying

    def _request_refresh(self, load: _Load | None = None) -> None:
        """Emit ``refresh``: the application reports its state (``load`` None, at start) or
        loads the snapshot ``load``; applying waits until its callback comes."""
        st = self._apply
        gate = self._loop_or_running().create_future()
        st.gate, st.loading = gate, load

        def cb(term: int = 0, index: int = 0) -> None:
            if gate.done():
                return
            if type(index) is not int or type(term) is not int or index < 0 or term < 0:
                self.emit("error", WebraftError(f"refresh callback got ({term!r}, {index!r})"))
                return
            if load is None:
                st.skip_to, st.skip_term = index, term
                self._need_snapshot(index)
            elif index and (index, term) != (load.meta.index, load.meta.term):
                self.emit("error", WebraftError(
                    f"refresh loaded ({term}, {index}), not the snapshot at "
                    f"({load.meta.term}, {load.meta.index}); asking again"))
                self._loop_or_running().call_later(1.0, self._refresh_again, gate, cb)
                return
            else:
                self._snapshot_loaded(load)
            st.loading = None
            gate.set_result(None)
            self._pump_apply()

        self._refresh_again(gate, cb)

    def _refresh_again(self, gate: asyncio.Future[None], cb: Callable[..., None]) -> None:
        if gate.done() or self._closed:
            return
        if not self.listeners("refresh") and self._apply.loading is not None:
            self.emit("error", WebraftError(
                "a snapshot must be loaded but no refresh handler is registered"))
            self._loop_or_running().call_later(1.0, self._refresh_again, gate, cb)
            return
        self.emit("refresh", cb)

    def _need_snapshot(self, applied: int) -> None:
        """The application's state is at ``applied``: if the node's snapshot is newer, the
        entries in between are gone, so the application loads the snapshot first."""
        meta = self.core.log.snapshot
        if applied < meta.index:
            self._apply.queue.appendleft(_Load(meta, self.core.snapshot_data))

    def _snapshot_loaded(self, load: _Load) -> None:
        """The application loaded the snapshot: it has applied up to its index."""
        meta = load.meta
        self._sessions = unpack_snapshot(load.text)[1]
        st = self._apply
        st.since_snapshot = st.since_snapshot_bytes = 0
        self._last_applied = meta.index
        if meta.term > self._applied_term:
            self._applied_term = meta.term
            self._drop_dead_waiters(meta.term)
        for index in [i for i in self._waiters if i <= meta.index]:
            waiter = self._waiters.pop(index)
            term = self.core.log.term_at(index)
            if term is None:  # compacted before we saw it: we cannot tell whose entry it is
                _fail(waiter.future, ProposalTimeout(
                    f"entry {index} arrived inside a snapshot; its outcome is unknown"))
            else:
                self._applied_waiter(waiter, index, term)
        for index in [i for i in self._index_watchers if i <= meta.index]:
            for watcher in self._index_watchers.pop(index):
                if not watcher.done():
                    watcher.set_result(None)

    def _pump_apply(self) -> None:
        """Apply queued entries in order; synchronous handlers never leave this loop.

        The first handler that does not finish at once (its ``cb`` comes later, it is a
        coroutine, or it failed and must be retried) moves the rest to a task.
        """
        st = self._apply
        if (st.task is not None or st.resume is not None
                or (st.gate is not None and not st.gate.done())):
            return
        pumping, st.pumping = st.pumping, True
        try:
            self._pump_apply_slice(st)
        finally:
            st.pumping = pumping

    def _pump_apply_slice(self, st: _ApplyState) -> None:
        handlers = self.listeners("apply")
        loop = self._loop_or_running()
        deadline = loop.time() + APPLY_SLICE
        count = 0
        while st.queue and not self._closed:
            count += 1
            if not count % 64 and loop.time() >= deadline:
                # A long backlog must not starve the loop: heartbeats, answers and timers
                # run between slices, or this node would look dead to its peers. A short
                # timer rather than call_soon: on Pyodide, chained call_soon tasks starve
                # the page's timers.
                st.resume = loop.call_later(APPLY_PAUSE, self._resume_apply)
                return
            entry = st.queue.popleft()
            if entry.__class__ is _Load:
                self._request_refresh(entry)
                return
            if entry.index <= st.skip_to:
                self._skipped(entry)
                continue
            kind = entry.kind
            task = entry if kind == COMMAND else (
                self._session_entry(entry) if kind == SESSION else None)
            if task is not None:
                for i, handler in enumerate(handlers):
                    outcome = _start_apply(handler, task)
                    if outcome is not None:
                        st.task = self._loop_or_running().create_task(
                            self._apply_slowly(entry, task, handlers[i:], outcome))
                        return
            self._applied(entry, emit=task is not None)
            if self._snapshot_due():
                pending = self._take_snapshot()
                if pending is not None:
                    st.task = self._loop_or_running().create_task(self._apply_after(pending))
                    return

    def _resume_apply(self) -> None:
        self._apply.resume = None
        self._pump_apply()

    async def _apply_slowly(self, entry: Entry, task: Entry, handlers: list[Callable[..., Any]],
                            outcome: _Outcome) -> None:
        """Finish applying ``entry`` (whose command the handlers see as ``task``)."""
        try:
            for handler in handlers:
                if outcome is None:
                    outcome = _start_apply(handler, task)
                delay = 0.01
                while outcome is not None:
                    error = outcome if isinstance(outcome, BaseException) else await outcome
                    if error is None:
                        break
                    logger.error("%s: apply of %d failed, retrying: %r", self.address,
                                 entry.index, error)
                    self.emit("error", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    outcome = _start_apply(handler, task)
                outcome = None
            self._applied(entry)
            if self._snapshot_due():
                pending = self._take_snapshot()
                if pending is not None:
                    await pending
        finally:
            self._apply.task = None
        self._pump_apply()

    async def _apply_after(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        finally:
            self._apply.task = None
        self._pump_apply()

    def _snapshot_due(self) -> bool:
        st = self._apply
        return bool(self._handlers.get("snapshot")) and (
            st.since_snapshot >= self.snapshot_entries
            or st.since_snapshot_bytes >= self.snapshot_bytes)

    def _take_snapshot(self) -> Awaitable[None] | None:
        """Ask the ``snapshot`` handler for the state as of the last applied entry and compact
        the log with it; return an awaitable when the handler answers later (applying waits
        for it, so the state it returns is exactly that entry's)."""
        st = self._apply
        st.since_snapshot = st.since_snapshot_bytes = 0  # a failure retries an interval later
        index = self._last_applied
        try:
            result = self.listeners("snapshot")[0](index, self._applied_term)
        except Exception as exc:
            self._snapshot_failed(exc)
            return None
        if inspect.isawaitable(result):
            return self._compact_when_ready(result, index)
        self._compact(index, result)
        return None

    async def _compact_when_ready(self, result: Awaitable[Any], index: int) -> None:
        try:
            data = await result
        except Exception as exc:
            self._snapshot_failed(exc)
            return
        self._compact(index, data)

    def _compact(self, index: int, data: Any) -> None:
        try:
            text = json.dumps({"state": data, "sessions": self._sessions.to_json()},
                              allow_nan=False, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as exc:
            self._snapshot_failed(exc)
            return
        try:
            self.core.compact(index, text, self.snapshot_tail)
        except ValueError:
            return  # a snapshot from the leader overtook this one
        self._kick()

    def _snapshot_failed(self, exc: BaseException) -> None:
        logger.error("%s: snapshot handler failed: %r", self.address, exc)
        self.emit("error", exc)

    def _session_entry(self, entry: Entry) -> Entry | None:
        """Record a session entry; return what the application applies (None: nothing)."""
        verdict, index = self._sessions.apply(entry)
        client, seq, _, command = entry.command
        if (client, seq) in self._session_waiters:
            self._session_outcomes[entry.index] = ((client, seq), verdict, index)
        return Entry(entry.term, entry.index, COMMAND, command) if verdict == APPLY else None

    def _skipped(self, entry: Entry) -> None:
        if entry.kind == SESSION:
            self._sessions.apply(entry)  # the application has it; the table must too
        st = self._apply
        if entry.index == st.skip_to and entry.term != st.skip_term:
            self.emit("error", WebraftError(
                f"application state is at ({st.skip_term}, {entry.index}) but the log has "
                f"term {entry.term} there"))
        self._applied(entry, emit=False)

    def _applied(self, entry: Entry, emit: bool = True) -> None:
        st = self._apply
        st.since_snapshot += 1
        # Per applied entry: handler lookups without copying the lists. Sizes only matter
        # to the snapshot threshold.
        handlers = self._handlers
        if handlers.get("snapshot"):
            st.since_snapshot_bytes += entry.size
        self._last_applied = entry.index
        if entry.term > self._applied_term:
            self._applied_term = entry.term
            self._drop_dead_waiters(entry.term)
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            self._applied_waiter(waiter, entry.index, entry.term)
        if self._session_outcomes:
            self._session_outcome(entry.index)
        if self._index_watchers:
            for watcher in self._index_watchers.pop(entry.index, ()):
                if not watcher.done():
                    watcher.set_result(None)
        if emit and handlers.get("updated"):
            self.emit("updated", entry.index)

    def _session_outcome(self, index: int) -> None:
        found = self._session_outcomes.pop(index, None)
        if found is None:
            return
        key, verdict, first = found
        fut = self._session_waiters.get(key)
        if fut is None or fut.done():
            return
        if verdict == EXPIRED:
            fut.set_exception(SessionExpired(f"session {key[0]} is unknown to the cluster"))
        elif verdict == DUPLICATE and not first:
            fut.set_exception(WebraftError(f"seq {key[1]} of session {key[0]} was acknowledged "
                                           "already"))  # the client said it no longer waits
        else:
            fut.set_result(first)

    def _drop_dead_waiters(self, term: int) -> None:
        """An entry of ``term`` committed: entries of older terms at later indexes can never
        commit (terms only grow along a log), so their proposals have certainly failed."""
        dead = [i for i, w in self._waiters.items() if w.term < term]
        for index in dead:
            waiter = self._waiters.pop(index)
            _fail(waiter.future, LeadershipLost(
                f"entry {index} of term {waiter.term} was superseded by term {term}"))

    @staticmethod
    def _applied_waiter(waiter: _Waiter, index: int, term: int | None) -> None:
        if waiter.future.done():
            return
        if waiter.term == term:
            waiter.future.set_result(index)
        else:
            waiter.future.set_exception(LeadershipLost(
                f"index {index} was taken by a leader of term {term}"))

    def _close_node(self, node: NodeInstance) -> None:
        try:
            node.close()
        except Exception as exc:
            logger.warning("%s: closing %r failed: %r", self.address, node.address, exc)


#: What starting an apply handler gave: None (done), an error, or an awaitable of either.
_Outcome = BaseException | Awaitable[BaseException | None] | None


def _start_apply(handler: Callable[..., Any], entry: Entry) -> _Outcome:
    """Call one apply handler; report its outcome without waiting if it is already known."""
    cb = _Callback()
    try:
        result = handler(entry, entry.index, cb)
    except Exception as exc:
        return exc
    if result is not None and inspect.isawaitable(result):
        return _await_handler(result)
    if cb.called:
        return cb.error
    cb.future = asyncio.get_running_loop().create_future()
    return cb.future


async def _await_handler(result: Awaitable[Any]) -> BaseException | None:
    try:
        await result
    except Exception as exc:
        return exc
    return None


#: Encodes commands once per proposal (``json.dumps`` with options builds an encoder per call).
_COMMAND_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
#: ``check_command`` estimates at most 4.5 bytes per character of JSON text (a one-digit
#: number and its comma count 9), so a text up to this length is surely within its limit.
_SURELY_SMALL = MAX_COMMAND_BYTES // 5


def _normalize(command: Any, limit: int, decoded: bool = False) -> tuple[Any, int]:
    """A private, JSON-normal copy of ``command`` (tuples become lists, as on every peer) and
    its size in bytes of ASCII JSON, which ``limit`` bounds; ``decoded``: ``command`` is a
    fresh result of ``json.loads`` (normal and private already), kept rather than copied."""
    cls = command.__class__
    if command is None or cls is int or cls is bool:
        return command, 8
    if cls is str and 6 * len(command) + 2 <= limit:
        return command, len(command) + 2  # fits even if every character needs an escape
    try:
        text = _COMMAND_ENCODER.encode(command)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidCommand(f"command is not JSON-serializable: {exc}") from None
    if len(text) > limit:
        raise InvalidCommand(f"command is {len(text)} bytes of JSON, over the limit of {limit}")
    if cls is str:
        return command, len(text)
    if not decoded:
        command = json.loads(text)
    # What every peer checks when it receives the command: decoded text can only fail it by
    # its size or its depth, and neither is possible for a short text with few brackets.
    if len(text) > _SURELY_SMALL or text.count("[") + text.count("{") > MAX_DEPTH:
        try:
            check_command(command)
        except MessageError as exc:
            raise InvalidCommand(str(exc)) from None
    return command, len(text)


def _consume(fut: asyncio.Future[Any]) -> None:
    """Retrieve a future's exception so that nobody warns it was never retrieved."""
    if not fut.cancelled():
        fut.exception()


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)

"""Raft as a pure state machine: no I/O, no clock, no tasks.

Owns :class:`RaftCore`, :class:`Ready` and :class:`CoreConfig`. Imports the core's other modules
and :mod:`webraft.errors` only; never the runtime, a storage, a transport or asyncio.

The contract (modelled on etcd-io/raft's Ready/Advance loop) is a loop the runtime drives::

    core.tick(now)            # the time, from the runtime; fires due timers
    core.step(src, message)   # a validated message from peer ``src``
    core.propose(req, cmds)   # application commands
    while core.has_ready():
        rd = core.ready()
        storage.save(rd.hard, rd.entries)     # 1. persist, atomically
        send(rd.messages)                     # 2. only then send (they depend on 1)
        apply(rd.committed)                   # 3. apply committed entries, in order
        emit(rd.events); resolve(rd.proposals)
        core.advance(rd)                      # 4. acknowledge

Everything a message depends on (the term, the vote, the entries an answer acknowledges) is
in the same Ready as the message, and the runtime sends only after it has persisted, so a
crash can never make a node forget a promise it already made. The one exception is
``Ready.send_first``: a leader whose term and vote are already stored promises nothing by
sending entries it is still saving (Raft thesis §10.2.1), since it counts its own copy
towards a commit only once :meth:`RaftCore.advance` says it is saved; the runtime may send
those messages first, so that the followers' work overlaps the leader's save.

Work is deferred to :meth:`RaftCore.ready` on purpose: proposals and acknowledgements that
arrive between two Ready calls leave as one AppendEntries per follower. A lone proposal still
goes out at once (the runtime drives the loop as soon as it is idle), so batching costs no
latency when there is no load and gives throughput when there is.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import MessageError
from . import quorum
from .events import (
    ConfigChanged,
    CoreEvent,
    ElectionStarted,
    ElectionTimeout,
    LeaderChanged,
    RoleChanged,
)
from .log import RaftLog
from .messages import (
    COMMAND,
    CONFIG,
    NOOP,
    SESSION,
    AppendRequest,
    AppendResponse,
    CommitNotice,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ProposeRequest,
    ProposeResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    session_entries,
    session_items,
    session_runs,
)
from .progress import PROBE, REPLICATE, SNAPSHOT, Progress
from .state import ClusterConfig, HardState, SnapshotMeta, StoredState
from .status import PeerStatus, Status

FOLLOWER = "follower"
PRE_CANDIDATE = "pre-candidate"
CANDIDATE = "candidate"
LEADER = "leader"

#: Heartbeat intervals without any append answer after which in-flight appends are resent.
#: One interval is too eager: a follower busy with a large batch would get it twice.
STALL_BEATS = 2

#: Messages only a leader sends.
_FROM_LEADER = (AppendRequest, Heartbeat, CommitNotice, SnapshotChunk)

#: How many forwarded request ids a leader remembers to answer duplicates consistently.
MAX_FORWARD_MEMORY = 65536

#: Share of ``quorum_timeout`` a leader trusts its lease for, a margin for clocks that run at
#: slightly different rates on the leader and its followers.
LEASE_SAFETY = 0.9

#: The public role names; a pre-candidate shows as a candidate (it is campaigning).
PUBLIC_STATE = {FOLLOWER: "follower", PRE_CANDIDATE: "candidate", CANDIDATE: "candidate",
                LEADER: "leader"}


@dataclass(slots=True)
class CoreConfig:
    """Tuning of one core. Times are in the runtime's units (seconds everywhere in webraft).

    ``follower_timeout`` and ``election_timeout`` are called every time a timer is armed, so
    they can (and by default do) return a fresh random value: randomness comes from the
    caller, which keeps the core deterministic under a seeded simulator.
    """

    id: str
    #: How long a follower waits without hearing from a leader before it campaigns.
    follower_timeout: Callable[[], float]
    #: How long a (pre-)candidate waits for votes before starting another round.
    election_timeout: Callable[[], float]
    #: Interval between a leader's heartbeats.
    heartbeat_interval: float = 0.05
    #: CheckQuorum window, and the lease during which a follower ignores vote requests.
    quorum_timeout: float = 0.2
    pre_vote: bool = True
    check_quorum: bool = True
    #: The leader promotes a learner to voter once it has caught up with the commit index.
    auto_promote: bool = True
    #: Largest AppendEntries, in entries and in approximate bytes. Small enough that a
    #: follower decodes one in a few milliseconds (a long stall would look like a dead
    #: leader); the in-flight window keeps the pipe full anyway.
    max_append_entries: int = 1024
    max_append_bytes: int = 64 * 1024
    #: In-flight window per follower in replicate mode.
    max_inflight: int = 64
    max_inflight_bytes: int = 8 * 1024 * 1024
    #: Answer reads from the leader's lease, without a heartbeat round (needs check_quorum).
    #: Safe only while clocks advance at about the same rate everywhere: a paused tab or a
    #: jumping clock can let a deposed leader answer from a lease it no longer holds.
    lease_reads: bool = False
    #: Characters of snapshot text per InstallSnapshot chunk: even escaped as JSON (up to 12
    #: bytes a character) one fits in a relay frame.
    snapshot_chunk: int = 64 * 1024
    #: Lazy followers (0: off). New entries go at once to as many voters as a commit needs
    #: besides the leader, those furthest ahead; the other voters get theirs batched, one
    #: append per ``lazy_interval`` seconds at most, unless they wait for a commit of their
    #: own (a forwarded proposal, a read) or are being handed leadership. A commit then
    #: costs the followers it does not wait for a fraction of its messages, and their work no
    #: longer competes with the quorum's for the processor. When a quorum follower stops
    #: answering, a lazy one gets the entries within ``lazy_interval``, gets ahead of it and
    #: takes its place: commits wait that much longer, once.
    lazy_interval: float = 0.0


@dataclass(frozen=True, slots=True)
class ProposalResult:
    """The fate of a call to :meth:`RaftCore.propose` or of a forwarded batch.

    ``index > 0``: the commands were appended at ``index, index + 1, ...`` in ``term`` (not yet
    committed). ``index == 0``: they were not appended anywhere; ``leader`` is a hint ("" when
    no leader is known) and ``src`` is who answered (``None`` for this node itself).
    """

    id: int
    index: int
    term: int
    leader: str = ""
    src: str | None = None
    #: Why nothing was appended, when the reason is not "no leader here".
    error: str = ""


@dataclass(frozen=True, slots=True)
class ReadState:
    """The outcome of :meth:`RaftCore.read_index`: reading the state machine once it has
    applied ``index`` is linearizable. ``index == 0``: no leader could confirm it (retry).
    ``src`` is the leader that answered, None for this node itself."""

    id: int
    index: int
    src: str | None = None


@dataclass(slots=True)
class Ready:
    """A batch of work for the runtime; see the module docstring for the order."""

    hard: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    #: Snapshot metadata to record; the first Ready repeats what was loaded, so that a
    #: brand-new node records its bootstrap configuration before it says anything.
    snapshot: SnapshotMeta | None = None
    #: The new snapshot's text (with ``snapshot``, after a compaction or an install).
    snapshot_data: str | None = None
    #: Storage deletes every entry at or below this index (0: none).
    compact_to: int = 0
    #: True when ``snapshot`` came from the leader: the application must load it (its
    #: entries will never be handed out one by one).
    install: bool = False
    messages: list[tuple[str, Message]] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    proposals: list[ProposalResult] = field(default_factory=list)
    reads: list[ReadState] = field(default_factory=list)
    #: What happened (role changes, elections, configurations), in order.
    events: list[CoreEvent] = field(default_factory=list)
    #: The messages may leave before the save (a leader whose term and vote are already
    #: stored, sending entries it is still saving: Raft thesis §10.2.1). Its own entries
    #: count towards a commit only once saved, so this never commits what a crash loses.
    send_first: bool = False


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A snapshot as a leader sends it: followers keep the one they started receiving."""

    meta: SnapshotMeta
    data: str
    crc: int


@dataclass(slots=True)
class _Incoming:
    """A snapshot being received: which text (index, term, size, crc) and its chunks so far."""

    key: tuple[int, int, int, int]
    parts: list[str]
    received: int = 0


class RaftCore:
    """One Raft node's state machine.

    Build it from what storage loaded and the index the application has already applied
    (entries up to ``applied`` are never handed out again, so a restart applies nothing twice).
    """

    def __init__(self, config: CoreConfig, stored: StoredState, applied: int = 0,
                 now: float = 0.0) -> None:
        self.cfg = config
        self.id = config.id
        self.now = now
        hard = stored.hard
        self.term = hard.term
        self.vote = hard.vote
        last = stored.snapshot.index + len(stored.entries)
        applied = max(applied, stored.snapshot.index)
        if applied > last:
            raise ValueError(f"applied index {applied} is beyond the stored log ({last})")
        self.log = RaftLog(stored.snapshot, stored.entries,
                           commit=max(min(hard.commit, last), applied), applied=applied)
        self.config_index, self.config_term, self.cluster = self.log.latest_config()
        self.state = FOLLOWER
        self.leader: str | None = None
        self._told_leader: tuple[str | None, int] = (None, self.term)  # last LeaderChanged
        self.last_contact = float("-inf")  # when we last heard from the leader
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.election_deadline = 0.0
        self.heartbeat_deadline = 0.0
        self.quorum_deadline = 0.0
        self.transferee: str | None = None  # leadership is being handed to this voter
        self.transfer_deadline = 0.0
        self._saved = HardState(self.term, self.vote, self.log.commit)
        self._snapshot: SnapshotMeta | None = stored.snapshot
        data = stored.snapshot_data or ""
        self._outgoing = _Outgoing(stored.snapshot, data, zlib.crc32(data.encode()))
        self._new_data: str | None = None  # snapshot text not yet handed to storage
        self._compact_to = 0
        self._install = False
        self._incoming: _Incoming | None = None  # a snapshot being received
        self._msgs: list[tuple[str, Message]] = []
        self._proposals: list[ProposalResult] = []
        self._reads: list[ReadState] = []
        # ReadIndex on the leader: requests waiting for a heartbeat round, and those whose
        # round is out, as (round, request id, read index, who asked: None for ourselves).
        self._read_round = 0
        self._round_sent: dict[int, float] = {}  # heartbeat round -> when it was sent
        self._lease_floor = 0  # rounds below this never grant a lease (see _lease_valid)
        self._reads_new: list[tuple[int, str | None]] = []
        self._reads_out: list[tuple[int, int, int, str | None]] = []
        self._events: list[CoreEvent] = []
        self._dirty: dict[str, None] = {}  # followers that may need an AppendEntries
        #: Lazy followers whose append waits, each until its ``sent_at + lazy_interval``.
        self._lazy: set[str] = set()
        self._forwarded: dict[tuple[str, int], int] = {}  # (src, request id) -> index, this term
        if self.cluster.voters == (self.id,):
            self.election_deadline = now  # alone: no one to wait for, lead at the first tick
        else:
            self._reset_election_timer(self.cfg.follower_timeout())

    # ------------------------------------------------------------------ inputs

    def tick(self, now: float) -> None:
        """Advance the clock to ``now`` and fire every timer that is due."""
        if now > self.now:
            self.now = now
        if self.state == LEADER:
            if self.transferee is not None and self.now >= self.transfer_deadline:
                self.transferee = None  # the target did not take over in time: carry on
            if self.now >= self.heartbeat_deadline:
                self.heartbeat_deadline = self.now + self.cfg.heartbeat_interval
                self._heartbeat()
            if self._lazy:
                due = [peer for peer in self._lazy if self.now >= self._lazy_due(peer)]
                self._lazy.difference_update(due)
                self._dirty.update(dict.fromkeys(due))
            if self.cfg.check_quorum and self.now >= self.quorum_deadline:
                self.quorum_deadline = self.now + self.cfg.quorum_timeout
                self._check_quorum()
        elif self.now >= self.election_deadline:
            if not self._promotable():
                self._reset_election_timer(self.cfg.follower_timeout())
                return
            if self.state == FOLLOWER and self.leader is not None:
                self._events.append(ElectionTimeout())
            self._campaign(pre=self.cfg.pre_vote)

    @property
    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do."""
        if self.state == LEADER:
            deadline = self.heartbeat_deadline
            if self.cfg.check_quorum:
                deadline = min(deadline, self.quorum_deadline)
            if self._lazy:
                deadline = min(deadline, *map(self._lazy_due, self._lazy))
            return deadline
        return self.election_deadline

    def transfer_leadership(self, to: str | None = None) -> str | None:
        """Hand leadership to ``to`` (default: the most up-to-date voter); return the target.

        The leader stops accepting proposals, brings the target's log up to date, then sends
        it TimeoutNow so it campaigns at once; if no new leader emerges within an election
        timeout the transfer is abandoned and this node leads on (Raft thesis §3.10).
        Returns None when there is nobody to transfer to or this node does not lead.
        """
        if self.state != LEADER:
            return None
        voters = [v for v in self.cluster.voters if v != self.id and v in self.progress]
        if to is None and voters:
            to = max(voters, key=lambda v: self.progress[v].match)
        if to not in voters:
            return None
        self.transferee = to
        self.transfer_deadline = self.now + self.cfg.election_timeout()
        self._maybe_send_timeout_now()
        self._dirty[to] = None
        return to

    def change_config(self, req_id: int, config: ClusterConfig) -> None:
        """Propose a new configuration; the outcome appears as a :class:`ProposalResult`.

        One change at a time (Raft thesis §4.1): at most one voter added or removed, and only
        once the previous configuration entry has committed, so that any two consecutive
        configurations share a majority. Learners may change freely: they never count.
        """
        old = self.cluster
        if self.state != LEADER or self.transferee is not None:
            error = ""
        elif self.config_index > self.log.commit:
            error = "a configuration change is still in progress"
        elif not config.voters:
            error = "a configuration needs at least one voter"
        elif len(set(old.voters).symmetric_difference(config.voters)) > 1:
            error = "only one voter can be added or removed at a time"
        else:
            index = self._append(CONFIG, [config.to_json()])
            self._proposals.append(ProposalResult(req_id, index, self.term))
            return
        self._proposals.append(ProposalResult(req_id, 0, 0, self.leader or "", error=error))

    def _sync_config(self) -> None:
        """Adopt the newest configuration in the log (after an append or a truncation)."""
        index, term, config = self.log.latest_config()
        if (index, term) == (self.config_index, self.config_term):
            return
        self.config_index, self.config_term = index, term
        if config == self.cluster:
            return
        self.cluster = config
        if self.state == LEADER:
            nxt = self.log.last_index + 1
            for member in config.members:
                if member != self.id and member not in self.progress:
                    self.progress[member] = Progress(nxt)
                    self._dirty[member] = None
            for peer in [p for p in self.progress if p not in config.members]:
                del self.progress[peer]
                self._dirty.pop(peer, None)
                self._lazy.discard(peer)
        elif self.state != FOLLOWER and not self._promotable():
            self._become_follower(self.term, None)  # no longer allowed to campaign
        self._events.append(ConfigChanged(config.voters, config.learners))

    def _maybe_send_timeout_now(self) -> None:
        to = self.transferee
        if to is not None and self.progress[to].match == self.log.last_index:
            self._send(to, TimeoutNow(self.term))
            # The target may win at once, past every lease: only rounds acknowledged from
            # now on (which voters of a newer term will not acknowledge) grant one again.
            self._lease_floor = self._read_round + 1

    def propose(self, req_id: int, commands: Sequence[Any], kind: int = COMMAND) -> None:
        """Propose commands (entries of ``kind``: :data:`COMMAND`, or :data:`SESSION` where
        ``commands`` are :data:`~webraft.core.messages.SessionRun`\\ s); the outcome appears
        as a :class:`ProposalResult` in a Ready.

        The leader appends them. A follower forwards them to the leader it knows (the seed's
        behaviour); with no known leader the result says so and the runtime may retry.
        """
        if self.state == LEADER and self.transferee is None:
            index = self._append(kind, commands)
            self._proposals.append(ProposalResult(req_id, index, self.term))
        elif self.state == LEADER:  # handing over: refuse, the caller retries with the next
            self._proposals.append(ProposalResult(req_id, 0, 0, self.transferee or ""))
        elif self.leader is not None:
            self._send(self.leader, ProposeRequest(
                self.term, req_id,
                tuple(session_items(commands) if kind == SESSION else commands), kind))
        else:
            self._proposals.append(ProposalResult(req_id, 0, 0))

    def compact(self, index: int, data: str, keep: int = 0) -> None:
        """The application's state at applied entry ``index`` is ``data`` (JSON text): make it
        the snapshot and drop the entries it covers, except the last ``keep`` of them (a tail
        for followers slightly behind, who then need entries rather than the snapshot).

        Raises ValueError unless ``index`` was handed out for applying and is newer than the
        current snapshot.
        """
        log = self.log
        if not log.snapshot.index < index <= log.handed:
            raise ValueError(f"cannot snapshot at {index}: the snapshot is at "
                             f"{log.snapshot.index} and entries up to {log.handed} were applied")
        meta = SnapshotMeta(index, log.term_at(index) or 0, log.config_at(index))
        offset = index - max(0, keep)
        covered = log.snapshot.index
        for pr in self.progress.values():
            if pr.state == SNAPSHOT:
                # It will need the entries after the snapshot it is being sent, starting
                # with that snapshot's own entry (for its term): dropping them would only
                # make it start over with a newer snapshot, possibly forever.
                offset = min(offset, pr.snap_index - 1)
            elif pr.match >= max(covered, 1):
                # It has all the current snapshot covers (it may have just installed it):
                # keep what it still lacks, from its last entry (for its term), rather than
                # make it start over with the new snapshot. Otherwise a follower slower than
                # the compactions chases one snapshot after another (simulator seed 582). At
                # most the entries the log holds now, and only until the next compaction.
                offset = min(offset, pr.match - 1)
        self._compact_to = max(self._compact_to, log.compact(meta, offset))
        self._set_snapshot(meta, data)

    # ------------------------------------------------------------------ the window

    def status(self) -> Status:
        """A frozen copy of this node's state, for whoever shows or acts on it (not for a
        hot path: it copies every peer's progress)."""
        log = self.log
        progress = MappingProxyType({peer: PeerStatus(pr.match, pr.next, pr.state)
                                     for peer, pr in self.progress.items()})
        return Status(self.id, PUBLIC_STATE[self.state], self.term, self.vote, self.leader,
                      log.commit, log.last_index, log.snapshot, self.config_index, self.cluster,
                      self.transferee, progress)

    @property
    def role(self) -> str:
        """The public role, as :attr:`Status.role` (cheap, for checks on every round)."""
        return PUBLIC_STATE[self.state]

    @property
    def commit_index(self) -> int:
        """As :attr:`Status.commit_index` (cheap, for checks on every round)."""
        return self.log.commit

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None when compacted away or not in the log."""
        return self.log.term_at(index)

    def last_entries(self, count: int) -> list[Entry]:
        """The newest ``count`` entries still in the log (fewer after a compaction)."""
        return self.log.entries[-count:] if count > 0 else []

    @property
    def snapshot_data(self) -> str:
        """The text of the newest snapshot (what followers that fell behind are sent)."""
        return self._outgoing.data

    def _set_snapshot(self, meta: SnapshotMeta, data: str) -> None:
        self._snapshot = meta
        self._new_data = data
        self._outgoing = _Outgoing(meta, data, zlib.crc32(data.encode()))

    def leader_unreachable(self, delay: float) -> None:
        """The transport says our leader is gone (the relay's ``leave``): campaign after
        ``delay`` instead of a whole follower timeout. Only a hint: a wrong one costs an
        election, never safety. Forgetting the leader also lifts our lease, so the peers that
        got the same news grant each other's pre-votes; a random ``delay`` picks one of them.
        """
        if self.state == FOLLOWER and self.leader is not None:
            self.leader = None
            self.election_deadline = min(self.election_deadline, self.now + delay)

    def stalled(self, now: float, follower_timeout: float) -> None:
        """The runtime could not run until ``now`` (a blocked browser thread): the silence its
        timers measured says nothing about the peers. Move the clock to ``now`` *without*
        firing the overdue timers, and restart them from there as if the leader had just been
        heard: a follower's election timer (``follower_timeout`` more) and its lease of the
        leader, a leader's CheckQuorum window. Only liveness: a longer follower lease makes
        the peers refuse votes longer, which keeps every leader lease safe, and the leader's
        own lease counts acknowledged rounds, not this window.
        """
        self.now = max(self.now, now)
        if self.state == LEADER:
            self.quorum_deadline = max(self.quorum_deadline, self.now + self.cfg.quorum_timeout)
            return
        if self.leader is not None:
            self.last_contact = max(self.last_contact, self.now)
        self.election_deadline = max(self.election_deadline, self.now + follower_timeout)

    def read_index(self, req_id: int) -> None:
        """Ask for a linearizable read index (Raft thesis §6.4); see :class:`ReadState`.

        The leader takes its commit index, then confirms it still leads with one heartbeat
        round answered by a majority; every read asked for before that round leaves shares
        it. A follower asks the leader. A new leader first waits for an entry of its own term
        to commit (its commit index may lag before that).
        """
        if self.state == LEADER:
            if self._lease_valid():
                self._reads.append(ReadState(req_id, self.log.commit))
            else:
                self._reads_new.append((req_id, None))
        elif self.leader is not None:
            self._send(self.leader, ReadIndexRequest(self.term, req_id))
        else:
            self._reads.append(ReadState(req_id, 0))

    def step(self, src: str, m: Message) -> None:
        """Feed one validated message from peer ``src``.

        Raises :class:`~webraft.errors.MessageError` for a message that no correct peer could
        have sent in our state; such a message is rejected before it changes anything.
        """
        if src == self.id:
            raise MessageError("message claims to come from this node")
        if m.term == self.term:  # the two messages of every commit, without the chain below
            if type(m) is AppendResponse:
                if self.state == LEADER and src in self.progress:
                    self._step_append_response(src, m)
                return
            if type(m) is AppendRequest:
                self._step_from_leader(src, m)
                return
        if isinstance(m, ProposeRequest | ProposeResponse):
            self._step_proposal(src, m)
            return
        if isinstance(m, ReadIndexRequest | ReadIndexResponse):
            self._step_read(src, m)
            return
        if m.term > self.term:
            if isinstance(m, VoteRequest):
                if self._in_lease() and not m.transfer:
                    return  # a live leader exists: a disruptive candidate gets no answer
                if m.pre:
                    self._step_vote(src, m)  # a pre-vote never changes our term
                    return
            if isinstance(m, VoteResponse) and m.pre and m.granted:
                pass  # a granted pre-vote carries the term we would campaign in
            else:
                is_leader_msg = isinstance(m, _FROM_LEADER)
                self._become_follower(m.term, src if is_leader_msg else None)
        elif m.term < self.term:
            if isinstance(m, _FROM_LEADER):
                # A deposed leader: tell it the new term so it steps down (it may have been
                # partitioned away; with CheckQuorum it would otherwise keep trying).
                self._send(src, AppendResponse(self.term, 0, False))
            elif isinstance(m, VoteRequest) and m.pre:
                self._send(src, VoteResponse(self.term, False, pre=True))
            return

        if isinstance(m, VoteRequest):
            self._step_vote(src, m)
        elif isinstance(m, VoteResponse):
            self._step_vote_response(src, m)
        elif isinstance(m, _FROM_LEADER):
            self._step_from_leader(src, m)
        elif isinstance(m, TimeoutNow):
            # Our leader asks us to take over: campaign now, without a pre-vote (the leader
            # itself vouches for us) and past the followers' leases.
            if src == self.leader and self.state == FOLLOWER and self._promotable():
                self._campaign(pre=False, transfer=True)
        elif self.state == LEADER and src in self.progress:
            if isinstance(m, AppendResponse):
                self._step_append_response(src, m)
            elif isinstance(m, HeartbeatResponse):
                self._step_heartbeat_response(src, m.ctx)
            elif isinstance(m, SnapshotResponse):
                self._step_snapshot_response(src, m)

    # ------------------------------------------------------------------ output

    def has_ready(self) -> bool:
        log = self.log
        return bool(self._msgs or self._proposals or self._events or self._dirty or self._snapshot
                    or self._compact_to or self._reads or self._leader_changed()
                    or (self._reads_new and self._may_start_reads())
                    or log.last_index > log.stable or log.has_appliable()
                    or self._hard_changed())

    def ready(self) -> Ready:
        """Collect everything to persist, send and apply since the last call."""
        if self._dirty:
            self._flush_appends()
        if self._reads_new:
            self._start_read_round()
        hard, saved = None, self._saved
        if self._hard_changed():
            hard = self._saved = self._hard()
        if self._leader_changed():
            self._told_leader = (self.leader, self.term)
            self._events.append(LeaderChanged(self.leader, self.term))
        rd = Ready(
            hard=hard,
            entries=self.log.unstable(),
            snapshot=self._snapshot,
            snapshot_data=self._new_data,
            compact_to=self._compact_to,
            install=self._install,
            messages=self._msgs,
            committed=self.log.appliable(),
            proposals=self._proposals,
            reads=self._reads,
            events=self._events,
            send_first=(self.state == LEADER and saved.term == self.term
                        and saved.vote == self.vote),
        )
        self._snapshot = self._new_data = None
        self._compact_to = 0
        self._install = False
        self._msgs, self._proposals, self._events, self._reads = [], [], [], []
        return rd

    def advance(self, rd: Ready) -> None:
        """The runtime persisted ``rd``, sent its messages and took its committed entries."""
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.state == LEADER:
                self._maybe_commit()

    # ------------------------------------------------------------------ roles

    def _leader_changed(self) -> bool:
        """Whether the leader known (or its term) differs from the last :class:`LeaderChanged`
        reported. Checked when a Ready is made rather than wherever ``leader`` is set, so that
        a leader forgotten and found again between two Ready calls is no news."""
        leader, term = self._told_leader
        return self.leader != leader or (leader is not None and self.term != term)

    def _hard(self) -> HardState:
        return HardState(self.term, self.vote, self.log.commit)

    def _hard_changed(self) -> bool:
        """Whether the hard state differs from the last one handed out (field by field: this
        runs on every Ready round, and building a HardState to compare costs more)."""
        saved = self._saved
        return (self.term != saved.term or self.vote != saved.vote
                or self.log.commit != saved.commit)

    def _reset_election_timer(self, timeout: float) -> None:
        self.election_deadline = self.now + timeout

    def _set_state(self, state: str) -> None:
        public_before = PUBLIC_STATE[self.state]
        self.state = state
        public = PUBLIC_STATE[state]
        if public != public_before:
            self._events.append(RoleChanged(public))

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term > self.term:
            self.term = term
            self.vote = None
        self.leader = leader
        if leader is not None:
            self.last_contact = self.now
        self.progress = {}
        self.transferee = None
        self._dirty.clear()
        self._fail_reads()
        self._reset_election_timer(self.cfg.follower_timeout())
        self._set_state(FOLLOWER)

    def _campaign(self, pre: bool, after_pre_vote: bool = False, transfer: bool = False) -> None:
        """Start a (pre-)election: Raft §5.2, with the thesis' PreVote phase first."""
        self.leader = None
        self.votes = {self.id: True}
        if pre:
            self._set_state(PRE_CANDIDATE)
            term = self.term + 1
        else:
            self.term += 1
            self.vote = self.id
            self._set_state(CANDIDATE)
            term = self.term
        if not after_pre_vote:
            self._events.append(ElectionStarted(term, pre))
        self._reset_election_timer(self.cfg.election_timeout())
        if quorum.vote_result(self.cluster.voters, self.votes) == quorum.WON:
            self._won(pre)
            return
        request = VoteRequest(term, self.log.last_index, self.log.last_term, pre=pre,
                              transfer=transfer)
        for voter in self.cluster.voters:
            if voter != self.id:
                self._send(voter, request)

    def _won(self, pre: bool) -> None:
        if pre:
            self._campaign(pre=False, after_pre_vote=True)
        else:
            self._become_leader()

    def _become_leader(self) -> None:
        self.leader = self.id
        self._set_state(LEADER)
        nxt = self.log.last_index + 1
        self.progress = {m: Progress(nxt) for m in self.cluster.members if m != self.id}
        self._forwarded = {}
        self._lazy = set()
        self.heartbeat_deadline = self.now + self.cfg.heartbeat_interval
        self.quorum_deadline = self.now + self.cfg.quorum_timeout
        self._lease_floor = self._read_round + 1
        # A no-op of our own term lets earlier-term entries commit (Raft §5.4.2, §8).
        self._append(NOOP, [None])

    def _promotable(self) -> bool:
        """May this node campaign? Voters may. So may a voter that the newest configuration
        removes while that configuration is not committed: until it is, the cluster may
        still be the previous one, whose majority can need this node to lead (thesis
        §4.2.2: a leader outside the new configuration manages the cluster until it commits)."""
        if self.id in self.cluster.voters:
            return True
        return (self.config_index > self.log.commit
                and self.id in self.log.config_at(self.config_index - 1).voters)

    def _in_lease(self) -> bool:
        """True while we believe a leader is alive (CheckQuorum's follower side)."""
        if not self.cfg.check_quorum or self.leader is None:
            return False
        return self.state == LEADER or self.now - self.last_contact < self.cfg.quorum_timeout

    # ------------------------------------------------------------------ elections

    def _step_vote(self, src: str, m: VoteRequest) -> None:
        # We may vote for src if we already did this term, if we have neither voted nor seen a
        # leader this term, or (pre-vote) if the proposed term is newer than ours.
        can_vote = (self.vote == src
                    or (self.vote is None and self.leader is None)
                    or (m.pre and m.term > self.term))
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            self._send(src, VoteResponse(m.term, True, pre=m.pre))
            if not m.pre:
                self.vote = src
                self._reset_election_timer(self.cfg.follower_timeout())
        else:
            self._send(src, VoteResponse(self.term, False, pre=m.pre))

    def _step_vote_response(self, src: str, m: VoteResponse) -> None:
        expected = PRE_CANDIDATE if m.pre else CANDIDATE
        wanted_term = self.term + 1 if m.pre else self.term
        if self.state != expected or src not in self.cluster.voters:
            return
        if m.granted and m.term != wanted_term:
            return  # a stale grant from an earlier round
        self.votes.setdefault(src, m.granted)
        result = quorum.vote_result(self.cluster.voters, self.votes)
        if result == quorum.WON:
            self._won(m.pre)
        elif result == quorum.LOST:
            self._become_follower(self.term, None)

    # ------------------------------------------------------------------ replication (follower)

    def _step_from_leader(self, src: str,
                          m: AppendRequest | Heartbeat | CommitNotice | SnapshotChunk) -> None:
        if self.state == LEADER:
            raise MessageError(f"{src} claims to lead term {m.term}, which this node leads")
        if self.state != FOLLOWER or self.leader != src:
            self._become_follower(m.term, src)
        self.last_contact = self.now
        self._reset_election_timer(self.cfg.follower_timeout())
        if isinstance(m, AppendRequest):
            self._handle_append(src, m)
            return
        if isinstance(m, SnapshotChunk):
            self._handle_snapshot(src, m)
            return
        # The leader sends min(our match, its commit), so our log holds it unless the message
        # is corrupt; never commit past what we have.
        self._commit_to(min(m.commit, self.log.last_index))
        if isinstance(m, Heartbeat):
            self._send(src, HeartbeatResponse(self.term, m.ctx))

    def _handle_append(self, src: str, m: AppendRequest) -> None:
        log = self.log
        prev_index, prev_term, entries = m.prev_index, m.prev_term, m.entries
        if prev_index < log.commit:
            # Everything up to our commit index is already settled; skip that part.
            skip = min(log.commit - prev_index, len(entries))
            if skip == len(entries):
                self._send(src, AppendResponse(self.term, log.commit, True))
                return
            prev_index, prev_term = entries[skip - 1].index, entries[skip - 1].term
            entries = entries[skip:]
        if log.term_at(prev_index) != prev_term:
            hint = log.find_conflict_by_term(min(prev_index, log.last_index), prev_term)
            self._send(src, AppendResponse(self.term, prev_index, False, hint,
                                           log.term_at(hint) or 0))
            return
        last_new = log.merge(entries) if entries else prev_index
        if (log.term_at(self.config_index) != self.config_term
                or CONFIG in [e.kind for e in entries]):
            self._sync_config()
        self._commit_to(min(m.commit, last_new))
        self._send(src, AppendResponse(self.term, last_new, True))

    def _handle_snapshot(self, src: str, m: SnapshotChunk) -> None:
        """Collect a snapshot's chunks; install it once complete and verified (Raft §7).

        Chunks must arrive in order; any other chunk is answered with the offset we need,
        so a transfer interrupted by a lost message (or by a new leader with the same
        snapshot text) resumes where it stopped instead of starting over.
        """
        log = self.log
        if m.index <= log.commit:  # we have all of it already
            self._incoming = None
            self._send(src, AppendResponse(self.term, log.commit, True))
            return
        key = (m.index, m.snap_term, m.size, m.crc)
        inc = self._incoming
        if m.offset == 0 and (inc is None or inc.key != key):
            inc = self._incoming = _Incoming(key, [])
        if inc is None or inc.key != key or m.offset != inc.received:
            self._send(src, SnapshotResponse(self.term, m.index,
                                             inc.received if inc and inc.key == key else 0))
            return
        inc.parts.append(m.data)
        inc.received += len(m.data)
        if inc.received < m.size:
            self._send(src, SnapshotResponse(self.term, m.index, inc.received))
            return
        self._incoming = None
        data = "".join(inc.parts)
        if zlib.crc32(data.encode()) != m.crc:
            self._send(src, SnapshotResponse(self.term, m.index, 0))  # corrupt: start over
            return
        meta = SnapshotMeta(m.index, m.snap_term, ClusterConfig.from_json(m.config))
        self._compact_to = max(self._compact_to, log.restore(meta))
        self._set_snapshot(meta, data)
        self._install = True
        self._sync_config()
        self._send(src, AppendResponse(self.term, m.index, True))

    def _commit_to(self, index: int) -> None:
        if index > self.log.commit:
            self.log.commit = index

    # ------------------------------------------------------------------ replication (leader)

    def _append(self, kind: int, commands: Sequence[Any]) -> int:
        """Append entries to our log as leader; return the first index."""
        log = self.log
        first = log.last_index + 1
        term = self.term
        if kind == SESSION:
            log.append(session_entries(term, first, commands,
                                       log.entries[-1] if log.entries else None))
        else:
            log.append([Entry(term, first + i, kind, c) for i, c in enumerate(commands)])
        if kind == CONFIG:
            self._sync_config()
        self._dirty.update(dict.fromkeys(self.progress))
        return first

    def _step_append_response(self, src: str, m: AppendResponse) -> None:
        if m.index > self.log.last_index:
            raise MessageError(f"{src} acknowledges index {m.index} beyond our log")
        pr = self.progress[src]
        pr.recent_active = True
        if m.success:
            if pr.update(m.index):
                if pr.state == PROBE or (pr.state == SNAPSHOT and pr.match >= pr.snap_index):
                    pr.become_replicate()
                self._maybe_commit()
                if self.state != LEADER:
                    return  # the commit removed us
                if src == self.transferee:
                    self._maybe_send_timeout_now()
                if src in self.cluster.learners:
                    self._maybe_promote(src, pr)
            self._dirty[src] = None
        else:
            resume = self.log.find_conflict_by_term(m.hint_index, m.hint_term) + 1
            if pr.rejected(m.index, resume):
                self._dirty[src] = None

    def _maybe_promote(self, learner: str, pr: Progress) -> None:
        """Make a caught-up learner a voter (one change at a time, like any other)."""
        log = self.log
        if (self.cfg.auto_promote and pr.match >= log.commit and self.config_index <= log.commit
                and self.transferee is None):
            old = self.cluster
            new = ClusterConfig((*old.voters, learner),
                                tuple(a for a in old.learners if a != learner))
            self._append(CONFIG, [new.to_json()])

    def _step_snapshot_response(self, src: str, m: SnapshotResponse) -> None:
        pr = self.progress[src]
        pr.recent_active = True
        if pr.state == SNAPSHOT and m.index == pr.snap_index:
            pr.snap_offset = min(m.offset, len(pr.snap.data))
            pr.paused = False
            pr.idle_beats = 0
            self._dirty[src] = None

    def _step_heartbeat_response(self, src: str, ctx: int) -> None:
        pr = self.progress[src]
        pr.recent_active = True
        if ctx > pr.read_ctx and ctx <= self._read_round:
            pr.read_ctx = ctx
            self._confirm_reads()
        if pr.match < self.log.last_index:
            if pr.state == PROBE:
                pr.paused = False  # the probe may have been lost: send another
            self._dirty[src] = None

    def _maybe_commit(self) -> None:
        match = {peer: pr.match for peer, pr in self.progress.items()}
        match[self.id] = self.log.stable
        index = quorum.committed_index(self.cluster.voters, match)
        # Only entries of the current term commit by counting replicas (Raft §5.4.2).
        if index > self.log.commit and self.log.term_at(index) == self.term:
            self.log.commit = index
            self._dirty.update(dict.fromkeys(self.progress))  # tell followers promptly
            if self.config_index <= index and self.id not in self.cluster.voters:
                # Our own removal committed: hand over by stepping down; we will not campaign.
                self._become_follower(self.term, None)

    def _heartbeat(self) -> None:
        commit = self.log.commit
        for peer, pr in self.progress.items():
            if pr.idle_beats >= STALL_BEATS:
                # Nothing acknowledged for a while: the tail or the chunk may be lost.
                if pr.state == REPLICATE and pr.inflight:
                    pr.become_probe()
                    self._dirty[peer] = None
                elif pr.state == SNAPSHOT and pr.paused:
                    pr.paused = False
                    self._dirty[peer] = None
            pr.idle_beats += 1
        rnd = self._new_round()
        # A replicating follower sent entries a moment ago, whose appends are answered (no
        # interval went by without an answer or a new flight), heard from us what a heartbeat
        # would say: its election timer restarted, and it has the commit index as of that
        # append (the next append or heartbeat brings the rest). Its answers count for
        # CheckQuorum. Under load a heartbeat would only double its messages. Every follower
        # still hears from us within ``window + heartbeat_interval``, less than
        # ``quorum_timeout`` (a follower's timeout is at least that). Reads waiting for a
        # round keep every heartbeat (the next round resends theirs if it was lost), and so
        # do lease reads (they count every round).
        cfg = self.cfg
        window = min(cfg.heartbeat_interval, cfg.quorum_timeout - cfg.heartbeat_interval) / 2
        recent = (float("inf") if cfg.lease_reads or self._reads_out
                  else self.now - window)
        for peer, pr in self.progress.items():
            if pr.sent_at > recent and pr.idle_beats <= 1 and pr.state == REPLICATE:
                continue
            self._send(peer, Heartbeat(self.term, min(pr.match, commit), rnd))

    def _check_quorum(self) -> None:
        active = {peer: pr.recent_active for peer, pr in self.progress.items()}
        active[self.id] = True
        for pr in self.progress.values():
            pr.recent_active = False
        if quorum.vote_result(self.cluster.voters, active) != quorum.WON:
            self._become_follower(self.term, None)

    def _quorum_followers(self) -> tuple[str, ...]:
        """The voters a commit waits for besides this node: as many as a quorum needs, those
        furthest ahead (ties go to the configuration's order)."""
        voters, progress = self.cluster.voters, self.progress
        need = quorum.majority(len(voters)) - (self.id in voters)
        followers = [v for v in voters if v in progress]
        if need == 1 and followers:  # three voters: the most common case, on every round
            best, most = followers[0], -1
            for v in followers:  # (max(key=...) calls a function per follower)
                if progress[v].match > most:
                    best, most = v, progress[v].match
            return (best,)
        return tuple(sorted(followers, key=lambda v: -progress[v].match)[:need])

    def _lazy_due(self, peer: str) -> float:
        """When a lazy follower's waiting append may go."""
        return self.progress[peer].sent_at + self.cfg.lazy_interval

    def _waits(self, peer: str, pr: Progress) -> bool:
        """Does this lazy follower's next append wait (see ``CoreConfig.lazy_interval``)?
        If so, :meth:`tick` makes it dirty again when its time comes."""
        if (self.now >= pr.sent_at + self.cfg.lazy_interval or pr.state != REPLICATE
                or pr.next > self.log.last_index or pr.awaits > pr.sent_commit
                or peer == self.transferee or peer not in self.cluster.voters):
            self._lazy.discard(peer)
            return False
        self._lazy.add(peer)
        return True

    def _flush_appends(self) -> None:
        """Send every dirty follower what it is missing, within its window (a lazy follower
        only once its time comes)."""
        cfg, log = self.cfg, self.log
        quorum = self._quorum_followers() if cfg.lazy_interval > 0 else None
        for peer in self._dirty:
            pr = self.progress.get(peer)
            if pr is None:
                continue
            if quorum is not None and peer not in quorum and self._waits(peer, pr):
                continue
            while pr.can_send(cfg.max_inflight, cfg.max_inflight_bytes):
                if pr.state == SNAPSHOT:
                    self._send_chunk(peer, pr)
                    break
                if pr.next > log.last_index:  # it has (or is being sent) everything
                    if pr.state == REPLICATE:
                        # Only a follower that waits for a commit hears of it at once; the
                        # others learn it with the next append or heartbeat, which under load
                        # comes right away (a lone notice per commit would double the messages
                        # of one-at-a-time proposals).
                        known = min(pr.match, log.commit)
                        if known > pr.sent_commit and pr.awaits > pr.sent_commit:
                            self._send(peer, CommitNotice(self.term, known))
                            pr.sent_commit = known
                        break
                    if pr.sent_commit >= log.commit:
                        break
                prev = pr.next - 1
                prev_term = log.term_at(prev)
                if prev_term is None:  # compacted away: this follower needs the snapshot
                    pr.become_snapshot(self._outgoing)
                    continue
                entries, nbytes = self._batch(pr.next)
                self._send(peer, AppendRequest(self.term, prev, prev_term, log.commit,
                                               tuple(entries)))
                pr.sent_commit = min(log.commit, prev + len(entries))
                if entries:
                    pr.sent_at = self.now
                    self._lazy.discard(peer)
                    pr.sent(entries[-1].index, nbytes)
                else:
                    pr.paused = True  # an empty append is a probe: wait for its answer
                    break
        self._dirty.clear()

    def _send_chunk(self, peer: str, pr: Progress) -> None:
        """Send the next chunk of the snapshot this follower is receiving."""
        snap: _Outgoing = pr.snap
        meta, data, start = snap.meta, snap.data, pr.snap_offset
        self._send(peer, SnapshotChunk(self.term, meta.index, meta.term, meta.config.to_json(),
                                       start, len(data), snap.crc,
                                       data[start:start + self.cfg.snapshot_chunk]))
        pr.paused = True
        pr.idle_beats = 0

    def _batch(self, start: int) -> tuple[list[Entry], int]:
        """Entries from ``start`` within the per-message limits, and their size."""
        log, cfg = self.log, self.cfg
        stop = min(log.last_index + 1, start + cfg.max_append_entries)
        entries = log.slice(start, stop)
        nbytes = 0
        for n, entry in enumerate(entries):
            nbytes += entry.size
            if nbytes > cfg.max_append_bytes and n > 0:
                nbytes -= entry.size
                return entries[:n], nbytes
        return entries, nbytes

    # ------------------------------------------------------------------ forwarding

    def _step_proposal(self, src: str, m: ProposeRequest | ProposeResponse) -> None:
        if isinstance(m, ProposeResponse):
            self._proposals.append(ProposalResult(m.id, m.index, m.term, m.leader, src))
            return
        # Every copy of a request (the network duplicates and delays) gets the answer the first
        # one got in its term: its index, or 0 if this leader refused it (handing over). A
        # refusal forgotten would let a late copy be appended after the sender, told "not
        # appended", had proposed the commands again.
        key = (src, m.id)
        index = self._forwarded.get(key) if m.term == self.term else None
        if index is None and self.state == LEADER and m.term == self.term:
            commands = session_runs(m.commands) if m.kind == SESSION else m.commands
            index = self._append(m.kind, commands) if self.transferee is None else 0
            self._forwarded[key] = index
            if len(self._forwarded) > MAX_FORWARD_MEMORY:
                del self._forwarded[next(iter(self._forwarded))]
        if index:
            self._awaited(src, index + len(m.commands) - 1)
            self._send(src, ProposeResponse(self.term, m.id, index))
            return
        # Not appended: the sender takes a refusal as "certainly not appended" and retries
        # elsewhere, so say so only when it is certain: this node refused it as the leader of
        # that term, or never led that term (it voted for another, or the term is new to it).
        # A copy addressed to a term this node may have led (an older one, or this one before
        # a restart) gets no answer: the sender times out with an unknown outcome.
        if index == 0 or m.term > self.term or (m.term == self.term and self.vote != self.id):
            self._send(src, ProposeResponse(self.term, m.id, 0, self.transferee or self.leader
                                            or ""))

    def _awaited(self, peer: str, index: int) -> None:
        """``peer`` waits for ``index`` to commit: tell it as soon as it does."""
        pr = self.progress.get(peer)
        if pr is not None and index > pr.awaits:
            pr.awaits = index
            if min(pr.match, self.log.commit) > pr.sent_commit:
                self._dirty[peer] = None  # it may be committed already

    # ------------------------------------------------------------------ reads

    def _step_read(self, src: str, m: ReadIndexRequest | ReadIndexResponse) -> None:
        if isinstance(m, ReadIndexResponse):
            self._reads.append(ReadState(m.id, m.index, src))
        elif self.state == LEADER and m.term == self.term:
            if self._lease_valid():
                self._answer_read(m.id, self.log.commit, src)
            else:
                self._reads_new.append((m.id, src))
        else:
            self._send(src, ReadIndexResponse(self.term, m.id, 0))

    def _may_start_reads(self) -> bool:
        """A leader's commit index is known current once an entry of its term committed."""
        return self.state == LEADER and self.log.term_at(self.log.commit) == self.term

    def _start_read_round(self) -> None:
        """Give the waiting reads our commit index and send one heartbeat round for them."""
        if not self._may_start_reads():
            return  # wait for our first commit (the no-op), then go
        log = self.log
        rnd = self._new_round()
        self._reads_out.extend((rnd, req, log.commit, src) for req, src in self._reads_new)
        self._reads_new = []
        for peer, pr in self.progress.items():
            self._send(peer, Heartbeat(self.term, min(pr.match, log.commit), rnd))
        self._confirm_reads()  # a lone voter confirms itself

    def _new_round(self) -> int:
        """Number a heartbeat round and remember when it left (for leases)."""
        self._read_round += 1
        sent = self._round_sent
        sent[self._read_round] = self.now
        if len(sent) > 256:
            del sent[next(iter(sent))]
        return self._read_round

    def _confirmed_round(self) -> int:
        """The newest heartbeat round a majority of voters has answered."""
        acked = {peer: pr.read_ctx for peer, pr in self.progress.items()}
        acked[self.id] = self._read_round
        return quorum.committed_index(self.cluster.voters, acked)

    def _lease_valid(self) -> bool:
        """Lease reads (thesis §6.4.1): a majority answered a round sent at ``t``, so each of
        them refuses votes until ``t + quorum_timeout`` (CheckQuorum's follower lease) and no
        other leader can exist before then. Needs our first commit, like any read."""
        if not (self.cfg.lease_reads and self.cfg.check_quorum and self.transferee is None
                and self._may_start_reads()):
            return False
        confirmed = self._confirmed_round()
        if confirmed < self._lease_floor:
            return False
        sent = self._round_sent.get(confirmed)
        return sent is not None and self.now < sent + LEASE_SAFETY * self.cfg.quorum_timeout

    def _confirm_reads(self) -> None:
        if not self._reads_out:
            return
        confirmed = self._confirmed_round()
        while self._reads_out and self._reads_out[0][0] <= confirmed:
            _, req, index, src = self._reads_out.pop(0)
            self._answer_read(req, index, src)

    def _answer_read(self, req: int, index: int, src: str | None) -> None:
        if src is None:
            self._reads.append(ReadState(req, index))
        else:
            self._awaited(src, index)
            self._send(src, ReadIndexResponse(self.term, req, index))

    def _fail_reads(self) -> None:
        pending = [(req, src) for _, req, _, src in self._reads_out] + self._reads_new
        self._reads_out, self._reads_new = [], []
        for req, src in pending:
            self._answer_read(req, 0, src)

    def _send(self, dst: str, m: Message) -> None:
        self._msgs.append((dst, m))

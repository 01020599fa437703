"""The node: the seed's ``RaftInterface`` and ``NodeInstance``, a facade over small parts.

Owns the public API, the peers this node can reach and the node's lifecycle. The work is done
by collaborators the node holds, each owning its state and its part of :meth:`close`: the
:class:`~webraft.runtime.driver.Driver` (the Ready loop), :class:`~webraft.runtime.proposals.
Proposals` (from ``propose`` to an outcome), the :class:`~webraft.runtime.applier.Applier`
(committed entries into the application) and the :class:`~webraft.runtime.membership.
MembershipPolicy`. It imports those, the core and the storage interface; never a transport
(the node *holds* one, through :mod:`webraft.runtime.port`).

It runs unchanged on CPython's asyncio and on Pyodide's WebLoop: it never blocks, never starts
a thread and never calls ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.messages import decode
from ..core.raft import RaftCore
from ..core.sessions import unpack_snapshot
from ..core.state import ClusterConfig, StoredState
from ..errors import MembershipChangeError, MessageError, NoLeaderError, RaftClosed
from ..storage import MemoryStorage, Storage
from .applier import Applier
from .config import NodeConfig
from .driver import Driver
from .events import EventEmitter
from .membership import MembershipPolicy
from .peers import NodeInstance, TransportPeer
from .port import Transport
from .proposals import Proposals
from .sessions import ClientSession

logger = logging.getLogger("webraft")

#: The seed's overridable properties that are views of a :class:`NodeConfig` field.
_VIEWS = ("heartbeat_frequency", "heartbeat_timeout", "proposal_timeout", "max_command_bytes",
          "snapshot_entries", "snapshot_bytes", "snapshot_tail", "read_lease",
          "auto_membership", "member_grace", "max_voters", "forward_proposals")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot of the application's state machine: its state ``data`` (what the
    ``snapshot`` handler returned, after a JSON round trip) once it had applied entry
    ``index`` of term ``term``."""

    index: int
    term: int
    data: Any


class RaftInterface(EventEmitter):
    """A Raft node: give it a ``transport`` (or, the seed's way, subclass it and implement
    :meth:`create_instance`), start it, and propose.

    ``members`` is the voting configuration of a brand-new cluster (the same list on every
    node, this node included); it is ignored when ``storage`` already holds state.

    Timing and limits come from ``config`` (:class:`NodeConfig`); the seed's way, overriding
    the properties below, still works, and overrides are read once, at construction. A
    follower that hears nothing from a leader for ``heartbeat_timeout`` (plus a random
    fraction of ``heartbeat_frequency``) emits ``heartbeat timeout`` and ``start election``;
    a candidate that has not won after ``election_timeout`` starts another round; a leader
    sends heartbeats every ``heartbeat_frequency`` and steps down if a majority has not
    answered within ``heartbeat_timeout`` (CheckQuorum).

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
                 storage: Storage | None = None, transport: Transport | None = None,
                 config: NodeConfig | None = None) -> None:
        super().__init__()
        if not isinstance(address, str) or not address:
            raise ValueError("address must be a non-empty string")
        self.address = address
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        #: How this node reaches its peers; None: the seed's way, through
        #: :meth:`create_instance` and calls to :meth:`join`, :meth:`leave`, :meth:`got_data`.
        self.transport = transport
        self.nodes: dict[str, NodeInstance] = {}
        config = config or NodeConfig()
        if transport is not None and transport.max_command_bytes is not None:
            limit = min(config.max_command_bytes, transport.max_command_bytes)
            config = config.replace(max_command_bytes=limit)
        #: What the seed's properties show (an override may build on them) ...
        self._given = config
        #: ... and what the runtime reads: the given config with the overrides folded in.
        self.config = self._effective_config(config)
        self._rng = self.config.rng
        #: Seconds added to this node's follower timeout, e.g. while its tab is hidden, so
        #: that members able to lead win elections first.
        self.campaign_delay = 0.0
        stored = self.storage.load()
        if stored is None:
            voters = list(members) if members is not None else [address]
            if len(set(voters)) != len(voters) or not all(isinstance(v, str) and v
                                                          for v in voters):
                raise ValueError("members must be distinct non-empty addresses")
            stored = StoredState.bootstrap(voters)
        stored.check()
        config = self.config
        live_election = type(self).election_timeout is not RaftInterface.election_timeout
        self.core = RaftCore(config.core_config(
            address,
            follower_timeout=self._follower_timeout,
            election_timeout=(lambda: self.election_timeout) if live_election else (
                lambda: self._rng.uniform(*config.election_timeout)),
            auto_promote=not config.auto_membership,  # then promotion follows its policy
        ), stored)
        self._closed = False
        self.driver = Driver(self)
        self.proposals = Proposals(self)
        self.applier = Applier(self, stored.snapshot.index, stored.snapshot_data)
        self.membership = MembershipPolicy(self)

    # ------------------------------------------------------------------ overridables

    def create_instance(self, address: str) -> NodeInstance:
        """Return the :class:`NodeInstance` that talks to ``address``: the seed's way to
        reach peers. A node built with a ``transport`` gets a peer that sends through it."""
        if self.transport is None:
            raise NotImplementedError("give RaftInterface a transport, or implement "
                                      "create_instance() in a subclass")
        return TransportPeer(address, self)

    def _effective_config(self, config: NodeConfig) -> NodeConfig:
        """``config`` with the seed's property overrides of a subclass folded in, read once:
        the seed tunes a node by overriding properties, and each must mean the same thing
        everywhere in the runtime, whenever it is read."""
        cls = type(self)
        overrides = {name: getattr(self, name) for name in _VIEWS
                     if getattr(cls, name) is not getattr(RaftInterface, name)}
        return config.replace(**overrides) if overrides else config

    @property
    def election_timeout(self) -> float:
        """Seconds a candidate waits for votes: drawn from ``config.election_timeout`` on
        each read (a subclass that overrides it is asked each time)."""
        return self._rng.uniform(*self._given.election_timeout)

    @property
    def heartbeat_frequency(self) -> float:
        """Seconds between a leader's heartbeats (``config.heartbeat_frequency``)."""
        return self._given.heartbeat_frequency

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds of leader silence after which a follower campaigns."""
        return self._given.heartbeat_timeout

    @property
    def proposal_timeout(self) -> float:
        """Longest a :meth:`propose` call waits without a leader that took the proposal."""
        return self._given.proposal_timeout

    @property
    def max_command_bytes(self) -> int:
        """Largest command :meth:`propose` accepts, in bytes of (ASCII-escaped) JSON."""
        return self._given.max_command_bytes

    @property
    def snapshot_entries(self) -> int:
        """Take a snapshot after this many entries were applied since the last one."""
        return self._given.snapshot_entries

    @property
    def snapshot_bytes(self) -> int:
        """... or after this many bytes of entries (approximate JSON size) were applied."""
        return self._given.snapshot_bytes

    @property
    def snapshot_tail(self) -> int:
        """Entries a snapshot leaves in the log."""
        return self._given.snapshot_tail

    @property
    def read_lease(self) -> bool:
        """Let the leader answer :meth:`read_index` from its lease (see :class:`NodeConfig`)."""
        return self._given.read_lease

    @property
    def auto_membership(self) -> bool:
        """Let the transport's presence drive membership (see :class:`NodeConfig`). A node
        built with ``members=[]`` starts outside any cluster and waits to be added."""
        return self._given.auto_membership

    @property
    def member_grace(self) -> float:
        """Seconds a member may be unreachable (a reloading tab) before it is removed."""
        return self._given.member_grace

    @property
    def max_voters(self) -> int:
        """Most voters automatic membership makes; further members stay learners."""
        return self._given.max_voters

    @property
    def forward_proposals(self) -> bool:
        """Forward proposals made on a follower to the leader (the seed's behaviour)."""
        return self._given.forward_proposals

    def _follower_timeout(self) -> float:
        config = self.config
        return (config.heartbeat_timeout + self._rng.uniform(0, config.heartbeat_frequency)
                + self.campaign_delay)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` began."""
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the node runs on (the running one, before :meth:`start`)."""
        loop = self.driver.loop
        return loop if loop is not None else asyncio.get_running_loop()

    def kick(self) -> None:
        """For the runtime's parts: there is work for a Ready round on the next loop turn."""
        self.driver.kick()

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> str:
        """``"follower"``, ``"candidate"`` or ``"leader"``."""
        return self.core.role

    @property
    def is_leader(self) -> bool:
        return self.core.role == "leader"

    @property
    def leader(self) -> str | None:
        """Address of the leader this node knows of, or None."""
        return self.core.leader

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def commit_index(self) -> int:
        return self.core.commit_index

    @property
    def last_applied(self) -> int:
        """Index of the last entry the application has fully applied."""
        return self.applier.last_applied

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot a ``refresh`` handler must load (while one is loading), otherwise the
        node's newest snapshot; None before the first one."""
        load = self.applier.loading
        meta, text = (load.meta, load.text) if load else (self.core.status().snapshot,
                                                          self.core.snapshot_data)
        if meta.index == 0:
            return None
        return Snapshot(meta.index, meta.term, unpack_snapshot(text)[0])

    @property
    def members(self) -> tuple[str, ...]:
        """Current voting members (the newest configuration in the log)."""
        return self.core.status().config.voters

    @property
    def learners(self) -> tuple[str, ...]:
        """Members that receive the log but do not vote yet."""
        return self.core.status().config.learners

    def add_member(self, address: str) -> asyncio.Future[int]:
        """Add ``address`` to the cluster (leader only).

        It joins as a learner, which does not count for elections or commitment, and the
        leader promotes it to voter once it has caught up (Raft thesis §4.2.1): a new member
        can never stall commitment while it downloads the log. The future resolves to the
        index of the configuration entry once it is committed and applied here; follow
        ``membership changed`` events to see the promotion.
        """
        config = self.core.status().config
        if address in config.members:
            return _refused(f"{address!r} is already a member")
        return self.proposals.change_config(ClusterConfig(config.voters,
                                                          (*config.learners, address)))

    def remove_member(self, address: str) -> asyncio.Future[int]:
        """Remove ``address`` (leader only; this node too: it steps down once that commits)."""
        config = self.core.status().config
        if address not in config.members:
            return _refused(f"{address!r} is not a member")
        return self.proposals.change_config(ClusterConfig(
            tuple(v for v in config.voters if v != address),
            tuple(a for a in config.learners if a != address)))

    # ------------------------------------------------------------------ peers

    def join(self, address: str) -> None:
        """Peer ``address`` became reachable: create its NodeInstance, emit ``join``.
        Ignored once :meth:`close` began (its transport may still report until it closes)."""
        if self._closed or address == self.address or address in self.nodes:
            return
        self.nodes[address] = self.create_instance(address)
        self.membership.joined(address)
        self.emit("join", address)

    def leave(self, address: str) -> None:
        """Peer ``address`` became unreachable: drop its NodeInstance, emit ``leave``.
        Ignored once :meth:`close` began: it closes every peer itself."""
        if self._closed:
            return
        node = self.nodes.pop(address, None)
        if node is None:
            return
        self._close_node(node)
        started = self.driver.loop is not None
        if started:
            self.membership.left(address, self.loop.time())
        self.emit("leave", address)
        if address == self.core.leader and started and not self.config.read_lease:
            # Our leader is gone: campaign soon rather than after a whole heartbeat timeout.
            self.core.tick(self.driver.now())
            self.core.leader_unreachable(self._rng.uniform(0, self.config.heartbeat_frequency))
            self.kick()

    def got_data(self, address: str, payload: Any) -> None:
        """Data received from peer ``address``. Never raises; bad input is dropped.

        The node acts on it in a callback, so that every message of one loop turn shares a
        Ready round; a transport that reads several at once uses :meth:`got_messages`.
        """
        if self._step(address, payload):
            self.kick()  # inside got_messages, a no-op: its batch runs the round

    def got_messages(self, address: str, payloads: Iterable[Any]) -> None:
        """Messages from ``address`` that arrived together (one frame, one read), each through
        :meth:`got_data`, then handled now in one Ready round: the answers leave in this turn
        of the loop, which saves a loop turn (in a tab, a browser task) on every message hop.
        Never raises.

        In the node's own apply loop the round waits for the next loop turn (see
        :meth:`~webraft.runtime.driver.Driver.batch`).
        """
        with self.driver.batch():
            for payload in payloads:
                self.got_data(address, payload)

    def transport_error(self, exc: Exception) -> None:
        """The transport reports ``exc``: emitted as an ``error`` event."""
        self.emit("error", exc)

    def stalled(self) -> None:
        """Tell the node that its event loop was blocked until now (a browser tab whose
        thread another tab held): timers that measured the leader's silence restart, so that
        the leader's next heartbeat, not the stall, decides whether to campaign."""
        if self.driver.loop is None or self._closed:
            return
        self.core.stalled(self.driver.now(), self._follower_timeout())
        self.kick()

    def drive_now(self) -> None:
        """Run the Ready rounds now rather than on the next loop turn: persist (at once,
        when storage saves synchronously) and send what is pending. For a page about to go
        away, where no further loop turn is guaranteed."""
        self.driver.round_now()

    def _step(self, address: str, payload: Any) -> bool:
        """Feed one message to the core; False if it was dropped (or the node is closed)."""
        if self._closed:
            return False
        try:
            msg = decode(payload)
            self.core.tick(self.driver.now())
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
        """Start timers, processing and the transport; needs a running asyncio loop."""
        if self.driver.loop is not None:
            return
        self.driver.start(self._event_loop(asyncio.get_running_loop()))
        self.applier.start()
        if self.config.auto_membership:
            self.membership.start()
        if self.transport is not None:
            self.transport.start(self)
        self.kick()

    def _event_loop(self, running: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        """The loop the node schedules its timers and calls on (see :attr:`loop`): the running
        one, or a runtime's own view of it (a tab's :class:`~webraft.browser.scheduling.
        TabLoop`, whose timers cost the page less)."""
        return running

    async def close(self) -> None:
        """Stop timers, fail pending proposals, close the transport; storage keeps everything
        saved so far."""
        if self._closed:
            return
        self._closed = True
        self.membership.close()
        await self.driver.close()
        self.proposals.close()
        self.applier.close()
        for node in list(self.nodes.values()):
            self._close_node(node)
        if self.transport is not None:
            await self.transport.close()

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
        when no leader could confirm within ``proposal_timeout``, or at once on a node that
        is cut off (it knew a leader, then none for ``config.cut_off_after``).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.proposal_timeout
        while True:
            if self._closed:
                raise RaftClosed(may_have_committed=False)
            index = await self.proposals.ask_read_index()
            if index:
                break
            if loop.time() >= deadline:
                raise NoLeaderError("no leader confirmed a read index in time")
            await asyncio.sleep(self.config.heartbeat_frequency)
        watcher = self.applier.wait_applied(index)
        if watcher is not None:
            await watcher
        return index

    def transfer_leadership(self, to: str | None = None) -> str | None:
        """If this node leads, hand leadership to ``to`` (default: the most up-to-date voter).

        Returns the target, or None when there is nothing to do. Meanwhile proposals wait
        (they are retried with the new leader); if the target has not taken over within an
        election timeout, this node simply leads on.
        """
        target = self.core.transfer_leadership(to)
        self.kick()
        return target

    # ------------------------------------------------------------------ proposals

    def propose(self, command: Any) -> asyncio.Future[int]:
        """Replicate ``command`` exactly once; the future resolves to its log index once it
        is committed and applied on this node.

        The node proposes it through its implicit client session (Raft thesis §6.3): if its
        fate becomes unknown (a forward's answer lost, the leader changed or stepped down,
        its entry overwritten) it is sent again to the leader known now, and the replicated
        session table applies it once. Failures are :class:`~webraft.errors.ProposalError`\\ s
        (see :mod:`webraft.errors` for which ones mean "may still commit"):
        :class:`~webraft.errors.ProposalTimeout` when no leader took it within
        ``proposal_timeout``. To retry across a restart of this node, use a session of your
        own, :meth:`open_session`."""
        return self.proposals.propose(command)

    def propose_decoded(self, command: Any) -> asyncio.Future[int]:
        """:meth:`propose` for a command that ``json.loads`` just made and nobody else holds
        (the browser bridge's): it is JSON-normal and private already, so the copy
        :meth:`propose` takes is skipped. The size limit and the checks still apply."""
        return self.proposals.propose(command, decoded=True)

    async def open_session(self) -> ClientSession:
        """Open a client session whose proposals apply exactly once (Raft thesis §6.3)."""
        return ClientSession(self, await self.proposals.open_session())

    def resume_session(self, client_id: int | str, next_seq: int) -> ClientSession:
        """A session opened earlier (by this or another node), e.g. after the client restarted.

        ``next_seq`` is the number of the next proposal: past every number used before for
        new commands, or a number whose outcome the client never learned to retry that
        command (it is applied at most once)."""
        return ClientSession(self, client_id, next_seq, resumed=True)

    def _close_node(self, node: NodeInstance) -> None:
        try:
            node.close()
        except Exception as exc:
            logger.warning("%s: closing %r failed: %r", self.address, node.address, exc)




def _refused(message: str) -> asyncio.Future[int]:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    fut.set_exception(MembershipChangeError(message))
    return fut

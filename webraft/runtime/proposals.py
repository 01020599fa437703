"""Proposals on their way to the log: outbox, batches, forwarding, parking, expiry, waiters.

Owns every caller's future from :meth:`~webraft.RaftInterface.propose` (and configuration
changes, read-index requests, session proposals) until it has an outcome. Imports the core's
types and the errors; it must not import the driver, the applier or the membership policy,
which it reaches through the node.

A proposal changes hands three times: it waits in the *outbox* for the end of its loop turn,
travels in a *batch* (appended by this leader, or forwarded to the leader, or *parked* while
there is none) until the log gives it an index, then waits as a *waiter* until the entry at that
index is applied here, or another entry takes the slot. One timer expires batches in the order
they were made.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.messages import COMMAND, MAX_COMMAND_BYTES, MAX_DEPTH, SESSION, check_command
from ..core.raft import ProposalResult, ReadState
from ..core.sessions import DUPLICATE, EXPIRED
from ..core.state import ClusterConfig
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
from .config import BATCH_BYTES

if TYPE_CHECKING:
    from .interface import RaftInterface
    from .sessions import ClientSession

logger = logging.getLogger("webraft")


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
            fail(fut, exc)


@dataclass(slots=True)
class _Waiter:
    term: int
    future: asyncio.Future[int]


class Proposals:
    """This node's proposals, configuration changes and reads until their outcomes."""

    def __init__(self, node: RaftInterface) -> None:
        self.node = node
        self.core = node.core
        self._outbox: list[tuple[Any, int, asyncio.Future[int], int]] = []
        self._outbox_since = 0.0  # when the oldest proposal in the outbox was made
        self._expiring: deque[tuple[float, _Batch]] = deque()  # (deadline, batch), in order
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._batches: dict[int, _Batch] = {}  # by request id, until they have indexes
        self._parked: list[_Batch] = []  # waiting for a leader
        self._parked_under: str | None = None  # the leader known when one was last parked
        self._waiters: dict[int, _Waiter] = {}  # by log index, until applied
        self._config_requests: dict[int, asyncio.Future[int]] = {}  # by request id
        self._read_requests: dict[int, tuple[asyncio.Future[int], str | None]] = {}
        # Session proposals waiting on a (client, seq), and outcomes of session entries
        # applied here, kept until their waiter runs.
        self._session_waiters: dict[tuple[int, int], asyncio.Future[int]] = {}
        self._session_outcomes: dict[int, tuple[tuple[int, int], str, int]] = {}
        # Request ids are random per incarnation so a restarted node never reuses one.
        self._next_req = node.config.rng.randrange(1 << 52)

    def _request_id(self) -> int:
        req = self._next_req
        self._next_req += 1
        return req

    def _leader_reachable(self) -> bool:
        node = self.node
        return node.is_leader or node.leader in node.nodes

    # ------------------------------------------------------------------ proposing

    def propose(self, command: Any, kind: int, decoded: bool = False) -> asyncio.Future[int]:
        node = self.node
        # A plain Future, not loop.create_future(): Pyodide's loop makes futures whose every
        # completion costs a browser task, and a burst resolves thousands of these.
        fut: asyncio.Future[int] = asyncio.Future(loop=asyncio.get_running_loop())
        if node.closed:
            fut.set_exception(RaftClosed(may_have_committed=False))
            return fut
        if not node.is_leader and not node.config.forward_proposals:
            fut.set_exception(NotLeaderError(leader=node.leader))
            return fut
        try:
            command, size = _normalize(command, node.config.max_command_bytes, decoded)
        except InvalidCommand as exc:
            fut.set_exception(exc)
            return fut
        self._outbox.append((command, size, fut, kind))
        if len(self._outbox) == 1:
            self._outbox_since = node.loop.time()
            self._arm_expiry()
        node.kick()
        return fut

    def flush_outbox(self) -> None:
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
        deadline = self.node.loop.time() + self.node.config.proposal_timeout
        for batch in batches:
            self._expiring.append((deadline, batch))
            self._submit(batch)
        self._arm_expiry()

    def _arm_expiry(self) -> None:
        node = self.node
        if self._expiry_timer is None and not node.closed:
            self._expiry_timer = node.loop.call_later(node.config.proposal_timeout,
                                                      self._expire_batches)

    def _expire_batches(self) -> None:
        """One timer for all pending proposals: batches expire in the order they were made."""
        self._expiry_timer = None
        node = self.node
        timeout = node.config.proposal_timeout
        expiring = self._expiring
        now = node.loop.time()
        while expiring and expiring[0][0] <= now:
            expiring.popleft()[1].expire(timeout)
        if self._outbox and self._outbox_since + timeout <= now:
            # Never proposed: the Ready loop is stuck (storage keeps failing) since then.
            outbox, self._outbox = self._outbox, []
            exc = ProposalTimeout("not proposed within the proposal timeout: storage is failing",
                                  may_have_committed=False)
            for _, _, fut, _ in outbox:
                fail(fut, exc)
        dues = [expiring[0][0]] if expiring else []
        if self._outbox:
            dues.append(self._outbox_since + timeout)
        if dues and not node.closed:
            self._expiry_timer = node.loop.call_later(max(0.0, min(dues) - now),
                                                      self._expire_batches)

    def _submit(self, batch: _Batch) -> None:
        node = self.node
        if not self._leader_reachable():
            self._park(batch)  # no leader, or none we can reach
            return
        req = self._request_id()
        self._batches[req] = batch
        batch.sent = True
        if not node.is_leader:
            batch.sent_to = leader = node.leader
            assert leader is not None
            batch.timer = node.loop.call_later(node.nodes[leader].message_timeout,
                                               self._forward_timed_out, req)
        self.core.propose(req, batch.commands, batch.kind)

    def _forward_timed_out(self, req: int) -> None:
        batch = self._batches.pop(req, None)
        if batch is not None:
            for fut in batch.futures:
                fail(fut, ProposalTimeout("the leader did not answer in time"))

    def on_result(self, result: ProposalResult) -> None:
        """The core's answer to a proposal or configuration change of ours."""
        config_change = self._config_requests.pop(result.id, None)
        if config_change is not None:
            if result.index:
                self._await_entry(config_change, result.index, result.term)
            else:
                fail(config_change, MembershipChangeError(result.error or "not the leader"))
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
        if index <= self.node.last_applied:  # answers can be overtaken by the entries
            applied_term = self.core.term_at(index)
            if applied_term is None:  # and by a compaction: whose entry it was is gone
                _unknown(fut, index)
            else:
                _resolve(_Waiter(term, fut), index, applied_term)
        else:
            self._waiters[index] = _Waiter(term, fut)

    def _park(self, batch: _Batch) -> None:
        batch.sent_to = None
        self._parked_under = self.node.leader
        if not self._parked:
            node = self.node
            node.loop.call_later(node.config.heartbeat_frequency, self._retry_parked)
        self._parked.append(batch)

    def leader_known(self) -> None:
        """After a Ready round: parked batches need not wait for their retry timer when a
        *new* leader has appeared. One that refused them (it is handing leadership over) is
        asked again by the timer only: retrying in the same round would be refused again,
        and the Ready loop would never end."""
        if (self._parked and self.node.leader != self._parked_under
                and self._leader_reachable()):
            self._retry_parked()

    def _retry_parked(self) -> None:
        node = self.node
        if node.closed or not self._parked:
            return
        if not self._leader_reachable():
            node.loop.call_later(node.config.heartbeat_frequency, self._retry_parked)
            return
        parked, self._parked = self._parked, []
        for batch in parked:
            live = [(c, f) for c, f in zip(batch.commands, batch.futures, strict=True)
                    if not f.done()]
            if live:
                batch.commands = [c for c, _ in live]
                batch.futures = [f for _, f in live]
                self._submit(batch)
        node.kick()

    # ------------------------------------------------------------------ membership, reads

    def change_config(self, config: ClusterConfig) -> asyncio.Future[int]:
        node = self.node
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if node.closed:
            fut.set_exception(RaftClosed(may_have_committed=False))
        elif not node.is_leader:
            fut.set_exception(NotLeaderError("membership changes are made on the leader",
                                             leader=node.leader))
        else:
            req = self._request_id()
            self._config_requests[req] = fut
            self.core.change_config(req, config)
            node.kick()
        return fut

    def ask_read_index(self) -> asyncio.Future[int]:
        """One ReadIndex request: resolves to the index (0: no leader confirmed it)."""
        node = self.node
        fut: asyncio.Future[int] = node.loop.create_future()
        req = self._request_id()
        asked = None if node.is_leader else node.leader
        self._read_requests[req] = (fut, asked)
        self.core.read_index(req)
        if asked is not None:  # a lost request or answer must not hang the read
            timeout = node.nodes[asked].message_timeout if asked in node.nodes else 1.0
            node.loop.call_later(timeout, self.on_read, ReadState(req, 0, asked))
        node.kick()
        return fut

    def on_read(self, state: ReadState) -> None:
        pending = self._read_requests.get(state.id)
        if pending is None or pending[1] != state.src:
            return  # answered already, or an answer from someone we did not ask
        del self._read_requests[state.id]
        if not pending[0].done():
            pending[0].set_result(state.index)

    # ------------------------------------------------------------------ sessions

    async def propose_in_session(self, session: ClientSession, seq: int, command: Any,
                                 timeout: float | None) -> int:
        """Propose ``command`` as ``seq`` of ``session`` until its outcome is known."""
        node = self.node
        loop = asyncio.get_running_loop()
        proposal_timeout = node.config.proposal_timeout
        deadline = loop.time() + (6 * proposal_timeout if timeout is None else timeout)
        key = (session.id, seq)
        outcome = self._session_waiters[key] = loop.create_future()
        delay = node.config.heartbeat_frequency
        # A number is surely new on its first attempt in a session this client opened; a
        # resumed session may be retrying it (e.g. after the client restarted).
        first_attempt = not session.resumed
        try:
            while True:
                attempt = self.propose([session.id, seq, session.ack, command], SESSION)
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
                delay = min(2 * delay, proposal_timeout)
        finally:
            del self._session_waiters[key]

    def session_applied(self, index: int, key: tuple[int, int], verdict: str,
                        first: int) -> None:
        """The session entry at ``index`` got ``verdict``: remember it if someone here waits
        on ``key``; it is told once the entry counts as applied."""
        if key in self._session_waiters:
            self._session_outcomes[index] = (key, verdict, first)

    # ------------------------------------------------------------------ outcomes

    def applied(self, index: int, term: int) -> None:
        """The entry ``(index, term)`` was applied here: resolve whoever waits on it."""
        waiter = self._waiters.pop(index, None)
        if waiter is not None:
            _resolve(waiter, index, term)
        if self._session_outcomes:
            self._session_outcome(index)

    def snapshot_loaded(self, index: int) -> None:
        """A snapshot up to ``index`` replaced the entries until there."""
        for waiting in [i for i in self._waiters if i <= index]:
            waiter = self._waiters.pop(waiting)
            entry_term = self.core.term_at(waiting)
            if entry_term is None:  # compacted before we saw it: we cannot tell whose entry
                _unknown(waiter.future, waiting)
            else:
                _resolve(waiter, waiting, entry_term)

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

    def drop_dead_waiters(self, term: int) -> None:
        """An entry of ``term`` committed: entries of older terms at later indexes can never
        commit (terms only grow along a log), so their proposals have certainly failed."""
        dead = [i for i, w in self._waiters.items() if w.term < term]
        for index in dead:
            waiter = self._waiters.pop(index)
            fail(waiter.future, LeadershipLost(
                f"entry {index} of term {waiter.term} was superseded by term {term}"))

    def close(self) -> None:
        """Fail every pending outcome: the node is closing."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        for batch in [*self._batches.values(), *self._parked]:
            if batch.timer is not None:
                batch.timer.cancel()
            for fut in batch.futures:
                fail(fut, RaftClosed(may_have_committed=batch.sent))
        for _, _, fut, _ in self._outbox:
            fail(fut, RaftClosed(may_have_committed=False))
        for waiter in self._waiters.values():
            fail(waiter.future, RaftClosed())
        for fut in self._config_requests.values():
            fail(fut, RaftClosed())
        for fut, _ in self._read_requests.values():
            fail(fut, RaftClosed(may_have_committed=False))
        self._config_requests.clear()
        self._read_requests.clear()
        self._batches.clear()
        self._parked.clear()
        self._outbox.clear()
        self._waiters.clear()


def _unknown(fut: asyncio.Future[int], index: int) -> None:
    """Entry ``index`` was applied here, but it was compacted before this node could tell
    whether it was the caller's: it may be (a ``ProposalTimeout``, never a ``LeadershipLost``,
    which would say it certainly is not)."""
    fail(fut, ProposalTimeout(f"entry {index} was compacted into a snapshot before its "
                              "outcome was known here; it may have committed"))


def _resolve(waiter: _Waiter, index: int, term: int | None) -> None:
    if waiter.future.done():
        return
    if waiter.term == term:
        waiter.future.set_result(index)
    else:
        waiter.future.set_exception(LeadershipLost(
            f"index {index} was taken by a leader of term {term}"))


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


def fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail ``fut`` unless it has an outcome already."""
    if not fut.done():
        fut.set_exception(exc)

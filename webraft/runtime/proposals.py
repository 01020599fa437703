"""Proposals on their way to the log: outbox, batches, forwarding, resending, expiry, waiters.

Owns every caller's future from :meth:`~webraft.RaftInterface.propose` (and configuration
changes, read-index requests, session proposals) until it has an outcome, and this node's
implicit client session. Imports the core's types and the errors; it must not import the
driver, the applier or the membership policy, which it reaches through the node.

Every command is proposed in a client session (Raft thesis §6.3): a plain ``propose`` in this
node's *implicit* session, a :class:`~webraft.runtime.sessions.ClientSession`'s in its own.
``(client, seq)`` is the proposal's one identity from the outbox to the apply: the replicated
session table applies it once, however many copies reach the log, and answers every copy
with the index of the first. So a proposal whose fate is unknown is simply sent again:

* it waits in the *outbox* for the end of its loop turn, then travels in a *batch*, appended
  by this leader, forwarded to the leader, or *parked* while there is none;
* once a leader appended it, it is *held* at that index until the entry is applied here;
* a forward whose answer is lost or whose leader changed or stepped down, an entry that
  another term's entry replaced: each sends it again, to the leader known now, at once;
* it fails with :class:`~webraft.errors.ProposalTimeout` only when no leader took it (appended
  it) for ``proposal_timeout``: its clock runs while it is not held; or sooner, when no
  leader holds it and this node is *cut off* (it knew a leader, then none for
  ``cut_off_after``): a leader elsewhere cannot reach it, and its caller retries elsewhere.

A proposal outside any session (a session's opening entry, a configuration change) keeps the
older rule: an index and a term, and an outcome lost with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.messages import (
    MAX_COMMAND_BYTES,
    MAX_DEPTH,
    SESSION,
    Entry,
    SessionRun,
    check_command,
)
from ..core.raft import ProposalResult, ReadState
from ..core.sessions import APPLY, DUPLICATE, EXPIRED
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
from .sessions import ClientSession

if TYPE_CHECKING:
    from .interface import RaftInterface

logger = logging.getLogger("webraft")

INF = float("inf")


@dataclass(slots=True, eq=False)
class _Proposal:
    """One command from the outbox to its outcome."""

    command: Any  # the caller's command (outside a session: the whole entry)
    size: int
    future: asyncio.Future[int]
    session: ClientSession | None = None  # None: outside any session
    seq: int = 0
    #: It fails unless a leader takes it by then; INF while a leader holds it.
    deadline: float = INF
    #: Copies sent whose fate is unknown: 0 means it certainly is in no log.
    unsure: int = 0
    #: Where a leader appended it (0: nowhere known now), and in which term.
    index: int = 0
    term: int = 0

    def unheld(self, why: str) -> ProposalError:
        """The error for giving it up while no leader holds it (``why``): it may still commit
        if a copy was sent."""
        if self.unsure:
            return ProposalTimeout(f"{why}; it was sent and may still commit",
                                   seq=self.seq if self.session is not None else None)
        return NoLeaderError(f"{why}; it was never sent")


@dataclass(slots=True)
class _Batch:
    """Proposals that travel together until a leader appends them."""

    proposals: list[_Proposal]
    sent_to: str | None = None  # the leader it was forwarded to, None when local or parked
    timer: asyncio.TimerHandle | None = None  # waiting for the forwarded-to leader's answer


class Proposals:
    """This node's proposals, configuration changes and reads until their outcomes."""

    def __init__(self, node: RaftInterface) -> None:
        self.node = node
        self.core = node.core
        rng = node.config.rng
        #: This node's implicit session: a nonce per incarnation, so that a restarted node
        #: never reuses a number its previous incarnation may have had applied.
        self.implicit = ClientSession(node, f"{node.address}/{rng.getrandbits(48):012x}")
        self._outbox: list[_Proposal] = []
        self._outbox_since = 0.0  # when the oldest proposal in the outbox was made
        self._expiring: deque[tuple[float, list[_Proposal]]] = deque()  # by deadline
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._batches: dict[int, _Batch] = {}  # by request id, until a leader answers
        self._parked: list[_Batch] = []  # waiting for a leader
        self._parked_under: str | None = None  # the leader known when one was last parked
        self._cut_off = False  # see cut_off
        self._cut_off_timer: asyncio.TimerHandle | None = None
        #: Proposals a leader appended, by log index, until that entry is applied here.
        self.held: dict[int, _Proposal] = {}
        #: This node's proposals in explicit sessions without an outcome yet, by (client,
        #: seq); those of the implicit session are its ``waiting``, by seq. The applier, for
        #: every session entry, asks whether either has any (dicts, not a property: that is
        #: once per entry).
        self.waiting: dict[tuple[int | str, int], _Proposal] = {}
        self._config_requests: dict[int, asyncio.Future[int]] = {}  # by request id
        self._read_requests: dict[int, tuple[asyncio.Future[int], str | None]] = {}
        #: The proposal of this node whose copy is being applied here (one entry is applied
        #: at a time); that entry's index, what the session table said of it and the first
        #: copy's index follow. It is told once the entry counts as applied. With nothing
        #: here or :attr:`held`, :meth:`applied` has nothing to do: the applier skips it.
        self.settling: _Proposal | None = None
        self._outcome_at = 0
        self._verdict = ""
        self._first = 0
        # Request ids are random per incarnation so a restarted node never reuses one.
        self._next_req = rng.randrange(1 << 52)

    def _request_id(self) -> int:
        req = self._next_req
        self._next_req += 1
        return req

    @property
    def cut_off(self) -> bool:
        """This node knew a leader (itself included), then none for ``config.cut_off_after``
        (see :meth:`_on_cut_off`), and knows none still."""
        return self._cut_off and self.node.leader is None

    def _leader_reachable(self) -> bool:
        node = self.node
        return node.is_leader or node.leader in node.nodes

    # ------------------------------------------------------------------ proposing

    def propose(self, command: Any, decoded: bool = False) -> asyncio.Future[int]:
        """A plain proposal: the next number of the implicit session."""
        implicit = self.implicit
        return self._propose(command, implicit, implicit.next_seq, decoded)

    def open_session(self) -> asyncio.Future[int]:
        """Propose a session's opening entry (it is in no session itself): resolves to the
        new session's id."""
        return self._propose([0, 0, 0, None], None, 0, True)

    def propose_in(self, session: ClientSession, seq: int, command: Any,
                   decoded: bool = False) -> asyncio.Future[int]:
        """Propose ``command`` as ``seq`` of ``session``, until a leader took it for good or
        none took it within ``proposal_timeout``."""
        return self._propose(command, session, seq, decoded)

    def _propose(self, command: Any, session: ClientSession | None, seq: int,
                 decoded: bool) -> asyncio.Future[int]:
        node = self.node
        # A plain Future, not loop.create_future(): Pyodide's loop makes futures whose every
        # completion costs a browser task, and a burst resolves thousands of these.
        fut: asyncio.Future[int] = asyncio.Future(loop=asyncio.get_running_loop())
        if node.closed:
            fut.set_exception(RaftClosed(may_have_committed=False))
            return fut
        if not node.config.forward_proposals and not node.is_leader:
            fut.set_exception(NotLeaderError(leader=node.leader))
            return fut
        try:
            command, size = _normalize(command, node.config.max_command_bytes, decoded)
        except InvalidCommand as exc:
            fut.set_exception(exc)
            return fut
        proposal = _Proposal(command, size, fut, session, seq)
        if session is self.implicit:  # its number is used now
            session.waiting[seq] = proposal
            session.next_seq = seq + 1
        elif session is not None:
            self.waiting[(session.id, seq)] = proposal
        outbox = self._outbox
        outbox.append(proposal)
        if len(outbox) == 1:  # the others of this turn kicked the Ready round already
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
        deadline = self.node.loop.time() + self.node.config.proposal_timeout
        for proposal in outbox:
            if proposal.future.done():
                self._forget(proposal)  # cancelled by its caller before it left
                continue
            if size + proposal.size > BATCH_BYTES:
                batches.append(_Batch([]))
                size = 0
            proposal.deadline = deadline
            batches[-1].proposals.append(proposal)
            size += proposal.size
        for batch in batches:
            # The batch's own list: on_result empties it once a leader appended them.
            self._expiring.append((deadline, batch.proposals))
            self._submit(batch)
        self._arm_expiry()

    def _arm_expiry(self) -> None:
        node = self.node
        if self._expiry_timer is None and not node.closed:
            self._expiry_timer = node.loop.call_later(node.config.proposal_timeout,
                                                      self._expire)

    def _expire(self) -> None:
        """One timer for all pending proposals: their clocks start in order (each runs for
        ``proposal_timeout`` from the moment no leader held the proposal)."""
        self._expiry_timer = None
        node = self.node
        timeout = node.config.proposal_timeout
        expiring = self._expiring
        now = node.loop.time()
        while expiring and expiring[0][0] <= now:
            for proposal in expiring.popleft()[1]:
                if proposal.deadline <= now:
                    self._fail(proposal, proposal.unheld(f"no leader took it within {timeout} s"))
        if self._outbox and self._outbox_since + timeout <= now:
            # Never proposed: the Ready loop is stuck (storage keeps failing) since then.
            outbox, self._outbox = self._outbox, []
            exc = ProposalTimeout("not proposed within the proposal timeout: storage is failing",
                                  may_have_committed=False)
            for proposal in outbox:
                self._fail(proposal, exc)
        dues = [expiring[0][0]] if expiring else []
        if self._outbox:
            dues.append(self._outbox_since + timeout)
        if dues and not node.closed:
            self._expiry_timer = node.loop.call_later(max(0.0, min(dues) - now),
                                                      self._expire)

    def _submit(self, batch: _Batch, req: int | None = None) -> None:
        """Hand ``batch`` to the leader (as request ``req``: a copy of an earlier request,
        which the leader answers as it answered that one; None: a new request)."""
        node = self.node
        if not self._leader_reachable():
            self._park(batch)  # no leader, or none we can reach
            return
        if req is None:
            req = self._request_id()
        self._batches[req] = batch
        # The batch as runs of one session's consecutive numbers: most often one run.
        runs: list[SessionRun] = []
        run: list[Any] = []
        last: ClientSession | None = None
        follows = 0  # the seq that continues the current run
        for proposal in batch.proposals:
            proposal.unsure += 1
            session, seq = proposal.session, proposal.seq
            if session is last and seq == follows and session is not None:
                run.append(proposal.command)
            elif session is None:  # a session's opening entry: [0, 0, 0, null]
                client, seq, ack, command = proposal.command
                runs.append((client, seq, ack, [command]))
                last = None
            else:
                run = [proposal.command]
                runs.append((session.id, seq, session.ack, run))
                last = session
            follows = seq + 1
        if not node.is_leader:
            batch.sent_to = leader = node.leader
            assert leader is not None
            batch.timer = node.loop.call_later(node.nodes[leader].message_timeout,
                                               self._forward_timed_out, req)
        self.core.propose(req, runs, SESSION)

    def _resend(self, proposals: list[_Proposal], why: str) -> None:
        """Send proposals whose fate is unknown again, to the leader known now: the session
        table applies each once. Their clocks run again if a leader held them. One outside
        any session cannot be sent twice safely: it fails (its outcome is unknown)."""
        node = self.node
        live = []
        deadline = node.loop.time() + node.config.proposal_timeout
        restarted = []
        for proposal in proposals:
            if proposal.future.done():
                self._forget(proposal)
            elif proposal.session is None:
                fail(proposal.future, ProposalTimeout(why))
            else:
                proposal.index = 0
                if proposal.deadline == INF:
                    proposal.deadline = deadline
                    restarted.append(proposal)
                live.append(proposal)
        if restarted:
            self._expiring.append((deadline, restarted))
            self._arm_expiry()
        if live:
            self._submit(_Batch(live))
            node.kick()

    def _forward_timed_out(self, req: int) -> None:
        """No answer from the leader: the request or its answer was lost (or it is slow).
        The same leader gets the same request again, so that it answers with the index it
        gave the first copy rather than append the commands twice."""
        batch = self._batches.pop(req, None)
        if batch is None:
            return
        live = self._live(batch.proposals)
        if live and batch.sent_to == self.node.leader and self._leader_reachable():
            batch.proposals = live
            self._submit(batch, req)
            self.node.kick()
        else:
            self._resend(batch.proposals, "the leader did not answer in time")

    def on_result(self, result: ProposalResult) -> None:
        """The core's answer to a proposal or configuration change of ours."""
        config_change = self._config_requests.pop(result.id, None)
        if config_change is not None:
            if result.index:
                self._hold([_Proposal(None, 0, config_change, unsure=1)], result.index,
                           result.term)
            else:
                fail(config_change, MembershipChangeError(result.error or "not the leader"))
            return
        batch = self._batches.get(result.id)
        if batch is None or result.src != batch.sent_to:
            return  # resent already, or an answer from someone we did not ask
        del self._batches[result.id]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if result.index == 0:
            # Certainly not appended: retry with the next leader.
            for proposal in batch.proposals:
                proposal.unsure -= 1
            self._park(batch)
            return
        proposals = batch.proposals
        self._hold(proposals, result.index, result.term)
        # None of them can expire now (a leader holds each, or it has its outcome), but the
        # list is their expiry record too (see flush_outbox): emptied, it no longer keeps
        # them, and their futures, alive until the record's deadline.
        proposals.clear()

    def _hold(self, proposals: list[_Proposal], index: int, term: int) -> None:
        """A leader appended ``proposals`` at ``index``, ``index + 1``, ... of ``term``: each
        without an outcome yet waits for its entry to be applied here (or is sent again if
        another entry takes the slot)."""
        applied = self.node.last_applied
        held = self.held
        for proposal in proposals:
            if not proposal.future.done():
                proposal.index, proposal.term, proposal.deadline = index, term, INF
                if index > applied:
                    held[index] = proposal
                else:
                    self._held_applied(proposal, index, term)
            index += 1

    def _held_applied(self, proposal: _Proposal, index: int, term: int) -> None:
        """A leader's answer for ``proposal`` came after its entry was applied here (answers
        can be overtaken by the entries, and by a compaction)."""
        applied_term = self.core.term_at(index)
        if proposal.session is not None:
            self._settle_from_table(proposal, applied_term == term)
        elif applied_term is None:  # whose entry it was is gone
            _unknown(proposal.future, index)
        else:
            _resolve(proposal, index, applied_term)

    def _settle_from_table(self, proposal: _Proposal, applied: bool = False) -> None:
        """Settle a session proposal by what the session table says of it: applied (at the
        first copy's index), or not (sent again). ``applied``: a copy certainly was."""
        session = proposal.session
        assert session is not None
        first = self.node.applier.sessions.applied_at(session.id, proposal.seq)
        if first is not None:
            self._succeed(proposal, first)
        elif not applied:
            self._resend([proposal], "its entry was replaced")

    def _park(self, batch: _Batch) -> None:
        if self.cut_off:  # no leader worth waiting for here
            self._give_up(batch.proposals)
            return
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
            live = self._live(batch.proposals)
            if live:
                self._submit(_Batch(live))
        node.kick()

    def leader_changed(self, leader: str | None) -> None:
        """The core knows another leader (or none): forwards still unanswered go to
        ``leader`` now, not after a timeout (thesis §6.3: whichever copy commits first is
        applied, once).

        Proposals a former leader appended need no copy yet: the new leader's first entry
        (its no-op) tells, once it is applied here, whether each was kept (it commits with
        it) or lost (another entry took its index, or its term is dead), and only the lost
        ones are sent again. Meanwhile their clocks run while no leader is known.

        Reads asked of a former leader are answered "no index" at once, so that they are
        asked again of the new one rather than wait out ``message_timeout``."""
        self._watch_leader(leader)
        for req, (_, asked) in list(self._read_requests.items()):
            if asked is not None and asked != leader:
                self.on_read(ReadState(req, 0, asked))
        stale = [req for req, batch in self._batches.items()
                 if batch.sent_to is not None and batch.sent_to != leader]
        for req in stale:
            batch = self._batches.pop(req)
            if batch.timer is not None:
                batch.timer.cancel()
            self._resend(batch.proposals, "its leader changed")
        commit = self.core.commit_index
        deadline = self.node.loop.time() + self.node.config.proposal_timeout
        unheld = []
        for index, proposal in self.held.items():
            if (index <= commit or proposal.session is None or proposal.index != index
                    or proposal.future.done()):
                continue  # committed (it will be applied here), or settled elsewhere
            if leader is not None:
                proposal.deadline = INF  # the new leader may hold it: its no-op tells
            elif proposal.deadline == INF:  # no leader holds it any more
                proposal.deadline = deadline
                unheld.append(proposal)
        if unheld:
            self._expiring.append((deadline, unheld))
            self._arm_expiry()

    def _watch_leader(self, leader: str | None) -> None:
        """Arm the cut-off timer when this node stops knowing a leader; disarm it (and end
        the cut-off) when it knows one. The core reports no leader only after one: a node
        that never knew one (starting, or a tab waiting to be added) is never cut off, and
        its proposals wait for the first leader."""
        node = self.node
        if leader is not None:
            self._cut_off = False
            if self._cut_off_timer is not None:
                self._cut_off_timer.cancel()
                self._cut_off_timer = None
        elif not self._cut_off and self._cut_off_timer is None and not node.closed:
            self._cut_off_timer = node.loop.call_later(node.config.cut_off_after,
                                                       self._on_cut_off)

    def _on_cut_off(self) -> None:
        """This node knew a leader and has known none for ``cut_off_after``, longer than an
        election takes: it is cut off from a majority (or the cluster has none), and a leader
        elsewhere cannot reach it. Waiting here would only keep its callers from that
        leader: every proposal that no leader holds fails now, and every new one at once,
        until a leader is known again. A sent one fails as "may have committed", so that its
        caller retries it through another member under the same request id or session
        number, and it is applied once."""
        self._cut_off_timer = None
        if self.node.closed or self.node.leader is not None:
            return  # the core just learned of one: its LeaderChanged is on its way
        self._cut_off = True
        expiring, self._expiring = self._expiring, deque()
        self._parked = []  # every parked proposal is in _expiring too
        self._give_up([proposal for _, proposals in expiring for proposal in proposals
                       if proposal.deadline != INF])  # INF: a leader holds it again

    def _give_up(self, proposals: list[_Proposal]) -> None:
        """Fail ``proposals``: this node is cut off."""
        why = self._cut_off_why()
        for proposal in proposals:
            self._fail(proposal, proposal.unheld(why))

    def _cut_off_why(self) -> str:
        return f"cut off: no leader known for {self.node.config.cut_off_after:g} s"

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
        if self.cut_off:
            fut.set_exception(NoLeaderError(self._cut_off_why()))
            return fut
        if node.config.read_lease and node.is_leader:
            # The core's clock moves on ticks and messages only: a leader must judge its
            # lease by the time of this read, not of its last tick (a blocked loop may lie
            # between).
            node.driver.tick()
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
        """Propose ``command`` as ``seq`` of an explicit ``session`` until its outcome is
        known or ``timeout`` is over: what the implicit session's single attempt does, sent
        again (same number, so applied once) while no leader takes it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (6 * self.node.config.proposal_timeout if timeout is None
                                  else timeout)
        # A number is surely new on its first attempt in a session this client opened; a
        # resumed session may be retrying it (e.g. after the client restarted).
        first_attempt = not session.resumed
        while True:
            attempt = self.propose_in(session, seq, command)
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait((attempt,), timeout=remaining)
            if not attempt.done():
                attempt.cancel()  # withdrawn: the table still applies its copies once
                raise ProposalTimeout(f"session {session.id} seq {seq}: no outcome in time",
                                      seq=seq)
            error = attempt.exception()
            if error is None:
                return attempt.result()
            if isinstance(error, SessionExpired) and not first_attempt:
                raise SessionExpired(f"{error}; an earlier attempt of seq {seq} may have "
                                     "been applied", may_have_committed=True)
            first_attempt = False
            if not isinstance(error, ProposalTimeout | NoLeaderError) or (
                    loop.time() >= deadline):
                raise error
            await asyncio.sleep(self.node.config.heartbeat_frequency)

    def session_applied(self, entry: Entry, verdict: str, first: int) -> None:
        """The session ``entry`` got ``verdict``: remember it if it is a proposal of this
        node's; it is told once the entry counts as applied."""
        client = entry.client
        implicit = self.implicit
        if client == implicit.id:
            proposal = implicit.waiting.get(entry.seq)
        else:
            proposal = self.waiting.get((client, entry.seq))  # type: ignore[arg-type]  # not None
        if proposal is not None:
            self.settling, self._outcome_at = proposal, entry.index
            self._verdict, self._first = verdict, first

    # ------------------------------------------------------------------ outcomes

    def applied(self, index: int, term: int) -> None:
        """The entry ``(index, term)`` was applied here: settle whoever waits on it."""
        settled = self.settling
        waiters = self.held
        if settled is not None and self._outcome_at == index:
            self.settling = None
            if self._verdict == APPLY:  # the common case, without a call more
                self._succeed(settled, self._first)
            else:
                self._session_outcome(settled, self._verdict, self._first)
            if waiters.get(index) is settled:  # held here: its own copy settled it
                del waiters[index]
                return
        if not waiters:
            return
        proposal = waiters.pop(index, None)
        if proposal is None or proposal.index != index:
            return
        if proposal.future.done():
            if proposal.future.cancelled():
                self._forget(proposal)  # its caller gave up; its number is not waited for
        elif proposal.session is None:
            _resolve(proposal, index, term)
        else:  # another entry took its slot (its own copy would have settled it)
            self._resend([proposal], "its entry was replaced")

    def snapshot_loaded(self, index: int) -> None:
        """A snapshot up to ``index`` replaced the entries until there (and the session table
        with the snapshot's)."""
        sessions = self.node.applier.sessions
        implicit = self.implicit
        mine = [*self.waiting.items(),
                *(((implicit.id, seq), p) for seq, p in implicit.waiting.items())]
        for key, proposal in mine:
            first = sessions.applied_at(*key)
            if first is not None:  # a copy is in the snapshot, wherever it was sent
                self._succeed(proposal, first)
        for waiting in [i for i in self.held if i <= index]:
            proposal = self.held.pop(waiting)
            if proposal.index != waiting or proposal.future.done():
                continue
            entry_term = self.core.term_at(waiting)
            if proposal.session is not None:  # not in the table: its slot went to another
                self._resend([proposal], "its entry was replaced")
            elif entry_term is None:  # compacted before we saw it: we cannot tell whose entry
                _unknown(proposal.future, waiting)
            else:
                _resolve(proposal, waiting, entry_term)

    def _session_outcome(self, proposal: _Proposal, verdict: str, first: int) -> None:
        session = proposal.session
        assert session is not None
        if verdict == EXPIRED:
            self._fail(proposal, SessionExpired(
                f"session {session.id} is unknown to the cluster",
                may_have_committed=session.resumed))
        elif verdict == DUPLICATE and not first:
            self._fail(proposal, WebraftError(  # the client said it no longer waits
                f"seq {proposal.seq} of session {session.id} was acknowledged already"))
        else:
            self._succeed(proposal, first)

    def _succeed(self, proposal: _Proposal, index: int) -> None:
        if not proposal.future.done():
            proposal.future.set_result(index)
        self._forget(proposal)

    def _fail(self, proposal: _Proposal, exc: BaseException) -> None:
        fail(proposal.future, exc)
        self._forget(proposal)

    def _live(self, proposals: list[_Proposal]) -> list[_Proposal]:
        """The proposals still without an outcome; the others (a caller may cancel its
        future) are forgotten."""
        live = []
        for proposal in proposals:
            if proposal.future.done():
                self._forget(proposal)
            else:
                live.append(proposal)
        return live

    def _forget(self, proposal: _Proposal) -> None:
        """``proposal`` has its outcome: its number is no longer waited for."""
        session = proposal.session
        if session is None:
            return
        waiting: dict[Any, _Proposal]
        key: Any
        if session is self.implicit:
            waiting, key = session.waiting, proposal.seq
        else:  # a ClientSession's own propose keeps its number in its waiting until done
            waiting, key = self.waiting, (session.id, proposal.seq)
        if waiting.get(key) is proposal:
            del waiting[key]

    def drop_dead_waiters(self, term: int) -> None:
        """An entry of ``term`` committed: entries of older terms at later indexes can never
        commit (terms only grow along a log): session proposals held there are sent again,
        the others have certainly failed."""
        dead = [i for i, w in self.held.items() if w.term < term]
        again = []
        for index in dead:
            proposal = self.held.pop(index)
            if proposal.index != index:
                continue
            if proposal.session is not None:
                again.append(proposal)  # _resend forgets it if its caller cancelled it
            else:
                fail(proposal.future, LeadershipLost(
                    f"entry {index} of term {proposal.term} was superseded by term {term}"))
        if again:
            self._resend(again, "its entry was superseded")

    def close(self) -> None:
        """Fail every pending outcome: the node is closing."""
        for timer in (self._expiry_timer, self._cut_off_timer):
            if timer is not None:
                timer.cancel()
        for batch in [*self._batches.values(), *self._parked]:
            if batch.timer is not None:
                batch.timer.cancel()
        for proposal in [*self.waiting.values(), *self.implicit.waiting.values(),
                         *self._outbox, *self.held.values(),
                         *(p for b in [*self._batches.values(), *self._parked]
                           for p in b.proposals)]:
            fail(proposal.future, RaftClosed(may_have_committed=bool(proposal.unsure)))
        for fut in self._config_requests.values():
            fail(fut, RaftClosed())
        for fut, _ in self._read_requests.values():
            fail(fut, RaftClosed(may_have_committed=False))
        self._config_requests.clear()
        self._read_requests.clear()
        self._batches.clear()
        self._parked.clear()
        self._outbox.clear()
        self.held.clear()
        self.waiting.clear()
        self.implicit.waiting.clear()


def _unknown(fut: asyncio.Future[int], index: int) -> None:
    """Entry ``index`` was applied here, but it was compacted before this node could tell
    whether it was the caller's: it may be (a ``ProposalTimeout``, never a ``LeadershipLost``,
    which would say it certainly is not)."""
    fail(fut, ProposalTimeout(f"entry {index} was compacted into a snapshot before its "
                              "outcome was known here; it may have committed"))


def _resolve(waiter: _Proposal, index: int, term: int | None) -> None:
    """A proposal outside any session: it is the entry at ``index`` if the terms agree."""
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


def fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail ``fut`` unless it has an outcome already."""
    if not fut.done():
        fut.set_exception(exc)

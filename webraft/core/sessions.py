"""Exactly-once proposals: client sessions in the replicated state (Raft thesis §6.3).

Owns :class:`SessionTable` and the snapshot packing. Imports the core's messages and
:mod:`webraft.errors` only; never the runtime (whose client side is
:mod:`webraft.runtime.sessions`).

A proposal whose outcome is unknown (a timeout, a lost leader) may still commit, so a caller
that simply retries may apply its command twice. A *session* gives each command of a client
a sequence number; every node keeps, as part of the replicated state, which numbers of each
session were applied and at which index. A retry of a number already applied is not applied
again: it returns the index of the first application.

Everything here is deterministic, so every node's table is the same after the same entries:

* a session is opened by a ``SESSION`` entry ``[0, 0, 0, null]``; its id is that entry's
  index (unique, and known to every node);
* a command is ``[client, seq, ack, command]``: ``ack`` is the lowest number the client still
  waits for, so results below it are dropped from the table (it never asks again);
* every node also proposes its plain commands through an *implicit* session, whose id is a
  string, the node's address and a nonce drawn per incarnation (so a restarted node never
  reuses an old number). It needs no opening entry: its first command creates it, and
  *retires* the sessions of the node's earlier incarnations (same address): their results
  are dropped and any late copy of their commands is answered as a duplicate, never applied
  (nobody waits for them any more), so a member that restarts often does not grow the table;
* at most :data:`MAX_SESSIONS` sessions are kept; opening one more (explicitly or implicitly)
  expires the session least recently used *in log order*, so only idle ones go. A command of
  an expired (or unknown) explicit session is not applied and fails with
  :class:`~webraft.errors.SessionExpired`: without its history, the node could not tell a
  retry from a new command. An implicit session forgotten that way would start afresh: a
  node retries a command only while its caller waits (``proposal_timeout`` without a
  leader), so its session is idle only once every retry is over.

The table travels in snapshots next to the application's state: :func:`pack_snapshot` and
:func:`unpack_snapshot` are the one place that knows that layout. Pure and deterministic like
the rest of the core: imports nothing outside it (the runtime's ``ClientSession`` is the
client side).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import MessageError, StorageError
from .messages import MAX_CLIENT, MAX_INT, Entry, check_int

#: Sessions kept; the same on every node (it decides expiry, which must agree everywhere).
MAX_SESSIONS = 4096
#: The ``ack`` of a retired session: every number is below it.
RETIRED = MAX_INT

OPEN, APPLY, DUPLICATE, EXPIRED = "open", "apply", "duplicate", "expired"


@dataclass(slots=True)
class _Session:
    """One session's results: the seqs in ``[low, high)`` applied at the consecutive indexes
    from ``at`` (a *run*), the others in ``done``; every seq recorded is below ``high``.

    A node's proposals mostly reach the log as such a run (numbered in order, appended in
    batches), so each is recorded by moving ``high`` rather than by a dict entry that the
    pruning below would copy again."""

    ack: int = 0  # the client has the results of every seq below this
    done: dict[int, int] = field(default_factory=dict)  # seq -> index, outside the run
    prune_at: int = 16  # drop the results below ack once done has this many
    low: int = 0
    high: int = 0
    at: int = 0  # the index of seq low
    next_at: int = 0  # the index that continues the run (0: none does)

    def first(self, seq: int) -> int | None:
        """The index where ``seq`` was applied, if recorded (and not below ``ack``)."""
        if self.low <= seq < self.high:
            return self.at + seq - self.low
        return self.done.get(seq)

    def record(self, seq: int, index: int) -> None:
        """``seq``, new to this session, applied at ``index`` (the run's continuation is
        recorded inline by :meth:`SessionTable.apply`)."""
        if seq < self.high:
            self.done[seq] = index  # a late copy of an older number, out of order
            return
        if self.low < self.high:  # a gap in seq or index: the run so far goes to done
            self.done.update(zip(range(self.low, self.high), range(self.at, self.next_at),
                                 strict=True))
            if len(self.done) >= self.prune_at:
                self._prune()
        self.low, self.high, self.at, self.next_at = seq, seq + 1, index, index + 1

    def acknowledge(self, ack: int) -> None:
        """The client has every result below ``ack`` (higher than :attr:`ack`): drop them."""
        self.ack = ack
        low = self.low
        if ack > low:
            if ack >= self.high:  # the whole run: an empty one, which seq ack may continue
                self.low = self.high = ack
                self.at = self.next_at
            else:
                self.at += ack - low
                self.low = ack
        if len(self.done) >= self.prune_at:
            self._prune()

    def _prune(self) -> None:
        """Nothing reads results below ack: drop them in bulk, once the map has doubled, so
        that each result costs O(1) however many a client keeps in flight."""
        ack = self.ack
        self.done = done = {s: i for s, i in self.done.items() if s >= ack}
        self.prune_at = 2 * len(done) + 16

    def results(self) -> list[list[int]]:
        """``[seq, index]`` of every result kept, in the order they were applied."""
        ack = self.ack
        pairs = [[seq, i] for seq, i in self.done.items() if seq >= ack]
        low = self.low
        pairs.extend([seq, self.at + seq - low] for seq in range(max(low, ack), self.high))
        pairs.sort(key=_index_of)
        return pairs

    def retire(self) -> None:
        self.ack, self.done = RETIRED, {}
        self.low = self.high = self.at = self.next_at = 0


def _index_of(pair: list[int]) -> int:
    return pair[1]


#: A session's id: the index of its opening entry (explicit) or a node's nonce (implicit).
ClientId = int | str


class SessionTable:
    """The replicated table of sessions; :meth:`apply` is called for every SESSION entry."""

    def __init__(self, capacity: int | None = None) -> None:
        """``capacity``: sessions kept (default :data:`MAX_SESSIONS`); every node of a cluster
        must use the same, since it decides expiry. The simulator makes it small so that
        sessions really expire."""
        self.capacity = MAX_SESSIONS if capacity is None else capacity
        self.sessions: dict[ClientId, _Session] = {}  # least recently used first
        # The most recently used session and its id (the last of ``sessions``): most entries
        # in a row come from one node's implicit session, and then need no reordering.
        self._recent: ClientId | None = None
        self._recent_session: _Session | None = None

    def apply(self, entry: Entry) -> tuple[str, int]:
        """Record ``entry``; return ``(OPEN, id)``, ``(APPLY, index)``, ``(DUPLICATE, index of
        the first application, or 0 if forgotten)`` or ``(EXPIRED, 0)``."""
        client: ClientId = entry.client  # type: ignore[assignment]  # never None in SESSION
        seq, ack = entry.seq, entry.ack
        session = self._recent_session
        if session is None or client != self._recent:
            if client == 0:
                self._open(entry.index)
                return OPEN, entry.index
            session = self._use(client)
            if session is None:
                return EXPIRED, 0
        if ack > session.ack:
            session.acknowledge(ack)
        if seq < session.ack:
            return DUPLICATE, 0
        index = entry.index
        if seq == session.high and index == session.next_at:  # the run goes on: inline
            session.high, session.next_at = seq + 1, index + 1
            return APPLY, index
        first = session.first(seq)
        if first is not None:
            return DUPLICATE, first
        session.record(seq, index)
        return APPLY, index

    def _use(self, client: ClientId) -> _Session | None:
        """``client``'s session, now the most recently used; None if it expired (or never
        was). An implicit session starts with its first command."""
        sessions = self.sessions
        session = sessions.get(client)
        if session is None:
            if client.__class__ is not str:
                return None
            return self._open(client)
        del sessions[client]
        sessions[client] = session
        self._recent, self._recent_session = client, session
        return session

    def _open(self, client: ClientId) -> _Session:
        sessions = self.sessions
        if client.__class__ is str:
            self._retire(str(client).rpartition("/")[0])
        session = sessions[client] = _Session()
        if len(sessions) > self.capacity:
            del sessions[next(iter(sessions))]
        self._recent, self._recent_session = client, session
        return session

    def _retire(self, address: str) -> None:
        """A new implicit session of the node at ``address``: its earlier incarnations are
        gone, so their sessions keep no results and apply nothing more."""
        for client, session in self.sessions.items():
            if (client.__class__ is str and session.ack != RETIRED
                    and str(client).rpartition("/")[0] == address):
                session.retire()

    def applied_at(self, client: ClientId, seq: int) -> int | None:
        """The index where ``seq`` of ``client`` was applied, if this table remembers it."""
        session = self.sessions.get(client)
        return None if session is None or seq < session.ack else session.first(seq)

    def to_json(self) -> list[Any]:
        return [[client, s.ack, s.results()] for client, s in self.sessions.items()]

    @classmethod
    def from_json(cls, data: Any, capacity: int | None = None) -> SessionTable:
        """Rebuild a table from a snapshot; raise :class:`StorageError` if it is malformed."""
        table = cls(capacity)
        try:
            if not isinstance(data, list):
                raise MessageError("sessions must be a list")
            for item in data:
                client, ack, done = item
                session = _Session(check_int(ack, "ack"))
                for seq, index in done:
                    session.done[check_int(seq, "seq")] = check_int(index, "index")
                if session.done:  # every seq recorded is below high
                    session.low = session.high = max(session.done) + 1
                if not (client.__class__ is str and 0 < len(client) <= MAX_CLIENT):
                    check_int(client, "client")
                table.sessions[client] = session
        except (MessageError, TypeError, ValueError) as exc:
            raise StorageError(f"malformed session table in a snapshot: {exc}") from None
        return table


_SNAPSHOT_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def pack_snapshot(state: Any, sessions: SessionTable) -> str:
    """A snapshot's text: the application's ``state`` and the session table, as compact JSON
    (non-ASCII kept as is). Raises TypeError, ValueError or RecursionError when ``state`` is
    not JSON (NaN and infinities included: no peer could read them back)."""
    return _SNAPSHOT_ENCODER.encode({"state": state, "sessions": sessions.to_json()})


def unpack_snapshot(text: str, capacity: int | None = None) -> tuple[Any, SessionTable]:
    """The application's state and the session table held by a snapshot's text (the layout
    ``{"state": ..., "sessions": ...}``); raise :class:`StorageError` if it is malformed."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StorageError(f"snapshot text is not JSON: {exc}") from None
    if not isinstance(data, dict) or "state" not in data:
        raise StorageError("snapshot text lacks the application's state")
    return data["state"], SessionTable.from_json(data.get("sessions", []), capacity)

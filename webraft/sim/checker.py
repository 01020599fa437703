"""Raft's safety properties, checked incrementally as the simulator runs.

Each check runs at the moment the property could break, so every step of a simulation is
covered without rescanning whole logs:

* **election safety**: at most one leader per term (checked whenever a node leads);
* **leader append-only**: a leader never overwrites or removes entries of its log;
* **log matching**: two persisted logs with an entry of the same index and term are identical
  up to it (a hash chain per persisted log, compared across nodes);
* **leader completeness**: a leader holds every entry committed in an earlier term;
* **state machine safety**: no two nodes apply different entries at one index, and each node
  applies indexes in order, without gaps; a snapshot a node installs holds exactly the
  committed commands up to its index;
* **linearizable reads** (checked by the simulation itself): a read index never misses a
  write that had completed when the read began;
* **exactly-once sessions**: every node's session table decides the same for each session
  entry (open, apply, duplicate, expired), so each ``(client, seq)`` changes the state
  machine at one index at most, on every node; tables in snapshots taken or loaded at one
  index are identical (what the clients were told is checked by :mod:`webraft.sim.sessions`);
* **configuration safety**: consecutive committed configurations differ by at most one
  voter, so their majorities always overlap;
* **durability**: persisted term and vote never go backwards, across restarts too, and every
  message leaves only after what it depends on (term, vote, acknowledged entries) is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.messages import CONFIG, AppendResponse, Entry, Message, VoteResponse
from ..core.raft import LEADER, RaftCore
from ..core.sessions import APPLY, EXPIRED
from ..core.state import HardState, SnapshotMeta, StorageUpdate


class SafetyViolation(AssertionError):
    """A Raft safety property was broken; the message says which and where."""


@dataclass(slots=True)
class _Disk:
    """What the checker knows of one node's persisted log."""

    hard: HardState = field(default_factory=HardState)
    chain: list[int] = field(default_factory=lambda: [0])  # chain[i]: hash of entries 1..i
    terms: list[int] = field(default_factory=lambda: [0])


def _link(prev: int, entry: Entry) -> int:
    return hash((prev, entry.term, entry.kind, repr(entry.command)))


class SafetyChecker:
    """Collects observations from every node and raises :class:`SafetyViolation`."""

    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}  # term -> leader
        self.committed: dict[int, tuple[int, Any]] = {}  # index -> (term, command)
        self.commit_term: dict[int, int] = {}  # index -> term of the leader that committed it
        self.max_committed = 0
        self.chains: dict[tuple[int, int], int] = {}  # (index, term) -> chain hash
        self.disks: dict[str, _Disk] = {}
        self.applied: dict[str, int] = {}
        self.leader_tail: dict[str, tuple[int, int, int]] = {}  # node -> (term, index, term)
        self.voters: tuple[str, ...] | None = None  # of the newest committed configuration
        self.session_results: dict[int, tuple[str, int]] = {}  # session entry's index -> result
        self.first_applied: dict[tuple[int, int], int] = {}  # (client, seq) -> index applied
        self.session_tables: dict[int, Any] = {}  # snapshot index -> its table's JSON
        self.expired_at: dict[int, int] = {}  # client -> first entry refused as expired

    def _fail(self, what: str) -> None:
        raise SafetyViolation(what)

    # -- persistence ---------------------------------------------------------------

    def on_persist(self, node: str, update: StorageUpdate, is_leader: bool) -> None:
        """``update`` reached ``node``'s disk; ``is_leader``: it led when the update was made."""
        disk = self.disks.setdefault(node, _Disk())
        if update.hard is not None:
            old, new = disk.hard, update.hard
            if new.term < old.term:
                self._fail(f"{node}: persisted term went back from {old.term} to {new.term}")
            if new.term == old.term and old.vote is not None and new.vote != old.vote:
                self._fail(f"{node}: changed its vote in term {new.term}")
            disk.hard = new
        snap = update.snapshot
        if snap is not None and snap.index and (len(disk.terms) <= snap.index
                                                or disk.terms[snap.index] != snap.term):
            # A leader's snapshot replaces this log: it now continues from the snapshot's
            # entry, which some node persisted (it was committed).
            known = self.chains.get((snap.index, snap.term))
            if known is None:
                self._fail(f"{node}: snapshot at ({snap.index}, {snap.term}) of an entry no "
                           "node persisted")
            disk.chain = [0] * snap.index + [known]
            disk.terms = [0] * snap.index + [snap.term]
        if update.entries:
            first = update.entries[0].index
            if first > len(disk.chain):
                self._fail(f"{node}: persisted entry {first} leaves a gap")
            if is_leader and first < len(disk.chain):
                self._fail(f"{node}: leader overwrote its log from index {first}")
            del disk.chain[first:]
            del disk.terms[first:]
            for entry in update.entries:
                h = _link(disk.chain[-1], entry)
                disk.chain.append(h)
                disk.terms.append(entry.term)
                known = self.chains.setdefault((entry.index, entry.term), h)
                if known != h:
                    self._fail(f"{node}: log matching broken at index {entry.index} "
                               f"term {entry.term}")

    def on_restart(self, node: str, hard: HardState, snapshot_index: int = 0) -> None:
        disk = self.disks.get(node)
        if disk is not None and (hard.term, hard.vote) != (disk.hard.term, disk.hard.vote):
            self._fail(f"{node}: restarted with {hard}, persisted {disk.hard}")
        self.applied[node] = snapshot_index
        self.leader_tail.pop(node, None)

    def on_send(self, node: str, dst: str, msg: Message) -> None:
        """A message leaves only after what it depends on was persisted."""
        disk = self.disks.setdefault(node, _Disk())
        if msg.term > disk.hard.term and not getattr(msg, "pre", False):
            self._fail(f"{node}: sent term {msg.term} before persisting it")
        if isinstance(msg, VoteResponse) and msg.granted and not msg.pre and (
                disk.hard.term != msg.term or disk.hard.vote != dst):
            self._fail(f"{node}: granted a vote to {dst} before persisting it")
        if isinstance(msg, AppendResponse) and msg.success and msg.index >= len(disk.chain):
            self._fail(f"{node}: acknowledged index {msg.index} before persisting it")

    # -- roles ----------------------------------------------------------------------

    def on_state(self, node: str, core: RaftCore) -> None:
        """Called after every step of ``node``."""
        if core.state != LEADER:
            self.leader_tail.pop(node, None)
            return
        holder = self.leaders.setdefault(core.term, node)
        if holder != node:
            self._fail(f"two leaders in term {core.term}: {holder} and {node}")
        log = core.log
        tail = self.leader_tail.get(node)
        if tail is None or tail[0] != core.term:
            self._check_complete(node, core)
        elif log.last_index < tail[1] or (tail[1] > log.offset
                                          and log.term_at(tail[1]) != tail[2]):
            self._fail(f"{node}: leader of term {core.term} lost its entry {tail[1]}")
        self.leader_tail[node] = (core.term, log.last_index, log.last_term)

    def _check_complete(self, node: str, core: RaftCore, upto: int | None = None) -> None:
        log = core.log
        hi = self.max_committed if upto is None else upto
        for index in range(max(log.offset + 1, 1), hi + 1):
            if self.commit_term.get(index, core.term) >= core.term:
                continue  # only entries committed in earlier terms are owed
            term, command = self.committed[index]
            if log.term_at(index) != term or log.entry(index).command != command:
                self._fail(f"leader {node} of term {core.term} lacks committed entry {index}")

    # -- commitment and application -------------------------------------------------

    def _check_config_step(self, entry: Entry) -> None:
        """Two consecutive configurations must never have disjoint majorities: with one voter
        added or removed at a time, every majority of one overlaps every majority of the
        other (Raft thesis §4.1)."""
        voters = tuple(entry.command["voters"])
        if self.voters is not None:
            changed = set(self.voters).symmetric_difference(voters)
            if len(changed) > 1:
                self._fail(f"configuration at {entry.index} changes voters {sorted(changed)} "
                           "at once: its majorities may not overlap the previous ones")
        self.voters = voters

    def on_install(self, node: str, snapshot: SnapshotMeta, state: list[Any]) -> None:
        """``node`` loaded a leader's snapshot: its state machine is ``state`` (the commands
        of entries 1 .. snapshot.index)."""
        index = snapshot.index
        if index < self.applied.get(node, 0):
            self._fail(f"{node}: installed a snapshot at {index}, behind its applied "
                       f"{self.applied[node]}")
        if len(state) != index or self.committed.get(index, (None,))[0] != snapshot.term:
            self._fail(f"{node}: snapshot at ({index}, {snapshot.term}) does not match the "
                       "committed log")
        for i, command in enumerate(state, 1):
            want = self.committed[i][1]
            if i in self.session_results:  # what the session table let the entry write
                want = want[3] if self.session_results[i][0] == APPLY else None
            if want != command:
                self._fail(f"{node}: snapshot holds {command!r} at {i}, the committed entry "
                           f"wrote {want!r}")
        self.applied[node] = index

    def on_session(self, node: str, entry: Entry, verdict: str, result: int) -> bool:
        """``node``'s session table decided ``(verdict, result)`` for session entry ``entry``
        (which :meth:`on_commit` saw); return True if no node had applied it before."""
        new = entry.index not in self.session_results
        known = self.session_results.setdefault(entry.index, (verdict, result))
        if known != (verdict, result):
            self._fail(f"{node}: session entry {entry.index} {entry.command!r} gave "
                       f"{(verdict, result)}, another node's table gave {known}")
        client = entry.command[0]
        if verdict == EXPIRED:
            self.expired_at.setdefault(client, entry.index)
        elif verdict == APPLY:
            key = (client, entry.command[1])
            first = self.first_applied.setdefault(key, entry.index)
            if first != entry.index:
                self._fail(f"{node}: seq {key[1]} of session {key[0]} applied at {first} and "
                           f"again at {entry.index}")
            if self.expired_at.get(client, entry.index) < entry.index:
                self._fail(f"{node}: session {client} applied seq {key[1]} at {entry.index}, "
                           f"after it had expired (at {self.expired_at[client]})")
        return new

    def on_session_table(self, node: str, index: int, table: Any) -> None:
        """``node`` snapshotted or loaded session table ``table`` (JSON) as of ``index``."""
        known = self.session_tables.setdefault(index, table)
        if known != table:
            self._fail(f"{node}: session table at {index} differs from another node's")

    def on_commit(self, node: str, core: RaftCore, entries: list[Entry],
                  leaders: dict[str, RaftCore]) -> None:
        """``entries`` were handed to ``node``'s state machine as committed."""
        expected = self.applied.get(node, 0)
        for entry in entries:
            expected += 1
            if entry.index != expected:
                self._fail(f"{node}: applied {entry.index}, expected {expected}")
            if entry.index not in self.committed and entry.kind == CONFIG:
                self._check_config_step(entry)
            known = self.committed.setdefault(entry.index, (entry.term, entry.command))
            if known != (entry.term, entry.command):
                self._fail(f"state machine safety: {node} applied {entry!r} at {entry.index}, "
                           f"another node applied {known}")
            self.commit_term.setdefault(entry.index, core.term)
        self.applied[node] = expected
        if expected > self.max_committed:
            self.max_committed = expected
            for leader, lcore in leaders.items():
                if lcore.state == LEADER and lcore.term > core.term:
                    self._check_complete(leader, lcore, expected)

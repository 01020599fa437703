"""Raft's safety properties, checked incrementally as the simulator runs.

It owns what the simulation knows to be true (the committed log, the applied values) and
judges every observation against it, at the moment a property could break, so every step of a
simulation is covered without rescanning whole logs. It reads nodes only through their cores
and what the storages, the network and the application report; it must not import the
runtime or the simulation's other parts.

* **election safety**: at most one leader per term (checked whenever a node leads);
* **leader append-only**: a leader never overwrites or removes entries of its log;
* **log matching**: two persisted logs with an entry of the same index and term are identical
  up to it (a hash chain per persisted log, compared across nodes);
* **leader completeness**: a leader holds every entry committed in an earlier term;
* **state machine safety**: nodes commit the same entry at each index, and every application
  applies the same value at an index, in increasing index order, each value at one index only
  (commands are unique, so a second index means a command, or a session retry, applied
  twice: exactly-once, for plain proposals too, which nodes resend through their implicit
  sessions);
* **session identity**: every copy of a session number ``(client, seq)`` in the committed
  log carries the same command (a restarted node that reused its numbers would break it);
* **configuration safety**: consecutive committed configurations differ by at most one
  voter, so their majorities always overlap;
* **durability**: persisted term and vote never go backwards, across restarts too, and every
  message leaves only after what it depends on (term, vote, acknowledged entries) is on disk.

Linearizability and the outcomes callers were told are checked by the simulation, against
what this checker collected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..core.messages import CONFIG, SESSION, Entry
from ..core.raft import LEADER, RaftCore
from ..core.state import HardState, StorageUpdate


class SafetyViolation(AssertionError):
    """A Raft safety property was broken; the message says which and where."""


@dataclass(slots=True)
class _Disk:
    """What the checker knows of one node's persisted log."""

    hard: HardState = field(default_factory=HardState)
    chain: list[int] = field(default_factory=lambda: [0])  # chain[i]: hash of entries 1..i
    terms: list[int] = field(default_factory=lambda: [0])


def _link(prev: int, entry: Entry) -> int:
    # The fields, not entry.data: that builds a session entry's list on every call.
    return hash((prev, entry.term, entry.kind, entry.client, entry.seq, entry.ack,
                 repr(entry.command)))


class SafetyChecker:
    """Collects observations from every node and raises :class:`SafetyViolation`."""

    def __init__(self, on_failure: Callable[[], None] = lambda: None) -> None:
        #: The first violation found: the runtime swallows exceptions raised inside its
        #: callbacks (storage, transport, handlers), so it is also kept here.
        self.failure: SafetyViolation | None = None
        self._on_failure = on_failure
        self.leaders: dict[int, str] = {}  # term -> leader
        self.committed: dict[int, Entry] = {}  # index -> the entry committed there
        self.commit_term: dict[int, int] = {}  # index -> term of the leader that committed it
        self.max_committed = 0
        self.chains: dict[tuple[int, int], int] = {}  # (index, term) -> chain hash
        self.disks: dict[str, _Disk] = {}
        self.applied: dict[str, int] = {}
        self.leader_tail: dict[str, tuple[int, int, int]] = {}  # node -> (term, index, term)
        self.configs: dict[int, tuple[str, ...]] = {}  # index -> voters, of committed ones
        self.app_values: dict[int, Any] = {}  # index -> the value applications applied there
        self.value_index: dict[Any, int] = {}  # value -> the index it was applied at
        self.snapshots: dict[int, dict[str, Any]] = {}  # index -> application state there
        self.numbers: dict[tuple[Any, int], tuple[int, Any]] = {}  # -> (index, command)
        #: Committed copies of a session number after the first: resends, applied as none.
        self.copies = 0

    def fail(self, what: str) -> NoReturn:
        """Record the violation ``what`` (the first one wins) and raise it."""
        exc = SafetyViolation(what)
        if self.failure is None:
            self.failure = exc
            self._on_failure()
        raise exc

    # -- persistence ---------------------------------------------------------------

    def on_persist(self, node: str, update: StorageUpdate, is_leader: bool) -> None:
        """``update`` reached ``node``'s disk; ``is_leader``: it led when the update was made."""
        disk = self.disks.setdefault(node, _Disk())
        if update.hard is not None:
            old, new = disk.hard, update.hard
            if new.term < old.term:
                self.fail(f"{node}: persisted term went back from {old.term} to {new.term}")
            if new.term == old.term and old.vote is not None and new.vote != old.vote:
                self.fail(f"{node}: changed its vote in term {new.term}")
            disk.hard = new
        snap = update.snapshot
        if snap is not None and snap.index and (len(disk.terms) <= snap.index
                                                or disk.terms[snap.index] != snap.term):
            # A leader's snapshot replaces this log: it now continues from the snapshot's
            # entry, which some node persisted (it was committed).
            known = self.chains.get((snap.index, snap.term))
            if known is None:
                self.fail(f"{node}: snapshot at ({snap.index}, {snap.term}) of an entry no "
                           "node persisted")
            disk.chain = [0] * snap.index + [known]
            disk.terms = [0] * snap.index + [snap.term]
        if update.entries:
            first = update.entries[0].index
            if first > len(disk.chain):
                self.fail(f"{node}: persisted entry {first} leaves a gap")
            if is_leader and first < len(disk.chain):
                self.fail(f"{node}: leader overwrote its log from index {first}")
            del disk.chain[first:]
            del disk.terms[first:]
            for entry in update.entries:
                h = _link(disk.chain[-1], entry)
                disk.chain.append(h)
                disk.terms.append(entry.term)
                known = self.chains.setdefault((entry.index, entry.term), h)
                if known != h:
                    self.fail(f"{node}: log matching broken at index {entry.index} "
                               f"term {entry.term}")

    def on_restart(self, node: str, hard: HardState, snapshot_index: int = 0) -> None:
        disk = self.disks.get(node)
        if disk is not None and (hard.term, hard.vote) != (disk.hard.term, disk.hard.vote):
            self.fail(f"{node}: restarted with {hard}, persisted {disk.hard}")
        self.applied[node] = snapshot_index
        self.leader_tail.pop(node, None)

    def on_send(self, node: str, dst: str, payload: dict[str, Any]) -> None:
        """A message (as the wire carries it) leaves only after what it depends on was
        persisted."""
        disk = self.disks.setdefault(node, _Disk())
        kind, term = payload["type"], payload["term"]
        if term > disk.hard.term and not payload.get("pre"):
            self.fail(f"{node}: sent term {term} before persisting it")
        if kind == "vote_resp" and payload["granted"] and not payload.get("pre") and (
                disk.hard.term != term or disk.hard.vote != dst):
            self.fail(f"{node}: granted a vote to {dst} before persisting it")
        if kind == "append_resp" and payload["success"] and payload["index"] >= len(disk.chain):
            self.fail(f"{node}: acknowledged index {payload['index']} before persisting it")

    # -- roles ----------------------------------------------------------------------

    def on_state(self, node: str, core: RaftCore) -> None:
        """Called after every step of ``node``."""
        if core.state != LEADER:
            self.leader_tail.pop(node, None)
            return
        holder = self.leaders.setdefault(core.term, node)
        if holder != node:
            self.fail(f"two leaders in term {core.term}: {holder} and {node}")
        log = core.log
        tail = self.leader_tail.get(node)
        if tail is None or tail[0] != core.term:
            self._check_complete(node, core)
        elif log.last_index < tail[1] or (tail[1] > log.offset
                                          and log.term_at(tail[1]) != tail[2]):
            self.fail(f"{node}: leader of term {core.term} lost its entry {tail[1]}")
        self.leader_tail[node] = (core.term, log.last_index, log.last_term)

    def _check_complete(self, node: str, core: RaftCore, upto: int | None = None) -> None:
        log = core.log
        hi = self.max_committed if upto is None else upto
        for index in range(max(log.offset + 1, 1), hi + 1):
            if self.commit_term.get(index, core.term) >= core.term:
                continue  # only entries committed in earlier terms are owed
            known = self.committed[index]
            if log.term_at(index) != known.term or log.entry(index) != known:
                self.fail(f"leader {node} of term {core.term} lacks committed entry {index}")

    # -- commitment and application -------------------------------------------------

    def _check_config_step(self, entry: Entry) -> None:
        """Two consecutive configurations must never have disjoint majorities: with one voter
        added or removed at a time, every majority of one overlaps every majority of the
        other (Raft thesis §4.1). Nodes report commits in different orders (one that loaded
        a snapshot skips ahead), so a configuration is compared with its neighbours in the
        log once nothing between them is unknown."""
        configs = self.configs
        configs[entry.index] = tuple(entry.command["voters"])
        below = [i for i in configs if i < entry.index]
        above = [i for i in configs if i > entry.index]
        if below:
            self._check_config_pair(max(below), entry.index)
        if above:
            self._check_config_pair(entry.index, min(above))

    def _check_config_pair(self, lo: int, hi: int) -> None:
        if any(i not in self.committed for i in range(lo + 1, hi)):
            return  # a configuration between them may not be known yet
        changed = set(self.configs[lo]).symmetric_difference(self.configs[hi])
        if len(changed) > 1:
            self.fail(f"configuration at {hi} changes voters {sorted(changed)} at once: its "
                      f"majorities may not overlap those of the one at {lo}")

    def _check_number(self, entry: Entry) -> None:
        client, seq, command = entry.client, entry.seq, entry.command
        index, first = self.numbers.setdefault((client, seq), (entry.index, command))
        if first != command:
            self.fail(f"session number ({client!r}, {seq}) at {entry.index} holds {command!r}, "
                      f"the copy at {index} {first!r}")
        elif index != entry.index:
            self.copies += 1

    def observe(self, node: str, core: RaftCore, cores: dict[str, RaftCore]) -> None:
        """After a step of ``node``: its role, and the entries it newly knows committed."""
        self.on_state(node, core)
        log = core.log
        seen = self.applied.get(node, 0)
        if log.commit <= seen:
            return
        if seen < log.offset:  # a snapshot replaced what we had not seen yet
            term = log.term_at(log.offset)
            known = self.committed.get(log.offset)
            if term is not None and known is not None and known.term != term:
                self.fail(f"{node}: snapshot at ({log.offset}, {term}) does not match the "
                           f"committed entry of term {known.term}")
            self.applied[node] = seen = log.offset
        self.on_commit(node, core, log.slice(seen + 1, log.commit + 1), cores)

    def on_commit(self, node: str, core: RaftCore, entries: list[Entry],
                  leaders: dict[str, RaftCore]) -> None:
        """``node`` knows ``entries`` are committed."""
        expected = self.applied.get(node, 0)
        for entry in entries:
            expected += 1
            if entry.index != expected:
                self.fail(f"{node}: applied {entry.index}, expected {expected}")
            if entry.index not in self.committed:
                if entry.kind == CONFIG:
                    self._check_config_step(entry)
                elif entry.kind == SESSION and entry.client != 0:
                    self._check_number(entry)
            known = self.committed.setdefault(entry.index, entry)
            if known != entry:
                self.fail(f"state machine safety: {node} applied {entry!r} at {entry.index}, "
                           f"another node applied {known!r}")
            self.commit_term.setdefault(entry.index, core.term)
            if entry.index in self.app_values:
                self._check_value(node, entry.index, entry.command,
                                  self.app_values[entry.index])
        self.applied[node] = expected
        if expected > self.max_committed:
            self.max_committed = expected
            for leader, lcore in leaders.items():
                if lcore.state == LEADER and lcore.term > core.term:
                    self._check_complete(leader, lcore, expected)

    # -- the applications --------------------------------------------------------------

    def on_apply(self, node: str, index: int, value: Any) -> None:
        """``node``'s application applied ``value`` as entry ``index``."""
        known = self.app_values.setdefault(index, value)
        if known != value:
            self.fail(f"state machine safety: {node} applied {value!r} at {index}, another "
                       f"node applied {known!r}")
        first = self.value_index.setdefault(value, index)
        if first != index:
            self.fail(f"{node}: {value!r} applied at {first} and again at {index}")
        if index in self.committed:
            self._check_value(node, index, self.committed[index].command, value)

    def on_snapshot(self, node: str, index: int, state: dict[str, Any]) -> None:
        """``node``'s application took or loaded ``state`` as of entry ``index``."""
        known = self.snapshots.setdefault(index, state)
        if known != state:
            self.fail(f"{node}: its state at {index} differs from another node's")

    def _check_value(self, node: str, index: int, command: Any, value: Any) -> None:
        """The value an application applied at ``index`` is the command committed there."""
        if command != value:
            self.fail(f"{node}: applied {value!r} at {index}, which holds {command!r}")

"""The in-memory Raft log: the last snapshot, the entries kept, and the stable/commit/apply marks.

Owns :class:`RaftLog`. Imports the core's records and :mod:`webraft.errors` only; never the
runtime, a storage or a transport.

The core keeps every entry after ``offset`` in memory. ``offset`` is at or below the
snapshot's index: compaction may keep a tail of entries the snapshot already covers, so that a
follower slightly behind gets entries rather than the whole snapshot. The term of ``offset``
itself is only known when it is the snapshot's index. Three marks move forward:

* ``stable``: the last index storage has confirmed. Entries after it are *unstable*: they go
  into the next :class:`~webraft.core.raft.Ready` to be persisted. A leader counts itself
  towards a majority only up to ``stable`` (Raft §5.3's "stored on a majority" includes the
  leader's own disk).
* ``commit``: the last index known committed.
* ``handed``: the last index handed to the application to apply; never beyond ``stable``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import MessageError
from .messages import CONFIG, Entry
from .state import ClusterConfig, SnapshotMeta


class RaftLog:
    """Entries ``offset + 1 .. last_index`` plus the snapshot and the marks described above.

    Invariant: ``offset <= snapshot.index <= last_index``.
    """

    __slots__ = ("commit", "entries", "handed", "offset", "snapshot", "stable")

    def __init__(self, snapshot: SnapshotMeta, entries: Sequence[Entry], commit: int,
                 applied: int) -> None:
        self.snapshot = snapshot
        self.entries: list[Entry] = list(entries)
        self.offset = self.entries[0].index - 1 if self.entries else snapshot.index
        self.stable = self.last_index
        self.commit = commit
        self.handed = applied

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot.term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None when compacted away or not yet present."""
        if index == self.snapshot.index:
            return self.snapshot.term
        pos = index - self.offset
        if 0 < pos <= len(self.entries):
            return self.entries[pos - 1].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo .. hi - 1`` (both within the log)."""
        base = self.offset + 1
        return self.entries[lo - base:hi - base]

    def config_at(self, index: int) -> ClusterConfig:
        """The configuration in force at ``index`` (between the snapshot and the last entry)."""
        for pos in range(index - self.offset - 1, self.snapshot.index - self.offset - 1, -1):
            entry = self.entries[pos]
            if entry.kind == CONFIG:
                return ClusterConfig.from_json(entry.command)
        return self.snapshot.config

    def compact(self, snapshot: SnapshotMeta, offset: int) -> int:
        """Take ``snapshot`` (of applied entries) and drop the entries up to ``offset`` (at
        most the snapshot's index); return the new offset (storage deletes up to it)."""
        self.snapshot = snapshot
        offset = max(self.offset, min(offset, snapshot.index))
        del self.entries[:offset - self.offset]
        self.offset = offset
        return offset

    def restore(self, snapshot: SnapshotMeta) -> int:
        """Install a leader's snapshot; return the index up to which storage drops entries.

        If our entry at the snapshot's index has its term, the entries after it are the
        leader's too (Log Matching) and stay (Raft §7); otherwise the whole log goes.
        """
        index = snapshot.index
        if self.term_at(index) == snapshot.term:
            drop = index
            del self.entries[:index - self.offset]
        else:
            drop = max(self.last_index, index)
            self.entries = []
            self.stable = index
        self.offset = index
        self.snapshot = snapshot
        self.stable = max(self.stable, index)
        self.commit = max(self.commit, index)
        self.handed = max(self.handed, index)
        return drop

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a candidate's log at least as up to date as ours?"""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries that directly follow the last one (a leader's own proposals)."""
        self.entries.extend(entries)

    def merge(self, entries: Sequence[Entry]) -> int:
        """Merge a follower's verified entries; return the index of the last one.

        Entries already present with the same term are skipped: a duplicated or reordered
        AppendEntries must never drop anything. The log is cut only at the first entry whose
        term differs, and never at or below ``commit`` (that would lose a committed entry).
        """
        for pos, entry in enumerate(entries):
            term = self.term_at(entry.index)
            if term == entry.term:
                continue
            if term is not None:
                if entry.index <= self.commit:
                    raise MessageError(f"append conflicts with committed entry {entry.index}")
                del self.entries[entry.index - self.offset - 1:]
                self.stable = min(self.stable, entry.index - 1)
            self.entries.extend(entries[pos:])
            break
        return entries[-1].index

    def latest_config(self) -> tuple[int, int, ClusterConfig]:
        """``(index, term, config)`` of the newest configuration in the log, committed or not.

        A server uses the latest configuration in its log (Raft thesis §4.1), so this is what
        decides who votes and who counts for commitment.
        """
        for entry in reversed(self.entries):
            if entry.kind == CONFIG:
                return entry.index, entry.term, ClusterConfig.from_json(entry.command)
        return self.snapshot.index, self.snapshot.term, self.snapshot.config

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest index ``<= index`` whose term is ``<= term`` (used for fast log back-off).

        Every entry between the answer and ``index`` belongs to a term newer than ``term``, so
        none of them can match the other log there: both sides can skip them in one step.
        """
        index = min(index, self.last_index)
        while index > self.offset:
            t = self.term_at(index)
            if t is not None and t <= term:
                break
            index -= 1
        return index

    def unstable(self) -> list[Entry]:
        return self.slice(self.stable + 1, self.last_index + 1)

    def stable_to(self, index: int, term: int) -> None:
        """Storage confirmed entries up to ``index``; ignore if they were replaced meanwhile."""
        if index > self.stable and self.term_at(index) == term:
            self.stable = index

    def appliable(self) -> list[Entry]:
        """Committed, persisted entries not yet handed out; hands them out."""
        hi = min(self.commit, self.stable)
        if hi <= self.handed:
            return []
        out = self.slice(self.handed + 1, hi + 1)
        self.handed = hi
        return out

    def has_appliable(self) -> bool:
        return min(self.commit, self.stable) > self.handed

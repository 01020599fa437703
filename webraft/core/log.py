"""The in-memory Raft log: entries after the last snapshot, and the stable/commit/apply marks.

The core keeps every entry since the last snapshot in memory (browser clusters compact their
logs to stay within localStorage, so this stays small). Three marks move forward through it:

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
    """Entries ``snapshot.index + 1 .. last_index`` plus the marks described above."""

    __slots__ = ("commit", "entries", "handed", "snapshot", "stable")

    def __init__(self, snapshot: SnapshotMeta, entries: Sequence[Entry], commit: int,
                 applied: int) -> None:
        self.snapshot = snapshot
        self.entries: list[Entry] = list(entries)
        self.stable = self.last_index
        self.commit = commit
        self.handed = applied

    @property
    def first_index(self) -> int:
        return self.snapshot.index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot.index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot.term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None when compacted away or not yet present."""
        offset = index - self.snapshot.index
        if offset == 0:
            return self.snapshot.term
        if 0 < offset <= len(self.entries):
            return self.entries[offset - 1].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snapshot.index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo .. hi - 1`` (both within the log)."""
        base = self.snapshot.index + 1
        return self.entries[lo - base:hi - base]

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
                del self.entries[entry.index - self.snapshot.index - 1:]
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
        while index > self.snapshot.index:
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

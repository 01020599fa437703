"""A reference model of the storage contract, and generators of updates a correct node could make.

:class:`Model` applies a :class:`~webraft.core.state.StorageUpdate` exactly as
``webraft/core/state.py`` words it, with plain lists and no validation: (1) the snapshot (and its
data, when given) replaces the stored one; (2) entries at or below ``compact_to`` go; (3) the
update's entries replace every entry at or after their first index, then are appended; (4) the
hard state. Both durable storages are compared against it (it is independent of
``MemoryStorage``, which the core's authors own).

Imported by the SQLite tests (and the child of their crash test) as ``storage_model`` and by the
localStorage tests as ``storage.storage_model``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from webraft.core.messages import COMMAND, CONFIG, NOOP, SESSION, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState


@dataclass
class Model:
    hard: HardState | None = None
    snapshot: SnapshotMeta | None = None
    data: str | None = None
    entries: list[Entry] = field(default_factory=list)

    def apply(self, update: StorageUpdate) -> None:
        if update.snapshot is not None:
            self.snapshot = update.snapshot
            if update.snapshot_data is not None:
                self.data = update.snapshot_data
        self.entries = [e for e in self.entries if e.index > update.compact_to]
        if update.entries:
            first = update.entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + list(update.entries)
        if update.hard is not None:
            self.hard = update.hard

    def state(self) -> StoredState | None:
        if self.snapshot is None:
            return None
        return StoredState(self.hard or HardState(), self.snapshot, list(self.entries),
                           self.data)

    # -- helpers for generators
    @property
    def first(self) -> int:
        assert self.snapshot is not None
        return self.entries[0].index if self.entries else self.snapshot.index + 1

    @property
    def last(self) -> int:
        assert self.snapshot is not None
        return self.entries[-1].index if self.entries else self.snapshot.index

    def term_at(self, index: int) -> int | None:
        assert self.snapshot is not None
        if index == self.snapshot.index:
            return self.snapshot.term
        if self.entries and self.first <= index <= self.last:
            return self.entries[index - self.first].term
        return None


def canon(state: StoredState | None) -> Any:
    """A comparable form of a loaded state that also tells 1, 1.0 and True apart."""
    if state is None:
        return None
    return (state.hard, state.snapshot, state.snapshot_data,
            [(e.index, e.term, e.kind, json.dumps(e.data)) for e in state.entries])


def replay(updates: list[StorageUpdate]) -> Model:
    model = Model()
    for update in updates:
        model.apply(update)
    return model


# ---------------------------------------------------------------------- random valid updates

ADDRESSES = ["a", "b", "c", "ünï/😀"]
votes = st.sampled_from([None, *ADDRESSES])
configs = st.builds(
    lambda members, n: ClusterConfig(tuple(members[:n]), tuple(members[n:])),
    st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=4, unique=True),
    st.integers(1, 4),
).filter(lambda c: c.voters)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)


@st.composite
def snapshot_texts(draw: st.DrawFn) -> str:
    """JSON text of an application state: small, unicode, or long (many localStorage chunks)."""
    value = draw(json_values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 3)) == 0:
        text = json.dumps({"state": value, "pad": "é😀x" * draw(st.integers(0, 400))},
                          ensure_ascii=False)
    return text


def _entries(draw: st.DrawFn, first: int, prev_term: int, top: int,
             fixed: dict[int, int] | None = None, count: int | None = None
             ) -> tuple[Entry, ...]:
    """``count`` (default 1..5) entries from ``first``; ``fixed`` pins some indexes' terms."""
    out = []
    term = prev_term
    for i in range(count if count is not None else draw(st.integers(1, 5))):
        index = first + i
        pinned = fixed.get(index) if fixed else None
        term = pinned if pinned is not None else draw(st.integers(term, max(term, top)))
        kind = draw(st.sampled_from([COMMAND, COMMAND, COMMAND, NOOP, CONFIG, SESSION]))
        command: Any = None
        if kind == COMMAND:
            command = draw(json_values)
        elif kind == CONFIG:
            command = draw(configs).to_json()
        elif kind == SESSION:  # an implicit session's or an explicit one's command
            out.append(Entry(term, index, SESSION, draw(json_values), 0,
                             draw(st.sampled_from(["a/0f", "ünï/😀/1"]) | st.sampled_from([0, 7])),
                             draw(st.integers(0, 2**53 - 1)), draw(st.integers(0, 9))))
            continue
        out.append(Entry(term, index, kind, command))
    return tuple(out)


@st.composite
def updates(draw: st.DrawFn, model: Model) -> StorageUpdate:
    """An update a correct node could make to the state ``model`` holds (the result always
    passes ``StoredState.check()``)."""
    if model.snapshot is None:
        if draw(st.integers(0, 5)) > 0:
            snap, data = SnapshotMeta(0, 0, draw(configs)), None
        else:  # a node first saving a snapshot with data (not what the runtime does today)
            snap = SnapshotMeta(draw(st.integers(1, 9)), draw(st.integers(0, 2)), draw(configs))
            data = draw(snapshot_texts())
        hards = st.builds(HardState, st.integers(snap.term, snap.term + 2), votes,
                          st.integers(0, 3))
        hard = draw(hards if snap.term else st.none() | hards)
        top = hard.term if hard else 0
        entries: tuple[Entry, ...] = ()
        if (hard or snap.index == 0) and draw(st.booleans()):
            entries = _entries(draw, snap.index + 1, snap.term, top)
        return StorageUpdate(hard, entries, snap, data)

    snap = model.snapshot
    old_hard = model.hard or HardState()
    term = old_hard.term
    hard = None
    if draw(st.booleans()):
        term += draw(st.integers(0, 2))
        hard = HardState(term, draw(votes), draw(st.integers(0, model.last + 4)))
    first, last = model.first, model.last
    last_term = model.term_at(last)
    assert last_term is not None
    op = draw(st.sampled_from(["append", "append", "truncate", "rewrite tail", "hard",
                               "compact", "compact", "install", "drop all", "resave snapshot"]))
    if op == "hard":
        return StorageUpdate(hard or HardState(term + 1, draw(votes), 0))
    if op == "resave snapshot":  # a restarted core records its snapshot again, data unchanged
        return StorageUpdate(hard, (), snap)
    if op == "drop all":  # compact_to beyond the log, the snapshot unchanged
        return StorageUpdate(hard, (), None, None, last + draw(st.integers(0, 5)))
    if op == "append" or (op == "truncate" and last <= snap.index):
        return StorageUpdate(hard, _entries(draw, last + 1, last_term, term))
    if op == "truncate":  # a follower replacing a conflicting suffix (after the snapshot)
        at = draw(st.integers(max(first, snap.index + 1), last))
        prev = model.term_at(at - 1)
        assert prev is not None
        return StorageUpdate(hard, _entries(draw, at, prev, term))
    if op == "rewrite tail":  # entries from inside the kept tail to (past) the end, same terms
        at = draw(st.integers(first, last + 1))
        fixed = {e.index: e.term for e in model.entries}
        prev = model.term_at(at - 1) or 0
        count = last - at + 1 + draw(st.integers(0 if at <= last else 1, 2))
        return StorageUpdate(hard, _entries(draw, at, prev, term, fixed, count))
    data = draw(snapshot_texts())
    if op == "compact":  # our own snapshot of applied entries, keeping a tail
        if last <= snap.index:
            return StorageUpdate(hard, (), snap, data)  # a new snapshot at the same index
        index = draw(st.integers(snap.index + 1, last))
        s_term = model.term_at(index)
        assert s_term is not None
        keep = draw(st.integers(0, index - first + 2))
        compact_to = max(0, index - keep)
        new = SnapshotMeta(index, s_term, draw(configs))
        entries = ()
        if draw(st.booleans()):
            entries = _entries(draw, last + 1, last_term, term)
        return StorageUpdate(hard, entries, new, data, compact_to)
    # install: a leader's snapshot; kept log after it if our entry there has its term
    index = draw(st.integers(snap.index + 1, last + 3))
    known = model.term_at(index)
    if known is not None and draw(st.booleans()):
        new, compact_to = SnapshotMeta(index, known, draw(configs)), index
        after = model.last
        prev_term = model.term_at(after)
    else:
        s_term = draw(st.integers(last_term, max(last_term, term)))
        if hard is None or hard.term < s_term:
            hard = HardState(max(term, s_term), draw(votes), index)
        new, compact_to = SnapshotMeta(index, s_term, draw(configs)), max(last, index)
        after, prev_term = index, s_term
    entries = ()
    if draw(st.booleans()):
        top = hard.term if hard else term
        assert prev_term is not None
        entries = _entries(draw, after + 1, prev_term, top)
    return StorageUpdate(hard, entries, new, data, compact_to)

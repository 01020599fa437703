"""A fake Web Storage for the LocalStorage tests, and generators of valid update sequences.

:class:`FakeWebStorage` is dict-backed with ``getItem``/``setItem``/``removeItem``/``key(i)``/
``length``, an optional quota in characters (keys + values, as browsers count it) that makes
``setItem`` raise :class:`QuotaExceeded`, and :meth:`FakeWebStorage.crash_after` which makes
the (N+1)-th write raise :class:`Crash`, a BaseException standing for the tab dying (storage
code must not catch it, exactly as it cannot outlive its tab).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import MemoryStorage


class Crash(BaseException):
    """The tab died in the middle of a write."""


class QuotaExceeded(Exception):
    """What the fake raises when a setItem would overflow its quota."""

    name = "QuotaExceededError"


class JsNull:
    """Stand-in for Pyodide's ``jsnull`` (its class is named JsNull too)."""

    def __repr__(self) -> str:
        return "jsnull"


def chars(text: str) -> int:
    """UTF-16 length, as browsers count localStorage usage."""
    return len(text.encode("utf-16-le")) // 2


class FakeWebStorage:
    def __init__(self, data: dict[str, str] | None = None, *, quota: int | None = None,
                 null: Any = None) -> None:
        self.data: dict[str, str] = dict(data or {})
        self.quota = quota
        self.null = null
        self.writes = 0  # setItem + removeItem calls since the last crash_after()
        self.sets = 0
        self.removes = 0
        self._crash_at: int | None = None
        self.dead = False

    # -- the Web Storage interface
    def getItem(self, key: str) -> Any:
        self._alive()
        assert isinstance(key, str)
        return self.data.get(key, self.null)

    def setItem(self, key: str, value: str) -> None:
        self._write()
        assert isinstance(key, str) and isinstance(value, str)
        if self.quota is not None:
            used = self.used() - (chars(key) + chars(self.data[key]) if key in self.data else 0)
            if used + chars(key) + chars(value) > self.quota:
                raise QuotaExceeded(f"setting {key!r} exceeded the quota")
        self.sets += 1
        self.data[key] = value

    def removeItem(self, key: str) -> None:
        self._write()
        self.removes += 1
        self.data.pop(key, None)

    def key(self, i: int) -> Any:
        self._alive()
        keys = list(self.data)
        return keys[i] if 0 <= i < len(keys) else self.null

    @property
    def length(self) -> int:
        self._alive()
        return len(self.data)

    # -- test controls
    def used(self) -> int:
        return sum(chars(k) + chars(v) for k, v in self.data.items())

    def crash_after(self, n: int | None) -> None:
        """Let ``n`` more writes succeed, then die (None: never)."""
        self.writes = 0
        self._crash_at = n

    def revive(self) -> None:
        """A new tab on the same origin: same data, no pending crash."""
        self.dead = False
        self._crash_at = None

    def copy(self) -> FakeWebStorage:
        return FakeWebStorage(self.data, quota=self.quota, null=self.null)

    def _alive(self) -> None:
        if self.dead:
            raise Crash("the tab is dead")

    def _write(self) -> None:
        self._alive()
        if self._crash_at is not None and self.writes >= self._crash_at:
            self.dead = True
            raise Crash(f"died after {self.writes} writes")
        self.writes += 1


# ---------------------------------------------------------------------- update generation

ADDRESSES = ["a", "b", "c", "ünï/😀"]
configs = st.builds(
    lambda voters, learners: ClusterConfig(tuple(voters), tuple(learners)),
    st.lists(st.sampled_from(ADDRESSES[:3]), min_size=1, max_size=3, unique=True),
    st.just(()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)


def _payload(data: st.DataObject) -> tuple[int, Any]:
    kind = data.draw(st.sampled_from([COMMAND, COMMAND, COMMAND, NOOP, CONFIG]))
    if kind == NOOP:
        return kind, None
    if kind == CONFIG:
        return kind, data.draw(configs).to_json()
    return kind, data.draw(json_values)


def _entries(data: st.DataObject, first: int, prev_term: int, top: int) -> tuple[Entry, ...]:
    n = data.draw(st.integers(1, 4))
    out = []
    term = prev_term
    for i in range(n):
        term = data.draw(st.integers(term, top))
        kind, command = _payload(data)
        out.append(Entry(term, first + i, kind, command))
    return tuple(out)


def draw_update(data: st.DataObject, mem: MemoryStorage) -> StorageUpdate:
    """A random update that a correct node could send, given the state ``mem`` holds."""
    votes = st.sampled_from([None, *ADDRESSES])
    if mem.snapshot is None:
        snap = SnapshotMeta(0, 0, data.draw(configs))
        hard = data.draw(st.none() | st.builds(HardState, st.integers(0, 2), votes,
                                               st.integers(0, 2)))
        top = hard.term if hard else 0
        entries = _entries(data, 1, 0, top) if data.draw(st.booleans()) else ()
        return StorageUpdate(hard, entries, snap)
    snap = mem.snapshot
    old_hard = mem.hard or HardState()
    last = snap.index + len(mem.entries)

    def term_at(index: int, snapshot: SnapshotMeta = snap) -> int:
        if index == snapshot.index:
            return snapshot.term
        return mem.entries[index - snap.index - 1].term

    term = old_hard.term
    hard = None
    if data.draw(st.booleans()):
        term += data.draw(st.integers(0, 2))
        hard = HardState(term, data.draw(votes), data.draw(st.integers(0, last + 4)))
    op = data.draw(st.sampled_from(["append", "truncate", "hard", "snapshot", "snapshot+entries"]))
    if op == "hard":
        if hard is None:
            hard = HardState(term + 1, data.draw(votes), data.draw(st.integers(0, last)))
        return StorageUpdate(hard)
    if op == "append" or (op == "truncate" and last == snap.index):
        return StorageUpdate(hard, _entries(data, last + 1, term_at(last), term))
    if op == "truncate":
        first = data.draw(st.integers(snap.index + 1, last))
        return StorageUpdate(hard, _entries(data, first, term_at(first - 1), term))
    s_index = data.draw(st.integers(snap.index, last + 3))
    # Inside the log the snapshot takes the entry's term; past it, any term in between.
    s_term = (term_at(s_index) if s_index <= last
              else data.draw(st.integers(term_at(last), term)))
    new_snap = SnapshotMeta(s_index, s_term, data.draw(configs))
    if op == "snapshot":
        return StorageUpdate(hard, (), new_snap)
    new_last = max(last, s_index)
    first = data.draw(st.integers(s_index + 1, new_last + 1))
    prev = s_term if first - 1 == s_index else term_at(first - 1)
    return StorageUpdate(hard, _entries(data, first, prev, term), new_snap)

"""A durable storage on the browser's Web Storage API (``localStorage``).

Owns :class:`LocalStorage`. Imports the core's records, :mod:`webraft.errors` and :mod:`.base`
only; never the runtime or a transport, and ``js`` only lazily.

``js`` is never imported at module import time: the module imports in CPython, and the
default backing store, ``js.localStorage``, is looked up only when a :class:`LocalStorage` is
created without an explicit ``store``. Any object with ``getItem``, ``setItem``, ``removeItem``,
``key(i)`` and ``length`` (the Web Storage interface) can be passed instead.

**Key layout.** Every key starts with the caller's ``namespace`` (for example
``webraft/<room>/<address>/``); the part after it is exactly one of

* ``meta``: JSON ``{"v": 4, "term", "vote", "commit", "snapshot": {"index", "term",
  "config"}, "last": <last log index>, "segments": [[start_index, gen], ...],
  "data": null | [gen, chunks, length], "tail": [[term, kind, command], ...]}``; ``tail``
  (the *inline tail*) holds the newest log entries, ``last - len(tail) + 1 .. last``;
* ``e:<gen>:<index>``: a *run* of consecutive log entries, the first at ``index``, as
  compact JSON: ``[[term, kind, command], ...]``, or a run of one written as the entry
  itself, ``[term, kind, command]``;
* ``d:<gen>:<k>``: chunk ``k`` (from 0) of the snapshot's data, the application's state as
  JSON text; its ``chunks`` chunks, joined, are the ``length`` characters of the data.
  ``data`` is null only for the bootstrap snapshot (index 0).

Only keys of these exact shapes are ever read, written or removed, so distinct namespaces
never touch each other's keys, even when one is a prefix of the other, and foreign keys
(including unknown keys inside the namespace) are left alone. Schema 1 (before snapshots) had
no ``data`` and no ``d:`` keys, schemas 1 and 2 wrote one entry per key (read as runs of
one), and schemas 1 to 3 had no inline tail (read as an empty one); they are read as is, and
the next save writes schema 4.

**Inline tail.** A save's new entries join the tail inside the meta, so a save of a few
entries is the meta's one ``setItem``. Once the tail passes
:attr:`LocalStorage.inline_chars` characters, that save moves it out whole: its entries are
written as a run (more past :attr:`LocalStorage.run_chars` characters) under the last
segment's gen, keyed by the tail's first index, and the meta's tail becomes empty. The bound
keeps the meta, which every save rewrites, small.

**Segments.** The log ``first .. last`` is cut into segments: segment ``k`` covers
``start_k .. start_{k+1} - 1`` (the last one up to ``last``; ``first`` is ``start_0``), and
its entries live in runs under its own generation number ``gen_k``: the first keyed
``start_k``, each next one keyed by the index after the previous run's last. So the runs a
segment reads follow from the meta alone, whatever other keys its gen has; runs hold the
log up to the inline tail, which always lies inside the last segment. An empty log has no
segments (and ``last`` is the snapshot's index). The log may begin at or before the
snapshot's index (a tail kept for slow followers), never after it plus one. Truncating at an
index ``i`` of the inline tail just shortens the tail. Truncating at an earlier ``i`` (a
follower replacing a conflicting suffix) never overwrites a key in place: it starts a *new*
segment at ``i`` with a gen higher than every gen the current meta references, whose
entries start as the inline tail (a run of the old gen that held ``i`` keeps its key, and is
read only up to ``i - 1``). Compacting to ``c`` moves the first segment's start to ``c + 1``
(dropping the segments that end at or before ``c``, and the tail's entries up to ``c``); a
run that holds both ``c`` and ``c + 1`` is written again from ``c + 1`` on, under that key;
the runs that hold nothing from ``c + 1`` on are removed after the meta is written, which is
how compaction gives the space back. A new snapshot's data goes under the next data gen (one
more than the stored one's) in chunks of at most :attr:`LocalStorage.data_chunk` characters.

**Why this is crash-safe without transactions.** Each ``setItem`` is atomic on its own, but
a tab can die between two of them. The ``meta`` key is the single commit point, and a save
of entries that stay inline writes nothing else: it is atomic as it stands. Any other save
first writes every new data chunk and run, then ``meta`` (one ``setItem``), then removes the
keys the new meta no longer references (runs wholly compacted away, wholly truncated or of
segments wholly superseded, the previous snapshot's data). Before the meta write, every key
written is one the current meta does not reference (a moved-out tail's run, keyed past the
runs of its gen that the meta references; a fresh entry gen; a key inside a run; the next
data gen), so a crash there leaves the old state intact, plus unreferenced keys. After it,
every key the new meta references has been written, so a crash during the removals leaves
the new state intact, plus unreferenced keys. Either way :meth:`LocalStorage.load` finds
exactly one consistent state, and removes every ``e:`` and ``d:`` key of the namespace that
its meta does not reference (garbage can never become referenced by accident either: a key
becomes referenced only by a meta written after that key was written by the same save).

**Quota.** ``localStorage`` holds about 5 M UTF-16 characters per *origin*, shared by every
tab. When a ``setItem`` fails (``QuotaExceededError``), :meth:`LocalStorage.save` removes the
keys it wrote for that update (none of which the stored meta references), leaving the stored
state exactly as it was, and raises :class:`~webraft.errors.StorageError`; the runtime reports
it through the ``error`` event and retries with back-off. :meth:`LocalStorage.usage` tells the
application how many characters its namespace holds. Compaction is what keeps a long-running
node within the quota, but it frees space only once its save has committed: at its peak a
save holds the previous state *and* the new data and entries, so a snapshot must be taken
while the namespace still has room for one more copy of the data.

**Untrusted input.** Another tab, an extension or a user in devtools may have edited any
value: everything read back is validated, and anything malformed (or written by a newer
schema) raises :class:`~webraft.errors.StorageError`. One namespace must be used by one node
at a time; a save that finds ``meta`` changed since this object last read or wrote it refuses
to write (another tab is probably running the same node) instead of corrupting the log.

**Deferred commit index.** With :meth:`LocalStorage.defer_commits`, a save that changes
nothing but the commit index (a leader's, once a quorum acknowledged) is written later, by
:meth:`LocalStorage.flush` (in a tab, on a timer 50 ms later) or with the next save,
whichever comes first: a sequential leader's next proposal then writes it with its entry,
one ``setItem`` fewer per commit. Nothing waits on the commit index being stored (Raft keeps
it in memory; it is stored only so that a restarted node knows sooner), and a node that
stops first just restarts with an older one.

**Cost.** A save performs one ``setItem`` for ``meta`` (none when its text is unchanged),
which carries its new entries while the inline tail stays within its bound; one more per run
when the tail moves out (one run, unless past :attr:`LocalStorage.run_chars` characters),
one per data chunk, then one ``removeItem`` per run no longer referenced. In a tab a
``setItem`` is a message to the browser's storage process (and an answer back), 0.3-0.9 ms
in a commit's path: one per entry cost a leader more time than all of Raft's own work on the
batch, and a run plus the meta per save cost twice what the meta alone does. The price is
that each save rewrites the tail with the meta (at most ``inline_chars`` characters more).
The command texts written for the entries saved most recently are kept for
:meth:`LocalStorage.command_text` (a tab's apply handler takes the same text), so that each
is built once.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..core.messages import (
    MAX_ADDRESS,
    MAX_INT,
    SESSION,
    Entry,
    check_entry_data,
    entry_of,
)
from ..core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from ..errors import MessageError, StorageError
from .base import plan_update, portable_json

__all__ = ["SCHEMA_VERSION", "LocalStorage", "json_text"]

logger = logging.getLogger(__name__)

#: The schema this module writes; a namespace holding a newer one is refused, one holding
#: schema 1 (before snapshots had data), 2 (an entry per key) or 3 (no inline tail) is read
#: and upgraded by the next save.
SCHEMA_VERSION = 4

_META = "meta"
_ENTRY = "e:"
_DATA = "d:"
_QUOTA_NAMES = ("QuotaExceededError", "NS_ERROR_DOM_QUOTA_REACHED")

#: Most command texts kept for :meth:`LocalStorage.command_text`: entries wait between their
#: save and their apply about as long as a tab's backlog, far fewer than this. A miss only
#: costs building the text again.
_KEEP_TEXTS = 16384
#: The shipped :attr:`LocalStorage.inline_chars` (tests that change it restore this one).
INLINE_CHARS = 1 << 12

_json_ascii = json.JSONEncoder(separators=(",", ":")).encode
_json_unicode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_text(value: Any) -> str:
    """Compact JSON; non-ASCII text kept as is (1 localStorage quota character, not 6)
    unless it holds a lone surrogate, which could not cross into a JavaScript string
    intact."""
    text = _json_unicode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _json_ascii(value)
    return text


def _missing(value: Any) -> bool:
    """True for ``None`` and Pyodide's ``jsnull`` (what ``getItem`` returns for no key)."""
    return value is None or value.__class__.__name__ == "JsNull"


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _is_quota(exc: BaseException) -> bool:
    names = [getattr(exc, "name", None), type(exc).__name__,
             getattr(getattr(exc, "js_error", None), "name", None)]
    if any(isinstance(n, str) and n in _QUOTA_NAMES for n in names):
        return True
    return any(name in str(exc) for name in _QUOTA_NAMES)


def _canonical_int(text: str) -> int | None:
    """``int(text)`` if ``text`` is how Python writes a non-negative int, else None."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text)


def _default_store() -> Any:
    try:
        import js

        store = js.localStorage
    except (ImportError, AttributeError) as exc:
        raise StorageError("no localStorage here (not a browser window, or a worker): pass "
                           "store= explicitly") from exc
    if _missing(store):
        raise StorageError("localStorage is not available (disabled by the browser?)")
    return store


@dataclass(slots=True)
class _Meta:
    """The parsed ``meta`` record: hard state, snapshot, log bounds, segments and data."""

    hard: HardState
    snapshot: SnapshotMeta
    last: int
    segments: list[tuple[int, int]]  # (start index, gen), starts increasing; [] = empty log
    data: tuple[int, int, int] | None  # (gen, chunks, length) of the snapshot's data
    #: The texts of the newest entries, ``last - len(tail) + 1 .. last``, kept in the meta
    #: itself rather than in runs (always inside the last segment).
    tail: list[str]

    def ranges(self) -> dict[int, tuple[int, int]]:
        """gen -> (first, last) index its runs hold, in log order (the inline tail is not in
        any run); segments without runs are left out."""
        out: dict[int, tuple[int, int]] = {}
        segs = self.segments
        for k, (start, gen) in enumerate(segs):
            end = segs[k + 1][0] - 1 if k + 1 < len(segs) else self.last - len(self.tail)
            if start <= end:
                out[gen] = (start, end)
        return out

    def to_json(self) -> str:
        snap = self.snapshot
        head = json_text({
            "v": SCHEMA_VERSION, "term": self.hard.term, "vote": self.hard.vote,
            "commit": self.hard.commit,
            "snapshot": {"index": snap.index, "term": snap.term,
                         "config": snap.config.to_json()},
            "last": self.last, "segments": [list(s) for s in self.segments],
            "data": list(self.data) if self.data is not None else None,
        })
        # The tail's texts are JSON already: spliced in, not encoded again.
        return f'{head[:-1]},"tail":[{",".join(self.tail)}]}}'


class LocalStorage:
    """Keeps a node's term, vote, commit index, snapshot (metadata and data) and log in Web
    Storage.

    ``namespace`` prefixes every key (end it with a separator, e.g.
    ``f"webraft/{room}/{address}/"``); ``store`` is the Web Storage object, by default the
    page's ``js.localStorage``. See the module docstring for the layout and why a crash at
    any point leaves either the previous or the new state. :meth:`save` is synchronous and
    returns None.
    """

    #: The most characters of snapshot data one key holds. Browsers count the quota per
    #: origin rather than per value, but moderate values keep each ``setItem`` (and each
    #: string copied between Python and JavaScript) bounded.
    data_chunk: int = 1 << 18
    #: The most characters of entries one run holds (unless one entry alone is longer), for
    #: the same reason.
    run_chars: int = 1 << 15
    #: The most characters of entries the meta holds inline (its tail). Past it, a save moves
    #: the whole tail out to runs. Every save rewrites the meta, so this bounds what a save
    #: of a few entries writes; a ``setItem`` costs about the same up to a few thousand
    #: characters in Chromium (the message to the storage process dominates).
    inline_chars: int = INLINE_CHARS

    def __init__(self, namespace: str, store: Any = None, *,
                 holds: Callable[[str, str], bool] | None = None) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty string")
        self.namespace = namespace
        self.store = store if store is not None else _default_store()
        #: ``holds(key, text)``: does the store hold exactly ``text`` under ``key``? Asked
        #: before each save instead of reading the meta back (in a tab, a JavaScript
        #: comparison saves copying thousands of characters into Python); None: read back.
        self._holds = holds
        self._meta_key = namespace + _META
        self._synced = False  # _meta/_raw reflect the store (after a load, save or clear)
        self._meta: _Meta | None = None
        self._raw: str | None = None
        #: gen -> the runs ``(key index, last index)`` of that gen that the meta references,
        #: in index order (they follow each other without a gap).
        self._runs: dict[int, list[tuple[int, int]]] = {}
        #: A commit-only hard state not written yet, and who arranges its flush (see
        #: defer_commits).
        self._pending: HardState | None = None
        self._schedule_flush: Callable[[], None] | None = None
        # (entry, its command's text) for the entries saved most recently, in the order they
        # were saved, which is the order they are applied in: see command_text.
        self._texts: deque[tuple[Entry, str]] = deque(maxlen=_KEEP_TEXTS)

    def __repr__(self) -> str:
        return f"LocalStorage({self.namespace!r})"

    # ------------------------------------------------------------------ public API

    def load(self) -> StoredState | None:
        """Everything saved so far, or None for an empty namespace; checked before returning.

        Also removes the entry and data keys of the namespace that the stored meta does not
        reference (left by a crash in the middle of a save). Raises
        :class:`~webraft.errors.StorageError` if the namespace holds anything no correct node
        could have written.
        """
        self._pending = None  # what is stored is the truth from now on
        raw = self._get(self._meta_key)
        if raw is None:
            self._runs = {}
            self._collect(None)
            self._meta, self._raw, self._synced = None, None, True
            return None
        meta, tail = _parse_meta(raw)
        entries: list[Entry] = []
        runs: dict[int, list[tuple[int, int]]] = {}
        for gen, (first, end) in meta.ranges().items():
            entries += self._read_span(gen, first, end, runs.setdefault(gen, []))
        entries += tail
        state = StoredState(meta.hard, meta.snapshot, entries, self._read_data(meta.data))
        state.check()
        self._runs = runs
        self._collect(meta)
        self._meta, self._raw, self._synced = meta, raw, True
        return state

    def save(self, update: StorageUpdate) -> None:
        """Apply ``update`` atomically, in the contract's order (the snapshot and its data,
        the deletion of the entries at or below ``compact_to``, the entries replacing every
        stored entry at or after the first one's index, the hard state); return None.

        The first save to an empty namespace must record the snapshot metadata. An update
        that would leave a state ``StoredState.check()`` refuses by its indexes (a gap in the
        log, a log that does not reach the snapshot, a snapshot that moves back or moves
        without data) is refused. On any failure (quota exceeded above all) the stored state
        is left exactly as it was and :class:`~webraft.errors.StorageError` is raised.
        (With :meth:`defer_commits`, a change of the commit index alone is written later.)
        """
        hard, meta = update.hard, self._meta
        if (self._schedule_flush is not None and hard is not None and meta is not None
                and self._synced and not update.entries and update.snapshot is None
                and update.snapshot_data is None and not update.compact_to
                and (hard.term, hard.vote) == (meta.hard.term, meta.hard.vote)):
            self._pending = hard
            self._schedule_flush()
            return
        if self._pending is not None and hard is None:  # (dataclasses.replace: 4x slower)
            update = StorageUpdate(self._pending, update.entries, update.snapshot,
                                   update.snapshot_data, update.compact_to)
        self._save(update)
        self._pending = None

    def defer_commits(self, schedule_flush: Callable[[], None]) -> None:
        """From now on, write saves that change nothing but the commit index later (see the
        module doc): ``schedule_flush()`` must arrange a call of :meth:`flush` soon (a tab's
        end of task)."""
        self._schedule_flush = schedule_flush

    def flush(self) -> None:
        """Write a deferred commit index now. Never raises: a failure is logged, and the
        next save writes it."""
        pending = self._pending
        if pending is None:
            return
        try:
            self._save(StorageUpdate(pending))
        except StorageError as exc:
            logger.warning("%r: could not write the commit index (the next save will): %s",
                           self, exc)
            return
        self._pending = None

    def _save(self, update: StorageUpdate) -> None:
        old = self._current()
        data = portable_json(update.snapshot_data) if update.snapshot_data is not None else None
        # Serialize everything before the first write: a bad command fails with nothing done.
        new = self._plan(old, update, data)
        moved: list[tuple[str, str]] = []
        added: list[tuple[int, int]] = []
        gen = new.segments[-1][1] if new.segments else 0
        tail = new.tail
        if tail and sum(map(len, tail)) + len(tail) > self.inline_chars:
            # Moved out whole, keyed by its first index: past the runs ``old`` references.
            added = self._add_runs(moved, gen, new.last - len(tail) + 1, tail)
            new.tail = []
        writes: list[tuple[str, str]] = []
        runs = self._runs if old is None else self._cut_runs(old, new, writes)
        if data is not None:
            assert new.data is not None
            gen_data, step = new.data[0], self.data_chunk
            for k, at in enumerate(range(0, len(data), step)):
                writes.append((self._data_key(gen_data, k), data[at:at + step]))
        writes += moved
        meta_text = new.to_json()
        if meta_text != self._raw:
            writes.append((self._meta_key, meta_text))
        self._write(writes)
        cut = None if runs is self._runs else self._runs
        if added:
            runs.setdefault(gen, []).extend(added)
        self._meta, self._raw, self._runs = new, meta_text, runs
        if old is not None:
            self._drop_unreferenced(old, new, cut)

    def command_text(self, entry: Entry) -> str:
        """:func:`json_text` of ``entry``'s command: the text this storage wrote for it when
        it saved that very entry (a tab needs it again as its JavaScript apply handler's
        argument, and building it is most of a save's cost), else built now."""
        texts = self._texts
        # Entries are applied in log order: the texts of earlier ones that nobody asked for
        # (no-ops, configurations, a tab without an apply handler) are dropped on the way.
        while texts:
            kept, text = texts[0]
            if kept.index > entry.index:
                break
            texts.popleft()
            if kept is entry:
                return text
        return json_text(entry.command)

    def usage(self) -> int:
        """Characters (UTF-16 code units, keys included, as browsers count the quota) held
        by this namespace."""
        total = 0
        for key in self._own_keys():
            value = self._get(key)
            if value is not None:
                total += _utf16_len(key) + _utf16_len(value)
        return total

    def clear(self) -> None:
        """Remove every key of this namespace (its meta, entries and data; nothing else)."""
        for key in self._own_keys():
            self.store.removeItem(key)
        self._meta, self._raw, self._runs, self._synced = None, None, {}, True
        self._pending = None

    # ------------------------------------------------------------------ reading helpers

    def _entry_key(self, gen: int, index: int) -> str:
        return f"{self.namespace}{_ENTRY}{gen}:{index}"

    def _data_key(self, gen: int, chunk: int) -> str:
        return f"{self.namespace}{_DATA}{gen}:{chunk}"

    def _get(self, key: str) -> str | None:
        value = self.store.getItem(key)
        if _missing(value):
            return None
        if not isinstance(value, str):
            raise StorageError(f"stored value of {key!r} is {type(value).__name__}, not text")
        return value

    def _read_span(self, gen: int, first: int, end: int,
                   runs: list[tuple[int, int]]) -> list[Entry]:
        """Entries ``first..end`` of ``gen``, from the run keyed ``first`` on; appends each
        run read, ``(key index, last index)``, to ``runs``."""
        out: list[Entry] = []
        key = first
        while key <= end:
            name = self._entry_key(gen, key)
            text = self._get(name)
            if text is None:
                raise StorageError(f"stored log entry {key} (key {name!r}) is missing")
            entries = _parse_run(text, key)
            stop = key + len(entries) - 1
            out += entries[:end - key + 1]
            runs.append((key, stop))
            key = stop + 1
        return out

    def _read_data(self, data: tuple[int, int, int] | None) -> str | None:
        if data is None:
            return None
        gen, chunks, length = data
        parts = []
        for k in range(chunks):
            text = self._get(self._data_key(gen, k))
            if text is None:
                raise StorageError(f"stored snapshot data chunk {k} (key "
                                   f"{self._data_key(gen, k)!r}) is missing")
            parts.append(text)
        text = "".join(parts)
        if len(text) != length:
            raise StorageError(f"stored snapshot data has {len(text)} characters, its meta "
                               f"says {length}")
        return text

    def _keys(self) -> list[str]:
        """Every key of the store (a snapshot: removing keys renumbers ``key(i)``)."""
        store = self.store
        keys = []
        for i in range(int(store.length)):
            key = store.key(i)
            if isinstance(key, str):
                keys.append(key)
        return keys

    def _own_item(self, key: str) -> tuple[str, int, int] | None:
        """``(kind, gen, n)`` if ``key`` is an entry (``"e:"``, n = index) or data (``"d:"``,
        n = chunk) key of this namespace, else None."""
        ns = self.namespace
        if not key.startswith(ns):
            return None
        kind = key[len(ns):len(ns) + 2]
        if kind != _ENTRY and kind != _DATA:
            return None
        parts = key[len(ns) + 2:].split(":")
        if len(parts) != 2:
            return None
        gen, n = _canonical_int(parts[0]), _canonical_int(parts[1])
        if gen is None or n is None:
            return None
        return kind, gen, n

    def _own_keys(self) -> list[str]:
        return [key for key in self._keys()
                if key == self._meta_key or self._own_item(key) is not None]

    def _collect(self, meta: _Meta | None) -> None:
        """Remove the namespace's entry and data keys ``meta`` does not reference (all of
        them for None; its runs are :attr:`_runs`, as read)."""
        runs = {(gen, key) for gen, spans in self._runs.items() for key, _ in spans}
        data = meta.data if meta is not None else None
        garbage = []
        for key in self._keys():
            parsed = self._own_item(key)
            if parsed is None:
                continue
            kind, gen, n = parsed
            if kind == _ENTRY:
                if (gen, n) in runs:
                    continue
            elif data is not None and gen == data[0] and n < data[1]:
                continue
            garbage.append(key)
        for key in garbage:
            self.store.removeItem(key)
        if garbage:
            logger.info("%r: removed %d unreferenced keys", self, len(garbage))

    def _current(self) -> _Meta | None:
        """The committed meta, after checking nobody else changed it since we last did."""
        if not self._synced:
            self.load()  # first use without a load: validates and collects garbage
            return self._meta
        if self._raw is not None and self._holds is not None:
            changed = not self._holds(self._meta_key, self._raw)
        else:
            changed = self._get(self._meta_key) != self._raw
        if changed:
            raise StorageError(f"{self.namespace!r} was changed by someone else since this "
                               "node last read or wrote it (is the same node running in "
                               "another tab?); refusing to write")
        return self._meta

    # ------------------------------------------------------------------ writing helpers

    def _plan(self, old: _Meta | None, update: StorageUpdate, data: str | None) -> _Meta:
        """The meta after ``update`` (whose snapshot data, made portable, is ``data``);
        raises StorageError for an update that makes no sense."""
        first = old.segments[0][0] if old is not None and old.segments else None
        # The checks every backend shares (they raise before anything is written).
        snap_index, first, last = plan_update(
            None if old is None else old.snapshot.index, first,
            None if first is None or old is None else old.last, update)
        snap = update.snapshot
        if snap is None:
            assert old is not None  # plan_update refuses a first save without a snapshot
            new = _Meta(old.hard, old.snapshot, old.last, list(old.segments), old.data,
                        list(old.tail))
        else:
            if old is None:
                new = _Meta(HardState(), snap, snap.index, [], None, [])
            else:
                new = _Meta(old.hard, snap, old.last, list(old.segments), old.data,
                            list(old.tail))
            if data is not None:
                # The next data gen: never one the stored meta references.
                gen = old.data[0] + 1 if old is not None and old.data is not None else 0
                new.data = (gen, -(-len(data) // self.data_chunk), len(data))
        segs, tail = new.segments, new.tail
        compact_to = update.compact_to
        if segs and compact_to >= segs[0][0]:
            if compact_to >= new.last:
                segs.clear()
                tail.clear()
            else:
                while len(segs) > 1 and segs[1][0] <= compact_to + 1:
                    del segs[0]
                segs[0] = (compact_to + 1, segs[0][1])
                # The tail's entries at or below compact_to, if it reaches that far.
                del tail[:max(0, compact_to + len(tail) - new.last)]
        entries = update.entries
        if entries:
            start = entries[0].index
            tail_start = new.last - len(tail) + 1
            if segs and start >= tail_start:
                # Appended, or replacing part of the tail: the meta is rewritten anyway.
                del tail[start - tail_start:]
            else:
                # A truncation into runs (or a first segment): a fresh gen, never referenced
                # by ``old``.
                gens = [g for _, g in segs]
                if old is not None:
                    gens += [g for _, g in old.segments]
                gen = max(gens, default=-1) + 1
                segs[:] = [s for s in segs if s[0] < start]
                segs.append((start, gen))
                tail.clear()
            tail += self._entry_texts(entries)
        assert (segs[0][0] if segs else None) == first
        new.last = snap_index if last is None else last
        if update.hard is not None:
            new.hard = update.hard
        return new

    def _cut_runs(self, old: _Meta, new: _Meta,
                  writes: list[tuple[str, str]]) -> dict[int, list[tuple[int, int]]]:
        """The runs ``new`` references of those ``old`` did (the same object when no range
        shrank, as when entries are only appended). A run that a compaction cut, holding
        entries before the new first one, is written again from it (its write added to
        ``writes``), so that the space of the cut entries comes back."""
        after = new.ranges()
        runs = self._runs
        for gen, (lo, hi) in old.ranges().items():
            span = after.get(gen)
            if span is not None and span[0] == lo and span[1] >= hi:
                continue  # unchanged, or appended to
            if runs is self._runs:
                runs = dict(runs)
            if span is None:
                runs.pop(gen, None)
                continue
            lo, hi = span
            live = [run for run in runs.get(gen, ()) if run[0] <= hi and run[1] >= lo]
            if live and live[0][0] < lo:
                live[0] = self._rewrite_run(writes, gen, live[0][0], lo, min(live[0][1], hi))
            runs[gen] = live
        return runs

    def _rewrite_run(self, writes: list[tuple[str, str]], gen: int, key: int, first: int,
                     last: int) -> tuple[int, int]:
        """Add the write of entries ``first..last`` of the run keyed ``key`` as a run of its
        own, keyed ``first``."""
        name = self._entry_key(gen, key)
        text = self._get(name)
        if text is None:
            raise StorageError(f"stored log entry {key} (key {name!r}) is missing")
        item = _json(text, f"log entry {key}")
        items = item if type(item) is list and item and type(item[0]) is list else [item]
        kept = items[first - key:last - key + 1]
        if len(kept) != last - first + 1:
            raise StorageError(f"stored run {name!r} no longer holds entries {first}..{last}")
        return self._add_run(writes, gen, first, [json_text(e) for e in kept])

    def _entry_texts(self, entries: Sequence[Entry]) -> list[str]:
        """The stored texts of ``entries``, keeping each command's text for
        :meth:`command_text`. Raise StorageError for a command that is not JSON."""
        keep = self._texts.append
        texts = []
        try:
            for e in entries:
                text = json_text(e.command)
                keep((e, text))
                texts.append(_entry_text(e, text))
        except (TypeError, ValueError, RecursionError) as exc:
            raise StorageError(f"log entry cannot be stored as JSON: {exc}") from exc
        return texts

    def _add_runs(self, writes: list[tuple[str, str]], gen: int, first: int,
                  items: list[str]) -> list[tuple[int, int]]:
        """Add the writes of the entry texts ``items`` from index ``first`` under ``gen``, as
        runs of at most :attr:`run_chars` characters; return the runs ``(key index, last
        index)``."""
        runs: list[tuple[int, int]] = []
        start = size = 0
        for k, item in enumerate(items):
            if k > start and size + len(item) > self.run_chars:
                runs.append(self._add_run(writes, gen, first + start, items[start:k]))
                start, size = k, 0
            size += len(item) + 1
        runs.append(self._add_run(writes, gen, first + start, items[start:]))
        return runs

    def _add_run(self, writes: list[tuple[str, str]], gen: int, first: int,
                 items: list[str]) -> tuple[int, int]:
        """Add the write of the run of entry texts ``items`` from index ``first``."""
        writes.append((self._entry_key(gen, first),
                       items[0] if len(items) == 1 else f"[{','.join(items)}]"))
        return first, first + len(items) - 1

    def _write(self, writes: list[tuple[str, str]]) -> None:
        """``setItem`` each pair in order; on failure remove what was written and raise."""
        store = self.store
        # Looked up once: on Pyodide each ``store.setItem`` lookup builds a fresh proxy of
        # the method, which took about a third of each write's time in a tab.
        set_item = store.setItem
        done: list[str] = []
        try:
            for key, value in writes:
                set_item(key, value)
                done.append(key)
        except Exception as exc:
            # Nothing written so far is referenced by the stored meta (the meta write is last
            # and atomic), so removing it restores the previous state exactly.
            cleanup_error = None
            for key in reversed(done):
                try:
                    store.removeItem(key)
                except Exception as err:  # left as garbage; collected on the next load
                    cleanup_error = err
            what = "localStorage quota exceeded" if _is_quota(exc) else "localStorage write failed"
            note = "" if cleanup_error is None else f" (cleanup failed too: {cleanup_error!r})"
            try:
                used = f"{self.usage()} characters used by this node"
            except Exception:
                used = "usage unknown"
            raise StorageError(f"{what} in {self.namespace!r} ({used}); nothing was "
                               f"saved{note}: {exc}") from exc

    def _drop_unreferenced(self, old: _Meta, new: _Meta,
                           cut: dict[int, list[tuple[int, int]]] | None) -> None:
        """After the commit point: remove the keys ``old`` referenced and ``new`` does not
        (``cut``: ``old``'s runs if some are no longer referenced; :attr:`_runs` are
        ``new``'s)."""
        store = self.store
        try:
            if old.data is not None and (new.data is None or new.data[0] != old.data[0]):
                for k in range(old.data[1]):
                    store.removeItem(self._data_key(old.data[0], k))
            for gen, runs in (cut or {}).items():
                kept = {key for key, _ in self._runs.get(gen, ())}
                for key, _ in runs:
                    if key not in kept:
                        store.removeItem(self._entry_key(gen, key))
        except Exception as exc:  # pragma: no cover - removeItem does not fail in browsers
            logger.warning("%r: could not remove stale keys (collected on the next load): "
                           "%r", self, exc)


# ---------------------------------------------------------------------- parsing


def _int(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise StorageError(f"stored {what} is {value!r:.60}, not an integer in [0, 2**53)")
    return value


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"stored {what} is not valid JSON: {exc}") from None


def _parse_meta(raw: str) -> tuple[_Meta, list[Entry]]:
    """The meta stored as ``raw``, and the entries of its inline tail."""
    data = _json(raw, "meta")
    if not isinstance(data, dict):
        raise StorageError("stored meta is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version < 1:
        raise StorageError(f"stored meta has no valid schema version ({version!r:.40})")
    if version > SCHEMA_VERSION:
        raise StorageError(f"stored meta uses storage schema {version}, written by a newer "
                           f"webraft; this one knows schema {SCHEMA_VERSION}")
    required = {"term", "vote", "commit", "snapshot", "last", "segments"}
    if version >= 2:
        required.add("data")
    if version >= 4:
        required.add("tail")
    missing = required - data.keys()
    if missing:
        raise StorageError(f"stored meta lacks {sorted(missing)}")
    vote = data["vote"]
    if vote is not None and (type(vote) is not str or not 0 < len(vote) <= MAX_ADDRESS):
        raise StorageError(f"stored vote is {vote!r:.60}, not a node address or null")
    hard = HardState(_int(data["term"], "term"), vote, _int(data["commit"], "commit index"))
    snap = data["snapshot"]
    if not isinstance(snap, dict):
        raise StorageError("stored snapshot metadata is not a JSON object")
    try:
        config = ClusterConfig.from_json(snap.get("config"), "stored snapshot config",
                                         bootstrap=snap.get("index") == 0)
    except MessageError as exc:
        raise StorageError(str(exc)) from None
    snapshot = SnapshotMeta(_int(snap.get("index"), "snapshot index"),
                            _int(snap.get("term"), "snapshot term"), config)
    last = _int(data["last"], "last log index")
    if last < snapshot.index:
        raise StorageError(f"stored last log index {last} precedes the snapshot "
                           f"({snapshot.index})")
    raw_segs = data["segments"]
    if not isinstance(raw_segs, list):
        raise StorageError("stored segments are not a list")
    segments: list[tuple[int, int]] = []
    for item in raw_segs:
        if type(item) is not list or len(item) != 2:
            raise StorageError("stored segments must be [start_index, gen] pairs")
        segments.append((_int(item[0], "segment start"), _int(item[1], "segment gen")))
    if not segments:
        if last != snapshot.index:
            raise StorageError(f"stored last log index {last} for an empty log (the snapshot "
                               f"is at {snapshot.index})")
    else:
        starts = [s for s, _ in segments]
        # Schema 1 never kept a tail: its log starts right after the snapshot.
        if starts[0] > snapshot.index + 1 or (version == 1 and starts[0] != snapshot.index + 1):
            raise StorageError(f"stored segments do not start at index {snapshot.index + 1}"
                               f"{' or before' if version > 1 else ''}")
        if any(a >= b for a, b in pairwise(starts)) or starts[-1] > last:
            raise StorageError("stored segments overlap, leave a gap or run past the log")
        if len({g for _, g in segments}) != len(segments):
            raise StorageError("stored segments share a gen")
    ref = data.get("data") if version >= 2 else None
    snapshot_data = None
    if ref is not None:
        if type(ref) is not list or len(ref) != 3:
            raise StorageError("stored snapshot data must be null or [gen, chunks, length]")
        snapshot_data = (_int(ref[0], "snapshot data gen"), _int(ref[1], "snapshot data chunks"),
                         _int(ref[2], "snapshot data length"))
    raw_tail = data["tail"] if version >= 4 else []
    if not isinstance(raw_tail, list):
        raise StorageError("stored inline tail is not a list")
    start = last - len(raw_tail) + 1
    if raw_tail and (not segments or start < segments[-1][0]):
        raise StorageError(f"stored inline tail of {len(raw_tail)} entries does not fit in "
                           "the last segment")
    tail = [_parse_entry(item, start + k) for k, item in enumerate(raw_tail)]
    texts = [json_text(item) for item in raw_tail]  # as stored: _entry_text's form
    return _Meta(hard, snapshot, last, segments, snapshot_data, texts), tail


def _parse_run(text: str, key: int) -> list[Entry]:
    """The entries of the run keyed ``key`` (or of the entry stored alone there)."""
    item = _json(text, f"log entry {key}")
    if type(item) is list and item and type(item[0]) is list:
        return [_parse_entry(entry, key + k) for k, entry in enumerate(item)]
    return [_parse_entry(item, key)]


def _entry_text(entry: Entry, command_text: str) -> str:
    """How ``entry``, whose command's JSON is ``command_text``, is stored: the same text as
    ``json_text([term, kind, entry.data])``."""
    if entry.kind != SESSION:
        return f"[{entry.term},{entry.kind},{command_text}]"
    client = entry.client  # an int (a tab's session) is its own JSON
    client_text = str(client) if type(client) is int else json_text(client)
    return f"[{entry.term},{entry.kind},[{client_text},{entry.seq},{entry.ack},{command_text}]]"


def _parse_entry(item: Any, index: int) -> Entry:
    where = f"log entry {index}"
    if type(item) is not list or len(item) != 3:
        raise StorageError(f"stored {where} is not [term, kind, command]")
    term, kind, command = item
    try:
        check_entry_data(kind, command, f"stored {where}")
    except MessageError as exc:
        raise StorageError(str(exc)) from None
    return entry_of(_int(term, f"{where} term"), index, kind, command)

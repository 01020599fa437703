"""A durable storage on the browser's Web Storage API (``localStorage``).

``js`` is never imported at module import time: the module imports in CPython, and the
default backing store, ``js.localStorage``, is looked up only when a :class:`LocalStorage` is
created without an explicit ``store``. Any object with ``getItem``, ``setItem``, ``removeItem``,
``key(i)`` and ``length`` (the Web Storage interface) can be passed instead.

**Key layout.** Every key starts with the caller's ``namespace`` (for example
``webraft/<room>/<address>/``); the part after it is exactly one of

* ``meta``: JSON ``{"v": 1, "term", "vote", "commit", "snapshot": {"index", "term",
  "config"}, "last": <last log index>, "segments": [[start_index, gen], ...]}``;
* ``e:<gen>:<index>``: one log entry as compact JSON ``[term, kind, command]``.

Only keys of these two exact shapes are ever read, written or removed, so distinct
namespaces never touch each other's keys, even when one is a prefix of the other, and
foreign keys (including unknown keys inside the namespace) are left alone.

**Segments.** The log ``snapshot.index + 1 .. last`` is cut into segments: segment ``k``
covers ``start_k .. start_{k+1} - 1`` (the last one up to ``last``), and its entries live
under its own generation number ``gen_k``. Appending to the tail writes new keys under the
tail segment's gen. Truncating at index ``i`` (a follower replacing a conflicting suffix)
never overwrites a key in place: it starts a *new* segment at ``i`` with a gen higher than
every gen the current meta references and writes the replacement entries under it.

**Why this is crash-safe without transactions.** Each ``setItem`` is atomic on its own, but
a tab can die between two of them. The ``meta`` key is the single commit point: a save first
writes every new entry key, then ``meta`` (one ``setItem``), then removes the keys the new
meta no longer references (the truncated suffix of a segment, segments wholly superseded,
entries covered by a new snapshot). Before the meta write, every key written is one the
current meta does not reference (a higher index of the tail gen, or a fresh gen), so a crash
there leaves the old state intact, plus unreferenced keys. After it, every key the new meta
references has been written, so a crash during the removals leaves the new state intact,
plus unreferenced keys. Either way :meth:`LocalStorage.load` finds exactly one consistent
state, and removes every unreferenced ``e:`` key of the namespace (garbage can never become
referenced by accident either: a key becomes referenced only by a meta written after that
key was written by the same save).

**Quota.** ``localStorage`` holds about 5 M UTF-16 characters per *origin*, shared by every
tab. When a ``setItem`` fails (``QuotaExceededError``), :meth:`LocalStorage.save` removes the
keys it wrote for that update (none of which the stored meta references), leaving the stored
state exactly as it was, and raises :class:`~webraft.errors.StorageError`; the runtime reports
it through the ``error`` event and retries with back-off. :meth:`LocalStorage.usage` tells the
application how many characters its namespace holds.

**Untrusted input.** Another tab, an extension or a user in devtools may have edited any
value: everything read back is validated, and anything malformed (or written by a newer
schema) raises :class:`~webraft.errors.StorageError`. One namespace must be used by one node
at a time; a save that finds ``meta`` changed since this object last read or wrote it refuses
to write (another tab is probably running the same node) instead of corrupting the log.

**Cost.** A save performs one ``setItem`` per new entry plus one for ``meta`` (none when
the meta text is unchanged), then one ``removeItem`` per key no longer referenced.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..core.messages import COMMAND, CONFIG, MAX_ADDRESS, MAX_INT, Entry, check_config
from ..core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from ..errors import MessageError, StorageError

__all__ = ["SCHEMA_VERSION", "LocalStorage"]

logger = logging.getLogger(__name__)

#: The schema this module writes; a namespace holding a newer one is refused.
SCHEMA_VERSION = 1

_META = "meta"
_ENTRY = "e:"
_QUOTA_NAMES = ("QuotaExceededError", "NS_ERROR_DOM_QUOTA_REACHED")

_dumps_ascii = json.JSONEncoder(separators=(",", ":")).encode
_dumps_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(value: Any) -> str:
    """Compact JSON; non-ASCII text kept as is (1 quota character, not 6) unless it holds a
    lone surrogate, which could not cross into a JavaScript string intact."""
    text = _dumps_text(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _dumps_ascii(value)
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
        import js  # type: ignore[import-not-found]

        store = js.localStorage
    except (ImportError, AttributeError) as exc:
        raise StorageError("no localStorage here (not a browser window, or a worker): pass "
                           "store= explicitly") from exc
    if _missing(store):
        raise StorageError("localStorage is not available (disabled by the browser?)")
    return store


@dataclass(slots=True)
class _Meta:
    """The parsed ``meta`` record: hard state, snapshot, log bounds and segments."""

    hard: HardState
    snapshot: SnapshotMeta
    last: int
    segments: list[tuple[int, int]]  # (start index, gen), starts increasing

    def ranges(self) -> dict[int, tuple[int, int]]:
        """gen -> (first, last) index it holds; empty segments are left out."""
        out: dict[int, tuple[int, int]] = {}
        segs = self.segments
        for k, (start, gen) in enumerate(segs):
            end = segs[k + 1][0] - 1 if k + 1 < len(segs) else self.last
            if start <= end:
                out[gen] = (start, end)
        return out

    def to_json(self) -> str:
        snap = self.snapshot
        return _dumps({
            "v": SCHEMA_VERSION, "term": self.hard.term, "vote": self.hard.vote,
            "commit": self.hard.commit,
            "snapshot": {"index": snap.index, "term": snap.term,
                         "config": snap.config.to_json()},
            "last": self.last, "segments": [list(s) for s in self.segments],
        })


class LocalStorage:
    """Keeps a node's term, vote, commit index, snapshot metadata and log in Web Storage.

    ``namespace`` prefixes every key (end it with a separator, e.g.
    ``f"webraft/{room}/{address}/"``); ``store`` is the Web Storage object, by default the
    page's ``js.localStorage``. See the module docstring for the layout and why a crash at
    any point leaves either the previous or the new state. :meth:`save` is synchronous and
    returns None.
    """

    def __init__(self, namespace: str, store: Any = None) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty string")
        self.namespace = namespace
        self.store = store if store is not None else _default_store()
        self._meta_key = namespace + _META
        self._synced = False  # _meta/_raw reflect the store (after a load, save or clear)
        self._meta: _Meta | None = None
        self._raw: str | None = None

    def __repr__(self) -> str:
        return f"LocalStorage({self.namespace!r})"

    # ------------------------------------------------------------------ public API

    def load(self) -> StoredState | None:
        """Everything saved so far, or None for an empty namespace; checked before returning.

        Also removes the entry keys of the namespace that the stored meta does not reference
        (left by a crash in the middle of a save). Raises :class:`~webraft.errors.StorageError`
        if the namespace holds anything no correct node could have written.
        """
        raw = self._get(self._meta_key)
        if raw is None:
            self._collect(None)
            self._meta, self._raw, self._synced = None, None, True
            return None
        meta = _parse_meta(raw)
        ranges = meta.ranges()
        entries: list[Entry] = []
        for gen, (first, end) in sorted(ranges.items(), key=lambda item: item[1]):
            for index in range(first, end + 1):
                text = self._get(self._entry_key(gen, index))
                if text is None:
                    raise StorageError(f"stored log entry {index} (key "
                                       f"{self._entry_key(gen, index)!r}) is missing")
                entries.append(_parse_entry(text, index))
        state = StoredState(meta.hard, meta.snapshot, entries)
        state.check()
        self._collect(ranges)
        self._meta, self._raw, self._synced = meta, raw, True
        return state

    def save(self, update: StorageUpdate) -> None:
        """Apply ``update`` (snapshot metadata, then entries replacing every stored entry at
        or after the first one's index, then the hard state) atomically; return None.

        The first save to an empty namespace must record the snapshot metadata. On any
        failure (quota exceeded above all) the stored state is left exactly as it was and
        :class:`~webraft.errors.StorageError` is raised.
        """
        old = self._current()
        new = self._plan(old, update)
        meta_text = new.to_json()
        # Serialize everything before the first write: a bad command fails with nothing done.
        writes: list[tuple[str, str]] = []
        if update.entries:
            gen = new.segments[-1][1]
            try:
                for e in update.entries:
                    writes.append((self._entry_key(gen, e.index),
                                   _dumps([e.term, e.kind, e.command])))
            except (TypeError, ValueError, RecursionError) as exc:
                raise StorageError(f"log entry cannot be stored as JSON: {exc}") from exc
        if meta_text != self._raw:
            writes.append((self._meta_key, meta_text))
        self._write(writes)
        self._meta, self._raw = new, meta_text
        if old is not None:
            self._drop_unreferenced(old, new)

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
        """Remove every key of this namespace (its meta and entries; nothing else)."""
        for key in self._own_keys():
            self.store.removeItem(key)
        self._meta, self._raw, self._synced = None, None, True

    # ------------------------------------------------------------------ reading helpers

    def _entry_key(self, gen: int, index: int) -> str:
        return f"{self.namespace}{_ENTRY}{gen}:{index}"

    def _get(self, key: str) -> str | None:
        value = self.store.getItem(key)
        if _missing(value):
            return None
        if not isinstance(value, str):
            raise StorageError(f"stored value of {key!r} is {type(value).__name__}, not text")
        return value

    def _keys(self) -> list[str]:
        """Every key of the store (a snapshot: removing keys renumbers ``key(i)``)."""
        store = self.store
        keys = []
        for i in range(int(store.length)):
            key = store.key(i)
            if isinstance(key, str):
                keys.append(key)
        return keys

    def _own_entry(self, key: str) -> tuple[int, int] | None:
        """``(gen, index)`` if ``key`` is an entry key of this namespace, else None."""
        ns = self.namespace
        if not key.startswith(ns) or not key.startswith(_ENTRY, len(ns)):
            return None
        parts = key[len(ns) + len(_ENTRY):].split(":")
        if len(parts) != 2:
            return None
        gen, index = _canonical_int(parts[0]), _canonical_int(parts[1])
        if gen is None or index is None:
            return None
        return gen, index

    def _own_keys(self) -> list[str]:
        return [key for key in self._keys()
                if key == self._meta_key or self._own_entry(key) is not None]

    def _collect(self, ranges: dict[int, tuple[int, int]] | None) -> None:
        """Remove the namespace's entry keys outside ``ranges`` (all of them for None)."""
        ranges = ranges or {}
        garbage = []
        for key in self._keys():
            parsed = self._own_entry(key)
            if parsed is None:
                continue
            span = ranges.get(parsed[0])
            if span is None or not span[0] <= parsed[1] <= span[1]:
                garbage.append(key)
        for key in garbage:
            self.store.removeItem(key)
        if garbage:
            logger.info("%r: removed %d unreferenced log keys", self, len(garbage))

    def _current(self) -> _Meta | None:
        """The committed meta, after checking nobody else changed it since we last did."""
        if not self._synced:
            self.load()  # first use without a load: validates and collects garbage
            return self._meta
        raw = self._get(self._meta_key)
        if raw != self._raw:
            raise StorageError(f"{self.namespace!r} was changed by someone else since this "
                               "node last read or wrote it (is the same node running in "
                               "another tab?); refusing to write")
        return self._meta

    # ------------------------------------------------------------------ writing helpers

    @staticmethod
    def _plan(old: _Meta | None, update: StorageUpdate) -> _Meta:
        """The meta after ``update``; raises StorageError for an update that makes no sense."""
        snap = update.snapshot
        if old is None:
            if snap is None:
                raise StorageError("the first save to a new storage must record the "
                                   "snapshot metadata")
            new = _Meta(HardState(), snap, snap.index, [])
        else:
            new = _Meta(old.hard, old.snapshot, old.last, list(old.segments))
            if snap is not None:
                if snap.index < old.snapshot.index:
                    raise StorageError(f"snapshot at index {snap.index} is older than the "
                                       f"stored one at {old.snapshot.index}")
                new.snapshot = snap
                if snap.index >= new.last:
                    new.last, new.segments = snap.index, []
                else:
                    segs = new.segments
                    while len(segs) > 1 and segs[1][0] <= snap.index + 1:
                        del segs[0]
                    segs[0] = (max(segs[0][0], snap.index + 1), segs[0][1])
        entries = update.entries
        if entries:
            first = entries[0].index
            if not new.snapshot.index < first <= new.last + 1:
                raise StorageError(f"entries starting at index {first} do not follow the log "
                                   f"{new.snapshot.index + 1}..{new.last}")
            if entries[-1].index != first + len(entries) - 1:
                raise StorageError("entries of one update must have consecutive indexes")
            if first <= new.last or not new.segments:
                # A truncation (or a first segment): a fresh gen, never referenced by ``old``.
                gens = [g for _, g in new.segments]
                if old is not None:
                    gens += [g for _, g in old.segments]
                gen = max(gens, default=-1) + 1
                new.segments = [s for s in new.segments if s[0] < first]
                new.segments.append((first, gen))
            new.last = entries[-1].index
        if update.hard is not None:
            new.hard = update.hard
        return new

    def _write(self, writes: list[tuple[str, str]]) -> None:
        """``setItem`` each pair in order; on failure remove what was written and raise."""
        store = self.store
        done: list[str] = []
        try:
            for key, value in writes:
                store.setItem(key, value)
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

    def _drop_unreferenced(self, old: _Meta, new: _Meta) -> None:
        """After the commit point: remove the keys ``old`` referenced and ``new`` does not."""
        keep = new.ranges()
        store = self.store
        try:
            for gen, (first, end) in old.ranges().items():
                lo, hi = keep.get(gen, (end + 1, end))
                for index in range(first, end + 1):
                    if not lo <= index <= hi:
                        store.removeItem(self._entry_key(gen, index))
        except Exception as exc:  # pragma: no cover - removeItem does not fail in browsers
            logger.warning("%r: could not remove stale log keys (collected on the next "
                           "load): %r", self, exc)


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


def _parse_meta(raw: str) -> _Meta:
    data = _json(raw, "meta")
    if not isinstance(data, dict):
        raise StorageError("stored meta is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version < 1:
        raise StorageError(f"stored meta has no valid schema version ({version!r:.40})")
    if version > SCHEMA_VERSION:
        raise StorageError(f"stored meta uses storage schema {version}, written by a newer "
                           f"webraft; this one knows schema {SCHEMA_VERSION}")
    missing = {"term", "vote", "commit", "snapshot", "last", "segments"} - data.keys()
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
        config = ClusterConfig.from_json(snap.get("config"), "stored snapshot config")
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
    if last == snapshot.index:
        if segments:
            raise StorageError("stored segments for an empty log")
    else:
        starts = [s for s, _ in segments]
        if not segments or starts[0] != snapshot.index + 1:
            raise StorageError(f"stored segments do not start at index {snapshot.index + 1}")
        if any(a >= b for a, b in pairwise(starts)) or starts[-1] > last:
            raise StorageError("stored segments overlap, leave a gap or run past the log")
        if len({g for _, g in segments}) != len(segments):
            raise StorageError("stored segments share a gen")
    return _Meta(hard, snapshot, last, segments)


def _parse_entry(text: str, index: int) -> Entry:
    where = f"log entry {index}"
    item = _json(text, where)
    if type(item) is not list or len(item) != 3:
        raise StorageError(f"stored {where} is not [term, kind, command]")
    term, kind, command = item
    if type(kind) is not int or not COMMAND <= kind <= CONFIG:
        raise StorageError(f"stored {where} has unknown kind {kind!r:.40}")
    if kind == CONFIG:
        try:
            check_config(command, f"stored {where} config")
        except MessageError as exc:
            raise StorageError(str(exc)) from None
    return Entry(_int(term, f"{where} term"), index, kind, command)

"""A durable storage in an SQLite database, on the standard library's :mod:`sqlite3`.

Owns :class:`SQLiteStorage` and its schema. Imports the core's records, :mod:`webraft.errors`
and :mod:`.base` only; never the runtime or a transport.

``sqlite3`` (and, in threaded mode, :mod:`concurrent.futures`) is imported only when a
:class:`SQLiteStorage` is created, so ``import webraft`` never loads it (Pyodide's browser wheel
must not pay for it).

Schema (version :data:`SCHEMA_VERSION`, recorded in ``meta``)::

    meta(key TEXT PRIMARY KEY, value)             -- ('schema_version', 2)
    hard_state(id = 1, term, vote, commit_index)  -- at most one row
    snapshot(id = 1, idx, term, config, data)     -- at most one row; config is JSON text,
                                                  -- data is the application's state at idx
                                                  -- (text; NULL only for the bootstrap
                                                  -- snapshot at index 0)
    log(idx INTEGER PRIMARY KEY, term, kind, command)  -- command is JSON text; the log may
                                                  -- start at or before snapshot.idx (a tail)

Schema 1 (webraft before snapshots) had the same tables, ``data`` always NULL and the log
always starting right after the snapshot. Opening such a database upgrades its recorded
version to 2 (nothing else changes), so that a webraft that knows only schema 1, which would
ignore the snapshot data and so lose the application state, refuses the file from then on.

Everything read back is treated as untrusted: a value of the wrong type, JSON that does not
parse, an unknown entry kind, a gap in the log, ... raise :class:`~webraft.errors.StorageError`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.messages import COMMAND, MAX_INT, MAX_KIND, Entry, check_entry_data, entry_of
from ..core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate, StoredState
from ..errors import MessageError, StorageError
from .base import plan_update, portable_json

if TYPE_CHECKING:
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

#: The schema this module writes; a database with a newer one is refused, an older one
#: (1: the same tables, before snapshots had data) is upgraded when opened.
SCHEMA_VERSION = 2

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL)",
    "CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL,"
    " vote TEXT, commit_index INTEGER NOT NULL)",
    "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,"
    " term INTEGER NOT NULL, config TEXT NOT NULL, data BLOB)",
    "CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " command TEXT NOT NULL)",
)
_TABLES = frozenset({"meta", "hard_state", "snapshot", "log"})

_PUT_SNAPSHOT = ("INSERT OR REPLACE INTO snapshot (id, idx, term, config, data)"
                 " VALUES (1, ?, ?, ?, ?)")
_PUT_SNAPSHOT_META = "UPDATE snapshot SET idx = ?, term = ?, config = ? WHERE id = 1"
_DROP_PREFIX = "DELETE FROM log WHERE idx <= ?"
_DROP_SUFFIX = "DELETE FROM log WHERE idx >= ?"
_PUT_ENTRY = "INSERT INTO log (idx, term, kind, command) VALUES (?, ?, ?, ?)"
_PUT_HARD = ("INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index)"
             " VALUES (1, ?, ?, ?)")

#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call.
#: ASCII output: a lone surrogate in a command (valid in JSON) could not be stored as UTF-8.
_dumps = json.JSONEncoder(separators=(",", ":")).encode

_T = TypeVar("_T")


class SQLiteStorage:
    """Keeps a node's term, vote, commit index, snapshot metadata and log in an SQLite file.

    ``path`` is the database file (created, with any missing parent directories, if absent).
    One node per file: the connection holds an exclusive lock for as long as the storage is
    open (``locking_mode=EXCLUSIVE``), so a second :class:`SQLiteStorage` or any other
    process trying to open the same file fails with :class:`~webraft.errors.StorageError`
    instead of two nodes sharing one identity. Call :meth:`close` (or use ``with``) to
    release it.

    **Durability.** The database runs in WAL mode with ``synchronous=FULL``: every
    :meth:`save` is one transaction, and its commit fsyncs the write-ahead log before
    :meth:`save` returns (or its awaitable completes). So a returned save survives a crash of
    the process *and* a crash of the operating system or a power loss (provided the disk
    honours fsync; ``fullfsync`` is also enabled, which makes that true on macOS). A save
    interrupted by any crash is rolled back on the next open: all of an update or none of it.
    With ``synchronous=NORMAL`` a WAL database would still survive a process crash intact,
    but an OS crash or power loss could roll back the last saves that had already returned.
    Raft forbids that (a node could vote twice in one term, or forget entries it
    acknowledged), so NORMAL is not offered.

    **Modes.** With ``threaded=False`` (the default, and the only choice on Pyodide),
    :meth:`save` runs the transaction on the calling thread and returns None: simplest and
    fastest per save, but the event loop waits for each fsync. With ``threaded=True`` one
    dedicated worker thread owns the connection; :meth:`save` must be called from a running
    event loop and returns an awaitable, so the loop keeps stepping messages during the fsync.
    Updates are applied in the order :meth:`save` was called. A save, once called, is always
    attempted: cancelling its awaitable only stops the waiting. If one fails, the saves queued
    behind it fail too (with StorageError, without being applied), so that no later update
    lands without an earlier one; saves called after the failure was reported run normally.

    :meth:`load` is synchronous in both modes. The object is not safe for concurrent use from
    several threads (the runtime uses it from its event loop only).
    """

    def __init__(self, path: str | os.PathLike[str], *, threaded: bool = False) -> None:
        import sqlite3

        self._sqlite3 = sqlite3
        self.path = os.fspath(path)
        self.threaded = threaded
        self._con: sqlite3.Connection | None = None
        self._closed = False
        # What the database holds, kept by the thread that owns the connection and updated
        # after each commit: the snapshot's index (None: no snapshot yet) and the first and
        # last log index (None: empty log). ``_bounds_ok`` is False if they could not be read
        # (a corrupt database, which load() reports), in which case save() refuses.
        self._snap_index: int | None = None
        self._first: int | None = None
        self._last: int | None = None
        self._bounds_ok = True
        self._epoch = 0  # threaded mode: bumped by the worker when a save fails
        self._executor: ThreadPoolExecutor | None = None
        if threaded:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="webraft-sqlite")
        try:
            self._call(self._open)
        except BaseException:
            self._closed = True
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            raise

    # ------------------------------------------------------------------ public API

    def load(self) -> StoredState | None:
        """Everything saved so far, or None for a new database; checked before it is returned.

        Raises :class:`~webraft.errors.StorageError` if the database holds anything no
        correct node could have written.
        """
        return self._call(self._read)

    def save(self, update: StorageUpdate) -> Awaitable[None] | None:
        """Apply ``update`` in one transaction, in the contract's order: the snapshot
        metadata and data (replacing the stored ones; no data keeps the stored data), the
        deletion of every entry at or below ``compact_to``, the entries (replacing every
        stored entry at or after the first one's index), then the hard state.

        The first save to a new database must record the snapshot metadata (the runtime's
        first save always does); anything else would leave a log with no known start. An
        update that would leave a state ``StoredState.check()`` refuses by its indexes (a
        gap in the log, a log that does not reach the snapshot, a snapshot that moves back or
        moves without data) is refused before anything is written.
        Returns None (``threaded=False``) or an awaitable (``threaded=True``); failures raise
        or are raised by the awaitable as :class:`~webraft.errors.StorageError`.
        """
        if self._executor is None:
            self._write(update)
            return None
        if self._closed:
            raise StorageError(f"SQLite storage {self.path!r} is closed")
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._write_in_turn, update, self._epoch)
        # A cancelled waiter must not cancel the write: a later save could then land without
        # this one. The shield keeps the job queued whatever happens to the waiter.
        return asyncio.shield(done)

    def close(self) -> None:
        """Finish queued saves, close the database and release its lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._executor is None:
            self._close_connection()
            return
        try:
            self._executor.submit(self._close_connection).result()
        finally:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SQLiteStorage({self.path!r}, threaded={self.threaded}, {state})"

    # ------------------------------------------------------------------ plumbing

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the thread that owns the connection and return its result."""
        if self._executor is None:
            return fn()
        if self._closed:
            raise StorageError(f"SQLite storage {self.path!r} is closed")
        return self._executor.submit(fn).result()

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise StorageError(f"SQLite storage {self.path!r} is closed")
        return self._con

    def _close_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()

    def _open(self) -> None:
        sqlite3 = self._sqlite3
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            _make_dirs(parent)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of {self.path!r}: {exc}") from exc
        try:
            # Autocommit mode (isolation_level=None): transactions are begun and committed
            # explicitly. In threaded mode only the worker thread ever touches it.
            con = sqlite3.connect(self.path, timeout=0.5, isolation_level=None,
                                  check_same_thread=self._executor is not None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        try:
            self._setup(con)
        except BaseException as exc:
            con.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StorageError(f"SQLite database {self.path!r} is locked: another "
                                   "SQLiteStorage or process has it open") from exc
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
            raise
        self._con = con

    def _setup(self, con: sqlite3.Connection) -> None:
        # Exclusive locking before WAL: no shared-memory index is needed (works where mmap
        # does not), and the lock taken by the first write below is held until close().
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"SQLite database {self.path!r} cannot use WAL mode "
                               f"(journal_mode is {mode!r})")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA fullfsync=ON")
        con.execute("BEGIN IMMEDIATE")
        try:
            tables = {name for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in _SCHEMA:
                    con.execute(statement)
                con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                            (SCHEMA_VERSION,))
            elif self._check_schema(con, tables) < SCHEMA_VERSION:
                con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                            (SCHEMA_VERSION,))
            self._read_bounds(con)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def _check_schema(self, con: sqlite3.Connection, tables: set[str]) -> int:
        """Refuse a database this module cannot use; return its schema version."""
        if "meta" not in tables:
            raise StorageError(f"{self.path!r} is an SQLite database but not a webraft one "
                               "(no meta table)")
        rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        if len(rows) != 1 or type(rows[0][0]) is not int or rows[0][0] < 1:
            raise StorageError(f"{self.path!r} has no valid schema version "
                               f"({rows[0][0] if rows else None!r:.40})")
        version = rows[0][0]
        if version > SCHEMA_VERSION:
            raise StorageError(f"{self.path!r} uses storage schema {version}, written by a "
                               f"newer webraft; this one knows schema {SCHEMA_VERSION}")
        missing = _TABLES - tables
        if missing:
            raise StorageError(f"{self.path!r} lacks the tables {sorted(missing)}")
        return version

    def _read_bounds(self, con: sqlite3.Connection) -> None:
        snaps = con.execute("SELECT idx FROM snapshot").fetchall()
        first, last = con.execute("SELECT MIN(idx), MAX(idx) FROM log").fetchone()
        snap_index = snaps[0][0] if len(snaps) == 1 else None
        self._snap_index, self._first, self._last = snap_index, first, last
        self._bounds_ok = (len(snaps) <= 1 and all(v is None or type(v) is int
                                                   for v in (snap_index, first, last))
                           and (first is None) == (last is None))

    # ------------------------------------------------------------------ writing

    def _write_in_turn(self, update: StorageUpdate, epoch: int) -> None:
        """Worker-thread body of a threaded save (see the class docstring on failures)."""
        if epoch != self._epoch:
            raise StorageError("update not applied: a save queued before it failed")
        try:
            self._write(update)
        except BaseException:
            self._epoch += 1
            raise

    def _plan(self, update: StorageUpdate) -> tuple[int, int | None, int | None]:
        """(snapshot index, first, last log index) after ``update``; raises StorageError for
        an update that no correct node makes (see :meth:`save`)."""
        if not self._bounds_ok:
            raise StorageError(f"{self.path!r} holds a corrupt log or snapshot (load() says "
                               "what is wrong); refusing to write")
        return plan_update(self._snap_index, self._first, self._last, update)

    def _write(self, update: StorageUpdate) -> None:
        con = self._connection()
        bounds = self._plan(update)
        old_first, old_last = self._first, self._last
        snap = update.snapshot
        sqlite3 = self._sqlite3
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                if snap is not None:
                    config = _dumps(snap.config.to_json())
                    if update.snapshot_data is not None:
                        con.execute(_PUT_SNAPSHOT, (snap.index, snap.term, config,
                                                    portable_json(update.snapshot_data)))
                    elif self._snap_index is not None:  # keep the stored data
                        con.execute(_PUT_SNAPSHOT_META, (snap.index, snap.term, config))
                    else:
                        con.execute(_PUT_SNAPSHOT, (snap.index, snap.term, config, None))
                compact_to = update.compact_to
                if old_first is not None and compact_to >= old_first:
                    con.execute(_DROP_PREFIX, (compact_to,))
                entries = update.entries
                if entries:
                    if old_last is not None and entries[0].index <= old_last:
                        con.execute(_DROP_SUFFIX, (entries[0].index,))
                    con.executemany(_PUT_ENTRY, [(e.index, e.term, e.kind, _dumps(e.data))
                                                 for e in entries])
                hard = update.hard
                if hard is not None:
                    con.execute(_PUT_HARD, (hard.term, hard.vote, hard.commit))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
            raise StorageError(f"could not save to {self.path!r}: {exc}") from exc
        self._snap_index, self._first, self._last = bounds

    # ------------------------------------------------------------------ reading

    def _read(self) -> StoredState | None:
        con = self._connection()
        try:
            con.execute("BEGIN")
            try:
                snaps = con.execute("SELECT idx, term, config, data FROM snapshot").fetchall()
                hards = con.execute("SELECT term, vote, commit_index FROM hard_state").fetchall()
                rows = con.execute("SELECT idx, term, kind, command FROM log ORDER BY idx"
                                   ).fetchall()
            finally:
                con.execute("COMMIT")
        except self._sqlite3.Error as exc:
            raise StorageError(f"could not read {self.path!r}: {exc}") from exc
        if not snaps:
            if hards or rows:
                raise StorageError("stored hard state or log without snapshot metadata")
            return None
        if len(snaps) > 1 or len(hards) > 1:
            raise StorageError("more than one stored snapshot or hard state")
        snapshot = _snapshot(*snaps[0][:3])
        data = snaps[0][3]
        if data is not None and type(data) is not str:
            raise StorageError(f"stored snapshot data is {type(data).__name__}, not text")
        hard = _hard(*hards[0]) if hards else HardState()
        state = StoredState(hard, snapshot, _entries(rows), data)
        state.check()
        return state


def _make_dirs(path: str) -> None:
    """``os.makedirs``, then fsync the parent of each directory it created, so that a power
    loss cannot take the new directories away with the database that SQLite synced in them."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    if not missing:
        return
    os.makedirs(missing[0], exist_ok=True)
    for created in missing:
        try:
            fd = os.open(os.path.dirname(created), os.O_RDONLY)
        except OSError:  # Windows cannot open a directory; its file systems journal metadata
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _int(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise StorageError(f"stored {what} is {value!r:.60}, not an integer in [0, 2**53)")
    return value


def _json(text: Any, what: str) -> Any:
    if type(text) is not str:
        raise StorageError(f"stored {what} is {type(text).__name__}, not JSON text")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StorageError(f"stored {what} is not valid JSON: {exc}") from None


def _snapshot(index: Any, term: Any, config: Any) -> SnapshotMeta:
    try:
        cluster = ClusterConfig.from_json(_json(config, "snapshot config"),
                                          "stored snapshot config", bootstrap=index == 0)
    except MessageError as exc:
        raise StorageError(str(exc)) from None
    return SnapshotMeta(_int(index, "snapshot index"), _int(term, "snapshot term"), cluster)


def _hard(term: Any, vote: Any, commit: Any) -> HardState:
    if vote is not None and (type(vote) is not str or not vote):
        raise StorageError(f"stored vote is {vote!r:.60}, not a node address or null")
    return HardState(_int(term, "term"), vote, _int(commit, "commit index"))


def _entries(rows: list[tuple[Any, ...]]) -> list[Entry]:
    """Build the log from its rows (the hot part of a load: checks inlined, messages lazy)."""
    entries: list[Entry] = []
    append = entries.append
    loads = json.loads
    for index, term, kind, command in rows:
        if (index.__class__ is not int or term.__class__ is not int or kind.__class__ is not int
                or command.__class__ is not str or not 0 <= index <= MAX_INT
                or not 0 <= term <= MAX_INT or not COMMAND <= kind <= MAX_KIND):
            _check_entry(index, term, kind, command)
        try:
            value = loads(command)
        except (ValueError, RecursionError) as exc:
            raise StorageError(f"stored entry {index} command is not valid JSON: {exc}") from None
        if kind != COMMAND:
            try:
                check_entry_data(kind, value, f"stored entry {index}")
            except MessageError as exc:
                raise StorageError(str(exc)) from None
        append(entry_of(term, index, kind, value))
    return entries


def _check_entry(index: Any, term: Any, kind: Any, command: Any) -> None:
    """Raise the StorageError that says what is wrong with a log row."""
    index = _int(index, "entry index")
    _int(term, f"entry {index} term")
    if type(kind) is not int or not COMMAND <= kind <= MAX_KIND:
        raise StorageError(f"stored entry {index} has unknown kind {kind!r:.40}")
    _json(command, f"entry {index} command")
    raise AssertionError("unreachable: the row was refused")  # pragma: no cover

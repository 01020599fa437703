"""SQLiteStorage: round trips, snapshots and compaction, reopening, the schema (and the upgrade
from schema 1), locking, threaded mode, corruption."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlite_helpers import MEMBERS
from storage_model import Model, canon

from webraft.core.messages import COMMAND, CONFIG, NOOP, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.errors import StorageError
from webraft.storage import SQLiteStorage, Storage
from webraft.storage.sqlite import SCHEMA_VERSION

BOOT = SnapshotMeta(0, 0, MEMBERS)
NESTED = {"op": "set", "key": "k\u00e9y \U0001f600", "value": [1, 2.5, -0.0, True, None,
          {"deep": [[[]], {}], "s": "\ud800 lone surrogate"}], "big": 2**53 - 1}


def cmd(i: int) -> dict[str, int]:
    return {"i": i}


def entries(start: int, count: int, term: int) -> tuple[Entry, ...]:
    return tuple(Entry(term, start + i, COMMAND, cmd(start + i)) for i in range(count))


def apply_both(path: Path, updates: list[StorageUpdate]) -> tuple[SQLiteStorage, Model]:
    disk, mem = SQLiteStorage(path), Model()
    for update in updates:
        assert disk.save(update) is None
        mem.apply(update)
        expected = mem.state()
        assert expected is not None
        expected.check()
        assert canon(disk.load()) == canon(expected)
    return disk, mem


def reloaded(path: Path, threaded: bool = False) -> Any:  # StoredState | None
    with SQLiteStorage(path, threaded=threaded) as storage:
        return storage.load()


# ---------------------------------------------------------------------- round trips


def test_new_database_loads_none_and_creates_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "node.db"
    with SQLiteStorage(path) as storage:
        assert isinstance(storage, Storage)
        assert storage.load() is None
    assert path.exists()
    assert reloaded(path) is None


def test_relative_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with SQLiteStorage("node.db") as storage:
        storage.save(StorageUpdate(HardState(3, "b", 0), (), BOOT))
    assert reloaded(tmp_path / "node.db").hard == HardState(3, "b", 0)


def test_durability_settings(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "n.db") as storage:
        con = storage._con
        assert con is not None
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert con.execute("PRAGMA locking_mode").fetchone()[0] == "exclusive"


def test_hard_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    disk, mem = apply_both(path, [
        StorageUpdate(None, (), BOOT),
        StorageUpdate(HardState(1, "a", 0)),
        StorageUpdate(HardState(2, None, 0)),
        StorageUpdate(HardState(7, "node-\u00e9", 0)),
    ])
    disk.close()
    state = reloaded(path)
    assert state is not None
    assert state.hard == HardState(7, "node-\u00e9", 0) == mem.hard
    assert state.snapshot == BOOT


def test_snapshot_only_save_defaults_hard_state(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(None, (), BOOT))
    state = reloaded(path)
    assert state is not None and state.hard == HardState() and state.entries == []


def test_entries_of_all_kinds_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    log = (Entry(1, 1, NOOP, None), Entry(1, 2, COMMAND, NESTED), Entry(1, 3, COMMAND, "text"),
           Entry(2, 4, CONFIG, {"voters": ["a", "b"], "learners": ["c"]}),
           Entry(2, 5, COMMAND, 0), Entry(2, 6, COMMAND, 0.0), Entry(2, 7, COMMAND, False),
           Entry(2, 8, COMMAND, None), Entry(2, 9, COMMAND, []))
    disk, mem = apply_both(path, [StorageUpdate(HardState(2, "a", 3), log, BOOT)])
    disk.close()
    state = reloaded(path)
    assert canon(state) == canon(mem.state())
    assert state is not None and state.entries == list(log)
    assert [type(e.command) for e in state.entries[4:7]] == [int, float, bool]


def test_conflicting_suffix_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    disk, mem = apply_both(path, [
        StorageUpdate(HardState(1, "a", 0), entries(1, 6, 1), BOOT),
        StorageUpdate(HardState(2, "b", 2), (Entry(2, 3, COMMAND, "new"),)),  # drops 4..6
        StorageUpdate(None, (Entry(2, 4, COMMAND, "x"), Entry(2, 5, COMMAND, "y"))),
        StorageUpdate(HardState(3, None, 2), (Entry(3, 5, COMMAND, "z"),)),  # replaces 5 only
    ])
    disk.close()
    state = reloaded(path)
    assert canon(state) == canon(mem.state())
    assert state is not None
    assert [(e.index, e.term, e.command) for e in state.entries] == [
        (1, 1, cmd(1)), (2, 1, cmd(2)), (3, 2, "new"), (4, 2, "x"), (5, 3, "z")]


def test_snapshot_with_data_keeps_the_log_until_compacted(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    config = ClusterConfig(("a", "b"), ("c",))
    disk, mem = apply_both(path, [
        StorageUpdate(HardState(2, "a", 0), entries(1, 5, 1) + entries(6, 3, 2), BOOT),
        # Recording a snapshot deletes nothing by itself: the whole log stays as a tail.
        StorageUpdate(HardState(2, "a", 6), (), SnapshotMeta(4, 1, config), '{"at":4}'),
        # Compaction keeping a tail of 2 (entries 3, 4 precede the snapshot at 4).
        StorageUpdate(None, (), None, None, 2),
    ])
    state = disk.load()
    assert state is not None and state.snapshot_data == '{"at":4}'
    assert [e.index for e in state.entries] == [3, 4, 5, 6, 7, 8]
    # A snapshot, its compaction and new entries in one update.
    update = StorageUpdate(HardState(3, None, 7), (Entry(3, 9, COMMAND, "c"),),
                           SnapshotMeta(6, 2, MEMBERS), '{"at":6}', 6)
    disk.save(update)
    mem.apply(update)
    disk.close()
    state = reloaded(path)
    assert canon(state) == canon(mem.state())
    assert state is not None and state.snapshot == SnapshotMeta(6, 2, MEMBERS)
    assert [e.index for e in state.entries] == [7, 8, 9]
    assert state.snapshot_data == '{"at":6}'


def test_installed_snapshot_past_the_log_then_new_entries(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    config = ClusterConfig(("a", "b"), ("c",))
    disk, mem = apply_both(path, [
        StorageUpdate(HardState(2, "a", 0), entries(1, 8, 2), BOOT),
        # compact_to beyond the last entry: every entry goes.
        StorageUpdate(HardState(4, None, 12), (), SnapshotMeta(12, 4, config), "[12]", 12),
        StorageUpdate(None, entries(13, 2, 4)),
    ])
    disk.close()
    state = reloaded(path)
    assert canon(state) == canon(mem.state())
    assert state is not None and state.snapshot == SnapshotMeta(12, 4, config)
    assert [e.index for e in state.entries] == [13, 14] and state.snapshot_data == "[12]"


COMPACTIONS = {
    # name: (compact_to, entries of the same update, expected indexes)
    "nothing (0)": (0, (), list(range(3, 11))),
    "below the first entry": (2, (), list(range(3, 11))),
    "the first entry": (3, (), list(range(4, 11))),
    "up to the snapshot": (6, (), [7, 8, 9, 10]),
    "exactly the last entry": (10, (), []),
    "beyond the last entry": (50, (), []),
    "then append after the log": (6, entries(11, 2, 3), [7, 8, 9, 10, 11, 12]),
    "then replace a suffix": (6, entries(9, 1, 3), [7, 8, 9]),
    "then replace everything left": (6, entries(5, 3, 3), [5, 6, 7]),
    "all, then entries after the snapshot": (10, entries(7, 2, 3), [7, 8]),
}


@pytest.mark.parametrize("name", list(COMPACTIONS))
def test_compact_to(tmp_path: Path, name: str) -> None:
    compact_to, new, expected = COMPACTIONS[name]
    path = tmp_path / "n.db"
    setup = [StorageUpdate(HardState(3, "a", 0), entries(1, 10, 2), BOOT),
             StorageUpdate(None, (), SnapshotMeta(6, 2, MEMBERS), "{}", 2)]
    if new and new[0].index <= 6:  # rewriting entries the snapshot covers: same terms
        new = tuple(Entry(2 if e.index <= 6 else 3, e.index, COMMAND, "r") for e in new)
    disk, mem = apply_both(path, [*setup, StorageUpdate(HardState(3, "a", 6), new, None,
                                                        None, compact_to)])
    state = disk.load()
    assert state is not None and [e.index for e in state.entries] == expected
    assert state.snapshot_data == "{}"
    disk.close()
    assert canon(reloaded(path)) == canon(mem.state())
    # The log goes on after a reopen (the storage knows where it ends).
    last = expected[-1] if expected else 6
    with SQLiteStorage(path) as again:
        again.save(StorageUpdate(None, entries(last + 1, 2, 3)))
        mem.apply(StorageUpdate(None, entries(last + 1, 2, 3)))
        assert canon(again.load()) == canon(mem.state())


def test_snapshot_data_is_kept_until_replaced(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    big = '{"k":"' + "x\u00e9\U0001f600" * 300_000 + '"}'  # ~0.9 M characters
    disk, _ = apply_both(path, [
        StorageUpdate(HardState(2, "a", 0), entries(1, 4, 2), BOOT),
        StorageUpdate(None, (), SnapshotMeta(3, 2, MEMBERS), big, 3),
        StorageUpdate(None, (), SnapshotMeta(3, 2, MEMBERS)),  # re-recorded: data unchanged
        StorageUpdate(HardState(3, "b", 3)),
    ])
    disk.close()
    state = reloaded(path)
    assert state is not None and state.snapshot_data == big
    with SQLiteStorage(path) as again:  # the same index with new data replaces the data
        again.save(StorageUpdate(None, (), SnapshotMeta(3, 2, MEMBERS), "[]"))
    assert reloaded(path).snapshot_data == "[]"


def test_snapshot_data_with_a_lone_surrogate(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    data = '["\\ud800 escaped", "\ud800 raw", "\U0001f600"]'
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(HardState(1), entries(1, 2, 1), BOOT))
        storage.save(StorageUpdate(None, (), SnapshotMeta(2, 1, MEMBERS), data, 2))
    state = reloaded(path)
    assert state is not None and state.snapshot_data is not None
    # Stored as the same JSON, the raw lone surrogate escaped.
    assert json.loads(state.snapshot_data) == json.loads(data)
    assert state.snapshot_data == '["\\ud800 escaped", "\\ud800 raw", "\U0001f600"]'


INVALID = {
    "a gap after the log": (StorageUpdate(None, entries(12, 1, 3)), "gap"),
    "entries not consecutive": (StorageUpdate(None, (Entry(3, 11, COMMAND, 1),
                                                     Entry(3, 13, COMMAND, 2))), "consecutive"),
    "an older snapshot": (StorageUpdate(None, (), SnapshotMeta(4, 2, MEMBERS), "{}"), "older"),
    "a new snapshot without data": (StorageUpdate(None, (), SnapshotMeta(8, 2, MEMBERS)),
                                    "without its data"),
    "data without a snapshot": (StorageUpdate(HardState(3), (), None, "{}"), "without"),
    "compaction past the snapshot": (StorageUpdate(None, (), None, None, 8), "do not reach"),
    "a snapshot past the log, kept": (StorageUpdate(None, (), SnapshotMeta(12, 2, MEMBERS),
                                                    "{}"), "do not reach"),
    "a suffix cut before the snapshot": (StorageUpdate(None, (Entry(2, 5, COMMAND, 1),)),
                                         "do not reach"),
    "entries not JSON": (StorageUpdate(None, (Entry(2, 11, COMMAND, {1}),)), "could not save"),
}


@pytest.mark.parametrize("name", list(INVALID))
@pytest.mark.parametrize("threaded", [False, True])
async def test_invalid_updates_are_refused_and_change_nothing(tmp_path: Path, name: str,
                                                              threaded: bool) -> None:
    update, message = INVALID[name]
    path = tmp_path / "n.db"
    with SQLiteStorage(path, threaded=threaded) as storage:
        for setup in [StorageUpdate(HardState(3, "a", 0), entries(1, 10, 2), BOOT),
                      StorageUpdate(None, (), SnapshotMeta(6, 2, MEMBERS), "{}", 2)]:
            await _saved(storage.save(setup))
        before = canon(storage.load())
        with pytest.raises(StorageError, match=message):
            await _saved(storage.save(update))
        assert canon(storage.load()) == before
        await _saved(storage.save(StorageUpdate(None, entries(11, 1, 3))))  # still usable
        state = storage.load()
        assert state is not None and state.entries[-1].index == 11


async def _saved(pending: Any) -> None:
    if pending is not None:
        await pending


def test_bootstrap_snapshot_again_keeps_the_log(tmp_path: Path) -> None:
    """Every restarted node saves its snapshot metadata again in its first round."""
    path = tmp_path / "n.db"
    disk, mem = apply_both(path, [StorageUpdate(HardState(1, "a", 0), entries(1, 3, 1), BOOT),
                                  StorageUpdate(None, (), BOOT)])
    disk.close()
    assert canon(reloaded(path)) == canon(mem.state())
    assert len(mem.entries) == 3


def test_first_save_must_record_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with SQLiteStorage(path) as storage:
        with pytest.raises(StorageError, match="snapshot"):
            storage.save(StorageUpdate(HardState(1, "a", 0)))
        assert storage.load() is None
        storage.save(StorageUpdate(HardState(1, "a", 0), (), BOOT))
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(HardState(2, "a", 0)))  # known after a reopen too
        assert storage.load().hard.term == 2  # type: ignore[union-attr]


def test_failed_save_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(HardState(1, "a", 0), entries(1, 3, 1), BOOT))
        before = canon(storage.load())
        bad = StorageUpdate(HardState(9, "z", 9), (Entry(1, 2, COMMAND, "ok"),
                                                   Entry(1, 3, COMMAND, {1, 2})))
        with pytest.raises(StorageError, match="could not save"):
            storage.save(bad)
        assert canon(storage.load()) == before
    assert canon(reloaded(path)) == before


def test_closed_storage_refuses(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "n.db")
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        storage.load()
    with pytest.raises(StorageError, match="closed"):
        storage.save(StorageUpdate(None, (), BOOT))


def test_one_storage_per_file(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(HardState(1, "a", 0), (), BOOT))
        with pytest.raises(StorageError, match="locked"):
            SQLiteStorage(path)
        with pytest.raises(StorageError, match="locked"):
            SQLiteStorage(path, threaded=True)
    assert reloaded(path) is not None  # released by close()


def test_import_webraft_does_not_import_sqlite3() -> None:
    code = ("import sys, webraft, webraft.storage\n"
            "assert webraft.storage.SQLiteStorage\n"
            "assert 'sqlite3' not in sys.modules, 'sqlite3 imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- threaded mode


async def test_threaded_saves_in_order(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    mem = Model()
    with SQLiteStorage(path, threaded=True) as storage:
        assert storage.load() is None
        for i in range(1, 21):
            update = StorageUpdate(HardState(i, "a", i - 1), entries(i, 1, i),
                                   BOOT if i == 1 else None)
            pending = storage.save(update)
            assert pending is not None
            await pending
            mem.apply(update)
            assert canon(storage.load()) == canon(mem.state())
    assert canon(reloaded(path, threaded=True)) == canon(mem.state())


def _racing_updates(n: int) -> list[StorageUpdate]:
    """Updates whose result depends on their order: each overwrites from a moving index."""
    out = [StorageUpdate(HardState(1, "a", 0), entries(1, 3, 1), BOOT)]
    last = 3
    for i in range(2, n + 1):
        start = last - 1 if i % 3 == 0 else last + 1
        out.append(StorageUpdate(HardState(i, None, i), (Entry(i, start, COMMAND, i),
                                                         Entry(i, start + 1, COMMAND, -i))))
        last = start + 1
    return out


async def test_threaded_many_concurrent_saves_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    updates = _racing_updates(300)
    mem = Model()
    for update in updates:
        mem.apply(update)
    with SQLiteStorage(path, threaded=True) as storage:
        pendings = [storage.save(u) for u in updates]
        await asyncio.gather(*pendings)  # type: ignore[arg-type]
        assert canon(storage.load()) == canon(mem.state())
    assert canon(reloaded(path)) == canon(mem.state())


async def test_threaded_cancelled_waiter_still_saves_in_order(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    updates = _racing_updates(40)
    mem = Model()
    with SQLiteStorage(path, threaded=True) as storage:
        pendings = [storage.save(u) for u in updates]
        for pending in pendings[::2]:
            pending.cancel()  # type: ignore[union-attr]
        await asyncio.gather(*pendings[1::2])  # type: ignore[arg-type]
        for update in updates:
            mem.apply(update)
        assert canon(storage.load()) == canon(mem.state())


async def test_threaded_failure_stops_the_saves_queued_behind_it(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with SQLiteStorage(path, threaded=True) as storage:
        await storage.save(StorageUpdate(HardState(1, "a", 0), entries(1, 2, 1), BOOT))
        before = canon(storage.load())
        bad = StorageUpdate(HardState(2, "a", 0), (Entry(2, 3, COMMAND, object()),))
        good = StorageUpdate(HardState(2, "a", 1), entries(3, 2, 2))
        results = await asyncio.gather(storage.save(bad), storage.save(good),  # type: ignore
                                       return_exceptions=True)
        assert [type(r) for r in results] == [StorageError, StorageError]
        assert "queued before it failed" in str(results[1])
        assert canon(storage.load()) == before
        await storage.save(good)  # called after the failure was reported: runs
        state = storage.load()
        assert state is not None and [e.index for e in state.entries] == [1, 2, 3, 4]


async def test_threaded_save_after_close_raises(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "n.db", threaded=True)
    pending = storage.save(StorageUpdate(HardState(1, "a", 0), (), BOOT))
    storage.close()  # finishes the queued save first
    await pending  # type: ignore[misc]
    with pytest.raises(StorageError, match="closed"):
        storage.save(StorageUpdate(HardState(2, "a", 0)))
    with pytest.raises(StorageError, match="closed"):
        storage.load()
    assert reloaded(tmp_path / "n.db").hard.term == 1


# ---------------------------------------------------------------------- corruption


def _saved_db(path: Path) -> None:
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(HardState(3, "a", 2), (
            Entry(1, 1, NOOP, None), Entry(2, 2, COMMAND, {"x": [1]}),
            Entry(2, 3, CONFIG, {"voters": ["a", "b"]}), Entry(3, 4, COMMAND, "y")),
            SnapshotMeta(0, 0, MEMBERS)))


def _edit(path: Path, *statements: str) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            con.executescript(statement)
    finally:
        con.close()


CORRUPTIONS = {
    "bad JSON command": ("UPDATE log SET command = '{\"x\": [1' WHERE idx = 2", "valid JSON"),
    "command not text": ("UPDATE log SET command = X'5B315D' WHERE idx = 2", "not JSON text"),
    "deeply nested JSON": ("UPDATE log SET command = '" + "[" * 200000 + "' WHERE idx = 2",
                           "valid JSON"),
    "gap in the log": ("DELETE FROM log WHERE idx = 2", "inconsistent at index 2"),
    "log starts late": ("DELETE FROM log WHERE idx = 1", "do not reach the snapshot at 0"),
    "log ends before the snapshot": ("UPDATE snapshot SET idx = 5, term = 3, data = '{}'",
                                     "do not reach the snapshot at 5"),
    "tail contradicts the snapshot": ("UPDATE snapshot SET idx = 2, term = 1, data = '{}'",
                                      "contradicts the snapshot"),
    "snapshot without data": ("UPDATE snapshot SET idx = 2, term = 2", "has no data"),
    "snapshot data not text": ("UPDATE snapshot SET idx = 2, term = 2, data = X'7B7D'",
                               "snapshot data is bytes, not text"),
    "snapshot data a number": ("UPDATE snapshot SET idx = 2, term = 2, data = 5",
                               "snapshot data is int"),
    "term is text": ("UPDATE log SET term = 'two' WHERE idx = 2", "entry 2 term"),
    "term is real": ("UPDATE log SET term = 2.5 WHERE idx = 2", "entry 2 term"),
    "term decreases": ("UPDATE log SET term = 1 WHERE idx = 4", "inconsistent at index 4"),
    "term beyond hard term": ("UPDATE log SET term = 9 WHERE idx = 4", "inconsistent"),
    "unknown kind": ("UPDATE log SET kind = 7 WHERE idx = 2", "unknown kind"),
    "malformed session entry": ("UPDATE log SET kind = 3 WHERE idx = 2", "session"),
    "bad config entry": ("UPDATE log SET command = '{\"voters\": []}' WHERE idx = 3",
                         "voters"),
    "vote not a string": ("UPDATE hard_state SET vote = X'61'", "vote"),
    "empty vote": ("UPDATE hard_state SET vote = ''", "vote"),
    "negative term": ("UPDATE hard_state SET term = -1", "stored term"),
    "commit is null": ("UPDATE hard_state SET commit_index = 'x'", "commit index"),
    "snapshot config bad JSON": ("UPDATE snapshot SET config = '[1'", "valid JSON"),
    "snapshot config wrong shape": ("UPDATE snapshot SET config = '{\"voters\": \"a\"}'",
                                    "voters"),
    "snapshot index text": ("UPDATE snapshot SET idx = 'zero'", "snapshot index"),
    "snapshot newer than term": ("DELETE FROM log; UPDATE snapshot SET term = 5",
                                 "newer than the stored term"),
    "log without snapshot": ("DELETE FROM snapshot", "without snapshot"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_refused_on_load(tmp_path: Path, name: str) -> None:
    path = tmp_path / "n.db"
    _saved_db(path)
    assert reloaded(path) is not None
    statement, message = CORRUPTIONS[name]
    _edit(path, statement)
    for threaded in (False, True):
        with SQLiteStorage(path, threaded=threaded) as storage, \
                pytest.raises(StorageError, match=message):
            storage.load()


SCHEMA_DAMAGE = {
    "newer schema": ("UPDATE meta SET value = 3 WHERE key = 'schema_version'",
                     "schema 3, written by a newer webraft"),
    "version not an integer": ("UPDATE meta SET value = 'one'", "no valid schema version"),
    "version missing": ("DELETE FROM meta", "no valid schema version"),
    "table missing": ("DROP TABLE log", "lacks the tables"),
    "not a webraft database": ("DROP TABLE meta", "not a webraft one"),
}


@pytest.mark.parametrize("name", list(SCHEMA_DAMAGE))
def test_schema_problems_are_refused_on_open(tmp_path: Path, name: str) -> None:
    path = tmp_path / "n.db"
    _saved_db(path)
    statement, message = SCHEMA_DAMAGE[name]
    _edit(path, statement)
    with pytest.raises(StorageError, match=message):
        SQLiteStorage(path)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    _edit(path, "CREATE TABLE t (x)")
    with pytest.raises(StorageError, match="not a webraft one"):
        SQLiteStorage(path)


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not an SQLite database, not at all" * 100)
    for threaded in (False, True):
        with pytest.raises(StorageError, match="cannot open"):
            SQLiteStorage(path, threaded=threaded)


# ---------------------------------------------------------------------- schema 1 (before snapshots)

#: What webraft wrote before snapshots had data (schema 1), statement for statement.
SCHEMA_1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL)",
    "CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL,"
    " vote TEXT, commit_index INTEGER NOT NULL)",
    "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,"
    " term INTEGER NOT NULL, config TEXT NOT NULL, data BLOB)",
    "CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " command TEXT NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('schema_version', 1)",
    "INSERT INTO hard_state VALUES (1, 3, 'b', 2)",
    "INSERT INTO snapshot VALUES (1, 0, 0, '{\"voters\":[\"a\",\"b\",\"c\"],\"learners\":[]}',"
    " NULL)",
    "INSERT INTO log VALUES (1, 1, 1, 'null'), (2, 2, 0, '{\"x\":[1]}'), (3, 3, 0, '\"y\"')",
)


def _schema_1_db(path: Path) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA_1:
            con.execute(statement)
    finally:
        con.close()


def _version(path: Path) -> Any:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("threaded", [False, True])
def test_schema_1_database_loads_and_is_upgraded(tmp_path: Path, threaded: bool) -> None:
    path = tmp_path / "old.db"
    _schema_1_db(path)
    with SQLiteStorage(path, threaded=threaded) as storage:
        state = storage.load()
    assert state is not None
    assert state.hard == HardState(3, "b", 2) and state.snapshot == BOOT
    assert state.snapshot_data is None
    assert [(e.index, e.term, e.kind, e.command) for e in state.entries] == [
        (1, 1, NOOP, None), (2, 2, COMMAND, {"x": [1]}), (3, 3, COMMAND, "y")]
    # Upgraded on open: a webraft that knows only schema 1 now refuses the file rather
    # than ignore snapshot data it does not know about.
    assert _version(path) == 2 == SCHEMA_VERSION
    assert canon(reloaded(path)) == canon(state)


def test_schema_1_database_goes_on_with_snapshots(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_1_db(path)
    with SQLiteStorage(path) as storage:
        storage.save(StorageUpdate(None, entries(4, 3, 3)))
        storage.save(StorageUpdate(HardState(3, "b", 5), (), SnapshotMeta(5, 3, MEMBERS),
                                   '{"x":5}', 4))
    state = reloaded(path)
    assert state is not None and state.snapshot_data == '{"x":5}'
    assert [e.index for e in state.entries] == [5, 6]


def test_a_failed_upgrade_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_1_db(path)
    _edit(path, "DROP TABLE hard_state")
    with pytest.raises(StorageError, match="lacks the tables"):
        SQLiteStorage(path)
    assert _version(path) == 1


def test_a_node_started_outside_any_cluster_reopens(tmp_path) -> None:
    from webraft.core.state import OUTSIDE, HardState, SnapshotMeta, StorageUpdate
    from webraft.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(tmp_path / "outside.sqlite3")
    storage.save(StorageUpdate(HardState(), (), SnapshotMeta(0, 0, OUTSIDE)))
    storage.close()
    again = SQLiteStorage(tmp_path / "outside.sqlite3")
    try:
        loaded = again.load()
        assert loaded is not None and loaded.snapshot.config == OUTSIDE
    finally:
        again.close()

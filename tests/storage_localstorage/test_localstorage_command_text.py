"""The command text a tab's storage writes, kept for the apply handler's argument."""

from __future__ import annotations

import json

import pytest
from lsfake import FakeWebStorage

from webraft.core.messages import COMMAND, SESSION, Entry, entry_of
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage, localstorage
from webraft.storage.localstorage import json_text

NS = "webraft/room/a/"
BOOT = StorageUpdate(HardState(), (), SnapshotMeta(0, 0, ClusterConfig(("a",))))


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """From now on the storage builds every text as "?"; returns the values it built."""
    built: list[object] = []

    def build(value: object) -> str:
        built.append(value)
        return "?"

    monkeypatch.setattr(localstorage, "json_text", build)
    return built


def test_json_text_keeps_text_unless_a_lone_surrogate_needs_escaping() -> None:
    assert json_text({"k": "h\u00e9"}) == '{"k":"h\u00e9"}'
    lone = json_text(["\ud800"])
    assert lone == '["\\ud800"]' and json.loads(lone) == ["\ud800"]


def test_the_text_written_for_an_entry_is_handed_back_not_built_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(BOOT)
    entry = Entry(1, 1, COMMAND, {"k": "h\u00e9", "lone": "\ud800"})
    local.save(StorageUpdate(HardState(1, "a", 0), (entry,)))
    built = count_builds(monkeypatch)
    text = local.command_text(entry)
    assert built == [] and store.data[f"{NS}e:0:1"] == f"[1,0,{text}]"
    assert json.loads(text) == entry.command
    assert local.command_text(entry) == "?" and built == [entry.command]  # handed back once


def test_an_entry_it_did_not_write_gets_its_own_text() -> None:
    local = LocalStorage(NS, FakeWebStorage())
    local.save(BOOT)
    saved = Entry(1, 1, COMMAND, "saved")
    local.save(StorageUpdate(HardState(1, "a", 0), (saved,)))
    other = Entry(1, 1, COMMAND, "another entry at the same index")
    assert local.command_text(other) == '"another entry at the same index"'
    assert local.command_text(Entry(1, 9, COMMAND, [1, 2])) == "[1,2]"


def test_only_the_most_recent_texts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localstorage, "_KEEP_TEXTS", 4)
    local = LocalStorage(NS, FakeWebStorage())
    local.save(BOOT)
    entries = tuple(Entry(1, i, COMMAND, i) for i in range(1, 6))
    local.save(StorageUpdate(HardState(1, "a", 0), entries[:3]))
    local.save(StorageUpdate(HardState(1, "a", 0), entries[3:]))
    built = count_builds(monkeypatch)
    assert [local.command_text(e) for e in entries] == ["?", "2", "3", "4", "5"]
    assert built == [1]


def test_texts_skipped_or_truncated_never_answer_for_another_entry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    local = LocalStorage(NS, FakeWebStorage())
    local.save(BOOT)
    old = tuple(Entry(1, i, COMMAND, f"old {i}") for i in range(1, 4))
    local.save(StorageUpdate(HardState(1, "a", 0), old))
    new = tuple(Entry(2, i, COMMAND, f"new {i}") for i in range(2, 4))
    local.save(StorageUpdate(HardState(2, "a", 0), new))  # a new leader replaced 2 and 3
    inner = Entry(2, 2, COMMAND, "what a session entry at 2 applies")
    built = count_builds(monkeypatch)
    # Entry 1 is never asked for (a no-op, say); the others get their own texts.
    assert local.command_text(inner) == "?" and local.command_text(new[0]) == "?"
    assert local.command_text(new[1]) == '"new 3"'
    assert built == [inner.command, new[0].command]


def test_a_session_entry_is_stored_whole_and_hands_back_its_commands_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeWebStorage()
    local = LocalStorage(NS, store)
    local.save(BOOT)
    entry = entry_of(1, 1, SESSION, ["a/0f", 3, 2, {"k": "h\u00e9"}])
    local.save(StorageUpdate(HardState(1, "a", 0), (entry,)))
    built = count_builds(monkeypatch)
    text = local.command_text(entry)
    assert built == [] and json.loads(text) == {"k": "h\u00e9"}
    assert json.loads(store.data[f"{NS}e:0:1"]) == [1, SESSION, entry.data]
    assert list(LocalStorage(NS, store).load().entries) == [entry]  # type: ignore[union-attr]

"""The replicated session table (Raft thesis §6.3) and the snapshot text that carries it."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

import webraft
from webraft.core import sessions
from webraft.core.messages import SESSION, Entry, entry_of
from webraft.core.sessions import (
    APPLY,
    DUPLICATE,
    EXPIRED,
    OPEN,
    SessionTable,
    pack_snapshot,
    unpack_snapshot,
)


def session_entry(index: int, client: int | str, seq: int = 0, ack: int = 0,
                  command: Any = None) -> Entry:
    return entry_of(1, index, SESSION, [client, seq, ack, command])


def test_the_table_applies_each_number_once_and_remembers_where() -> None:
    table = SessionTable()
    assert table.apply(session_entry(5, 0)) == (OPEN, 5)
    assert table.apply(session_entry(6, 5, 1, 1, "x")) == (APPLY, 6)
    assert table.apply(session_entry(7, 5, 2, 1, "y")) == (APPLY, 7)
    assert table.apply(session_entry(8, 5, 1, 1, "x")) == (DUPLICATE, 6)  # a retry
    # ack 3: the client has every result below 3, so the table forgets them.
    assert table.apply(session_entry(9, 5, 3, 3, "z")) == (APPLY, 9)
    assert [table.applied_at(5, seq) for seq in (1, 2, 3)] == [None, None, 9]
    assert table.to_json() == [[5, 3, [[3, 9]]]]
    assert table.apply(session_entry(10, 5, 2, 3, "y")) == (DUPLICATE, 0)
    assert table.apply(session_entry(11, 99, 1, 1, "w")) == (EXPIRED, 0)


def test_sessions_expire_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 2)
    table = SessionTable()
    table.apply(session_entry(1, 0))
    table.apply(session_entry(2, 0))
    table.apply(session_entry(3, 1, 1, 1, "keeps 1 fresh"))
    table.apply(session_entry(4, 0))  # a third session: 2 is the least recently used
    assert list(table.sessions) == [1, 4]
    assert table.apply(session_entry(5, 2, 1, 1, "late")) == (EXPIRED, 0)


def test_the_table_round_trips_through_json_and_refuses_garbage() -> None:
    table = SessionTable()
    table.apply(session_entry(1, 0))
    table.apply(session_entry(2, 1, 1, 1, "x"))
    again = SessionTable.from_json(table.to_json())
    assert again.to_json() == table.to_json()
    assert again.apply(session_entry(3, 1, 1, 1, "x")) == (DUPLICATE, 2)
    for garbage in ({"a": 1}, [[1]], [[1, -1, []]], [["", 0, []]], [[1.5, 0, []]], [[1, 0, [[1]]]]):
        with pytest.raises(webraft.StorageError):
            SessionTable.from_json(garbage)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"sessions": []}',
                                  '{"state": 1, "sessions": {"a": 1}}',
                                  '{"state": 1, "sessions": [[1, 0, [["x", 3]]]]}'])
def test_a_malformed_snapshot_text_is_a_storage_error(text: str) -> None:
    with pytest.raises(webraft.StorageError):
        unpack_snapshot(text)


def test_a_snapshot_text_holds_the_state_and_the_session_table() -> None:
    table = SessionTable(capacity=2)
    table.apply(entry_of(1, 7, SESSION, [0, 0, 0, None]))
    table.apply(entry_of(1, 8, SESSION, [7, 1, 1, "x"]))
    text = json.dumps({"state": {"k": 1}, "sessions": table.to_json()})
    state, loaded = unpack_snapshot(text, capacity=2)
    assert state == {"k": 1} and loaded.to_json() == table.to_json() and loaded.capacity == 2


def test_pack_snapshot_writes_the_layout_unpack_snapshot_reads() -> None:
    table = SessionTable()
    table.apply(entry_of(1, 3, SESSION, [0, 0, 0, None]))
    table.apply(entry_of(1, 4, SESSION, [3, 1, 1, "x"]))
    text = pack_snapshot({"k": "h\u00e9"}, table)
    assert text == '{"state":{"k":"h\u00e9"},"sessions":[[3,1,[[1,4]]]]}'
    state, loaded = unpack_snapshot(text)
    assert state == {"k": "h\u00e9"} and loaded.to_json() == table.to_json()


@pytest.mark.parametrize("state", [float("nan"), [float("inf")], {"a": object()}])
def test_pack_snapshot_refuses_a_state_that_is_not_json(state: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        pack_snapshot(state, SessionTable())



def test_an_implicit_session_starts_with_its_first_command_and_retires_older_ones() -> None:
    """A node's implicit session (a string id) needs no opening entry; a new incarnation of
    the same address retires the old one's: its results go, and late copies of its commands
    are duplicates, never applied. Other addresses and explicit sessions are untouched."""
    table = SessionTable()
    assert table.apply(session_entry(1, "n1/aa", 2, 1, "x")) == (APPLY, 1)  # reordered: 2 first
    assert table.apply(session_entry(2, "n1/aa", 1, 1, "w")) == (APPLY, 2)
    assert table.apply(session_entry(3, "n1/aa", 2, 1, "x")) == (DUPLICATE, 1)
    assert table.apply(session_entry(4, "n2/bb", 1, 1, "y")) == (APPLY, 4)
    assert table.apply(session_entry(5, 0)) == (OPEN, 5)
    assert table.apply(session_entry(6, "n1/cc", 1, 1, "z")) == (APPLY, 6)  # n1 restarted
    assert table.sessions["n1/aa"].done == {} and table.applied_at("n1/aa", 1) is None
    assert table.apply(session_entry(7, "n1/aa", 3, 1, "late")) == (DUPLICATE, 0)
    assert table.applied_at("n2/bb", 1) == 4 and table.applied_at("n1/cc", 1) == 6
    again = SessionTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again.to_json() == table.to_json()
    assert again.apply(session_entry(8, "n1/aa", 4, 1, "later")) == (DUPLICATE, 0)


def test_runs_of_one_client_keep_the_least_recently_used_order() -> None:
    """Entries in a row from the session used last skip its reordering; the order, and so
    which session expires, is as if each had moved it to the end."""
    table = SessionTable(capacity=2)
    for index in (1, 2, 3):
        assert table.apply(session_entry(index, "n1/aa", index, 1, "x")) == (APPLY, index)
    table.apply(session_entry(4, "n2/bb", 1, 1, "y"))
    table.apply(session_entry(5, "n1/aa", 4, 1, "x"))
    assert list(table.sessions) == ["n2/bb", "n1/aa"]
    table.apply(session_entry(6, "n3/cc", 1, 1, "z"))  # expires n2/bb, used least recently
    assert list(table.sessions) == ["n1/aa", "n3/cc"]
    again = SessionTable.from_json(table.to_json(), capacity=2)
    assert again.apply(session_entry(7, "n3/cc", 2, 1, "z")) == (APPLY, 7)
    assert again.apply(session_entry(8, "n1/aa", 5, 1, "x")) == (APPLY, 8)
    assert again.apply(session_entry(9, "n1/aa", 3, 1, "x")) == (DUPLICATE, 3)
    assert list(again.sessions) == ["n3/cc", "n1/aa"]
    assert again.apply(session_entry(10, 0)) == (OPEN, 10)  # expires n3/cc
    assert list(again.sessions) == ["n1/aa", 10]
    assert again.apply(session_entry(11, 10, 1, 1, "w")) == (APPLY, 11)


@pytest.mark.parametrize("seed", range(20))
def test_runs_and_stray_numbers_answer_like_a_plain_map(seed: int) -> None:
    """Numbers in runs (consecutive seq at consecutive indexes), gaps, late copies, other
    sessions in between and rising acks, through a snapshot now and then: every answer is
    what a plain seq -> index map gives, and the snapshot lists the results in log order."""
    rng = random.Random(seed)
    table = SessionTable()
    first: dict[int, int] = {}  # the model: where each seq of "n1/aa" applied first
    ack, seq = 1, 0
    for index in range(1, 600):
        roll = rng.random()
        if roll < 0.1:
            assert table.apply(session_entry(index, "n2/bb", index, 1, "o"))[0] == APPLY
            continue
        if roll < 0.7:
            seq += 1  # the run goes on
        elif roll < 0.8:
            seq += rng.randint(2, 5)  # numbers that never reached the log
        else:
            seq = rng.randint(max(1, seq - 30), seq + 1)  # a late copy, or a new one
        if rng.random() < 0.1:
            ack = rng.randint(ack, max(ack, seq))
        got = table.apply(session_entry(index, "n1/aa", seq, ack, "x"))
        if seq < ack:
            assert got == (DUPLICATE, 0)
        elif seq in first:
            assert got == (DUPLICATE, first[seq])
        else:
            assert got == (APPLY, index)
            first[seq] = index
        kept = [[s, i] for s, i in sorted(first.items(), key=lambda p: p[1]) if s >= ack]
        assert table.to_json()[-1] == ["n1/aa", ack, kept]
        if rng.random() < 0.05:
            table = SessionTable.from_json(json.loads(json.dumps(table.to_json())))
    for s in range(1, seq + 2):
        assert table.applied_at("n1/aa", s) == (first.get(s) if s >= ack else None)

"""Runs of session entries on the wire: ``[term, command]`` for an entry that continues the
session entry before it, the full ``[term, kind, data]`` form otherwise (and still read)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from webraft.core.messages import (
    COMMAND,
    MAX_DEPTH,
    MAX_INT,
    NOOP,
    SESSION,
    AppendRequest,
    Entry,
    Heartbeat,
    Message,
    ProposeRequest,
    decode,
    encode,
    entry_of,
    session_entries,
    session_items,
    session_runs,
)
from webraft.errors import MessageError

from .helpers import ack, make_core, make_leader, msgs, persist

CLIENT = "127.0.0.1:9001/0123456789ab"


def through_json(msg: Message) -> dict[str, Any]:
    return json.loads(json.dumps(encode(msg)))


def appended(wire: dict[str, Any]) -> tuple[Entry, ...]:
    """The entries of an append read from ``wire``."""
    msg = decode(wire)
    assert isinstance(msg, AppendRequest)
    return msg.entries


def append(entries: list[Any], term: int = 5) -> dict[str, Any]:
    return {"type": "append", "term": term, "prev_index": 2, "prev_term": 1, "commit": 0,
            "entries": entries}


def test_a_run_travels_as_term_and_command_and_comes_back_whole() -> None:
    run = session_entries(3, 3, [(CLIENT, 4, 4, [f"c{seq}" for seq in range(4, 8)])], None)
    msg = AppendRequest(3, 2, 1, 0, tuple(run))
    wire = through_json(msg)
    assert wire["entries"] == [[3, SESSION, [CLIENT, 4, 4, "c4"]], [3, "c5"], [3, "c6"],
                               [3, "c7"]]
    assert decode(wire) == msg
    full = json.dumps([[e.term, e.kind, e.data] for e in run])
    assert len(json.dumps(wire["entries"])) < len(full) / 2


def test_a_run_is_read_without_json_too() -> None:
    """The simulator's links hand the encoded dict over as it is."""
    run = session_entries(3, 3, session_runs([[CLIENT, seq, 4, f"c{seq}"]
                                                for seq in range(4, 7)]), None)
    msg = AppendRequest(3, 2, 1, 0, tuple(run))
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize("second", [
    pytest.param(["n2/00", 5, 4, "x"], id="another-client"),
    pytest.param([CLIENT, 5, 5, "x"], id="another-ack"),
    pytest.param([CLIENT, 6, 4, "x"], id="a-gap-in-seq"),
    pytest.param([CLIENT, 4, 4, "x"], id="the-same-seq"),
    pytest.param([0, 0, 0, None], id="an-opening-entry"),
])
def test_a_run_breaks_where_the_next_entry_does_not_continue_it(second: list[Any]) -> None:
    run = session_entries(3, 3, session_runs([[CLIENT, 4, 4, "w"], second]), None)
    wire = through_json(AppendRequest(3, 2, 1, 0, tuple(run)))
    assert [len(item) for item in wire["entries"]] == [3, 3]
    assert appended(wire) == tuple(run)


def test_an_explicit_session_runs_too_and_keeps_any_json_command() -> None:
    commands: list[list[Any]] = [[7, 1, 1, {"pay": [1, 2]}], [7, 2, 1, None],
                                 [7, 3, 1, [{"a": "b"}]]]
    run = session_entries(2, 3, session_runs(commands), None)
    wire = through_json(AppendRequest(2, 2, 1, 0, tuple(run)))
    assert [len(item) for item in wire["entries"]] == [3, 2, 2]
    assert [e.data for e in appended(wire)] == commands


def test_a_run_continues_the_entry_before_it_in_the_log_but_a_message_starts_whole() -> None:
    before = entry_of(2, 2, SESSION, [CLIENT, 1, 1, "a"])
    run = session_entries(2, 3, [(CLIENT, 2, 1, ["b", "c"])], before)
    alone = through_json(AppendRequest(2, 2, 2, 0, tuple(run)))  # 'before' is not in it
    assert alone["entries"] == [[2, SESSION, [CLIENT, 2, 1, "b"]], [2, "c"]]
    both = through_json(AppendRequest(2, 1, 1, 0, (before, *run)))
    assert both["entries"][1:] == [[2, "b"], [2, "c"]]
    assert appended(both) == (before, *run)
    plain = session_entries(2, 3, [(CLIENT, 2, 1, ["b"])], Entry(2, 2, COMMAND, "a"))
    assert len(through_json(AppendRequest(2, 1, 1, 0, (before, *plain)))["entries"][1]) == 3


def test_the_full_form_of_every_entry_is_still_read() -> None:
    items = [[3, SESSION, [CLIENT, seq, 1, f"c{seq}"]] for seq in range(1, 4)]
    assert [e.data for e in appended(append(items))] == [i[2] for i in items]


def test_a_leaders_appends_carry_runs_that_followers_read_back() -> None:
    leader = make_leader()
    for peer in ("b", "c"):
        ack(leader, peer)
    commands = [[CLIENT, seq, 1, f"c{seq}"] for seq in range(1, 6)]
    leader.propose(1, session_runs(commands[:2]), SESSION)
    leader.propose(2, session_runs(commands[2:]), SESSION)  # a second batch continues the first
    appends = [m for m in msgs(persist(leader), AppendRequest, "b") if m.entries]
    wire = [through_json(m) for m in appends]
    assert [len(item) for m in wire for item in m["entries"]] == [3, 2, 2, 2, 2]
    assert [e for m in wire for e in appended(m)] == leader.log.entries[-5:]


@pytest.mark.parametrize("entries", [
    pytest.param([[5, "x"]], id="first-item-short"),
    pytest.param([[5, NOOP, None], [5, "x"]], id="after-a-noop"),
    pytest.param([[5, COMMAND, "a"], [5, "x"]], id="after-a-command"),
    pytest.param([[5, SESSION, [CLIENT, 1, 1, "a"]], [4, "x"]], id="decreasing-term"),
    pytest.param([[5, SESSION, [CLIENT, 1, 1, "a"]], [6, "x"]], id="term-above-message"),
    pytest.param([[5, SESSION, [CLIENT, 1, 1, "a"]], ["5", "x"]], id="string-term"),
    pytest.param([[5, SESSION, [CLIENT, MAX_INT, 1, "a"]], [5, "x"]], id="seq-past-max"),
    pytest.param([[5, SESSION, [CLIENT, 1, 1, "a"]], [5, {"k": 1.5e400}]], id="infinity"),
    pytest.param([[5, SESSION, [CLIENT, 1, 1, "a"]], [5]], id="one-item"),
    pytest.param([[5, SESSION, [CLIENT, 1, 1, "a"]], [5, SESSION, "x", 1]], id="four-items"),
])
def test_malformed_runs_are_refused(entries: list[Any]) -> None:
    with pytest.raises(MessageError):
        decode(append(entries))


def test_a_too_deep_command_in_a_run_is_refused() -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(MessageError):
        decode(append([[5, SESSION, [CLIENT, 1, 1, "a"]], [5, deep]]))


def random_log(rng: random.Random) -> list[Entry]:
    """A log as a leader builds it: batches of commands, noops and session commands."""
    log: list[Entry] = []
    seqs: dict[Any, int] = {}
    commands = [None, 0, 7, "", "x", "h\u00e9"]
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice([COMMAND, NOOP, SESSION])
        count = rng.randint(1, 4)
        term = log[-1].term + rng.randint(0, 1) if log else 1
        first = len(log) + 1
        if kind != SESSION:
            log += [Entry(term, first + i, kind, None if kind == NOOP else rng.choice(commands))
                    for i in range(count)]
            continue
        batch = []
        for _ in range(count):
            client = rng.choice([CLIENT, "n2/ff", 3])
            seq = seqs[client] = seqs.get(client, 0) + rng.choice([1, 1, 1, 0, 2])
            batch.append([client, seq, rng.randint(0, 2), rng.choice(commands)])
        log += session_entries(term, first, session_runs(batch), log[-1] if log else None)
    return log


@pytest.mark.parametrize("seed", range(200))
def test_any_slice_of_a_log_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    log = random_log(rng)
    lo = rng.randint(0, len(log) - 1)
    hi = rng.randint(lo + 1, len(log))
    prev_term = log[lo - 1].term if lo else 0
    msg = AppendRequest(log[-1].term, lo, prev_term, 0, tuple(log[lo:hi]))
    assert decode(through_json(msg)) == msg
    assert decode(encode(msg)) == msg


def test_a_session_entry_holds_its_numbers_as_fields_and_only_codecs_see_the_list() -> None:
    entry = entry_of(2, 5, SESSION, [CLIENT, 3, 1, {"k": ["v", 1]}])
    assert (entry.client, entry.seq, entry.ack) == (CLIENT, 3, 1)
    assert entry.command == {"k": ["v", 1]}  # the application's own command
    assert entry.data == [CLIENT, 3, 1, {"k": ["v", 1]}]
    # The size estimates the encoded list's, as when the entry held it.
    assert entry.size == Entry(2, 5, COMMAND, entry.data).size
    assert entry_of(2, 5, SESSION, [7, 3, 1, None]).size == 16 + 8 + 30
    same = entry_of(2, 5, SESSION, [CLIENT, 3, 1, {"k": ["v", 1]}])
    assert entry == same
    for other in ([CLIENT + "x", 3, 1], [CLIENT, 4, 1], [CLIENT, 3, 2]):
        assert entry != entry_of(2, 5, SESSION, [*other, {"k": ["v", 1]}])
    assert entry != Entry(2, 5, COMMAND, {"k": ["v", 1]})
    plain = entry_of(2, 5, COMMAND, [CLIENT, 3, 1, "x"])  # a list is just a command here
    assert (plain.client, plain.seq, plain.ack, plain.data) == (None, 0, 0, plain.command)


def test_a_log_holds_no_session_list() -> None:
    """Neither a leader's entries nor a follower's decoded ones keep the wrapper."""
    run = session_entries(3, 3, session_runs([[CLIENT, seq, 4, f"c{seq}"]
                                                for seq in range(4, 7)]), None)
    for entries in (run, appended(through_json(AppendRequest(3, 2, 1, 0, tuple(run))))):
        assert [e.command for e in entries] == ["c4", "c5", "c6"]
        assert [(e.client, e.seq, e.ack) for e in entries] == [(CLIENT, s, 4) for s in (4, 5, 6)]


def test_runs_make_the_entries_their_items_make_one_by_one() -> None:
    runs: list[Any] = [(CLIENT, 4, 1, ["a", "b"]), (CLIENT, 6, 1, ["c"]),
                       ("n2/ff", 1, 1, [None, 7]), (3, 2, 2, [{"k": 1}])]
    items = session_items(runs)
    assert items == [[CLIENT, 4, 1, "a"], [CLIENT, 5, 1, "b"], [CLIENT, 6, 1, "c"],
                     ["n2/ff", 1, 1, None], ["n2/ff", 2, 1, 7], [3, 2, 2, {"k": 1}]]
    whole = session_entries(2, 3, runs, None)
    single = session_entries(2, 3, session_runs(items), None)
    assert whole == single and [e.wire for e in whole] == [e.wire for e in single]
    assert [len(e.wire) for e in whole] == [3, 2, 2, 3, 2, 3]
    assert [e.data for e in whole] == items


def test_a_forwarded_run_travels_as_items_and_the_leader_appends_it_whole() -> None:
    leader = make_leader()
    follower = make_core("b", log=[1], term=2)
    follower.step("a", Heartbeat(2, 0))
    persist(follower)
    follower.propose(7, [(CLIENT, 4, 2, ["x", "y"])], SESSION)
    [(to, request)] = persist(follower).messages
    assert to == "a" and request == ProposeRequest(2, 7, ([CLIENT, 4, 2, "x"],
                                                          [CLIENT, 5, 2, "y"]), SESSION)
    assert decode(through_json(request)) == request
    leader.step("b", request)
    persist(leader)
    assert [e.data for e in leader.log.entries[-2:]] == [[CLIENT, 4, 2, "x"],
                                                        [CLIENT, 5, 2, "y"]]
    assert len(leader.log.entries[-1].wire) == 2

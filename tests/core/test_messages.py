"""The codec is the gate for untrusted input; ``step`` refuses impossible messages."""

from __future__ import annotations

import json

import pytest

from webraft.core.messages import (
    CONFIG,
    MAX_BATCH,
    MAX_INT,
    MAX_TERM,
    NOOP,
    AppendRequest,
    AppendResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    ProposeRequest,
    ProposeResponse,
    VoteRequest,
    VoteResponse,
    check_command,
    decode,
    encode,
)
from webraft.errors import MessageError

from .helpers import ack, make_core, make_leader, observable, persist

SAMPLES = [
    VoteRequest(3, 7, 2),
    VoteRequest(3, 7, 2, pre=True, transfer=True),
    VoteResponse(3, True),
    VoteResponse(4, False, pre=True),
    AppendRequest(5, 0, 0, 0),
    AppendRequest(5, 2, 1, 2, (Entry(1, 3, 0, {"k": [1, "v"]}), Entry(4, 4, NOOP, None),
                               Entry(5, 5, CONFIG, {"voters": ["a", "b"], "learners": ["c"]}))),
    AppendResponse(5, 9, True),
    AppendResponse(5, 9, False, 4, 2),
    Heartbeat(6, 3),
    Heartbeat(6, 3, ctx=MAX_INT),
    HeartbeatResponse(6),
    HeartbeatResponse(6, 11),
    ProposeRequest(1, 2, ("x", {"y": 1}, None, [1, 2])),
    ProposeResponse(1, 2, 0, "node-a"),
    ProposeResponse(1, 2, 10),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_encode_decode_round_trip_through_json(msg):
    wire = json.loads(json.dumps(encode(msg)))
    assert decode(wire) == msg


def test_every_message_type_has_a_sample():
    assert {type(m) for m in SAMPLES} == {VoteRequest, VoteResponse, AppendRequest,
                                          AppendResponse, Heartbeat, HeartbeatResponse,
                                          ProposeRequest, ProposeResponse}


@pytest.mark.parametrize("payload", [None, [], "vote", 3, 1.5, b"{}", ("type", "vote")])
def test_decode_rejects_non_objects(payload):
    with pytest.raises(MessageError):
        decode(payload)


@pytest.mark.parametrize("kind", [None, "", "Vote", "snapshot", 1, ["vote"], True])
def test_decode_rejects_unknown_types(kind):
    payload = {"term": 1, "last_index": 0, "last_term": 0}
    if kind is not None:
        payload["type"] = kind
    with pytest.raises(MessageError):
        decode(payload)


REQUIRED = {
    "vote": ["term", "last_index", "last_term"],
    "vote_resp": ["term", "granted"],
    "append": ["term", "prev_index", "prev_term", "commit"],
    "append_resp": ["term", "index", "success"],
    "heartbeat": ["term", "commit"],
    "heartbeat_resp": ["term"],
    "propose": ["term", "id", "commands"],
    "propose_resp": ["term", "id", "index"],
}
FULL = {encode(m)["type"]: encode(m) for m in SAMPLES}


@pytest.mark.parametrize(("kind", "name"),
                         [(k, n) for k, names in REQUIRED.items() for n in names])
def test_decode_rejects_missing_fields(kind, name):
    payload = dict(FULL[kind])
    decode(payload)  # complete: fine
    del payload[name]
    with pytest.raises(MessageError, match=name):
        decode(payload)


INT_FIELDS = [(k, n) for k, names in REQUIRED.items() for n in names
              if n not in ("granted", "success", "commands")]


@pytest.mark.parametrize("bad", [True, False, -1, MAX_INT + 1, 2**53, 2**64, 1.0, "1", None, [1]])
@pytest.mark.parametrize(("kind", "name"), INT_FIELDS)
def test_decode_rejects_non_integers_and_out_of_range(kind, name, bad):
    payload = {**FULL[kind], name: bad}
    with pytest.raises(MessageError):
        decode(payload)


def test_decode_accepts_the_integer_range_bounds():
    assert decode({"type": "heartbeat", "term": 0, "commit": MAX_INT}) == Heartbeat(0, MAX_INT)


@pytest.mark.parametrize(("kind", "name"), [("vote_resp", "granted"), ("append_resp", "success"),
                                            ("vote", "pre"), ("vote", "transfer")])
@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_decode_rejects_non_booleans(kind, name, bad):
    with pytest.raises(MessageError):
        decode({**FULL[kind], name: bad})


def append(entries, term=5, prev_index=2, prev_term=1):
    return {"type": "append", "term": term, "prev_index": prev_index, "prev_term": prev_term,
            "commit": 0, "entries": entries}


def test_decode_numbers_entries_after_prev_index():
    msg = decode(append([[1, 0, "x"], [3, 0, "y"]]))
    assert msg.entries == (Entry(1, 3, 0, "x"), Entry(3, 4, 0, "y"))


@pytest.mark.parametrize("payload", [
    pytest.param(append([[3, 0, "x"], [2, 0, "y"]]), id="decreasing-terms"),
    pytest.param(append([[6, 0, "x"]]), id="term-above-message-term"),
    pytest.param(append([[1, 0, "x"]], prev_term=2), id="term-below-prev-term"),
    pytest.param(append([], prev_term=6), id="prev-term-above-message-term"),
    pytest.param(append([[1, 9, None]]), id="unknown-kind"),
    pytest.param(append([[1, True, None]]), id="bool-kind"),
    pytest.param(append([[1, "0", None]]), id="string-kind"),
    pytest.param(append([[1, CONFIG, {"voters": []}]]), id="empty-config"),
    pytest.param(append([[1, CONFIG, "a,b"]]), id="config-not-an-object"),
    pytest.param(append([[True, 0, None]]), id="bool-term"),
    pytest.param(append([[-1, 0, None]]), id="negative-term"),
    pytest.param(append([[1, 0]]), id="short-item"),
    pytest.param(append([[1, 0, None, 4]]), id="long-item"),
    pytest.param(append([{"term": 1, "kind": 0}]), id="item-not-a-list"),
    pytest.param(append("[]"), id="entries-not-a-list"),
    pytest.param(append([[1, 0, None]], prev_index=MAX_INT), id="index-past-max"),
    pytest.param(append([[1, 0, None]] * (MAX_BATCH + 1)), id="oversized-entries"),
    pytest.param({"type": "propose", "term": 1, "id": 1, "commands": []}, id="no-commands"),
    pytest.param({"type": "propose", "term": 1, "id": 1, "commands": ["x"] * (MAX_BATCH + 1)},
                 id="oversized-commands"),
    pytest.param({"type": "propose", "term": 1, "id": 1, "commands": "x"}, id="commands-str"),
    pytest.param({"type": "propose_resp", "term": 1, "id": 1, "index": 0, "leader": 5},
                 id="leader-not-a-string"),
    pytest.param({"type": "propose_resp", "term": 1, "id": 1, "index": 0, "leader": "a" * 257},
                 id="leader-too-long"),
])
def test_decode_rejects_malformed_payloads(payload):
    with pytest.raises(MessageError):
        decode(payload)


def test_decode_accepts_a_full_batch():
    msg = decode(append([[1, 0, None]] * MAX_BATCH))
    assert len(msg.entries) == MAX_BATCH and msg.entries[-1].index == 2 + MAX_BATCH


def test_step_rejects_a_message_from_its_own_id():
    core = make_core("a", log=[1], term=1)
    before = observable(core)
    with pytest.raises(MessageError):
        core.step("a", Heartbeat(5, 0))
    assert observable(core) == before


def leader_a():
    core = make_leader()
    ack(core, "b")
    persist(core)
    return core


IMPOSSIBLE = [
    pytest.param(AppendRequest(2, 2, 2, 0), id="another-leader-of-our-term-append"),
    pytest.param(Heartbeat(2, 0), id="another-leader-of-our-term-heartbeat"),
    pytest.param(AppendResponse(2, 9, True), id="ack-beyond-our-log"),
]


@pytest.mark.parametrize("msg", IMPOSSIBLE)
def test_impossible_message_is_refused_before_it_changes_anything(msg):
    # step()'s contract: a message no correct peer could send raises MessageError "before it
    # changes anything". For the leader that includes its CheckQuorum bookkeeping.
    core = leader_a()
    before = observable(core)
    with pytest.raises(MessageError):
        core.step("c", msg)
    assert observable(core) == before


def test_terms_beyond_the_accepted_range_are_refused() -> None:
    # A term near 2**53 would leave no room for another election once adopted.
    with pytest.raises(MessageError, match="largest term"):
        decode({"type": "heartbeat_resp", "term": MAX_TERM + 1})
    assert decode({"type": "heartbeat_resp", "term": MAX_TERM}).term == MAX_TERM


def test_forwarded_proposals_may_only_make_commands_and_session_commands() -> None:
    import pytest

    from webraft.core.messages import SESSION, decode
    from webraft.errors import MessageError

    good = {"type": "propose", "term": 1, "id": 1, "commands": [[7, 1, 1, {"x": 1}]],
            "kind": SESSION}
    assert decode(good).kind == SESSION
    implicit = {**good, "commands": [["n1/00c0ffee0000", 1, 1, "x"]]}  # a node's own session
    assert decode(implicit).commands == (["n1/00c0ffee0000", 1, 1, "x"],)
    for bad in ({"kind": 2}, {"kind": 1}, {"kind": 9}, {"commands": [[7, 1, {"x": 1}]]},
                {"commands": [["", 1, 1, None]]}, {"commands": [[7.5, 1, 1, None]]},
                {"commands": [["n" * 300, 1, 1, None]]}, {"commands": [{"x": 1}]}):
        with pytest.raises(MessageError):
            decode({**good, **bad})


@pytest.mark.parametrize("command", [
    None, 7, True, 1.5, "", "text", "h\u00e9 \u2603", [1, "a", None, True, 2.5, [], {}],
    {"op": "put", "key": "k", "value": 12, "on": False, "x": None},
    {"deep": [{"a": [1, {"b": "c"}]}], "f": -0.5}, ["\ud800 lone"],
])
def test_inline_sizes_match_the_recursive_rule(command):
    """``_json_size`` sizes scalar items inline; the figure must be the recursive rule's
    (16 + the estimate is what bounds message and in-flight sizes everywhere)."""

    def recursive(value):
        if isinstance(value, list):
            return 2 + sum(1 + recursive(v) for v in value)
        if isinstance(value, dict):
            return 2 + sum(len(k) + 4 + recursive(v) for k, v in value.items())
        return len(value) + 2 if isinstance(value, str) else 8

    assert check_command(command) == recursive(command)


@pytest.mark.parametrize("bad", [[float("nan")], {"a": [float("inf")]}, {1: "x"},
                                 [object()], {"a": {"b": set()}}])
def test_inline_sizing_still_refuses_what_json_cannot_carry(bad):
    with pytest.raises(MessageError):
        check_command(bad)

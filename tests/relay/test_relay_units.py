"""The pure parts of the relay, without sockets: frame parsing, rooms, the token bucket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webraft.transport import wire
from webraft.transport.relay import OutgoingBuffer
from webraft_relay.limits import TokenBucket
from webraft_relay.protocol import (
    Batch,
    Broadcast,
    ErrorCode,
    Hello,
    Ping,
    ProtocolError,
    Send,
    batch_frame,
    error_frame,
    msg_frame,
    one_value,
    parse_frame,
    parse_hello,
    parse_layout,
    welcome_frame,
)
from webraft_relay.rooms import JoinOutcome, Registry


def test_parse_hello_defaults():
    hello = parse_hello('{"type":"hello","v":1,"room":"demo","address":"n1"}')
    assert hello == Hello(room="demo", address="n1", session="", token=None)


def test_parse_frames():
    assert parse_frame('{"type":"send","to":"b","data":[1]}', max_batch=9) == Send("b", "[1]")
    assert parse_frame('{"type":"broadcast","data":null}', max_batch=9) == Broadcast("null")
    assert parse_frame('{"type":"ping"}', max_batch=9) == Ping()
    batch = parse_frame(
        '{"type":"batch","msgs":[{"to":"b","data":1},{"to":"c","data":2}]}', max_batch=2
    )
    assert batch == Batch((("b", "1"), ("c", "2")))


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"send","to":"b","data":{"x":[1,"\\u00e9 \\ud800"]}}',
        '{"type":"batch","msgs":[{"to":"b","data":{"a":"}]}"}},{"to":"c","data":[]}]}',
        '{"type":"batch","msgs":[{"to":"b","data":1}]}',
        # Other layouts go through the full parser and give the same frames.
        '{"type": "send", "to": "b", "data": {"x": [1, "\\u00e9 \\ud800"]}}',
        '{"to":"b","type":"send","data":"s"}',
        '{"type":"batch","msgs":[{"data":1,"to":"b"},{"to":"c","data":[]}]}',
    ],
)
def test_data_is_forwarded_as_the_same_json_value(frame: str):
    parsed = parse_frame(frame, max_batch=9)
    whole = json.loads(frame)
    if isinstance(parsed, Send):
        assert (parsed.to, json.loads(parsed.data)) == (whole["to"], whole["data"])
    else:
        assert isinstance(parsed, Batch)
        assert [(to, json.loads(data)) for to, data in parsed.msgs] == [
            (m["to"], m["data"]) for m in whole["msgs"]
        ]


@pytest.mark.parametrize(
    "frame",
    [
        # data that would close the envelope and add a field of its own
        '{"type":"send","to":"b","data":1,"from":"z"}',
        '{"type":"batch","msgs":[{"to":"b","data":1,"from":"z"}]}',
        '{"type":"batch","msgs":[{"to":"b","data":1}],"x":1}',
        '{"type":"send","to":"b","data":NaN}',
        '{"type":"send","to":"b","data":{"a":1}',
        '{"type":"batch","msgs":[{"to":"b","data":1},{"to":"c","data":]}',
        '{"type":"send","to":"b\\"","data":1}',
        '{"type":"send","to":"b","data":[1],"from":"z","k":[2]}',
        '{"type": "send", "to": "b", "data": {"a": 1}, "from": "z"}',
        '{"type":"broadcast","data":"\\\\","from":"z"}',
        '{"type":"send","to":"b","data":"x\\","from":"z"}',
        '{"type":"batch","msgs":[{"to":"b","data":1}],"from":"z","msgs":[{"to":"c","data":1}]}',
    ],
)
def test_tricky_frames_are_refused_or_forward_only_their_data(frame: str):
    try:
        parsed = parse_frame(frame, max_batch=9)
    except ProtocolError:
        return
    # Accepted only as valid JSON (NaN aside: the relay leaves lexical errors to receivers).
    whole = json.loads(frame)
    if isinstance(parsed, (Send, Broadcast)):
        datas, sent = [parsed.data], [whole["data"]]
    else:
        datas, sent = [d for _, d in parsed.msgs], [m["data"] for m in whole["msgs"]]
    for data, value in zip(datas, sent, strict=True):
        # What a receiver gets is refused whole by its strict decoder, or is the sender's
        # data from the sender: no data can add a field of its own.
        try:
            delivered = wire.loads(msg_frame("a", data))
        except ValueError:
            continue
        assert delivered == {"type": "msg", "from": "a", "data": value}


def test_batch_size_limit():
    frame = json.dumps({"type": "batch", "msgs": [{"to": "b", "data": i} for i in range(3)]})
    with pytest.raises(ProtocolError) as caught:
        parse_frame(frame, max_batch=2)
    assert caught.value.code is ErrorCode.BAD_FIELD


def test_outgoing_frames_are_compact_json():
    assert msg_frame("a", '{"x":1}') == '{"type":"msg","from":"a","data":{"x":1}}'
    assert msg_frame("a", "1", broadcast=True) == (
        '{"type":"msg","from":"a","data":1,"broadcast":true}'
    )
    assert batch_frame("a", ["1", "2"]) == '{"type":"batch","from":"a","msgs":[1,2]}'
    assert json.loads(welcome_frame("r", "a", ["c", "b"]))["peers"] == ["b", "c"]
    assert json.loads(error_frame(ErrorCode.UNKNOWN_PEER, "m", to="z")) == {
        "type": "error",
        "code": "unknown_peer",
        "message": "m",
        "to": "z",
    }


class TestRegistry:
    def test_join_and_leave(self):
        rooms: Registry[str] = Registry(max_room_size=8)
        assert rooms.join("r", "a", "", "conn-a").outcome is JoinOutcome.JOINED
        result = rooms.join("r", "b", "", "conn-b")
        assert (result.outcome, result.peers) == (JoinOutcome.JOINED, ["a"])
        assert rooms.get("r", "b") == "conn-b"
        assert list(rooms.others("r", "b")) == ["conn-a"]
        assert rooms.leave("r", "a", "conn-a") == ["conn-b"]
        assert rooms.leave("r", "b", "conn-b") == []
        assert rooms.room_count == 0 and rooms.member_count == 0
        assert rooms.get("r", "b") is None and list(rooms.others("r", "x")) == []

    def test_replace_needs_the_same_non_empty_session(self):
        rooms: Registry[str] = Registry(max_room_size=8)
        rooms.join("r", "a", "s1", "old")
        assert rooms.join("r", "a", "s2", "x").outcome is JoinOutcome.ADDRESS_IN_USE
        assert rooms.join("r", "a", "", "x").outcome is JoinOutcome.ADDRESS_IN_USE
        result = rooms.join("r", "a", "s1", "new")
        assert (result.outcome, result.replaced) == (JoinOutcome.REPLACED, "old")
        # The replaced connection's late departure must not evict its successor.
        assert rooms.leave("r", "a", "old") is None
        assert rooms.get("r", "a") == "new"

    def test_empty_sessions_never_match(self):
        rooms: Registry[str] = Registry(max_room_size=8)
        rooms.join("r", "a", "", "first")
        assert rooms.join("r", "a", "", "second").outcome is JoinOutcome.ADDRESS_IN_USE

    def test_room_full_but_reconnect_allowed(self):
        rooms: Registry[str] = Registry(max_room_size=2)
        rooms.join("r", "a", "s", "a1")
        rooms.join("r", "b", "", "b1")
        assert rooms.join("r", "c", "", "c1").outcome is JoinOutcome.ROOM_FULL
        assert rooms.join("r", "a", "s", "a2").outcome is JoinOutcome.REPLACED
        assert rooms.join("other", "c", "", "c1").outcome is JoinOutcome.JOINED
        assert rooms.addresses("r") == ["a", "b"]

    def test_leave_of_a_stranger_is_ignored(self):
        rooms: Registry[str] = Registry(max_room_size=2)
        assert rooms.leave("nowhere", "a", "x") is None
        rooms.join("r", "a", "", "a1")
        assert rooms.leave("r", "zz", "x") is None


class TestTokenBucket:
    def test_burst_then_refill(self):
        now = [0.0]
        bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
        assert [bucket.take() for _ in range(4)] == [True, True, True, False]
        now[0] += 0.5  # one token back
        assert bucket.take() and not bucket.take()
        now[0] += 100  # refills only up to the burst
        assert bucket.take(3) and not bucket.take(1)

    def test_all_or_nothing(self):
        now = [0.0]
        bucket = TokenBucket(rate=1, burst=4, clock=lambda: now[0])
        assert not bucket.take(5)
        assert bucket.take(4)

    def test_zero_rate_means_unlimited(self):
        bucket = TokenBucket(rate=0, burst=1)
        assert all(bucket.take(1000) for _ in range(100))


def test_config_rejects_nonsense():
    from webraft_relay import RelayConfig

    with pytest.raises(ValueError, match="max_batch"):
        RelayConfig(burst=10, max_batch=11)
    RelayConfig(rate=0, burst=10, max_batch=11)  # no limit: any batch size fits
    with pytest.raises(ValueError, match="max_room_size"):
        RelayConfig(max_room_size=0)


def test_frames_webraft_writes_take_the_fast_path():
    """The fast path only pays off if webraft's own transport writes that exact layout."""
    buffer = OutgoingBuffer()
    buffer.add("b", {"type": "append", "entries": [[1, 0, "x}]}"]]})
    (single,) = buffer.take_frames()
    buffer.add("b", 1)
    buffer.add("c", ["\ud800", "é"])
    (batch,) = buffer.take_frames()
    assert parse_layout(single, 9) == Send("b", '{"type":"append","entries":[[1,0,"x}]}"]]}')
    assert parse_layout(batch, 9) == Batch((("b", "1"), ("c", '["\\ud800","\\u00e9"]')))


def test_data_that_holds_the_entry_separator_is_never_batched():
    """The relay's fast path splits a batch at ``},{"to":"``; webraft sends data that holds
    it in a frame of its own, so its batches always take the fast path."""
    buffer = OutgoingBuffer()
    tricky = [{"to": "x"}, {"to": "y"}]
    for to, data in (("b", 1), ("c", tricky), ("d", 2), ("e", 3)):
        buffer.add(to, data)
    frames = buffer.take_frames()
    assert [parse_layout(frame, 9) for frame in frames] == [
        Send("b", "1"),
        Send("c", '[{"to":"x"},{"to":"y"}]'),
        Batch((("d", "2"), ("e", "3"))),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='ab"\\,:[]{} \u00e9', max_size=6)
    | st.sampled_from(["from", "type", "msgs", "broadcast"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet="abfromtype", max_size=5), inner, max_size=4),
    max_leaves=20,
)
injections = st.lists(st.sampled_from(
    ['1', '[', ']', '{', '}', ',', ':', '"', '\\', ' ', '"from"', '"type"', '"z"', '"msgs"',
     '"broadcast"', "true", '"fr\\u006fm"']), max_size=10).map("".join)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_one_value_accepts_every_json_value(value: Any):
    assert one_value(wire.dumps(value))
    assert one_value(json.dumps(value, ensure_ascii=False, indent=1))


@settings(max_examples=800, deadline=None)
@given(json_values, injections, injections)
def test_accepted_data_cannot_forge_the_frame_around_it(value: Any, before: str, after: str):
    data = before + wire.dumps(value) + after
    if not one_value(data):
        return
    for frame, kind in ((msg_frame("a", data), "msg"),
                        (msg_frame("a", data, broadcast=True), "msg"),
                        (batch_frame("a", [data, "1"]), "batch"),
                        (batch_frame("a", ["1", data]), "batch")):
        try:
            delivered = wire.loads(frame)
        except ValueError:
            continue  # refused whole by the receiver
        assert (delivered["type"], delivered["from"]) == (kind, "a"), frame
        if kind == "msg":
            assert delivered.get("broadcast", False) is frame.endswith('"broadcast":true}')


@pytest.mark.parametrize(("data", "ok"), [
    ("[{},{},{}]", True),               # the quick scan
    ('{"type":"x"}', True),             # a relay key inside: the structural check
    ('["a\\"]"]', True),                # an escaped quote: the structural check
    ('[1],"from":"z"', False),
    ('1,"from":"z"', False),
    ('{"a":"]"},"from":"z","b":{"c":"["}', False),  # brackets in strings: decoded
    ("[" * 40 + "]" * 40, True),         # deeper than the structural passes: decoded
    ("", False), ("  ", False),
])
def test_one_value(data: str, ok: bool):
    assert one_value(data) is ok

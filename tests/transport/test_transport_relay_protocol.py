"""The sans-I/O relay client (webraft.transport.relay): frames, events, batching, back-off.

Frames we build are checked with the relay's own parser (``webraft_relay.protocol``), and frames the
relay builds are fed to ours, so the two ends cannot drift apart silently.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webraft.errors import MessageError, WebraftError
from webraft.transport import relay as rp
from webraft.transport.relay import (
    Backoff,
    Batch,
    FrameError,
    Joined,
    Left,
    Message,
    MessageTooLarge,
    OutgoingBuffer,
    Pong,
    Rejected,
    RelayClient,
    RelayClosed,
    Welcome,
    hello_frame,
    parse_frame,
    should_retry,
)
from webraft_relay import protocol as relay_protocol

ROOT = Path(__file__).resolve().parents[2]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=8,
)
names = st.from_regex(r"[A-Za-z0-9_.:@-]{1,20}", fullmatch=True)


# ------------------------------------------------------------------ building the hello


def test_hello_is_accepted_by_the_relay_and_carries_what_we_gave():
    text = hello_frame("demo", "n1", "s" * 32, "tok")
    hello = relay_protocol.parse_hello(text)
    assert (hello.room, hello.address, hello.session, hello.token) == (
        "demo", "n1", "s" * 32, "tok")
    bare = json.loads(hello_frame("demo", "n1"))
    assert bare == {"type": "hello", "v": 1, "room": "demo", "address": "n1"}


@pytest.mark.parametrize("room,address", [("", "a"), ("r", "a b"), ("r" * 129, "a"),
                                          ("r", 7), ("r/x", "a")])
def test_hello_refuses_names_the_relay_would_refuse(room: Any, address: Any):
    with pytest.raises(ValueError):
        hello_frame(room, address)
    with pytest.raises(ValueError):
        RelayClient(room, address)


# ------------------------------------------------------------------ parsing relay frames


def test_every_frame_the_relay_builds_parses_to_its_event():
    rpr = relay_protocol
    assert parse_frame(rpr.welcome_frame("demo", "a", ["c", "b"])) == Welcome(
        "demo", "a", ("b", "c"))
    assert parse_frame(rpr.join_frame("n4")) == Joined("n4")
    assert parse_frame(rpr.leave_frame("n4")) == Left("n4")
    assert parse_frame(rpr.msg_frame("b", '{"x":[1,null]}')) == Message("b", {"x": [1, None]})
    assert parse_frame(rpr.msg_frame("b", "3", broadcast=True)) == Message("b", 3, True)
    assert parse_frame(rpr.batch_frame("b", ["1", '{"y":2}'])) == Batch("b", (1, {"y": 2}))
    assert parse_frame(rpr.error_frame(rpr.ErrorCode.UNKNOWN_PEER, "no", to="z")) == Rejected(
        "unknown_peer", "no", "z")
    assert parse_frame(rpr.PONG) == Pong()


def test_unknown_fields_are_ignored_and_data_may_be_any_json():
    frame = {"type": "msg", "from": "b", "data": None, "extra": [1], "broadcast": "yes"}
    assert parse_frame(json.dumps(frame)) == Message("b", None, False)


MALFORMED = [
    ("{", "bad_json"),
    ('{"type": "msg", "from": "b", "data": Infinity}', "bad_json"),
    ("[" * 50_000 + "]" * 50_000, "bad_json"),
    ("17", "not_object"),
    ('{"from": "b"}', "unknown_type"),
    ('{"type": "send", "to": "b", "data": 1}', "unknown_type"),  # a client frame
    ('{"type": "msg", "from": "b"}', "bad_field"),
    ('{"type": "msg", "from": "", "data": 1}', "bad_field"),
    ('{"type": "batch", "from": "b", "msgs": "x"}', "bad_field"),
    ('{"type": "batch", "from": 3, "msgs": []}', "bad_field"),
    ('{"type": "leave", "address": ["a"]}', "bad_field"),
    ('{"type": "welcome", "v": 1, "room": "r", "address": "a", "peers": "b"}', "bad_field"),
    ('{"type": "welcome", "v": 1, "room": "r", "address": "a", "peers": ["b c"]}', "bad_field"),
    ('{"type": "welcome", "v": 1, "room": "r", "address": "a"}', "bad_field"),
    ('{"type": "welcome", "v": true, "room": "r", "address": "a", "peers": []}',
     "unsupported_version"),
    ('{"type": "welcome", "v": 2, "room": "r", "address": "a", "peers": []}',
     "unsupported_version"),
    ('{"type": "error", "message": "no code"}', "bad_field"),
    (b'{"type": "pong"}', "binary_frame"),
]


@pytest.mark.parametrize(("text", "code"), MALFORMED)
def test_malformed_frames_raise_a_typed_error(text: str | bytes, code: str):
    with pytest.raises(FrameError) as caught:
        parse_frame(text)
    assert caught.value.code == code
    assert isinstance(caught.value, MessageError) and isinstance(caught.value, WebraftError)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(), st.binary(), json_values.map(json.dumps)))
def test_garbage_never_raises_anything_but_frame_error(text: str | bytes):
    try:
        event = parse_frame(text)
    except FrameError:
        return
    assert isinstance(event, Welcome | Joined | Left | Message | Batch | Rejected | Pong)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["welcome", "join", "leave", "msg", "batch", "error", "pong", "hello"]),
       st.dictionaries(st.sampled_from(["v", "room", "address", "peers", "from", "data",
                                        "msgs", "code", "message", "to", "broadcast"]),
                       json_values | names | st.lists(names, max_size=3), max_size=8))
def test_frames_of_known_types_with_random_fields_fail_cleanly(kind: str, fields: dict):
    text = json.dumps({**fields, "type": kind})
    client = RelayClient("room", "me")
    client.connection_made()
    for parse in (parse_frame, client.receive):
        try:
            event = parse(text)
        except FrameError:
            continue
        assert isinstance(event, Welcome | Joined | Left | Message | Batch | Rejected | Pong)


# ------------------------------------------------------------------ the outgoing buffer


def relay_parse(frame: str, max_batch: int = 1000) -> list[tuple[str, Any]]:
    """What the real relay makes of one of our frames: the (to, data) pairs it routes."""
    parsed = relay_protocol.parse_frame(frame, max_batch=max_batch)
    if isinstance(parsed, relay_protocol.Send):
        return [(parsed.to, json.loads(parsed.data))]
    assert isinstance(parsed, relay_protocol.Batch), parsed
    return [(to, json.loads(data)) for to, data in parsed.msgs]


def test_one_message_is_a_send_frame_and_several_are_one_batch():
    buf = OutgoingBuffer()
    assert buf.take_frames() == []
    buf.add("b", {"term": 1})
    (frame,) = buf.take_frames()
    assert json.loads(frame) == {"type": "send", "to": "b", "data": {"term": 1}}
    for i in range(5):
        buf.add("bc"[i % 2], i)
    (frame,) = buf.take_frames()
    assert json.loads(frame)["type"] == "batch"
    assert relay_parse(frame) == [("b", 0), ("c", 1), ("b", 2), ("c", 3), ("b", 4)]
    assert len(buf) == 0 and buf.bytes == 0 and buf.take_frames() == []


def test_batches_are_split_at_max_batch_and_max_frame_bytes():
    buf = OutgoingBuffer(max_batch=3, max_frame_bytes=200)
    for i in range(7):
        buf.add("b", i)
    frames = buf.take_frames()
    assert [len(relay_parse(f)) for f in frames] == [3, 3, 1]
    assert json.loads(frames[-1])["type"] == "send"
    for _ in range(4):
        buf.add("b", "x" * 80)
    frames = buf.take_frames()
    assert all(len(f) <= 200 for f in frames)
    assert [d for f in frames for _, d in relay_parse(f)] == ["x" * 80] * 4


def test_a_message_larger_than_a_frame_is_refused_and_not_queued():
    buf = OutgoingBuffer(max_frame_bytes=100)
    with pytest.raises(MessageTooLarge):
        buf.add("b", "x" * 100)
    assert len(buf) == 0
    buf.add("b", "x" * 60)
    (frame,) = buf.take_frames()
    assert len(frame) <= 100


def test_a_destination_the_relay_would_refuse_fails_only_its_own_write():
    buf = OutgoingBuffer()
    buf.add("b", 1)
    for bad in ("", "b c", "x" * 129, 7, None):
        with pytest.raises(ValueError):
            buf.add(bad, 2)  # type: ignore[arg-type]
    buf.add("c", 3)
    assert [p for f in buf.take_frames() for p in relay_parse(f)] == [("b", 1), ("c", 3)]


def test_ping_frame_is_a_relay_ping():
    assert isinstance(relay_protocol.parse_frame(rp.ping_frame(), max_batch=1),
                      relay_protocol.Ping)


@pytest.mark.parametrize("data", [float("nan"), {1: object()}, {"x": {1, 2}}, b"bytes"])
def test_a_payload_that_is_not_json_fails_the_writer(data: Any):
    buf = OutgoingBuffer()
    with pytest.raises(ValueError):
        buf.add("b", data)
    assert len(buf) == 0


def test_deep_nesting_fails_the_writer_with_value_error():
    data: Any = []
    for _ in range(100_000):
        data = [data]
    buf = OutgoingBuffer()
    with pytest.raises(ValueError):
        buf.add("b", data)


def test_non_ascii_and_lone_surrogates_are_escaped_so_length_is_bytes():
    buf = OutgoingBuffer()
    buf.add("b", "é\ud800")
    (frame,) = buf.take_frames()
    assert frame.isascii()
    assert relay_parse(frame) == [("b", "é\ud800")]


def test_bounds_drop_the_oldest_and_count_them():
    buf = OutgoingBuffer(max_messages=3, max_frame_bytes=64, max_bytes=1000)
    for i in range(5):
        buf.add("b", i)
    assert (len(buf), buf.dropped) == (3, 2)
    assert [d for f in buf.take_frames() for _, d in relay_parse(f)] == [2, 3, 4]
    buf = OutgoingBuffer(max_frame_bytes=64, max_bytes=100)
    for i in range(4):
        buf.add("b", f"{i}" * 30)  # ~45 bytes each: two fit in 100
    assert (len(buf), buf.dropped) == (2, 2)
    assert buf.bytes <= 100
    assert [d for f in buf.take_frames() for _, d in relay_parse(f)] == ["2" * 30, "3" * 30]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(names, json_values), max_size=60),
       st.integers(1, 10), st.integers(64, 600), st.integers(1, 40))
def test_buffer_frames_are_valid_bounded_and_keep_the_newest_in_order(
        msgs: list[tuple[str, Any]], max_batch: int, max_frame: int, max_messages: int):
    buf = OutgoingBuffer(max_batch=max_batch, max_frame_bytes=max_frame,
                         max_messages=max_messages, max_bytes=max_frame * 3)
    accepted: list[tuple[str, Any]] = []
    for to, data in msgs:
        try:
            buf.add(to, data)
        except MessageTooLarge:
            continue
        accepted.append((to, json.loads(json.dumps(data))))
    assert buf.dropped + len(buf) == len(accepted)
    assert len(buf) <= max_messages and buf.bytes <= max_frame * 3
    frames = buf.take_frames()
    routed = []
    for frame in frames:
        assert len(frame.encode()) <= max_frame
        pairs = relay_parse(frame, max_batch=max_batch)
        assert 1 <= len(pairs) <= max_batch
        routed.extend(pairs)
    assert routed == accepted[buf.dropped:]


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_messages": 0},
                                    {"max_frame_bytes": 10},
                                    {"max_frame_bytes": 1000, "max_bytes": 999}])
def test_buffer_settings_that_could_never_work_are_refused(kwargs: dict[str, int]):
    with pytest.raises(ValueError):
        OutgoingBuffer(**kwargs)


# ------------------------------------------------------------------ back-off and close codes


def test_backoff_doubles_to_the_maximum_with_jitter_and_resets():
    backoff = Backoff(0.05, 5.0, rng=random.Random(7))
    bases = [0.05 * 2**i for i in range(7)] + [5.0] * 5
    delays = [backoff.next() for _ in bases]
    for base, delay in zip(bases, delays, strict=True):
        assert min(base, 5.0) * 0.5 <= delay <= min(base, 5.0) * 1.5
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
    backoff.reset()
    assert 0.025 <= backoff.next() <= 0.075


def test_backoff_without_jitter_is_exact():
    backoff = Backoff(1.0, 3.0, jitter=0)
    assert [backoff.next() for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 2, "maximum": 1},
                                    {"factor": 0.5}, {"jitter": 1.0}])
def test_backoff_refuses_nonsense(kwargs: dict[str, float]):
    args = {"initial": 0.05, "maximum": 5.0, **kwargs}
    with pytest.raises(ValueError):
        Backoff(args.pop("initial"), args.pop("maximum"), **args)


@pytest.mark.parametrize(("code", "retry"), [
    (None, True), (1000, True), (1001, True), (1006, True), (1009, True), (1011, True),
    (1013, True), (4000, True), (4013, True), (4001, False), (4008, False), (4009, False)])
def test_which_close_codes_are_worth_a_retry(code: int | None, retry: bool):
    assert should_retry(code) is retry


# ------------------------------------------------------------------ the client state machine


def joined_client(**kwargs: Any) -> RelayClient:
    client = RelayClient("demo", "a", **kwargs)
    client.connection_made()
    client.receive(relay_protocol.welcome_frame("demo", "a", ["b"]))
    return client


def test_client_hello_keeps_one_random_session_for_its_life():
    client = RelayClient("demo", "a", token="t")
    first = json.loads(client.connection_made())
    second = json.loads(client.connection_made())
    assert first == second
    assert first["token"] == "t" and len(first["session"]) == 32
    assert RelayClient("demo", "a").session != client.session
    assert json.loads(RelayClient("demo", "a", session="mine").connection_made())[
        "session"] == "mine"
    with pytest.raises(ValueError):
        RelayClient("demo", "a", session="x" * 129)


def test_client_holds_messages_until_the_welcome():
    client = RelayClient("demo", "a")
    client.send("b", 1)
    client.connection_made()
    assert client.take_frames() == []
    assert client.receive(relay_protocol.welcome_frame("demo", "a", ["b"])) == Welcome(
        "demo", "a", ("b",))
    assert client.joined
    assert [relay_parse(f) for f in client.take_frames()] == [[("b", 1)]]


@pytest.mark.parametrize("first", [
    relay_protocol.join_frame("b"),
    relay_protocol.welcome_frame("other", "a", []),
    relay_protocol.welcome_frame("demo", "b", []),
])
def test_client_requires_its_own_welcome_first(first: str):
    client = RelayClient("demo", "a")
    client.connection_made()
    with pytest.raises(FrameError) as caught:
        client.receive(first)
    assert caught.value.code == "unexpected_frame"
    assert not client.joined


def test_client_refuses_a_second_welcome_but_stays_joined():
    client = joined_client()
    with pytest.raises(FrameError):
        client.receive(relay_protocol.welcome_frame("demo", "a", []))
    assert client.joined
    assert client.receive(relay_protocol.msg_frame("b", "1")) == Message("b", 1)


def test_connection_lost_retries_with_backoff_reset_by_a_welcome():
    client = RelayClient("demo", "a", backoff=Backoff(1.0, 8.0, jitter=0))
    client.connection_made()
    assert [client.connection_lost(None) for _ in range(3)] == [1.0, 2.0, 4.0]
    client.connection_made()
    client.receive(relay_protocol.welcome_frame("demo", "a", []))
    assert client.connection_lost(1001, "going away") == 1.0
    assert not client.joined and client.stopped is None


@pytest.mark.parametrize("code", [4001, 4008, 4009])
def test_connection_lost_with_a_terminal_code_stops_for_good(code: int):
    client = joined_client()
    assert client.connection_lost(code, "why") is None
    assert isinstance(client.stopped, RelayClosed)
    assert (client.stopped.code, client.stopped.reason) == (code, "why")
    assert client.connection_lost(1001) is None  # stays stopped


# ------------------------------------------------------------------ import hygiene


def test_the_sans_io_module_imports_no_io():
    tree = ast.parse(Path(rp.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not imported & {"asyncio", "websockets", "socket", "threading", "selectors"}


def test_importing_webraft_and_its_transport_package_does_not_import_websockets():
    code = ("import sys, webraft, webraft.transport, webraft.transport.relay, webraft.member, "
            "webraft.member.kv; assert 'websockets' not in sys.modules, 'websockets loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)

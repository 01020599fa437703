"""Malformed input: refused before the hello, answered with an error after it, never fatal."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from webraft.transport.relay import FrameError, parse_frame

if TYPE_CHECKING:
    from conftest import Harness

    from webraft_relay import Relay

BAD_HELLOS = [
    ("not json", "bad_json"),
    ("[1, 2]", "not_object"),
    (json.dumps({"type": "send", "to": "b", "data": 1}), "bad_hello"),  # send before hello
    (json.dumps({"type": "hello", "v": 2, "room": "r", "address": "a"}), "unsupported_version"),
    (json.dumps({"type": "hello", "v": True, "room": "r", "address": "a"}), "unsupported_version"),
    (json.dumps({"type": "hello", "v": 1, "room": "", "address": "a"}), "bad_hello"),
    (json.dumps({"type": "hello", "v": 1, "room": "r", "address": "a b"}), "bad_hello"),
    (json.dumps({"type": "hello", "v": 1, "room": "r" * 129, "address": "a"}), "bad_hello"),
    (json.dumps({"type": "hello", "v": 1, "room": "r", "address": 7}), "bad_hello"),
    (json.dumps({"type": "hello", "v": 1, "room": "r", "address": "a", "session": 1}), "bad_hello"),
    (json.dumps({"type": "hello", "v": 1, "room": "r", "address": "a", "token": 1}), "bad_hello"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_HELLOS)
async def test_bad_first_frame_closes_4000(harness: Harness, relay: Relay, frame: str, code: str):
    client = await harness.connect(relay)
    await client.send_raw(frame)
    close_code, reason = await client.closed()
    assert close_code == 4000
    assert reason is not None and reason.startswith(code)


async def test_binary_first_frame_closes_4000(harness: Harness, relay: Relay):
    client = await harness.connect(relay)
    await client.send_raw(b'{"type":"hello"}')
    assert (await client.closed())[0] == 4000


async def test_longest_names_are_accepted(harness: Harness, relay: Relay):
    name = "Az09-_.:@" * 14 + "xy"  # 128 characters, the whole charset
    _, welcome = await harness.join(relay, name, name, session="s" * 128)
    assert welcome["room"] == name


BAD_FRAMES = [
    ("{not json", "bad_json"),
    ('{"to": "b", "type": "send", "data": NaN}', "bad_json"),  # browsers cannot parse NaN
    ("[" * 100_000 + "]" * 100_000, "bad_json"),  # nesting deeper than any decoder allows
    ('["send"]', "not_object"),
    ('"hello"', "not_object"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"data": 1}', "unknown_type"),
    ('{"type": "send", "data": 1}', "bad_field"),
    ('{"type": "send", "to": ["b"], "data": 1}', "bad_field"),
    ('{"type": "send", "to": "b"}', "bad_field"),
    ('{"type": "broadcast"}', "bad_field"),
    ('{"type": "batch", "msgs": {"to": "b"}}', "bad_field"),
    ('{"type": "batch", "msgs": [1]}', "bad_field"),
    ('{"type": "batch", "msgs": [{"to": "b"}]}', "bad_field"),
    ('{"type": "hello", "v": 1, "room": "demo", "address": "z"}', "already_joined"),
]


async def test_malformed_frames_after_hello_get_errors(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "demo", "a", "b")
    for frame, code in BAD_FRAMES:
        await a.send_raw(frame)
        error = await a.expect("error", code=code)
        assert error["message"]
    await a.send_raw(b"\x00binary")
    await a.expect("error", code="binary_frame")
    # Still in the room, still routing, and nobody else heard a thing.
    await a.send(type="send", to="b", data="ok")
    await b.expect("msg", data="ok")
    stats = await harness.stats(relay)
    assert stats["dropped"] == {"malformed": len(BAD_FRAMES) + 1}
    assert stats["members"] == 2


async def test_null_data_and_extra_fields_are_fine(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send(type="send", to="b", data=None, trace="ignored", v=1)
    assert await b.recv() == {"type": "msg", "from": "a", "data": None}


async def test_non_ascii_and_lone_surrogates_survive(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send_raw('{"type":"send","to":"b","data":["héllo ✓", "\\ud800"]}')
    assert (await b.recv())["data"] == ["héllo ✓", "\ud800"]


async def test_unencodable_data_is_an_error_not_a_disconnect(harness: Harness, relay: Relay):
    """Data that decodes but cannot be encoded again (a number beyond floats), in a layout
    the relay decodes in full."""
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send_raw('{"to": "b", "type": "send", "data": 1e999}')
    await a.expect("error", code="bad_json")
    await a.send(type="send", to="b", data="fine")
    await b.expect("msg", data="fine")


@pytest.mark.parametrize("frame", [
    '{"type": "send", "to": "b", "data": 1e999}',
    '{"type":"send","to":"b","data":NaN}',
    '{"type":"batch","msgs":[{"to":"b","data":[-1e999]}]}',
])
async def test_lexically_bad_data_in_the_fast_layouts_is_refused_by_the_receiver(
        harness: Harness, relay: Relay, frame: str):
    """The relay checks a fast-layout data's structure only (documented): ``NaN`` and
    ``1e999`` travel as sent, and the receiver's strict decoder refuses the frame whole."""
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send_raw(frame)
    async with asyncio.timeout(5):
        delivered = await b.ws.recv()
    with pytest.raises(FrameError) as refused:
        parse_frame(delivered)
    assert refused.value.code == "bad_json"
    await a.send(type="send", to="b", data="fine")
    await b.expect("msg", data="fine")

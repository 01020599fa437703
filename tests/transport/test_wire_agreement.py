"""The relay and its clients keep to one wire spec (:mod:`webraft.transport.wire`).

Each test asks both ends the same question (is this a name? is this JSON? what does this
close mean?) through their own entry points, so that a rule redefined on one side only fails
here; the documented close-code table is checked against the enum the code uses.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_support import Net
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from webraft.browser.transport import TAKEN_OVER
from webraft.transport import wire
from webraft.transport.direct import Acceptor, Data, LinkBroken, Malformed, encode_line, proof
from webraft.transport.relay import (
    FrameError,
    OutgoingBuffer,
    RelayClient,
    parse_frame,
    should_retry,
)
from webraft.transport.wire import TERMINAL_CLOSES, CloseCode, check_name
from webraft_relay import protocol as relay_protocol
from webraft_relay.protocol import ErrorCode, ProtocolError

ROOT = Path(__file__).resolve().parents[2]
RELAY_SOURCES = sorted((ROOT / "relay" / "webraft_relay").glob("*.py"))
GUARD = 5.0  # seconds; a hang guard, not a timing expectation

# ------------------------------------------------------------------ names


def _refused(call: Any, *errors: type[Exception]) -> bool:
    try:
        call()
    except errors:
        return True
    return False


def _relay_refuses_name(value: str) -> dict[str, bool]:
    """Where the relay reads a name: the hello, and ``to`` on its fast and its full path."""
    spaced = {"type": "send", "to": value, "data": 1}
    return {
        "hello room": _refused(lambda: relay_protocol.parse_hello(json.dumps(
            {"type": "hello", "v": 1, "room": value, "address": "a"})), ProtocolError),
        "hello address": _refused(lambda: relay_protocol.parse_hello(json.dumps(
            {"type": "hello", "v": 1, "room": "r", "address": value})), ProtocolError),
        "send, compact": _refused(lambda: relay_protocol.parse_frame(
            json.dumps(spaced, separators=(",", ":")), max_batch=10), ProtocolError),
        "send, spaced": _refused(lambda: relay_protocol.parse_frame(
            json.dumps(spaced), max_batch=10), ProtocolError),
        "batch, compact": _refused(lambda: relay_protocol.parse_frame(json.dumps(
            {"type": "batch", "msgs": [{"to": value, "data": 1}, {"to": "b", "data": 2}]},
            separators=(",", ":")), max_batch=10), ProtocolError),
    }


def _clients_refuse_name(value: str) -> dict[str, bool]:
    """Where a client reads or writes a name: a relay frame's ``from``, the buffer's ``to``,
    a direct link's hello."""
    return {
        "check_name": _refused(lambda: check_name(value), ValueError),
        "msg from": _refused(lambda: parse_frame(json.dumps(
            {"type": "msg", "from": value, "data": 1})), FrameError),
        "buffer to": _refused(lambda: OutgoingBuffer().add(value, 1), ValueError),
        "client room": _refused(lambda: RelayClient(value, "a"), ValueError),
        "direct hello": _direct_hello_refused(value),
    }


def _direct_hello_refused(value: str) -> bool:
    """Whether a direct link refuses ``value`` as the dialer's name (a valid name may still
    be refused for another reason, such as being the acceptor's own)."""
    acceptor = Acceptor("r", "me")
    hello = encode_line({"v": 1, "room": "r", "from": value, "to": "me",
                         "proof": proof(None, "r", value, "me", acceptor.challenge)})
    try:
        acceptor.receive(hello)
    except LinkBroken as exc:
        return exc.code == "bad_hello"
    return False


names = st.one_of(
    st.text(max_size=140),
    st.text(alphabet="Aaz09_.:@-", min_size=0, max_size=140),
    st.from_regex(r"[A-Za-z0-9_.:@-]{1,128}", fullmatch=True),
    st.text(alphabet='Aa0-_."\\ /\x00\u00e9\u212a', max_size=8),
)


@settings(max_examples=400, deadline=None)
@given(names)
def test_the_relay_and_the_clients_apply_the_same_name_rule(value: str):
    relay = _relay_refuses_name(value)
    clients = _clients_refuse_name(value)
    expected = not wire.is_name(value)
    assert relay == dict.fromkeys(relay, expected), (value, relay)
    assert clients == dict.fromkeys(clients, expected), (value, clients)


@pytest.mark.parametrize(("value", "valid"), [
    ("a", True), ("A-z_0.9:@x", True), ("n" * 128, True), ("", False), ("n" * 129, False),
    ("a b", False), ("a/b", False), ('a"', False), ("\u212a", False), ("\u00e9", False),
    ("a\n", False),
])
def test_the_name_rule_is_the_documented_one(value: str, valid: bool):
    assert wire.is_name(value) is valid
    assert _refused(lambda: check_name(value), ValueError) is not valid


# ------------------------------------------------------------------ strict JSON

NOT_JSON = ["1e999", "-1e999", "1E+400", "[0.5,1e999]", '{"x":-1e999}', "NaN", "Infinity",
            "-Infinity", "[NaN]"]


@pytest.mark.parametrize("value", NOT_JSON)
def test_the_decoder_refuses_what_a_browser_cannot_carry(value: str):
    with pytest.raises(ValueError):
        wire.loads(value)
    with pytest.raises(ValueError):
        wire.loads(value.encode())


@pytest.mark.parametrize("value", NOT_JSON)
def test_the_relay_client_refuses_it_in_a_frame(value: str):
    for frame in (f'{{"type":"msg","from":"b","data":{value}}}',
                  f'{{"type":"batch","from":"b","msgs":[1,{value}]}}'):
        with pytest.raises(FrameError) as info:
            parse_frame(frame)
        assert info.value.code == "bad_json"


@pytest.mark.parametrize("value", NOT_JSON)
def test_the_relay_refuses_it_in_full_and_its_receivers_on_the_fast_path(value: str):
    """The relay decodes other layouts in full and refuses such data; the layouts webraft
    writes get a structural check only, so the data travels as sent and the receiving
    client refuses the delivered frame (documented in docs/relay-protocol.md)."""
    for frame in (f'{{"to": "b", "type": "send", "data": {value}}}',
                  f'{{"type":"batch","msgs":[{{"data":1,"to":"b"}},{{"to":"b","data":{value}}}]}}',
                  f'{{"data":{value},"type":"broadcast"}}'):
        with pytest.raises(ProtocolError) as info:
            relay_protocol.parse_frame(frame, max_batch=10)
        assert info.value.code is ErrorCode.BAD_JSON
    for frame in (f'{{"type":"send","to":"b","data":{value}}}',
                  f'{{"type": "send", "to": "b", "data": {value}}}',
                  f'{{"type":"batch","msgs":[{{"to":"b","data":1}},{{"to":"b","data":{value}}}]}}',
                  f'{{"type":"broadcast","data":{value}}}'):
        parsed = relay_protocol.parse_frame(frame, max_batch=10)
        if isinstance(parsed, relay_protocol.Batch):
            delivered = relay_protocol.batch_frame("a", [data for _, data in parsed.msgs])
        else:
            assert isinstance(parsed, (relay_protocol.Send, relay_protocol.Broadcast))
            delivered = relay_protocol.msg_frame("a", parsed.data)
        with pytest.raises(FrameError) as refused:
            parse_frame(delivered)
        assert refused.value.code == "bad_json"


@pytest.mark.parametrize("value", NOT_JSON)
def test_a_direct_link_refuses_it_as_a_message(value: str):
    acceptor = Acceptor("r", "me")
    hello = encode_line({"v": 1, "room": "r", "from": "you", "to": "me",
                         "proof": proof(None, "r", "you", "me", acceptor.challenge)})
    events = acceptor.receive(hello + f'{{"x":{value}}}\n{{"x":1}}\n'.encode())
    assert isinstance(events[1], Malformed) and events[1].error.code == "bad_json"
    assert events[2] == Data({"x": 1})  # the framing held: the next message still counts


def test_large_but_finite_numbers_are_still_json():
    assert wire.loads("[1e308,-1e308,5e-324]") == [1e308, -1e308, 5e-324]
    assert parse_frame('{"type":"msg","from":"b","data":1e308}').data == 1e308


def test_the_version_is_the_integer_on_both_ends():
    for v, ok in ((1, True), (1.0, False), (True, False), (2, False), ("1", False)):
        hello = json.dumps({"type": "hello", "v": v, "room": "r", "address": "a"})
        welcome = json.dumps({"type": "welcome", "v": v, "room": "r", "address": "a",
                              "peers": []})
        assert _refused(lambda h=hello: relay_protocol.parse_hello(h), ProtocolError) is not ok
        assert _refused(lambda w=welcome: parse_frame(w), FrameError) is not ok


# ------------------------------------------------------------------ close codes


def _documented_closes() -> dict[int, str]:
    """The close-code table of docs/relay-protocol.md: code -> its "retry?" cell."""
    text = (ROOT / "docs" / "relay-protocol.md").read_text()
    section = text.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{4}) \|.*\| ([^|]+) \|$", section, re.M)
    return {int(code): retry.strip() for code, retry in rows}


def _codes_the_relay_names() -> set[CloseCode]:
    """Every ``CloseCode.X`` the relay's own code uses."""
    used = set()
    for path in RELAY_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "CloseCode":
                used.add(CloseCode[node.attr])
    return used


def test_the_documented_close_codes_are_the_enum():
    documented = _documented_closes()
    assert sorted(documented) == sorted(CloseCode)
    terminal = {code for code, retry in documented.items() if retry.startswith("no")}
    assert terminal == TERMINAL_CLOSES


def test_every_close_code_the_relay_sends_is_in_the_enum():
    named = _codes_the_relay_names()
    # Besides those it names, websockets closes for the relay: 1007 (text that is not UTF-8),
    # 1009 (frame too big) and 1011 (keepalive timeout); each is covered by a live test.
    assert named == set(CloseCode) - {CloseCode.INVALID_DATA, CloseCode.MESSAGE_TOO_BIG,
                                      CloseCode.INTERNAL_ERROR}


def test_the_wire_module_imports_only_the_standard_library():
    """So that it loads in Pyodide and in the relay without webraft's runtime."""
    tree = ast.parse(Path(wire.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# ------------------------------------------------------------------ a real relay on loopback


async def _run(url: str, client: RelayClient, joined: asyncio.Event | None = None,
               ) -> tuple[int | None, str]:
    """Drive ``client`` on one connection until the relay closes it; the close it got."""
    ws: ClientConnection
    async with asyncio.timeout(GUARD), connect(url, compression=None) as ws:
        await ws.send(client.connection_made())
        try:
            async for frame in ws:
                client.receive(frame)
                if joined is not None and client.joined:
                    joined.set()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason or ""


@pytest.mark.parametrize("code", [CloseCode.ADDRESS_IN_USE, CloseCode.REPLACED,
                                  CloseCode.UNAUTHORIZED])
async def test_a_terminal_close_from_the_relay_stops_the_client(net: Net, code: CloseCode):
    relay = await net.relay(secret="s3cret" if code is CloseCode.UNAUTHORIZED else None)
    if code is CloseCode.ADDRESS_IN_USE:
        await net.raw(relay, address="a", session="someone else")
    client = RelayClient("demo", "a", session="mine")
    if code is CloseCode.REPLACED:
        joined = asyncio.Event()
        first = asyncio.create_task(_run(relay.ws_url, client, joined))
        await asyncio.wait_for(joined.wait(), GUARD)
        second = asyncio.create_task(_run(relay.ws_url, RelayClient("demo", "a", session="mine")))
        got = await first
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
    else:
        got = await _run(relay.ws_url, client)
    assert got[0] == code
    assert client.connection_lost(*got) is None
    assert client.stopped is not None and client.stopped.code == code
    assert (code in TAKEN_OVER) is (code is not CloseCode.UNAUTHORIZED)


async def test_a_retryable_close_from_the_relay_is_retried(net: Net):
    relay = await net.relay(max_room_size=1)
    await net.raw(relay, address="a")
    client = RelayClient("demo", "b")
    got = await _run(relay.ws_url, client)
    assert got == (CloseCode.ROOM_FULL, "room full")
    assert should_retry(got[0])
    assert client.connection_lost(*got) is not None and client.stopped is None


async def test_text_that_is_not_utf8_is_closed_with_1007(net: Net):
    relay = await net.relay()
    raw, _ = await net.raw(relay, address="a")
    await raw.ws.send(b'{"type":"ping","x":"\xff"}', text=True)
    assert (await raw.closed())[0] == CloseCode.INVALID_DATA
    assert should_retry(CloseCode.INVALID_DATA)

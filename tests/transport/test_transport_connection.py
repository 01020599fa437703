"""RelayRaft's connection handling: hello, buffering, reconnects, close codes, bad frames.

Most tests play the relay by hand (``FakeRelay``) so that they decide exactly what the node
sees and when; the close-code tests also run against the real relay.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from support import until

from webraft.transport import FrameError, RelayClosed, RelayRejected
from webraft.transport.websocket import relay_url
from webraft_relay import issue_token, room_token

if TYPE_CHECKING:
    from transport_support import Net


async def test_hello_carries_room_address_token_and_a_session_kept_across_reconnects(net: Net):
    fake = await net.fake()
    a = net.node("a", fake, room="r1", token="t0k")
    first = await fake.next()
    assert first.hello["type"] == "hello" and first.hello["v"] == 1
    assert (first.hello["room"], first.hello["address"], first.hello["token"]) == (
        "r1", "a", "t0k")
    session = first.hello["session"]
    assert isinstance(session, str) and len(session) >= 16
    await first.welcome()
    await until(lambda: a.connected)
    await first.close(1011, "keepalive ping timeout")
    second = await fake.next()
    assert second.hello["session"] == session
    other = net.node("b", fake)
    assert (await fake.next()).hello["session"] != session  # random per object
    assert other.client.session != session


async def test_messages_wait_for_the_welcome_and_leave_together(net: Net):
    fake = await net.fake()
    a = net.node("a", fake, members=["a"])
    conn = await fake.next()
    await conn.welcome("b", "c")
    await until(lambda: a.connected and {"b", "c"} <= set(a.nodes))
    await conn.close(1001, "going away")
    await until(lambda: not a.connected)
    for n in range(3):
        a.nodes["b" if n % 2 == 0 else "c"].write({"n": n})  # written while disconnected
    conn = await fake.next()
    await conn.welcome("b", "c")
    assert await conn.recv() == {"type": "batch", "msgs": [
        {"to": "b", "data": {"n": 0}}, {"to": "c", "data": {"n": 1}},
        {"to": "b", "data": {"n": 2}}]}


async def test_reconnect_welcome_is_the_truth_about_peers(net: Net):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.welcome("b", "c")
    await until(lambda: set(a.nodes) == {"b", "c"})
    await conn.close(1011)
    conn = await fake.next()
    await conn.welcome("c", "d")
    await until(lambda: set(a.nodes) == {"c", "d"})
    assert a.seen == [("join", "b"), ("join", "c"), ("leave", "b"), ("join", "d")]


async def test_msg_and_batch_frames_reach_got_data_with_the_relay_stamped_sender(net: Net):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.welcome("b")
    await conn.send({"type": "msg", "from": "b", "data": {"k": 1}})
    await conn.send({"type": "batch", "from": "c", "msgs": [{"k": 2}, {"k": 3}]})
    await conn.send({"type": "msg", "from": "b", "data": {"k": 4}, "broadcast": True})
    await until(lambda: len(a.received) == 4)
    assert a.received == [("b", {"k": 1}), ("c", {"k": 2}), ("c", {"k": 3}), ("b", {"k": 4})]


GARBAGE = [
    "not json",
    "[1, 2]",
    '{"type": "msg", "data": 1}',  # no from
    '{"type": "msg", "from": "b c", "data": 1}',  # from outside the charset
    '{"type": "batch", "from": "b", "msgs": {}}',
    '{"type": "join"}',
    '{"type": "welcome", "v": 1, "room": "demo", "address": "a", "peers": []}',  # a 2nd one
    '{"type": "teleport"}',
    '{"type": "msg", "from": "b", "data": NaN}',
    "[" * 100_000,
    b"\x00binary",
]


async def test_malformed_frames_are_reported_and_the_connection_carries_on(net: Net):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.welcome("b")
    for frame in GARBAGE:
        await conn.send(frame)
    await conn.send({"type": "msg", "from": "b", "data": "still alive"})
    await until(lambda: ("b", "still alive") in a.received)
    frame_errors = [e for e in a.errors if isinstance(e, FrameError)]
    assert len(frame_errors) == len(GARBAGE)
    assert a.connected and a.connection.connections == 1
    assert a.received == [("b", "still alive")]


@pytest.mark.parametrize("first", [
    '{"type": "join", "address": "b"}',
    '{"type": "welcome", "v": 1, "room": "demo", "address": "z", "peers": []}',
    '{"type": "welcome", "v": 2, "room": "demo", "address": "a", "peers": []}',
    "garbage",
], ids=["not-a-welcome", "someone-elses-welcome", "future-version", "garbage"])
async def test_a_bad_first_frame_drops_the_connection_and_retries(net: Net, first: str):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.send(first)
    assert await conn.closed() == 1002
    conn = await fake.next()
    await conn.welcome()
    await until(lambda: a.connected)
    assert [type(e) for e in a.errors] == [FrameError]
    assert not a.nodes


async def test_relay_error_frames_are_reported_except_unknown_peer(net: Net):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.welcome()
    await conn.send({"type": "error", "code": "unknown_peer", "message": "gone", "to": "b"})
    await conn.send({"type": "error", "code": "rate_limited", "message": "slow down"})
    await until(lambda: a.errors)
    (error,) = a.errors
    assert isinstance(error, RelayRejected) and error.code == "rate_limited"


@pytest.mark.parametrize("code", [4001, 4002, 4008, 4009])
async def test_terminal_close_codes_stop_reconnecting_and_are_reported(net: Net, code: int):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.close(code, "no")
    await until(lambda: not a.connection.running, what="the connection loop ended")
    assert [(type(e), e.code) for e in a.errors] == [(RelayClosed, code)]  # type: ignore[attr-defined]
    assert a.client.stopped is a.errors[0]
    assert fake.accepted.empty()


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1013, 4000, 4013])
async def test_other_close_codes_are_retried(net: Net, code: int):
    fake = await net.fake()
    a = net.node("a", fake)
    conn = await fake.next()
    await conn.close(code)
    conn = await fake.next()
    await conn.welcome()
    await until(lambda: a.connected)
    assert not a.errors


async def test_an_unreachable_relay_is_retried_until_it_appears(net: Net):
    relay = await net.relay()
    port = relay.port
    await relay.stop()
    a = net.node("a", relay, members=["a"])
    await until(lambda: a.connection.failures >= 2, what="a few failed attempts")
    await net.relay(port=port)
    await until(lambda: a.connected)
    assert not a.errors
    assert a.connection.failures == 0  # a welcome ends the run of failures (and quiet logs)


async def test_close_sends_what_is_buffered_and_says_goodbye(net: Net):
    fake = await net.fake()
    a = net.node("a", fake, members=["a"])
    conn = await fake.next()
    await conn.welcome("b")
    await until(lambda: "b" in a.nodes)
    a.nodes["b"].write({"last": True})
    await a.close()
    assert await conn.recv() == {"type": "send", "to": "b", "data": {"last": True}}
    assert await conn.closed() == 1000
    assert not a.connection.running
    assert fake.accepted.empty()


async def test_close_while_the_relay_is_unreachable_returns(net: Net):
    relay = await net.relay()
    await relay.stop()
    a = net.node("a", relay, members=["a"])
    await until(lambda: a.connection.failures >= 1)
    await asyncio.wait_for(a.close(), 5)
    assert not a.connection.running


# ------------------------------------------------------------------ against the real relay


async def test_real_relay_address_in_use_is_4008_and_final(net: Net):
    relay = await net.relay()
    await net.raw(relay, address="a", session="someone else")
    a = net.node("a", relay)
    await until(lambda: not a.connection.running)
    assert [(type(e), e.code) for e in a.errors] == [(RelayClosed, 4008)]  # type: ignore[attr-defined]
    assert relay.refused["address_in_use"] == 1


async def test_real_relay_token_opens_the_room_and_a_wrong_one_is_4001(net: Net):
    relay = await net.relay(secret="s3cret")
    good = net.node("a", relay, token=room_token("s3cret", "demo"))
    bad = net.node("b", relay, token=room_token("s3cret", "another-room"))
    await until(lambda: good.connected and not bad.connection.running)
    assert [(type(e), e.code) for e in bad.errors] == [(RelayClosed, 4001)]  # type: ignore[attr-defined]
    assert not good.errors


async def test_real_relay_same_session_replaces_the_older_connection(net: Net):
    relay = await net.relay()
    old = net.node("a", relay, session="shared-secret")
    await until(lambda: old.connected)
    new = net.node("a", relay, session="shared-secret")
    await until(lambda: new.connected and not old.connection.running)
    assert [(type(e), e.code) for e in old.errors] == [(RelayClosed, 4009)]  # type: ignore[attr-defined]
    assert not new.errors


async def test_room_full_is_retried_until_there_is_room(net: Net):
    relay = await net.relay(max_room_size=1)
    raw, _ = await net.raw(relay, address="z")
    a = net.node("a", relay)
    await until(lambda: relay.refused["room_full"] >= 2, what="refused and retried")
    await raw.ws.close()
    await until(lambda: a.connected)
    assert not a.errors


def test_relay_urls_are_checked_up_front():
    assert relay_url("ws://127.0.0.1:8765") == "ws://127.0.0.1:8765/ws"
    assert relay_url("ws://127.0.0.1:8765/") == "ws://127.0.0.1:8765/ws"
    assert relay_url("wss://relay.example/custom/ws") == "wss://relay.example/custom/ws"
    for bad in ("http://127.0.0.1:8765/ws", "127.0.0.1:8765", ""):
        with pytest.raises(ValueError):
            relay_url(bad)


async def test_a_token_provider_is_asked_before_each_connect_and_4002_renews(net: Net):
    """With a provider, an expired token (4002) is a reason to ask again, not to stop; a
    provider that fails counts as a failed attempt and is asked again after the back-off."""
    fake = await net.fake()
    issued: list[str] = []

    def provider() -> str:
        if len(issued) == 2:
            issued.append("boom")
            raise OSError("token service down")
        issued.append(f"t{len(issued)}")
        return issued[-1]

    a = net.node("a", fake, token=provider)
    first = await fake.next()
    assert first.hello["token"] == "t0"
    await first.close(4002, "token expired")
    second = await fake.next()
    assert second.hello["token"] == "t1"
    await second.close(4002, "token expired")
    third = await fake.next()  # after the provider failed once
    assert third.hello["token"] == "t3"
    assert issued == ["t0", "t1", "boom", "t3"]
    await third.welcome()
    await until(lambda: a.connected)
    assert not a.errors and a.connection.running


async def test_an_async_token_provider_renews_an_expired_token_at_a_real_relay(net: Net):
    relay = await net.relay(secret="s3cret")
    now = time.time()
    tokens = iter([issue_token("s3cret", "demo", expires=int(now) - 1),
                   issue_token("s3cret", "demo", expires=int(now) + 60)])
    asked = 0

    async def provider() -> str:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0)
        return next(tokens)

    a = net.node("a", relay, token=provider)
    await until(lambda: a.connected)
    assert asked == 2 and not a.errors
    assert relay.refused["token_expired"] == 1


async def test_a_provider_that_returns_no_string_is_retried_not_sent(net: Net):
    fake = await net.fake()
    answers = iter([None, "good"])
    a = net.node("a", fake, token=lambda: next(answers))
    conn = await fake.next()
    assert conn.hello["token"] == "good"
    await conn.welcome()
    await until(lambda: a.connected)


async def test_webraft_node_token_file_is_read_again_before_each_connect(net: Net, tmp_path):
    """``webraft-node --token-file``: rewriting the file renews an expired token."""
    from functools import partial

    from webraft.member.__main__ import read_token

    relay = await net.relay(secret="s3cret")
    path = tmp_path / "token"
    path.write_text(issue_token("s3cret", "demo", expires=int(time.time()) - 1) + "\n")
    a = net.node("a", relay, token=partial(read_token, path))
    await until(lambda: relay.refused["token_expired"] >= 1)
    assert not a.connected and a.connection.running
    path.write_text(issue_token("s3cret", "demo", expires=int(time.time()) + 60))
    await until(lambda: a.connected)
    assert not a.errors

"""Several relays on one Redis (``--redis``): one room across relays, claims, presence, outages.

Each test starts its own ``redis-server`` on a free loopback port in a temporary directory
(no persistence) and kills it at the end; no system service is used. Waits are for frames or
conditions; the timeouts are only guards.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis_support import RedisServer
from support import RawClient, stable_leader, until
from transport.transport_support import FAST, Recorded
from websockets.asyncio.client import connect

import webraft
from webraft.transport import RelayRaft
from webraft.transport.wire import CloseCode
from webraft_relay import Relay
from webraft_relay.redis_bus import BusError, check_delivery, relay_channel, room_channel
from webraft_relay.redis_resp import (
    RedisConnection,
    RedisError,
    RespParser,
    RespProtocolError,
    encode_command,
    parse_redis_url,
)

if TYPE_CHECKING:
    from conftest import Harness

TTL = 1.0  # seconds a member outlives its relay; presence is looked at every TTL / 3


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def shared(harness: Harness, redis: RedisServer, **overrides: Any) -> Relay:
    relay = await harness.start(redis=redis.url, redis_ttl=TTL, **overrides)
    assert relay.bus is not None and relay.bus.up
    return relay


async def test_members_on_two_relays_form_one_room(harness: Harness, redis: RedisServer):
    a, b = await shared(harness, redis), await shared(harness, redis)
    x, welcome = await harness.join(a, "r", "x")
    assert welcome["peers"] == []
    y, welcome = await harness.join(b, "r", "y")
    assert welcome["peers"] == ["x"]
    await x.expect("join", address="y")
    z, welcome = await harness.join(a, "r", "z")
    assert welcome["peers"] == ["x", "y"]
    await x.expect("join", address="z")
    await y.expect("join", address="z")

    await x.send(type="send", to="y", data={"n": 1}, **{"from": "z"})
    assert await y.recv() == {"type": "msg", "from": "x", "data": {"n": 1}}
    await y.send(type="batch", msgs=[{"to": "x", "data": 1}, {"to": "z", "data": 2},
                                     {"to": "x", "data": [3]}])
    assert await x.recv() == {"type": "batch", "from": "y", "msgs": [1, [3]]}
    assert await z.recv() == {"type": "batch", "from": "y", "msgs": [2]}
    await z.send(type="broadcast", data="hi")
    for member in (x, y):
        assert await member.recv() == {"type": "msg", "from": "z", "data": "hi", "broadcast": True}

    await y.close()
    await x.expect("leave", address="y")
    await z.expect("leave", address="y")
    await x.send(type="send", to="y", data=0)
    await x.expect("error", code="unknown_peer", to="y")


async def test_members_of_one_relay_never_go_through_redis(harness: Harness, redis: RedisServer):
    a, b = await shared(harness, redis), await shared(harness, redis)
    x, y = await harness.members(a, "r", "x", "y")
    far, _ = await harness.join(b, "r", "far")
    await x.expect("join", address="far")
    await y.expect("join", address="far")
    assert a.bus is not None
    published = a.bus.counts["published"]
    for i in range(20):
        await x.send(type="send", to="y", data=i)
        assert await y.recv() == {"type": "msg", "from": "x", "data": i}
    assert a.bus.counts["published"] == published
    await x.send(type="send", to="far", data="out")
    assert await far.recv() == {"type": "msg", "from": "x", "data": "out"}
    assert a.bus.counts["published"] == published + 1


async def test_an_address_belongs_to_one_connection_across_relays(
    harness: Harness, redis: RedisServer
):
    a, b = await shared(harness, redis), await shared(harness, redis)
    x, _ = await harness.join(a, "r", "x", session="s1")
    y, _ = await harness.join(b, "r", "y")
    await x.expect("join", address="y")

    other = await harness.connect(b)
    await other.hello("r", "x", session="s2")
    assert (await other.closed())[0] == CloseCode.ADDRESS_IN_USE
    bare = await harness.connect(b)
    await bare.hello("r", "y")  # no session never takes an address over, on any relay
    assert (await bare.closed())[0] == CloseCode.ADDRESS_IN_USE

    moved, welcome = await harness.join(b, "r", "x", session="s1")
    assert welcome["peers"] == ["y"]
    assert (await x.closed())[0] == CloseCode.REPLACED
    await y.send(type="send", to="x", data="here")
    assert await moved.recv() == {"type": "msg", "from": "y", "data": "here"}
    await moved.send(type="send", to="y", data="back")
    assert await y.recv() == {"type": "msg", "from": "x", "data": "back"}  # no leave, no join


async def test_room_size_counts_members_on_every_relay(harness: Harness, redis: RedisServer):
    a, b = await shared(harness, redis, max_room_size=2), await shared(harness, redis)
    await harness.join(b, "r", "x")
    await harness.join(b, "r", "y")
    late = await harness.connect(a)
    await late.hello("r", "z")
    assert (await late.closed())[0] == CloseCode.ROOM_FULL
    assert b.bus is not None
    # The refused hello's claim was given back: z is free for the next one.
    z, _ = await harness.join(b, "r", "z")
    await z.close()


async def test_what_comes_from_redis_is_checked(harness: Harness, redis: RedisServer):
    a, b = await shared(harness, redis), await shared(harness, redis)
    x, _ = await harness.join(a, "r", "x")
    y, _ = await harness.join(b, "r", "y")
    await x.expect("join", address="y")
    assert a.bus is not None and b.bus is not None
    mine, theirs = a.bus.relay_id, b.bus.relay_id
    conn = await RedisConnection.open(parse_redis_url(redis.url), timeout=5)
    to_a = relay_channel("r", mine)
    forged = [
        (to_a, "garbage"),
        (to_a, f"msg {theirs} y x"),  # no frame
        (to_a, f"msg {theirs} nobody x\n" + '{"type":"msg","from":"nobody","data":1}'),
        (to_a, f"msg {theirs} y x\n" + '{"type":"msg","from":"x","data":1}'),  # from != sender
        (to_a, f"msg {theirs} y x\n" + '{"type":"msg","from":"y","data":NaN}'),
        (to_a, f"msg {theirs} y x\n" + '{"type":"msg","from":"y","data":1,"from":"x"}'),
        (to_a, f"msg {'0' * 16} y x\n" + '{"type":"msg","from":"y","data":1}'),  # wrong relay
        (room_channel("r"), f"bcast {theirs} y\n" + '{"type":"msg","from":"y","data":1}'),
        (to_a, f"msg {theirs} y x\n\xff"),
    ]
    for channel, message in forged:
        await conn.call("SPUBLISH", channel, message)
    await conn.call("SPUBLISH", to_a, b"msg " + theirs.encode() + b" y x\n\xff\xfe")
    counts = a.bus.counts
    await until(lambda: counts["invalid"] + counts["unknown_sender"] == len(forged) + 1,
                what="every forged message counted")
    assert counts["unknown_sender"] == 2  # "nobody", and y said to be on the wrong relay
    await y.send(type="send", to="x", data="real")
    assert await x.recv() == {"type": "msg", "from": "y", "data": "real"}
    conn.close()


def test_check_delivery_accepts_only_frames_the_relay_builds():
    assert check_delivery('{"type":"msg","from":"a","data":{"k":[1]}}', "a", False) == 1
    assert check_delivery('{"type":"batch","from":"a","msgs":[1,{"x":2}]}', "a", False) == 2
    assert check_delivery('{"type":"msg","from":"a","data":1,"broadcast":true}', "a", True) == 1
    for frame, broadcast in (
        ('{"type":"msg","from":"a","data":1,"broadcast":true}', False),
        ('{"type":"batch","from":"a","msgs":[1]}', True),
        ('{"type":"batch","from":"a","msgs":{}}', False),
        ('{"type":"msg","from":"b","data":1}', False),
        ('{"type":"msg","from":"a","data":1e999}', False),
    ):
        with pytest.raises(BusError):
            check_delivery(frame, "a", broadcast)


async def test_a_dead_relays_members_leave_after_the_ttl(harness: Harness, redis: RedisServer):
    a = await shared(harness, redis)
    proc, url = await start_process(redis)
    try:
        x, _ = await harness.join(a, "r", "x")
        far = await connect_url(harness, url)
        await far.hello("r", "far")
        await far.expect("welcome", peers=["x"])
        await x.expect("join", address="far")
        proc.send_signal(signal.SIGKILL)  # no goodbye: its claims must expire
        await x.expect("leave", address="far")
    finally:
        stop_process(proc)


async def test_local_members_keep_talking_through_a_redis_restart(
    harness: Harness, redis: RedisServer
):
    a, b = await shared(harness, redis), await shared(harness, redis)
    x, y = await harness.members(a, "r", "x", "y")
    far, _ = await harness.join(b, "r", "far", session="s")
    for member in (x, y):
        await member.expect("join", address="far")

    redis.stop()
    await until(lambda: a.bus is not None and not a.bus.up, what="relay a sees Redis gone")
    await x.send(type="send", to="y", data="still")
    assert await y.recv() == {"type": "msg", "from": "x", "data": "still"}
    late, _ = await harness.join(a, "r", "late")  # admitted on the local rules
    await x.expect("join", address="late")
    await y.expect("join", address="late")

    redis.start()  # empty: the relays re-claim their members and subscribe again
    await until(lambda: all(r.bus is not None and r.bus.up for r in (a, b)), what="reconnected")
    await far.expect("join", address="late")  # re-announced
    await until(lambda: b.bus is not None and b.bus.is_remote("r", "x"), what="b knows x again")
    await far.send(type="send", to="x", data="again")
    assert await x.recv() == {"type": "msg", "from": "far", "data": "again"}
    await late.send(type="send", to="far", data="hello")
    assert await far.recv() == {"type": "msg", "from": "late", "data": "hello"}
    # The re-claimed addresses still belong to one connection each.
    thief = await harness.connect(b)
    await thief.hello("r", "x", session="other")
    assert (await thief.closed())[0] == CloseCode.ADDRESS_IN_USE
    # Nobody was told that anyone left.
    await x.send(type="ping")
    await x.expect("pong")


async def test_a_cluster_on_two_relays_outlives_one_of_them(
    harness: Harness, redis: RedisServer
):
    """CPython members given both relays' URLs: those of the killed relay come back through
    the other one, and the cluster keeps its data."""
    a = await shared(harness, redis)
    proc, url = await start_process(redis)
    nodes: list[Member] = []
    try:
        urls = {"n1": [url, a.ws_url], "n2": [url, a.ws_url], "n3": [a.ws_url, url]}
        nodes = [Member(name, url=urls[name], room="c", members=list(urls),
                        storage=webraft.MemoryStorage()) for name in urls]
        for node in nodes:
            node.start()
        await until(lambda: stable_leader(nodes), what="a leader across two relays")
        lead = stable_leader(nodes)
        assert isinstance(lead, Member)
        index = await asyncio.wait_for(lead.propose("before"), 10)
        await until(lambda: all(n.last_applied >= index for n in nodes), what="applied")

        proc.send_signal(signal.SIGKILL)
        await until(lambda: all(n.connection.connected and n.connection.url == a.ws_url
                                for n in nodes), what="every member on the relay left")
        lead = await until(lambda: stable_leader(nodes), what="a leader again")
        index = await asyncio.wait_for(lead.propose("after"), 10)
        await until(lambda: all(n.last_applied >= index for n in nodes), what="applied")
        for node in nodes:
            assert [c for _, c in node.applied] == [c for _, c in lead.applied]
            assert "before" in [c for _, c in node.applied]
    finally:
        for node in nodes:
            await node.close()
        stop_process(proc)


class Member(Recorded, RelayRaft):
    def __init__(self, address: str, **kwargs: Any) -> None:
        kwargs.setdefault("config", FAST)
        super().__init__(address, **kwargs)


async def start_process(redis: RedisServer) -> tuple[subprocess.Popen[str], str]:
    """A relay in its own process (so that it can be killed), on the same Redis."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "webraft_relay", "--port", "0", "--static", "", "--pyodide-dir",
         "", "--dist", "", "--redis", redis.url, "--redis-ttl", str(TTL)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
    match = re.search(r"\((ws://\S+)\)", line)
    assert match, line
    return proc, match[1]


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


async def connect_url(harness: Harness, url: str) -> RawClient:
    ws = await asyncio.wait_for(connect(url, compression=None), 5)
    client = RawClient(ws, 5.0)
    harness.clients.append(client)
    return client


def test_the_resp_parser_waits_for_whole_replies_and_refuses_garbage():
    parser = RespParser()
    data = b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n-ERR no\r\n"
    for i in range(len(data)):  # byte by byte: nothing is returned before it is whole
        parser.feed(data[i : i + 1])
        replies = parser.replies()
        if i < 4:
            assert replies == []
    parser.feed(data)
    replies = parser.replies()
    assert replies[:5] == [b"OK", 42, b"hello", None, [b"a", [1]]]
    assert isinstance(replies[5], RedisError) and str(replies[5]) == "ERR no"
    assert encode_command("SET", "k", 1) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"
    for garbage in (b"?x\r\n", b":nan\r\n", b"$3\r\nabcd\r\n", b"$99999999999\r\n",
                    b"*1\r\n" * 20 + b":1\r\n", b"\r\n", b"*-5\r\n"):
        bad = RespParser()
        bad.feed(garbage)
        with pytest.raises(RespProtocolError):
            bad.replies()


def test_redis_urls_are_checked():
    url = parse_redis_url("redis://user:p%40ss@10.0.0.1:7000/2")
    assert (url.host, url.port, url.db, url.username, url.password) == (
        "10.0.0.1", 7000, 2, "user", "p@ss")
    assert parse_redis_url("redis://localhost").port == 6379
    for bad in ("http://localhost", "rediss://h", "redis://h/x"):
        with pytest.raises(ValueError):
            parse_redis_url(bad)


async def test_a_relay_that_stops_lets_its_members_go_at_once(harness: Harness, redis: RedisServer):
    """Shutting down is not dying: the others hear ``leave`` without waiting for the TTL
    (30 s here, far beyond the guard)."""
    a = await harness.start(redis=redis.url, redis_ttl=30.0)
    b = await harness.start(redis=redis.url, redis_ttl=30.0)
    x, _ = await harness.join(a, "r", "x")
    await harness.join(b, "r", "y")
    await x.expect("join", address="y")
    await b.stop()
    await x.expect("leave", address="y")


async def test_an_address_taken_twice_while_redis_was_down_stays_with_one(
    harness: Harness, redis: RedisServer
):
    a, b = await shared(harness, redis), await shared(harness, redis)
    redis.stop()
    await until(lambda: not any(r.bus is not None and r.bus.up for r in (a, b)),
                what="both relays see Redis gone")
    first, _ = await harness.join(a, "r", "x", session="one")  # on each relay's local rules
    second, _ = await harness.join(b, "r", "x", session="two")
    redis.start()
    closed = await asyncio.wait(
        [asyncio.create_task(c.closed()) for c in (first, second)],
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert [t.result()[0] for t in closed[0]] == [CloseCode.ADDRESS_IN_USE]
    for task in closed[1]:
        task.cancel()

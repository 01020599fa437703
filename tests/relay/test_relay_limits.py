"""Every limit of the relay, each provoked on purpose with a tiny setting."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Harness, ManualClock


async def test_message_too_big_closes_1009(harness: Harness):
    relay = await harness.start(max_message_size=1024)
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send(type="send", to="b", data="x" * 900)  # under the limit: routed
    await b.expect("msg", data="x" * 900)
    await a.send(type="send", to="b", data="x" * 2000)
    assert (await a.closed())[0] == 1009
    await b.expect("leave", address="a")


async def test_rate_limit_drops_and_notifies_once_per_second(harness: Harness, clock: ManualClock):
    relay = await harness.start(clock=clock, rate=10, burst=5, max_batch=5)
    a, b, c = await harness.members(relay, "demo", "a", "b", "c")
    for i in range(20):
        await a.send(type="send", to="b", data=i)
    await a.send(type="ping")  # pings are free: this one marks the end of a's frames
    notice = await a.expect("error", code="rate_limited")
    assert "10" in notice["message"]
    await a.expect("pong")  # one notice only, although 15 messages were dropped
    for i in range(5):
        await b.expect("msg", data=i)
    await c.send(type="send", to="b", data="marker")  # b got nothing else from a
    await b.expect("msg", data="marker", **{"from": "c"})
    assert (await harness.stats(relay))["dropped"] == {"rate_limited": 15}

    clock.advance(0.35)  # 3.5 tokens: a batch of 3 fits, the next message does not
    await a.send(type="batch", msgs=[{"to": "b", "data": n} for n in range(3)])
    await a.send(type="send", to="b", data="over")
    await a.send(type="ping")
    await a.expect("pong")  # still within a second of the first notice: no new one
    await b.expect("batch", msgs=[0, 1, 2])

    clock.advance(1.0)  # refilled (10 tokens, capped at the burst of 5) and notices allowed
    await a.send(type="batch", msgs=[{"to": "b", "data": n} for n in range(5)])
    await a.send(type="batch", msgs=[{"to": "b", "data": "late"}])
    await a.expect("error", code="rate_limited")
    await b.expect("batch", msgs=[0, 1, 2, 3, 4])
    assert (await harness.stats(relay))["dropped"] == {"rate_limited": 17}


async def test_room_full_closes_4013(harness: Harness):
    relay = await harness.start(max_room_size=2)
    await harness.join(relay, "demo", "a", session="sa")
    await harness.join(relay, "demo", "b")
    c = await harness.connect(relay)
    await c.hello("demo", "c")
    assert await c.closed() == (4013, "room full")
    # Other rooms are unaffected, and a reconnecting member is not a new one.
    await harness.join(relay, "other", "c")
    await harness.join(relay, "demo", "a", session="sa")
    assert (await harness.stats(relay))["refused"] == {"room_full": 1}


async def test_server_full_closes_1013(harness: Harness):
    relay = await harness.start(max_connections=2)
    await harness.join(relay, "r1", "a")
    waiting = await harness.connect(relay)  # not joined yet, but it holds a connection
    extra = await harness.connect(relay)
    assert await extra.closed() == (1013, "try again later")
    await waiting.hello("r2", "b")
    await waiting.expect("welcome")
    assert (await harness.stats(relay))["refused"] == {"server_full": 1}


async def test_hello_timeout_closes_4000(harness: Harness):
    relay = await harness.start(hello_timeout=0.05)
    silent = await harness.connect(relay)
    assert await silent.closed() == (4000, "hello timeout")


async def test_dead_peer_is_dropped_by_ping_timeout(harness: Harness):
    relay = await harness.start(ping_interval=0.05, ping_timeout=0.2, close_timeout=0.05)
    a, b = await harness.members(relay, "demo", "a", "b")
    b.ws.transport.pause_reading()  # b stops answering pings, like a frozen tab
    await a.expect("leave", address="b")
    b.ws.transport.abort()
    stats = await harness.stats(relay)
    assert stats["members"] == 1


async def test_slow_consumer_does_not_block_the_room(harness: Harness):
    relay = await harness.start(rate=0, max_outbound_bytes=64 * 1024)
    a, c = await harness.members(relay, "demo", "a", "c")
    # b stops reading (like a tab paused in a debugger) with a small kernel receive buffer, so
    # the relay's socket buffer fills up, then b's outbox, whatever the host's TCP tuning.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", relay.port))
    b = await harness.connect(relay, sock=sock)
    await b.hello("demo", "b")
    await b.expect("welcome")
    await a.expect("join", address="b")
    await c.expect("join", address="b")
    b.ws.transport.pause_reading()
    blob = "x" * 65536
    for _ in range(500):  # 32 MB, far more than the buffers between the relay and b hold
        await a.send(type="send", to="b", data=blob)
    await a.send(type="send", to="c", data="still flowing")
    await c.expect("msg", data="still flowing", **{"from": "a"})
    await a.send(type="ping")
    await a.expect("pong")
    stats = await harness.stats(relay)
    assert stats["dropped"]["outbound_full"] > 0
    assert stats["messages_routed"] + stats["dropped"]["outbound_full"] == 501
    b.ws.transport.abort()


async def test_outbox_is_bounded_in_bytes():
    """Peer.deliver without a socket: the bound, and the one-frame allowance."""
    from webraft_relay.config import RelayConfig
    from webraft_relay.server import Peer

    peer = Peer(None, "r", "a", RelayConfig(max_outbound_bytes=100))  # type: ignore[arg-type]
    assert peer.deliver("x" * 500)  # an empty outbox takes any one frame
    assert not peer.deliver("y")
    peer = Peer(None, "r", "a", RelayConfig(max_outbound_bytes=100))  # type: ignore[arg-type]
    frames = [json.dumps({"n": n}) for n in range(20)]
    accepted = [peer.deliver(f) for f in frames]
    assert sum(len(f) for f, ok in zip(frames, accepted, strict=True) if ok) <= 100
    assert accepted.index(False) == accepted.count(True)  # a prefix is accepted, then drops


async def test_outbox_counts_bytes_not_characters():
    """A ``data`` value is forwarded as its sender wrote it: one emoji is 4 bytes on the wire,
    and counting characters let a receiver that never reads cost 4 times its budget."""
    from webraft_relay.config import RelayConfig
    from webraft_relay.server import Peer

    peer = Peer(None, "r", "a", RelayConfig(max_outbound_bytes=100))  # type: ignore[arg-type]
    assert peer.deliver("x" * 10)
    assert not peer.deliver('"' + "\U0001f600" * 23 + '"')  # 25 characters, 94 bytes
    assert peer.deliver('"' + "\u00e9" * 44 + '"')  # 46 characters, 90 bytes: exactly full
    assert not peer.deliver("y")


async def test_bytes_routed_counts_utf8_bytes(harness: Harness):
    relay = await harness.start()
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send_raw('{"type":"send","to":"b","data":"\U0001f600\u00e9"}')  # verbatim
    frame = await b.ws.recv()
    assert json.loads(frame)["data"] == "\U0001f600\u00e9"
    stats = await harness.stats(relay)
    assert stats["bytes_routed"] == len(frame.encode()) == len(frame) + 3 + 1


async def test_connections_per_ip_close_1013(harness: Harness):
    relay = await harness.start(max_connections_per_ip=2)
    first, _ = await harness.join(relay, "r", "a")
    await harness.join(relay, "r", "b")
    extra = await harness.connect(relay)
    assert await extra.closed() == (1013, "too many connections from your address")
    await first.ws.close()
    for _ in range(100):  # until the relay has seen the close (bounded: 1 s)
        if (await harness.stats(relay))["connections"] == 1:
            break
        await asyncio.sleep(0.01)
    await harness.join(relay, "r", "c")  # a freed slot is usable again
    assert (await harness.stats(relay))["refused"] == {"ip_full": 1}


async def test_all_outboxes_together_are_bounded():
    """Each outbox is under its own bound, but together they hit max_buffered_bytes."""
    from webraft_relay.config import RelayConfig
    from webraft_relay.server import Buffered, Peer

    config = RelayConfig(max_outbound_bytes=100, max_message_size=150, max_buffered_bytes=150)
    shared = Buffered(config.max_buffered_bytes)
    b = Peer(None, "r", "b", config, buffered=shared)  # type: ignore[arg-type]
    c = Peer(None, "r", "c", config, buffered=shared)  # type: ignore[arg-type]
    assert b.offer("x" * 90) is None
    assert c.offer("x" * 50) is None
    assert c.offer("x" * 20) == "memory_full"  # c's own outbox has room; the relay has not
    assert b.offer("x" * 20) == "outbound_full"
    assert shared.used == 140
    await b.stop()  # a closed outbox gives its bytes back
    assert shared.used == 50
    assert c.offer("x" * 20) is None


async def test_join_and_leave_notices_pass_a_full_outbox():
    """A dropped notice would leave a member wrong about its room for good (issue 13)."""
    from webraft_relay.config import RelayConfig
    from webraft_relay.server import Peer

    config = RelayConfig(max_outbound_bytes=100, max_message_size=100, max_buffered_bytes=100)
    peer = Peer(None, "r", "a", config)  # type: ignore[arg-type]
    assert peer.deliver("x" * 100)
    assert peer.offer("y") == "outbound_full"
    join, leave = '{"type":"join","address":"b"}', '{"type":"leave","address":"b"}'
    peer.notify(join)
    peer.notify(leave)
    assert peer.buffered.used == 100 + len(join) + len(leave)  # both queued
    await peer.stop()
    assert peer.buffered.used == 0

"""One connection's abuse must not cost other connections their share: bytes are paced,
frames before the welcome are small.

Every load here is bounded (a fixed number of frames, on loopback) and the assertions are
about what arrived and what the relay counted, never about how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from webraft_relay.limits import TokenBucket

if TYPE_CHECKING:
    from conftest import Harness, ManualClock

KiB = 1024


def test_charge_overdraws_and_says_how_long_to_wait(clock: ManualClock):
    bucket = TokenBucket(100, 200, clock)
    assert bucket.charge(150) == 0.0
    assert bucket.charge(100) == 0.5  # 50 tokens short at 100/s
    clock.advance(0.5)
    assert bucket.charge(0) == 0.0
    assert TokenBucket(0, 1, clock).charge(10**9) == 0.0  # rate 0: never paced


async def test_big_frames_are_paced_and_other_rooms_keep_flowing(harness: Harness):
    relay = await harness.start(
        rate=0, byte_rate=64 * KiB, byte_burst=256 * KiB, max_message_size=256 * KiB
    )
    abuser, sink = await harness.members(relay, "A", "abuser", "sink")
    x, y = await harness.members(relay, "B", "x", "y")
    # The frame of the issue: a payload that is costly to validate, as large as allowed.
    blob = "[" + ",".join(["{}"] * (200 * KiB // 3)) + "]"
    frame = '{"type":"send","to":"sink","data":' + blob + "}"
    frames = 40  # 8 MB: about two minutes of this connection's byte budget

    async def flood() -> None:
        for _ in range(frames):
            await abuser.send_raw(frame)

    flooding = asyncio.create_task(flood())
    try:
        for _ in range(500):  # until the abuser is over its budget (bounded: 5 s at most)
            if relay.paced:
                break
            await asyncio.sleep(0.01)
        assert relay.paced, "the abuser was never paced"
        for i in range(20):
            await x.send(type="send", to="y", data=i)
            await y.expect("msg", data=i, **{"from": "x"})
            await y.send(type="send", to="x", data=i)
            await x.expect("msg", data=i, **{"from": "y"})
        stats = await harness.stats(relay)
        assert stats["paced"] >= 1
        # The pair's 40 messages, and only the part of the flood that fits the budget.
        assert 40 <= stats["messages_routed"] < 40 + frames // 2
        assert stats["dropped"] == {}  # paced, not decoded and dropped
    finally:
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flooding
        abuser.ws.transport.abort()
        sink.ws.transport.abort()


async def test_frame_before_welcome_is_small(harness: Harness):
    relay = await harness.start(max_hello_size=1024)
    early = await harness.connect(relay)
    await early.send_raw('{"type":"hello","pad":"' + "x" * 2000 + '"}')
    assert (await early.closed())[0] == 1009
    # After the welcome, the usual max_message_size applies.
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send(type="send", to="b", data="x" * 50_000)
    await b.expect("msg", data="x" * 50_000)

"""Routing through a live relay: who gets what, and who is told about whom."""

from __future__ import annotations

from typing import TYPE_CHECKING

from webraft_relay import Relay

if TYPE_CHECKING:
    from conftest import Harness


async def test_welcome_lists_sorted_peers_and_room_hears_join(harness: Harness, relay: Relay):
    c, b = await harness.members(relay, "demo", "c", "b")
    _a, welcome = await harness.join(relay, "demo", "a")
    assert welcome == {
        "type": "welcome",
        "v": 1,
        "room": "demo",
        "address": "a",
        "peers": ["b", "c"],
    }
    await b.expect("join", address="a")
    await c.expect("join", address="a")


async def test_send_routes_to_the_addressee_only(harness: Harness, relay: Relay):
    a, b, c = await harness.members(relay, "demo", "a", "b", "c")
    await a.send(type="send", to="b", data={"term": 3, "entries": [1, "x", None]})
    assert await b.recv() == {
        "type": "msg",
        "from": "a",
        "data": {"term": 3, "entries": [1, "x", None]},
    }
    # c got nothing: the next thing it sees is a message sent to it afterwards.
    await a.send(type="send", to="c", data="second")
    await c.expect("msg", data="second")


async def test_from_is_stamped_by_the_relay(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send(type="send", to="b", data=1, **{"from": "c"})
    await b.expect("msg", **{"from": "a"})
    await a.send(type="broadcast", data=2, **{"from": "b"})
    await b.expect("msg", broadcast=True, **{"from": "a"})
    await a.send(type="batch", msgs=[{"to": "b", "data": 3, "from": "z"}], **{"from": "z"})
    await b.expect("batch", msgs=[3], **{"from": "a"})


async def test_rooms_are_isolated(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "one", "a", "b")
    (a2,) = await harness.members(relay, "two", "a")  # same address, other room: no conflict
    await a.send(type="broadcast", data="to room one")
    await b.expect("msg", data="to room one")
    await a2.send(type="send", to="b", data="b is not in room two")
    await a2.expect("error", code="unknown_peer", to="b")
    await a2.send(type="ping")
    await a2.expect("pong")  # and room two's broadcast did not reach a2


async def test_broadcast_reaches_everyone_else(harness: Harness, relay: Relay):
    a, b, c = await harness.members(relay, "demo", "a", "b", "c")
    await b.send(type="broadcast", data={"vote": True})
    for receiver in (a, c):
        assert await receiver.recv() == {
            "type": "msg",
            "from": "b",
            "data": {"vote": True},
            "broadcast": True,
        }
    await b.send(type="ping")
    await b.expect("pong")  # the sender does not get its own broadcast


async def test_batch_is_grouped_per_destination_in_order(harness: Harness, relay: Relay):
    a, b, c = await harness.members(relay, "demo", "a", "b", "c")
    await a.send(
        type="batch",
        msgs=[
            {"to": "b", "data": 1},
            {"to": "c", "data": "x"},
            {"to": "b", "data": 2},
            {"to": "b", "data": {"n": 3}},
        ],
    )
    assert await b.recv() == {"type": "batch", "from": "a", "msgs": [1, 2, {"n": 3}]}
    assert await c.recv() == {"type": "batch", "from": "a", "msgs": ["x"]}
    stats = await harness.stats(relay)
    assert stats["messages_routed"] == 4


async def test_batch_with_unknown_peer_delivers_the_rest(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "demo", "a", "b")
    await a.send(
        type="batch",
        msgs=[{"to": "b", "data": 1}, {"to": "zz", "data": 2}, {"to": "zz", "data": 3}],
    )
    await b.expect("batch", msgs=[1])
    await a.expect("error", code="unknown_peer", to="zz")
    assert (await harness.stats(relay))["dropped"]["unknown_peer"] == 2


async def test_empty_batch_is_a_no_op(harness: Harness, relay: Relay):
    (a,) = await harness.members(relay, "demo", "a")
    await a.send(type="batch", msgs=[])
    await a.send(type="ping")
    await a.expect("pong")


async def test_unknown_peer_is_reported_and_counted(harness: Harness, relay: Relay):
    (a,) = await harness.members(relay, "demo", "a")
    await a.send(type="send", to="ghost", data=1)
    error = await a.expect("error", code="unknown_peer", to="ghost")
    assert "ghost" in error["message"]
    assert (await harness.stats(relay))["dropped"] == {"unknown_peer": 1}


async def test_send_to_self_is_delivered(harness: Harness, relay: Relay):
    (a,) = await harness.members(relay, "demo", "a")
    await a.send(type="send", to="a", data="echo")
    assert await a.recv() == {"type": "msg", "from": "a", "data": "echo"}


async def test_ping_pong(harness: Harness, relay: Relay):
    (a,) = await harness.members(relay, "demo", "a")
    await a.send(type="ping")
    assert await a.recv() == {"type": "pong"}


async def test_leave_is_announced_and_empty_rooms_disappear(harness: Harness, relay: Relay):
    a, b = await harness.members(relay, "demo", "a", "b")
    assert (await harness.stats(relay))["rooms"] == 1
    await b.close()
    await a.expect("leave", address="b")  # sent after b's seat was freed
    stats = await harness.stats(relay)
    assert (stats["rooms"], stats["members"]) == (1, 1)
    await a.close()
    await relay.stop()  # waits for every handler, so a's departure has been processed
    assert relay.stats()["rooms"] == 0
    assert relay.stats()["connections"] == 0


async def test_same_address_other_session_is_refused(harness: Harness, relay: Relay):
    a, _ = await harness.join(relay, "demo", "a", session="s1")
    intruder = await harness.connect(relay)
    await intruder.hello("demo", "a", session="s2")
    assert await intruder.closed() == (4008, "address in use")
    # The holder is untouched.
    await a.send(type="ping")
    await a.expect("pong")


async def test_same_address_without_session_is_refused(harness: Harness, relay: Relay):
    await harness.join(relay, "demo", "a")
    twin = await harness.connect(relay)
    await twin.hello("demo", "a")
    assert (await twin.closed())[0] == 4008


async def test_same_session_replaces_silently(harness: Harness, relay: Relay):
    (b,) = await harness.members(relay, "demo", "b")
    old, _ = await harness.join(relay, "demo", "a", session="secret-1")
    await b.expect("join", address="a")
    new, welcome = await harness.join(relay, "demo", "a", session="secret-1")
    assert welcome["peers"] == ["b"]
    assert await old.closed() == (4009, "replaced")
    # b hears neither leave nor join for a; messages now go to the new connection.
    await b.send(type="send", to="a", data="hi")
    await new.expect("msg", data="hi")
    await new.send(type="send", to="b", data="back")
    await b.expect("msg", data="back", **{"from": "a"})
    stats = await harness.stats(relay)
    assert stats["members"] == 2

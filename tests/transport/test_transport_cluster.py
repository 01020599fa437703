"""RelayRaft nodes through a real (in-process) relay: elections, commits, reconnects, spoofing."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from support import stable_leader, until
from transport_support import FastRelayRaft

import webraft
from webraft_relay import Relay

if TYPE_CHECKING:
    from transport_support import Net


async def three(net: Net, relay: Relay) -> list[FastRelayRaft]:
    nodes = [net.node(name, relay) for name in "abc"]
    await until(lambda: all(n.connected and len(n.nodes) == 2 for n in nodes),
                what="every node joined and sees both peers")
    return nodes


async def test_three_nodes_elect_a_leader_and_commit_a_follower_proposal(net: Net):
    relay = await net.relay()
    nodes = await three(net, relay)
    lead = await net.leader(nodes)
    follower = next(n for n in nodes if n is not lead)
    index = await asyncio.wait_for(follower.propose({"op": "put", "key": "x", "value": 1}), 10)
    assert (index, {"op": "put", "key": "x", "value": 1}) in follower.applied
    await until(lambda: all(n.last_applied >= index for n in nodes), what="applied everywhere")
    assert all(n.applied == lead.applied for n in nodes)
    assert not [e for n in nodes for e in n.errors], "no error events on a healthy cluster"


async def test_welcome_join_and_leave_drive_the_seed_events(net: Net):
    relay = await net.relay()
    a = net.node("a", relay)
    await until(lambda: a.connected)
    raw, welcome = await net.raw(relay, address="b")
    assert welcome is not None and welcome["peers"] == ["a"]
    await until(lambda: ("join", "b") in a.seen and "b" in a.nodes)
    await raw.ws.close()
    await until(lambda: ("leave", "b") in a.seen and "b" not in a.nodes)


async def test_a_dropped_connection_reconnects_and_the_node_catches_up(net: Net):
    relay = await net.relay()
    nodes = await three(net, relay)
    lead = await net.leader(nodes)
    await asyncio.wait_for(lead.propose("before"), 10)
    victim = next(n for n in nodes if n is not lead)
    seat = relay.rooms.get("demo", victim.address)
    assert seat is not None
    seat.ws.transport.abort()  # the network fails under the victim: no close frame
    await until(lambda: victim.connection.connections == 2 and victim.connected,
                what="the victim reconnected")
    index = await asyncio.wait_for(lead.propose("after"), 10)
    await until(lambda: victim.last_applied >= index, what="the victim applied the new entry")
    assert [c for _, c in victim.applied] == [c for _, c in lead.applied]


async def test_the_cluster_resumes_after_the_relay_restarts(net: Net):
    relay = await net.relay()
    nodes = await three(net, relay)
    lead = await net.leader(nodes)
    await asyncio.wait_for(lead.propose(1), 10)
    port = relay.port
    await relay.stop()
    await until(lambda: not any(n.connected for n in nodes), what="everyone disconnected")
    relay = await net.relay(port=port)
    await until(lambda: all(n.connected and len(n.nodes) == 2 for n in nodes),
                what="everyone reconnected and rejoined the others")
    lead = await net.leader(nodes)
    index = await asyncio.wait_for(lead.propose(2), 10)
    await until(lambda: all(n.last_applied >= index for n in nodes))
    assert all([c for _, c in n.applied] == [1, 2] for n in nodes)


async def test_writes_of_one_loop_turn_leave_as_one_batch_frame(net: Net):
    relay = await net.relay()
    a = net.node("a", relay, members=["a"])  # a cluster of one: it sends nothing by itself
    await until(lambda: a.connected)
    b, _ = await net.raw(relay, address="b")
    c, _ = await net.raw(relay, address="c")
    await b.expect("join", address="c")
    await until(lambda: {"b", "c"} <= set(a.nodes))
    a.nodes["b"].write({"n": 1})
    a.nodes["c"].write({"n": 2})
    a.nodes["b"].write({"n": 3})
    # One frame from a: the relay splits a batch by receiver, one frame each.
    await b.expect("batch", msgs=[{"n": 1}, {"n": 3}], **{"from": "a"})
    await c.expect("batch", msgs=[{"n": 2}], **{"from": "a"})
    a.nodes["b"].write({"n": 4})  # a single message travels as a plain send
    await b.expect("msg", data={"n": 4}, **{"from": "a"})
    assert relay.messages_routed == 4


async def test_a_client_cannot_speak_for_another_address(net: Net):
    relay = await net.relay()
    a = net.node("a", relay)
    b = net.node("b", relay)
    await until(lambda: a.connected and b.connected and "b" in a.nodes)
    mallory, _ = await net.raw(relay, address="x")
    await until(lambda: "x" in a.nodes)
    spoof = {"spoof": 1}
    await mallory.send(type="send", to="a", data=spoof, **{"from": "b"})
    await mallory.send(type="batch", msgs=[{"to": "a", "data": spoof, "from": "b"}],
                       **{"from": "b"})
    await mallory.send(type="broadcast", data=spoof, **{"from": "b"})
    await until(lambda: [s for s, p in a.received if p == spoof] == ["x", "x", "x"],
                what="three spoof attempts delivered as coming from x")
    assert ("b", spoof) not in a.received


async def test_proposals_survive_losing_the_leader_connection(net: Net):
    """The leader's connection drops; a new leader (or the same one, back) commits."""
    relay = await net.relay()
    nodes = await three(net, relay)
    lead = await net.leader(nodes)
    seat = relay.rooms.get("demo", lead.address)
    assert seat is not None
    seat.ws.transport.abort()
    await until(lambda: lead.connection.connections == 2 and lead.connected)
    await until(lambda: stable_leader(nodes), what="a stable leader again")
    follower = next(n for n in nodes if not n.is_leader)
    index = await asyncio.wait_for(follower.propose("x"), 10)
    await until(lambda: all(n.last_applied >= index for n in nodes))


async def test_the_largest_command_that_fits_a_frame_commits_and_a_larger_one_is_refused(
        net: Net):
    relay = await net.relay()  # default frame limit: 1 MiB
    nodes = await three(net, relay)
    lead = await net.leader(nodes)
    follower = next(n for n in nodes if n is not lead)
    limit = follower.max_command_bytes
    big = "x" * (limit - 2)  # exactly the limit once quoted
    index = await asyncio.wait_for(follower.propose(big), 10)  # forwarded, then replicated
    await until(lambda: all(n.last_applied >= index for n in nodes))
    assert all(n.applied[-1] == (index, big) for n in nodes)
    for too_big in ("y" * (limit - 1), {"k": "é" * (limit // 6)}):
        with pytest.raises(webraft.InvalidCommand):
            await follower.propose(too_big)
    assert not [e for n in nodes for e in n.errors]

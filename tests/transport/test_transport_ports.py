"""Transports as parts a node holds: the relay transport's room, the combinator's choice of a
link per peer, and plain nodes holding a relay or direct transport beside RelayRaft and
DirectRaft members.

The first tests drive the transports by hand (a fake connection, fake links, a recording
handler): what reaches the node, in which order, and which way each message leaves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from support import until
from transport_support import FAST, GUARD, Net

import webraft
from webraft.errors import MessageError
from webraft.transport import LinkedTransport, RelayClosed, RelayTransport
from webraft.transport.direct_raft import DirectRaft, DirectTransport
from webraft.transport.node import link_offer
from webraft.transport.relay import RelayClient
from webraft.transport.websocket import RelayConnection

LOCAL = ("127.0.0.1", 0)


class FakeConnection:
    """A relay connection that records what is sent through it."""

    def __init__(self, client: RelayClient) -> None:
        self.client = client
        self.listener: Any = None
        self.sent: list[tuple[str, Any]] = []
        self.started = False
        self.closed = False
        self.connections = 1

    @property
    def connected(self) -> bool:
        return self.started and not self.closed

    def start(self) -> None:
        self.started = True

    def send(self, to: str, data: Any) -> None:
        self.sent.append((to, data))

    async def close(self) -> None:
        self.closed = True


class Handler:
    """Records what a transport reports, in order, into a log shared with the links."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def join(self, address: str) -> None:
        self.log.append(("node join", address))

    def leave(self, address: str) -> None:
        self.log.append(("node leave", address))

    def got_messages(self, address: str, payloads: Any) -> None:
        self.log.append(("node data", address, list(payloads)))

    def transport_error(self, exc: Exception) -> None:
        self.log.append(("node error", type(exc).__name__))


class FakeLink:
    """A PeerLink that is up to the peers in ``up``."""

    def __init__(self, name: str, log: list[tuple[Any, ...]], up: set[str]) -> None:
        self.name = name
        self.log = log
        self.up = up
        self.sent: list[tuple[str, Any]] = []
        self.room: LinkedTransport | None = None

    def start(self, room: LinkedTransport) -> None:
        self.room = room

    def send(self, peer: str, payload: dict[str, Any]) -> bool:
        if peer not in self.up:
            return False
        self.sent.append((peer, payload))
        return True

    def peer_joined(self, peer: str) -> None:
        self.log.append((f"{self.name} joined", peer))

    def peer_left(self, peer: str) -> None:
        self.log.append((f"{self.name} left", peer))

    def room_ended(self) -> None:
        self.log.append((f"{self.name} ended",))

    async def close(self) -> None:
        self.log.append((f"{self.name} closed",))


def relay_of(address: str = "a") -> tuple[RelayTransport[FakeConnection], FakeConnection]:
    connection = FakeConnection(RelayClient("demo", address))
    return RelayTransport(connection), connection


def test_the_relay_transport_takes_over_the_connection_and_keeps_the_room_until_started() -> None:
    """A tab's claim hears the welcome before the node exists: the transport remembers who
    is there and reports them when the node starts it."""
    relay, connection = relay_of()
    assert connection.listener is relay
    assert relay.max_command_bytes == (connection.client.buffer.max_frame_bytes
                                       - webraft.transport.node.COMMAND_ENVELOPE_BYTES)
    relay.relay_welcome(("b", "c"))
    relay.relay_leave("c")
    relay.relay_data("b", [{"type": "early"}])  # nobody to give it to: Raft retries
    log: list[tuple[Any, ...]] = []
    relay.start(Handler(log))
    assert log == [("node join", "b")] and connection.started
    relay.relay_welcome(("c",))  # after a reconnect: b vanished meanwhile, c is back
    assert log[1:] == [("node leave", "b"), ("node join", "c")]
    assert relay.peers == {"c"}


def test_the_relay_transport_keeps_offers_from_the_node() -> None:
    relay, _ = relay_of()
    log: list[tuple[Any, ...]] = []
    relay.start(Handler(log))
    offer = link_offer("127.0.0.1", 7001, "ab" * 16)
    relay.relay_data("b", [offer, {"type": "raft"}])
    assert log == [("node data", "b", [{"type": "raft"}])]  # no hook: dropped (a tab)
    offers: list[tuple[str, str, int, str]] = []
    relay.on_link_offer = lambda *args: offers.append(args)
    relay.relay_data("b", [offer])
    assert offers == [("b", "127.0.0.1", 7001, "ab" * 16)]
    assert len(log) == 1  # an offer alone delivers nothing
    relay.relay_data("b", [{"type": "link", "at": "nowhere", "key": "x"}])
    assert log[1:] == [("node error", MessageError.__name__)] and len(offers) == 1


async def test_the_combinator_sends_over_the_first_link_up_else_the_relay() -> None:
    relay, connection = relay_of()
    log: list[tuple[Any, ...]] = []
    fast = FakeLink("fast", log, up={"b"})
    slow = FakeLink("slow", log, up={"b", "c"})
    linked = LinkedTransport(relay, [fast, slow])
    assert linked.max_command_bytes == relay.max_command_bytes
    linked.start(Handler(log))
    assert fast.room is linked and slow.room is linked and connection.started
    for peer in "bcd":
        linked.send(peer, {"to": peer})
    assert fast.sent == [("b", {"to": "b"})]
    assert slow.sent == [("c", {"to": "c"})]
    assert connection.sent == [("d", {"to": "d"})]
    fast.up.clear()  # b's fast link went down: the next link carries b's messages
    slow.up.clear()
    linked.send("b", {"again": 1})
    assert connection.sent[-1] == ("b", {"again": 1})
    await linked.close()
    assert connection.closed and log[-2:] == [("fast closed",), ("slow closed",)]


def test_the_room_is_the_truth_and_links_hear_it_after_the_node() -> None:
    relay, _ = relay_of()
    log: list[tuple[Any, ...]] = []
    link = FakeLink("link", log, up=set())
    linked = LinkedTransport(relay, [link])
    linked.start(Handler(log))
    relay.relay_join("b")
    relay.relay_data("b", [{"via": "relay"}])
    linked.deliver("b", [{"via": "link"}])
    relay.relay_leave("b")
    assert log == [("node join", "b"), ("link joined", "b"),
                   ("node data", "b", [{"via": "relay"}]),
                   ("node data", "b", [{"via": "link"}]),
                   ("node leave", "b"), ("link left", "b")]
    del log[:]
    relay.relay_error(RelayClosed(4009, "replaced"))
    assert log == [("node error", "RelayClosed"), ("link ended",)]


async def test_a_plain_node_holding_a_relay_transport_joins_relayraft_members(net: Net) -> None:
    """Nothing subclasses the node: the transport is a part it holds."""
    relay = await net.relay()
    a, b = net.node("a", relay), net.node("b", relay)
    client = RelayClient("demo", "c")
    plain = webraft.RaftInterface(
        "c", members=["a", "b", "c"], config=FAST,
        transport=RelayTransport(RelayConnection(relay.ws_url, client)))
    applied: list[Any] = []

    def on_apply(entry: webraft.Entry, index: int, cb: Any) -> None:
        applied.append(entry.command)
        cb()

    plain.listen("apply", on_apply)
    plain.start()
    try:
        await until(lambda: a.leader is not None and a.leader == b.leader == plain.leader,
                    what="one leader for the three")
        index = await asyncio.wait_for(plain.propose("from a plain node"), GUARD)
        await until(lambda: all((index, "from a plain node") in n.applied for n in (a, b))
                    and "from a plain node" in applied)
        assert sorted(plain.nodes) == ["a", "b"]
    finally:
        await plain.close()
    await until(lambda: "c" not in a.nodes, what="the relay saw c go")


async def test_a_plain_node_holding_a_direct_transport_joins_directraft_members() -> None:
    a = DirectRaft("a", listen=LOCAL, peers={}, members=["a", "b"], config=FAST,
                   storage=webraft.MemoryStorage())
    transport = DirectTransport("b", listen=LOCAL, peers={})
    plain = webraft.RaftInterface("b", members=["a", "b"], transport=transport, config=FAST)
    try:
        async with asyncio.timeout(GUARD):
            await a.__aenter__()
            plain.start()
            bound = await transport.listening()
        a.add_peer("b", *bound)
        assert a.bound is not None
        transport.add_peer("a", *a.bound)
        await until(lambda: a.is_leader or plain.is_leader, what="a leader")
        index = await asyncio.wait_for(plain.propose("direct"), GUARD)
        await until(lambda: a.commit_index >= index and plain.commit_index >= index)
        status = transport.status()
        assert status["links"]["a"]["up"] and status["link_error"] is None
    finally:
        await plain.close()
        await a.close()

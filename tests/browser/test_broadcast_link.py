"""The BroadcastChannel link outside a browser: a fake channel hub delivers what tabs post
to every other tab of the same channel name, as a browser does, and a fake port exchange
hands ports over as ``browser/webraft-ports.js`` does."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import pytest

from webraft.browser.broadcast import (
    MAX_UNLINKED_PORTS,
    BroadcastLink,
    EnvelopeError,
    channel_name,
    envelope,
    pair_channel_name,
    parse_envelope,
)

INSTANCE = "0123456789abcdef"


class Hub:
    """Channels by name; a post reaches every other open channel of the name, later (as a
    browser queues it), when :meth:`run` is called. Microtasks run first."""

    def __init__(self) -> None:
        self.channels: dict[str, list[FakeChannel]] = defaultdict(list)
        self.queued: list[Callable[[], None]] = []
        self.microtasks: list[Callable[[], None]] = []

    def open(self, name: str, on_message: Callable[[Any], None]) -> FakeChannel:
        channel = FakeChannel(self, name, on_message)
        self.channels[name].append(channel)
        return channel

    def microtask(self, fn: Callable[[], None]) -> None:
        self.microtasks.append(fn)

    def run(self) -> None:
        for _ in range(100):
            while self.microtasks:
                self.microtasks.pop(0)()
            if not self.queued:
                return
            self.queued.pop(0)()
        raise AssertionError("the channel never went quiet")


class FakeChannel:
    def __init__(self, hub: Hub, name: str, on_message: Callable[[Any], None]) -> None:
        self.hub, self.name, self.on_message = hub, name, on_message
        self.posted: list[str] = []

    def postMessage(self, text: str) -> None:  # JavaScript's name
        self.posted.append(text)
        for other in self.hub.channels[self.name]:
            if other is not self:
                self.hub.queued.append(partial(other.on_message, text))

    def close(self) -> None:
        self.hub.channels[self.name].remove(self)


class Room:
    """Stands in for the LinkedTransport: records what the link delivers."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[Any]]] = []

    def deliver(self, peer: str, payloads: Iterable[Any]) -> None:
        self.got.append((peer, list(payloads)))


class Gate:
    def __init__(self) -> None:
        self.paused = False
        self.out: list[tuple[str, dict[str, Any]]] = []

    def outgoing(self, to: str, payload: dict[str, Any]) -> bool:
        if self.paused:
            return False
        self.out.append((to, payload))
        return True

    def incoming(self, sender: str, messages: Sequence[Any]) -> bool:
        return not self.paused


class FakePort:
    """One end of a MessageChannel: a post reaches the other end, later, while it is open."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.other: FakePort | None = None
        self.on_message: Callable[[Any], None] | None = None
        self.closed = False
        self.posted: list[str] = []

    def listen(self, on_message: Callable[[Any], None]) -> FakePort:
        self.on_message = on_message
        return self

    def postMessage(self, text: str) -> None:  # JavaScript's name
        self.posted.append(text)
        self.hub.queued.append(partial(self._arrive, text))

    def _arrive(self, text: str) -> None:
        other = self.other
        if other is not None and not other.closed and other.on_message is not None:
            other.on_message(text)

    def close(self) -> None:
        self.closed = True


class Exchange:
    """The port exchange: nodes registered by room and address; an offer's other end goes,
    later, to the node named if its instance is the one named, or waits for it to register.
    ``answering=False``: an exchange that forwards nothing, as for a tab too old to answer."""

    def __init__(self, hub: Hub, answering: bool = True) -> None:
        self.hub, self.answering = hub, answering
        self.nodes: dict[tuple[str, str], tuple[str, Callable[[str, str, Any], None]]] = {}
        #: Offers waiting for their node: (room, address, instance) -> (sender, instance, port).
        self.parked: dict[tuple[str, str, str], list[tuple[str, str, FakePort]]] = (
            defaultdict(list))
        #: This end of each port offered, by (offerer, recipient), in order.
        self.offered: list[FakePort] = []
        self.by_pair: dict[tuple[str, str], FakePort] = {}

    def register(self, room: str, address: str, instance: str,
                 on_offer: Callable[[str, str, Any], None]) -> None:
        self.nodes[room, address] = (instance, on_offer)
        for offer in self.parked.pop((room, address, instance), []):
            self.hub.queued.append(partial(on_offer, *offer))

    def unregister(self, room: str, address: str, instance: str) -> None:
        if self.nodes.get((room, address), ("",))[0] == instance:
            del self.nodes[room, address]

    def offer(self, room: str, to: str, to_instance: str, sender: str,
              sender_instance: str) -> FakePort:
        mine, theirs = FakePort(self.hub), FakePort(self.hub)
        mine.other, theirs.other = theirs, mine
        self.offered.append(mine)
        self.by_pair[sender, to] = mine
        node = self.nodes.get((room, to))
        if not self.answering:
            theirs.close()
        elif node is not None and node[0] == to_instance:
            self.hub.queued.append(partial(node[1], sender, sender_instance, theirs))
        else:
            self.parked[room, to, to_instance].append((sender, sender_instance, theirs))
        return mine


def tab(hub: Hub, address: str, room_name: str = "r",
        ports: Exchange | None = None) -> tuple[BroadcastLink, Room, Gate]:
    gate, room = Gate(), Room()
    link = BroadcastLink(room_name, address, gate, open_channel=hub.open, queue=hub.microtask,
                         ports=ports, open_port=FakePort.listen)
    link.start(room)  # type: ignore[arg-type]
    return link, room, gate


def ported_pair() -> tuple[Hub, Exchange, tuple[BroadcastLink, Room], tuple[BroadcastLink, Room]]:
    """Tabs ``a`` and ``b`` with a port exchange, linked: the hub, the exchange, each tab's
    link and what it delivered."""
    hub = Hub()
    exchange = Exchange(hub)
    a, room_a, _ = tab(hub, "a", ports=exchange)
    b, room_b, _ = tab(hub, "b", ports=exchange)
    hub.run()
    return hub, exchange, (a, room_a), (b, room_b)


def data_posts(posted: list[str]) -> list[str]:
    return [text for text in posted if text.startswith("webraft2\ndata\n")]


def test_tabs_find_each_other_and_messages_skip_the_relay() -> None:
    hub = Hub()
    a, room_a, _ = tab(hub, "a")
    b, room_b, _ = tab(hub, "b")
    hub.run()
    assert set(a.peers) == {"b"} and set(b.peers) == {"a"}
    assert a.send("b", {"type": "x", "n": 1}) and a.send("b", {"type": "x", "n": 2})
    posted = hub.channels[pair_channel_name("r", "b", "a")][0].posted
    hub.run()
    assert posted[-1].startswith("webraft2\ndata\na\nb\n")  # both in one envelope
    assert room_b.got == [("a", [{"type": "x", "n": 1}, {"type": "x", "n": 2}])]
    assert room_a.got == []
    assert not a.send("c", {"type": "x"})  # not linked: the relay carries it


def test_only_the_recipient_hears_a_message() -> None:
    """Messages go on the pair's channel: a third tab neither wakes for them nor sees them,
    and the room channel carries presence only."""
    hub = Hub()
    a, _, _ = tab(hub, "a")
    _, room_b, _ = tab(hub, "b")
    _, room_c, _ = tab(hub, "c")
    hub.run()
    heard: list[str] = []

    def overhear(on_message: Callable[[Any], None], text: Any) -> None:
        heard.append(text)
        on_message(text)

    for channel in hub.channels[channel_name("r")]:
        channel.on_message = partial(overhear, channel.on_message)
    a.send("b", {"type": "x"})
    hub.run()
    assert room_b.got == [("a", [{"type": "x"}])] and room_c.got == []
    assert heard == []
    assert sorted(hub.channels) == sorted([channel_name("r"), pair_channel_name("r", "a", "b"),
                                           pair_channel_name("r", "a", "c"),
                                           pair_channel_name("r", "b", "c")])


def test_a_pair_channel_takes_only_data_from_its_peer(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    a, room_a, _ = tab(hub, "a")
    tab(hub, "b")
    hub.run()
    with caplog.at_level(logging.WARNING, "webraft.browser"):
        a.receive_from("b", envelope("data", "c", "a", INSTANCE, '[{"type":"x"}]'))
        a.receive_from("b", envelope("hello", "b", "", INSTANCE))
        a.receive_from("b", "not an envelope")
        a.receive(envelope("data", "b", "a", INSTANCE, '[{"type":"x"}]'))  # the room's
    assert room_a.got == [] and a.dropped == 4
    assert "dropped a message on channel webraft/r/a/b: data from c to a" in caplog.text
    assert "dropped a message on channel webraft/r: data on the room channel" in caplog.text
    a.receive_from("b", envelope("data", "b", "a", INSTANCE, '[{"type":"x"}]'))
    assert room_a.got == [("b", [{"type": "x"}])]


def test_unlinking_closes_the_pair_channel() -> None:
    hub = Hub()
    a, _, _ = tab(hub, "a")
    b, _, _ = tab(hub, "b")
    hub.run()
    pair = pair_channel_name("r", "a", "b")
    assert len(hub.channels[pair]) == 2
    a.peer_left("b")
    assert len(hub.channels[pair]) == 1
    asyncio.run(b.close())
    assert hub.channels[pair] == [] and len(hub.channels[channel_name("r")]) == 1


def test_rooms_do_not_hear_each_other() -> None:
    hub = Hub()
    a, _, _ = tab(hub, "a", "one")
    b, _, _ = tab(hub, "b", "two")
    hub.run()
    assert a.peers == {} and b.peers == {}


def test_bye_unlinks_only_the_instance_that_said_hello() -> None:
    hub = Hub()
    a, _, _ = tab(hub, "a")
    b, _, _ = tab(hub, "b")
    hub.run()
    # A stale envelope of another instance under b's name: b stays linked.
    a.receive(envelope("bye", "b", "", "f" * 16))
    assert "b" in a.peers
    asyncio.run(b.close())
    hub.run()
    assert a.peers == {}


def test_relay_news_says_hello_again_and_leave_unlinks() -> None:
    hub = Hub()
    a, _, _ = tab(hub, "a")
    tab(hub, "b")
    hub.run()
    a.peer_left("b")
    assert not a.send("b", {"type": "x"})
    a.peer_joined("b")  # the relay says b is back: ask the channel
    hub.run()
    assert a.send("b", {"type": "x"})


def test_paused_tab_drops_channel_traffic_both_ways() -> None:
    hub = Hub()
    a, room_a, gate_a = tab(hub, "a")
    b, room_b, _ = tab(hub, "b")
    hub.run()
    gate_a.paused = True
    assert a.send("b", {"type": "x"})  # taken, and dropped
    b.send("a", {"type": "y"})
    hub.run()
    assert room_b.got == [] and room_a.got == []
    gate_a.paused = False
    b.send("a", {"type": "y"})
    hub.run()
    assert room_a.got == [("b", [{"type": "y"}])]


@pytest.mark.parametrize("text", [
    42, "hello", "webraft2\nhello\na\n\nshort\n",
    f"webraft2\nshout\na\n\n{INSTANCE}\n",
    f"webraft2\nhello\nbad name\n\n{INSTANCE}\n",
    f"webraft2\ndata\nb\nme\n{INSTANCE}\nnot json",
    f"webraft2\ndata\nb\nme\n{INSTANCE}\n[1,2]",
    f"webraft2\ndata\nb\nme\n{INSTANCE}\n[]",
    f"webraft2\ndata\nb\n\n{INSTANCE}\n[{{}}]",
    f"webraft2\nhere\nb\n\n{INSTANCE}\n",
    "webraft2\nhello\nb\n\n" + INSTANCE + "\n" + "x" * (2 << 20),
])
def test_malformed_envelopes_are_dropped_with_a_log_line(
        text: Any, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(text, "me")
    hub = Hub()
    me, room, _ = tab(hub, "me")
    with caplog.at_level(logging.WARNING, "webraft.browser"):
        me.receive(text)
    assert me.dropped == 1 and room.got == [] and me.peers == {}
    assert "dropped a message on channel webraft/r" in caplog.text


def test_envelopes_for_others_are_skipped_unparsed() -> None:
    assert parse_envelope(f"webraft2\ndata\nb\nother\n{INSTANCE}\nnot json", "me") is None


def test_linked_tabs_trade_a_port_and_post_their_messages_on_it() -> None:
    hub, exchange, (a, room_a), (b, room_b) = ported_pair()
    # Only the address that sorts first offered: one port for the pair.
    assert a.ported == ["b"] and b.ported == ["a"] and len(exchange.offered) == 1
    a.send("b", {"type": "x"})
    b.send("a", {"type": "y"})
    hub.run()
    assert room_b.got == [("a", [{"type": "x"}])] and room_a.got == [("b", [{"type": "y"}])]
    pair = hub.channels[pair_channel_name("r", "a", "b")]
    assert [data_posts(channel.posted) for channel in pair] == [[], []]
    mine = exchange.offered[0]
    assert data_posts(mine.posted) and mine.other is not None and data_posts(mine.other.posted)


def test_a_tab_alone_never_starts_the_exchange() -> None:
    """Registering starts the page's SharedWorker: not before a peer is linked."""
    hub = Hub()
    exchange = Exchange(hub)
    a, _, _ = tab(hub, "a", ports=exchange)
    hub.run()
    assert exchange.nodes == {}
    asyncio.run(a.close())  # nor to unregister
    assert exchange.nodes == {} and exchange.offered == []
    tab(hub, "b", ports=exchange)
    tab(hub, "c", ports=exchange)
    hub.run()
    assert sorted(exchange.nodes) == [("r", "b"), ("r", "c")]


def test_data_keeps_to_the_pair_channel_until_the_port_is_taken_and_offers_are_renewed() -> None:
    """A tab that never answers an offer (no exchange of its own, an older version) gets
    its data on the pair channel; its next hello or here brings a new offer, the old port
    closed."""
    hub = Hub()
    exchange = Exchange(hub, answering=False)
    a, _, _ = tab(hub, "a", ports=exchange)
    b, room_b, _ = tab(hub, "b")
    hub.run()
    assert a.ported == [] and b.ported == [] and len(exchange.offered) == 1
    a.send("b", {"type": "x"})
    hub.run()
    assert room_b.got == [("a", [{"type": "x"}])]
    assert len(data_posts(hub.channels[pair_channel_name("r", "a", "b")][0].posted)) == 1
    exchange.answering = True
    exchange.register("r", "b", b.instance, b.offered)  # b now has an exchange
    b.peer_left("a")
    b.peer_joined("a")  # the relay's news: b says hello, a's link hears it and offers again
    hub.run()
    assert len(exchange.offered) == 2 and exchange.offered[0].closed
    assert a.ported == ["b"] and b.ported == ["a"]


def test_a_port_takes_only_here_and_data_from_its_peers_instance(
        caplog: pytest.LogCaptureFixture) -> None:
    _, _, (a, room_a), (b, _) = ported_pair()
    with caplog.at_level(logging.WARNING, "webraft.browser"):
        a.receive_port("b", envelope("data", "c", "a", b.instance, '[{"type":"x"}]'))
        a.receive_port("b", envelope("data", "b", "a", "f" * 16, '[{"type":"x"}]'))
        a.receive_port("b", envelope("hello", "b", "a", b.instance))
        a.receive_port("b", "not an envelope")
    assert room_a.got == [] and a.dropped == 4
    assert "dropped a message on channel the port with b: data from c" in caplog.text
    a.receive_port("b", envelope("data", "b", "a", b.instance, '[{"type":"x"}]'))
    assert room_a.got == [("b", [{"type": "x"}])]


@pytest.mark.parametrize("sender, instance, why", [
    ("c", INSTANCE, "only the address that sorts first offers"),  # b would be the one
    ("bad name", INSTANCE, "not a member name"),
    ("a", "not an instance", "a malformed instance id"),
    (42, INSTANCE, "not a member name"),
])
def test_a_malformed_offer_is_refused_and_its_port_closed(
        sender: Any, instance: Any, why: str, caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    b, _, _ = tab(hub, "b", ports=Exchange(hub))
    port = FakePort(hub)
    with caplog.at_level(logging.WARNING, "webraft.browser"):
        b.offered(sender, instance, port)
    assert port.closed and b.ported == [] and b.dropped == 1
    assert f"dropped a message on channel the port exchange: an offer from {str(sender)!r}: " \
        f"{why}" in caplog.text


def test_offers_before_a_hello_are_taken_but_bounded_and_a_stale_instances_refused() -> None:
    hub = Hub()
    b, _, _ = tab(hub, "b", ports=Exchange(hub))
    early = FakePort(hub)
    b.offered("a", INSTANCE, early)  # a's hello is still on its way
    assert not early.closed and b.ported == []  # taken, used once a is linked
    made_up = [FakePort(hub) for _ in range(MAX_UNLINKED_PORTS)]
    for k, port in enumerate(made_up):
        b.offered(f"a{k}", INSTANCE, port)
    assert [port.closed for port in made_up] == [False] * (MAX_UNLINKED_PORTS - 1) + [True]
    b.receive(envelope("hello", "a", "", INSTANCE))  # a linked: its port stays
    assert b.ported == ["a"]
    stale = FakePort(hub)
    b.offered("a", "f" * 16, stale)  # another instance under a's name
    assert stale.closed and not early.closed


def test_a_port_closed_at_one_end_is_closed_at_the_other_and_traded_again() -> None:
    """The relay says a left, to b alone: b unlinks a and closes its end, saying bye on it,
    so a stops posting there; when the relay says a is back, b's hello brings a new port."""
    hub, exchange, (a, _), (b, room_b) = ported_pair()
    b.peer_left("a")
    hub.run()
    assert a.ported == [] and b.ported == [] and exchange.offered[0].closed
    b.peer_joined("a")
    hub.run()
    assert a.ported == ["b"] and b.ported == ["a"] and len(exchange.offered) == 2
    a.send("b", {"type": "x"})
    hub.run()
    assert room_b.got == [("a", [{"type": "x"}])]
    assert data_posts(exchange.offered[1].posted)


def test_a_new_instance_saying_hello_gets_a_new_port_without_a_bye_from_the_old() -> None:
    hub, exchange, (a, _), _ = ported_pair()
    b2, room_b2, _ = tab(hub, "b", ports=exchange)  # b's tab crashed; a new one took over
    hub.run()
    assert exchange.offered[0].closed and a.peers["b"] == b2.instance
    assert a.ported == ["b"] and b2.ported == ["a"]
    a.send("b", {"type": "x"})
    hub.run()
    assert room_b2.got == [("a", [{"type": "x"}])]


def test_a_tab_taking_an_address_over_gets_a_port_of_its_own() -> None:
    hub, exchange, (a, _), (b, _) = ported_pair()
    first = exchange.offered[0]
    asyncio.run(b.close())
    hub.run()
    assert ("r", "b") not in exchange.nodes and a.ported == []
    b2, room_b2, _ = tab(hub, "b", ports=exchange)
    hub.run()
    assert first.closed and len(exchange.offered) == 2
    assert a.ported == ["b"] and b2.ported == ["a"]
    a.send("b", {"type": "x"})
    hub.run()
    assert room_b2.got == [("a", [{"type": "x"}])]


def test_unlinking_or_closing_closes_the_ports_and_a_paused_tab_drops_port_traffic() -> None:
    hub = Hub()
    exchange = Exchange(hub)
    a, room_a, gate_a = tab(hub, "a", ports=exchange)
    b, room_b, _ = tab(hub, "b", ports=exchange)
    tab(hub, "c", ports=exchange)
    hub.run()
    assert a.ported == ["b", "c"]
    gate_a.paused = True
    a.send("b", {"type": "x"})
    b.send("a", {"type": "y"})
    hub.run()
    assert room_a.got == [] and room_b.got == []
    gate_a.paused = False
    a.peer_left("b")
    assert a.ported == ["c"]
    assert exchange.by_pair["a", "b"].closed and not exchange.by_pair["a", "c"].closed
    asyncio.run(a.close())
    assert exchange.by_pair["a", "c"].closed and not exchange.by_pair["b", "c"].closed
    assert ("r", "a") not in exchange.nodes

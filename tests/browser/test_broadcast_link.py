"""The BroadcastChannel link outside a browser: a fake channel hub delivers what tabs post
to every other tab of the same channel name, as a browser does."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import pytest

from webraft.browser.broadcast import (
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


def tab(hub: Hub, address: str, room_name: str = "r") -> tuple[BroadcastLink, Room, Gate]:
    gate, room = Gate(), Room()
    link = BroadcastLink(room_name, address, gate, open_channel=hub.open, queue=hub.microtask)
    link.start(room)  # type: ignore[arg-type]
    return link, room, gate


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

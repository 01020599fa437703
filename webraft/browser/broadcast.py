"""A BroadcastChannel link between tabs of one browser and origin: no relay hops between them.

Owns :class:`BroadcastLink` (a :class:`~webraft.transport.linked.PeerLink`) and its envelope
format. Imports the link protocol, the name rule and the tab's scheduling and page helpers
only; ``js`` and ``pyodide`` when the channel opens (or a channel handed in, for tests), so
it imports anywhere.

Two kinds of channel, so that a tab wakes only for what is its own:

* the **room channel** ``webraft/<room>``, which every tab of the room on this browser and
  origin hears, carries presence only;
* a **pair channel** ``webraft/<room>/<a>/<b>`` (the two addresses sorted) per pair of
  tabs carries their messages: each of the two holds one channel of that name, and a post
  reaches the other one alone (a channel never hears its own posts). On the room channel
  every tab woke, crossed into Python and parsed the envelope for every message of every
  other pair: in a 3-tab room two of every three deliveries were someone else's.

Envelopes are text, one field a line::

    webraft2 <kind> <from> <to> <instance> <payload>

* ``hello`` (to everyone): "I am here"; whoever hears it answers ``here`` to the sender.
  A tab says hello when its link starts and again when the relay says a peer joined, so a
  peer is found whichever came first, the relay's news or the channel's;
* ``here``: the answer to a hello;
* ``bye`` (to everyone): the tab's node closed; only the instance that said hello can say bye
  (a new tab that took the address over keeps its link);
* ``data`` (on a pair channel or a port): a JSON array of the node's messages to ``to``.

**A port of their own.** A pair channel's posts pass through the browser's process on their
way; a ``MessagePort`` goes from one tab's process to the other's, a round trip ~0.2 ms
faster (``bench/browser_floor.py``). Ports cannot be posted on a BroadcastChannel, so a
SharedWorker, the page's **port exchange** (``browser/webraft-ports.js``), hands them over:

1. of two linked tabs, the one whose address sorts first makes a ``MessageChannel`` and
   offers one end to the other tab's node (its address and instance, from its hello or
   here) through the exchange;
2. the other tab takes it, says ``here`` on it, and from then on posts its data there;
3. the offerer, hearing that ``here``, posts its data there too.

Until then, and for good where the exchange is missing (no SharedWorker; the script does
not load; an older tab never answers), data goes on the pair channel. A few messages may
cross the switch out of order, which Raft tolerates. On a port, only ``here``, ``bye`` and
data from that peer's instance to this tab are taken. A port has no close event, so a tab
that closes one (it unlinked the peer, or offers anew) says ``bye`` on it first, and the
other end closes its own and goes back to the pair channel. A tab whose port is not taken
is offered again at its next hello or here. An offer from a linked peer's other instance, or
more than :data:`MAX_UNLINKED_PORTS` from senders not linked, is refused. The ports are
plumbing: a paused tab that is linked still trades them, and drops the messages on them.

A peer is linked from its first hello or here until its bye or the relay saying it left; the
relay's presence is not required, so a room of same-browser tabs keeps committing while the
relay is down. A tab opens its pair channel with a peer when it first hears of it, from the
channel or the relay (a post reaches only the channels open at that moment, so the earlier
the better: what is lost before, Raft sends again), and closes it when the peer is unlinked
or leaves. Messages to a linked peer go out at the end of the browser task that queued them,
all of one task to one peer in one envelope. (Version 1 put everything on the room channel;
the two versions do not link, so they talk through the relay.)

Untrusted input: any script of the origin can post on either channel, so an envelope that
does not parse (kind, names, size, a JSON array of objects), data on the room channel, and
anything on a pair channel but data from that peer to this tab are dropped with a log line,
never delivered. The sender's name is taken as given: a script of the origin can already write
the tabs' localStorage, so the channel adds no authority it lacks.

While the tab is paused (the demo's "pause": the tab plays frozen) the link drops everything
both ways, presence included, like the relay transport.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ..transport.wire import NAME
from .page import data_listener
from .scheduling import EndOfTask

if TYPE_CHECKING:
    from ..transport.linked import LinkedTransport

__all__ = ["BroadcastLink", "Envelope", "EnvelopeError", "JsPortExchange", "PortExchange",
           "channel_name", "pair_channel_name", "parse_envelope"]

logger = logging.getLogger("webraft.browser")

#: First field of every envelope: the format's version.
MAGIC = "webraft2"
KINDS = frozenset({"hello", "here", "bye", "data"})
#: Largest envelope taken (characters): a relay frame's worth (1 MiB) and some.
MAX_ENVELOPE_CHARS = (1 << 20) + 4096
#: Most ports held from senders not linked (yet): an offer may come before its sender's hello.
MAX_UNLINKED_PORTS = 8
#: An instance id: this many hex digits.
INSTANCE_CHARS = 16
_INSTANCE = re.compile(f"[0-9a-f]{{{INSTANCE_CHARS}}}")


class EnvelopeError(ValueError):
    """An envelope from the channel that is not ours, or is malformed."""


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: str
    sender: str
    to: str  # "" for everyone
    instance: str
    payloads: tuple[dict[str, Any], ...] = ()


def channel_name(room: str) -> str:
    """The room's channel (presence): tabs of other rooms never hear its envelopes."""
    return f"webraft/{room}"


def pair_channel_name(room: str, a: str, b: str) -> str:
    """The channel of tabs ``a`` and ``b`` in ``room`` (messages), the same from either side.
    Names hold no ``/``, so it is never another room's or pair's."""
    first, second = (a, b) if a < b else (b, a)
    return f"webraft/{room}/{first}/{second}"


def envelope(kind: str, sender: str, to: str, instance: str, payload: str = "") -> str:
    return f"{MAGIC}\n{kind}\n{sender}\n{to}\n{instance}\n{payload}"


def parse_envelope(text: Any, me: str) -> Envelope | None:
    """The envelope ``text`` if it is for ``me`` (or everyone); None if it is another tab's.
    Raises :class:`EnvelopeError` if it is malformed."""
    if not isinstance(text, str):
        raise EnvelopeError(f"not text: {type(text).__name__}")
    if len(text) > MAX_ENVELOPE_CHARS:
        raise EnvelopeError(f"{len(text)} characters, more than {MAX_ENVELOPE_CHARS}")
    fields = text.split("\n", 5)
    if len(fields) != 6 or fields[0] != MAGIC:
        raise EnvelopeError("not a webraft envelope")
    _, kind, sender, to, instance, payload = fields
    if to and to != me:
        return None  # someone else's: cheap to skip, nothing parsed
    if kind not in KINDS:
        raise EnvelopeError(f"unknown kind {kind[:20]!r}")
    if NAME.fullmatch(sender) is None or (to and NAME.fullmatch(to) is None):
        raise EnvelopeError("a sender or recipient that is not a member name")
    if _INSTANCE.fullmatch(instance) is None:
        raise EnvelopeError("a malformed instance id")
    if kind != "data":
        if to == "" and kind == "here":
            raise EnvelopeError("a here to no one")
        return Envelope(kind, sender, to, instance)
    if not to:
        raise EnvelopeError("data to no one")
    try:
        payloads = json.loads(payload)
    except ValueError as exc:
        raise EnvelopeError(f"data that is not JSON: {exc}") from None
    if (not isinstance(payloads, list) or not payloads
            or not all(p.__class__ is dict for p in payloads)):
        raise EnvelopeError("data that is not a non-empty array of objects")
    return Envelope(kind, sender, to, instance, tuple(payloads))


class Channel(Protocol):
    """What the link needs of a BroadcastChannel (JavaScript's, or a test's)."""

    def postMessage(self, text: str) -> None: ...

    def close(self) -> None: ...


#: Starts listening on a port (JavaScript's ``MessagePort``, or a test's): the second argument
#: receives every message's data; what it returns posts on the port and closes it.
PortOpener = Callable[[Any, Callable[[Any], None]], Channel]


class PortExchange(Protocol):
    """The page's port exchange (``webraft.js``'s, for ``browser/webraft-ports.js``, or a
    test's): hands a port offered to node ``address`` of ``room`` and instance ``instance``
    to the ``on_offer(sender, sender_instance, port)`` it registered."""

    def register(self, room: str, address: str, instance: str,
                 on_offer: Callable[[str, str, Any], None]) -> None: ...

    def unregister(self, room: str, address: str, instance: str) -> None: ...

    def offer(self, room: str, to: str, to_instance: str, sender: str,
              sender_instance: str) -> Any:
        """This end of a new port whose other end goes to ``to`` if its instance is
        ``to_instance``."""
        ...


@dataclass(slots=True)
class _Port:
    """A port with a peer: its instance at the other end, and whether that end took it
    (said ``here`` on it, or it was offered to us)."""

    channel: Channel
    instance: str
    ready: bool


class TabGate(Protocol):
    """The tab's traffic controls (:class:`~webraft.browser.transport.BrowserTransport`):
    ``outgoing``/``incoming`` say whether the node's messages may pass (not while
    ``paused``), and count those that do for the dashboards."""

    paused: bool

    def outgoing(self, to: str, payload: dict[str, Any]) -> bool: ...

    def incoming(self, sender: str, messages: Sequence[Any]) -> bool: ...


#: Opens the channel named by the first argument; the second receives every message's data.
ChannelOpener = Callable[[str, Callable[[Any], None]], Channel]


class BroadcastLink:
    """Links this tab's node ``address`` in ``room`` to the room's tabs of the same browser
    and origin (see the module doc). ``gate``: the tab's pause and traffic counters;
    ``ports``: the page's port exchange (None: pair channels only); ``open_channel``,
    ``open_port`` and ``queue``: for tests (JavaScript's ``BroadcastChannel``,
    ``MessagePort`` and ``queueMicrotask`` by default)."""

    def __init__(self, room: str, address: str, gate: TabGate | None = None,
                 open_channel: ChannelOpener | None = None,
                 queue: Callable[[Callable[[], None]], None] | None = None,
                 ports: PortExchange | None = None,
                 open_port: PortOpener | None = None) -> None:
        self.room = room
        self.channel_name = channel_name(room)
        self.address = address
        self.instance = os.urandom(INSTANCE_CHARS // 2).hex()
        self.gate = gate
        #: Linked peers and the instance that said hello for each.
        self.peers: dict[str, str] = {}
        #: Envelopes dropped as malformed.
        self.dropped = 0
        self._open = open_channel or _open_js_channel
        self._channel: Channel | None = None
        #: The pair channel with each peer heard of (linked or not yet).
        self._pairs: dict[str, Channel] = {}
        self._exchange = ports
        self._registered = False
        self._open_port = open_port or _open_js_port
        #: The port with each peer that has one, taken or offered.
        self._ports: dict[str, _Port] = {}
        self._room: LinkedTransport | None = None
        self._outbox: dict[str, list[dict[str, Any]]] = {}
        self._flush_soon = EndOfTask(self.flush, queue)
        self._closed = False

    # ------------------------------------------------------------------ PeerLink

    def start(self, room: LinkedTransport) -> None:
        if self._room is not None or self._closed:
            return
        self._room = room
        self._channel = self._open(self.channel_name, self.receive)
        self._post("hello", "")

    @property
    def ported(self) -> list[str]:
        """The linked peers this tab posts to over a port of their own (sorted)."""
        return sorted(peer for peer, port in self._ports.items()
                      if port.ready and peer in self.peers)

    def send(self, peer: str, payload: dict[str, Any]) -> bool:
        if peer not in self.peers or self._channel is None:
            return False
        if self.gate is not None and not self.gate.outgoing(peer, payload):
            return True  # paused: dropped, as the relay would drop it
        box = self._outbox.get(peer)
        if box is None:
            self._outbox[peer] = [payload]
            self._flush_soon.schedule()
        else:
            box.append(payload)
        return True

    def peer_joined(self, peer: str) -> None:
        # The relay found a peer: listen on our pair channel, ask whether it is one of ours.
        if peer not in self.peers and self._channel is not None:
            self._pair(peer)
            self._post("hello", "")

    def peer_left(self, peer: str) -> None:
        self._unlink(peer)

    def room_ended(self) -> None:
        """Out of the room for good: say bye, link nobody any more."""
        self._post("bye", "")
        self.peers.clear()
        self._outbox.clear()
        self._close_pairs()
        self._closed = True
        self._unregister()

    async def close(self) -> None:
        if self._channel is None:
            return
        self.flush()
        if not self._closed:
            self._post("bye", "")
        self._closed = True
        self._flush_soon.close()
        self._close_pairs()
        self._unregister()
        channel, self._channel = self._channel, None
        channel.close()
        self.peers.clear()

    # ------------------------------------------------------------------ the channels

    def receive(self, data: Any) -> None:
        """One message from the room channel (its ``data``): presence."""
        if self._closed or self._room is None:
            return
        env = self._parse(data, self.channel_name)
        if env is None or env.sender == self.address:
            return  # another tab's, or a page's second node under our name
        if env.kind == "data":
            self._drop(self.channel_name, "data on the room channel")
            return
        if self.gate is not None and self.gate.paused:
            return  # deaf to presence too
        if env.kind == "bye":
            if self.peers.get(env.sender) == env.instance:
                self._unlink(env.sender)
            return
        peer = env.sender
        if peer not in self.peers:
            logger.info("%s: linked to %s over BroadcastChannel", self.address, peer)
            self._pair(peer)
            self._join_exchange()
        self.peers[peer] = env.instance
        port = self._ports.get(peer)
        if port is not None and port.instance != env.instance:
            self._close_port(peer)  # another tab's node now: its port is gone with it
            port = None
        if (self._exchange is not None and self.address < peer
                and (port is None or not port.ready)):
            self._offer(peer, env.instance)
        if env.kind == "hello":
            self._post("here", peer)

    def receive_from(self, peer: str, data: Any) -> None:
        """One message from the pair channel with ``peer`` (its ``data``): its messages."""
        if self._closed or self._room is None:
            return
        name = pair_channel_name(self.room, self.address, peer)
        env = self._parse(data, name)
        if env is None:
            return
        if env.kind != "data" or env.sender != peer or env.to != self.address:
            self._drop(name, f"{env.kind} from {env.sender} to {env.to or 'everyone'}")
            return
        self._deliver(peer, env.payloads)

    def _deliver(self, peer: str, payloads: Sequence[dict[str, Any]]) -> None:
        """``peer``'s messages, from its pair channel or port, to the node (unless paused)."""
        assert self._room is not None
        if self.gate is None or self.gate.incoming(peer, payloads):
            self._room.deliver(peer, payloads)

    # ------------------------------------------------------------------ the ports

    def _join_exchange(self) -> None:
        """Register with the port exchange, at the first peer linked: a tab alone in its
        browser never starts the exchange's worker."""
        if self._exchange is not None and not self._registered:
            self._registered = True
            self._exchange.register(self.room, self.address, self.instance, self.offered)

    def _offer(self, peer: str, instance: str) -> None:
        """Offer ``peer``'s node (of ``instance``) a port, replacing one not taken yet."""
        assert self._exchange is not None
        self._close_port(peer)
        end = self._exchange.offer(self.room, peer, instance, self.address, self.instance)
        self._ports[peer] = _Port(self._open_port(end, partial(self.receive_port, peer)),
                                  instance, ready=False)

    def offered(self, sender: str, instance: str, end: Any) -> None:
        """The exchange hands us ``end`` of a port from ``sender``'s node of ``instance``:
        take it, say so on it, and post there from now on."""
        channel = self._open_port(end, partial(self.receive_port, sender))
        refused = self._refusal(sender, instance)
        if refused is not None:
            self._drop("the port exchange", f"an offer from {str(sender)[:40]!r}: {refused}")
            channel.close()
            return
        self._close_port(sender)
        self._ports[sender] = _Port(channel, instance, ready=True)
        channel.postMessage(envelope("here", self.address, sender, self.instance))
        logger.info("%s: talking to %s over a MessagePort", self.address, sender)

    def _refusal(self, sender: Any, instance: Any) -> str | None:
        """Why an offer from ``sender``'s node of ``instance`` is not taken (None: it is)."""
        if self._closed or self._room is None:
            return "this link is closed"
        if not isinstance(sender, str) or NAME.fullmatch(sender) is None:
            return "not a member name"
        if not isinstance(instance, str) or _INSTANCE.fullmatch(instance) is None:
            return "a malformed instance id"
        if not sender < self.address:
            return "only the address that sorts first offers"  # two ports never race
        if self.peers.get(sender, instance) != instance:
            return "a stale instance of a linked peer"
        # An unlinked sender's offer may precede its hello, but any script of the origin can
        # make up senders.
        if (sender not in self.peers and sender not in self._ports
                and sum(p not in self.peers for p in self._ports) >= MAX_UNLINKED_PORTS):
            return f"{MAX_UNLINKED_PORTS} ports from senders not linked already"
        return None

    def receive_port(self, peer: str, data: Any) -> None:
        """One message on the port with ``peer``: its ``here`` (it took the port), or its
        messages."""
        port = self._ports.get(peer)
        if self._closed or self._room is None or port is None:
            return
        name = f"the port with {peer}"
        env = self._parse(data, name)
        if env is None:
            return
        if env.sender != peer or env.to != self.address or env.instance != port.instance:
            self._drop(name, f"{env.kind} from {env.sender} ({env.instance}) to {env.to}")
        elif env.kind == "here":
            if not port.ready:
                port.ready = True
                logger.info("%s: talking to %s over a MessagePort", self.address, peer)
        elif env.kind == "bye":
            # The other end closed it (it unlinked us, or offered anew): nobody listens there.
            self._close_port(peer, say_bye=False)
            logger.info("%s: %s closed its port", self.address, peer)
        elif env.kind != "data":
            self._drop(name, f"a {env.kind} on a port")
        else:
            self._deliver(peer, env.payloads)

    def _close_port(self, peer: str, say_bye: bool = True) -> None:
        """Close the port with ``peer``, first saying ``bye`` on it: a port has no close
        event, and the other end would otherwise post into it for good."""
        port = self._ports.pop(peer, None)
        if port is not None:
            if say_bye:
                port.channel.postMessage(envelope("bye", self.address, peer, self.instance))
            port.channel.close()

    def _unregister(self) -> None:
        if self._exchange is not None and self._registered:
            self._exchange.unregister(self.room, self.address, self.instance)
        self._exchange = None

    # ------------------------------------------------------------------ parsing

    def _parse(self, data: Any, name: str) -> Envelope | None:
        try:
            return parse_envelope(data, self.address)
        except EnvelopeError as exc:
            self._drop(name, str(exc))
            return None

    def _drop(self, name: str, why: str) -> None:
        self.dropped += 1
        logger.warning("%s: dropped a message on channel %s: %s", self.address, name, why)

    def _pair(self, peer: str) -> None:
        """Open the pair channel with ``peer``, unless open."""
        if peer not in self._pairs and peer != self.address and not self._closed:
            self._pairs[peer] = self._open(pair_channel_name(self.room, self.address, peer),
                                           partial(self.receive_from, peer))

    def _unlink(self, peer: str) -> None:
        if self.peers.pop(peer, None) is not None:
            logger.info("%s: unlinked %s", self.address, peer)
        self._outbox.pop(peer, None)
        self._close_port(peer)
        channel = self._pairs.pop(peer, None)
        if channel is not None:
            channel.close()

    def _close_pairs(self) -> None:
        for peer in list(self._ports):
            self._close_port(peer)
        pairs, self._pairs = self._pairs, {}
        for channel in pairs.values():
            channel.close()

    def _post(self, kind: str, to: str) -> None:
        """Presence on the room channel (nothing while paused)."""
        if self._channel is None or (self.gate is not None and self.gate.paused):
            return
        self._channel.postMessage(envelope(kind, self.address, to, self.instance))

    def flush(self) -> None:
        """Post what is queued now, not at the end of the task (a page going away)."""
        self._flush_soon.cancel()
        outbox, self._outbox = self._outbox, {}
        for peer, payloads in outbox.items():
            port = self._ports.get(peer)
            channel = port.channel if port is not None and port.ready else self._pairs.get(peer)
            if channel is not None:
                channel.postMessage(envelope("data", self.address, peer, self.instance,
                                             _encode(payloads)))


_encode = json.JSONEncoder(separators=(",", ":")).encode


class _JsChannel:
    """JavaScript's BroadcastChannel or MessagePort and the proxy of its message handler,
    released together."""

    def __init__(self, channel: Any, on_message: Callable[[Any], None]) -> None:
        self._channel = channel
        self._listener, self._proxy = data_listener(on_message)
        channel.addEventListener("message", self._listener)
        #: The channel's postMessage, looked up once (each lookup makes a proxy).
        self.postMessage: Callable[[str], None] = channel.postMessage

    def close(self) -> None:
        # A closed channel dispatches nothing more, so the proxy can go after it.
        self._channel.removeEventListener("message", self._listener)
        self._channel.close()
        self._proxy.destroy()


def _open_js_channel(name: str, on_message: Callable[[Any], None]) -> Channel:
    from js import BroadcastChannel  # only in Pyodide

    return _JsChannel(BroadcastChannel.new(name), on_message)


def _open_js_port(port: Any, on_message: Callable[[Any], None]) -> Channel:
    channel = _JsChannel(port, on_message)
    port.start()  # a port listened to with addEventListener holds its messages until then
    return channel


class JsPortExchange:
    """:class:`PortExchange` over ``webraft.js``'s (``portExchange(url)`` of the page's
    helpers): keeps the proxy of each registered handler until it is unregistered."""

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange
        self._handlers: dict[tuple[str, str, str], Any] = {}

    def register(self, room: str, address: str, instance: str,
                 on_offer: Callable[[str, str, Any], None]) -> None:
        from pyodide.ffi import create_proxy

        proxy = self._handlers[room, address, instance] = create_proxy(on_offer)
        self._exchange.register(room, address, instance, proxy)

    def unregister(self, room: str, address: str, instance: str) -> None:
        self._exchange.unregister(room, address, instance)
        proxy = self._handlers.pop((room, address, instance), None)
        if proxy is not None:
            proxy.destroy()

    def offer(self, room: str, to: str, to_instance: str, sender: str,
              sender_instance: str) -> Any:
        return self._exchange.offer(room, to, to_instance, sender, sender_instance)

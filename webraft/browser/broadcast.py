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
* ``data`` (on a pair channel only): a JSON array of the node's messages to ``to``.

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

__all__ = ["BroadcastLink", "Envelope", "EnvelopeError", "channel_name", "pair_channel_name",
           "parse_envelope"]

logger = logging.getLogger("webraft.browser")

#: First field of every envelope: the format's version.
MAGIC = "webraft2"
KINDS = frozenset({"hello", "here", "bye", "data"})
#: Largest envelope taken (characters): a relay frame's worth (1 MiB) and some.
MAX_ENVELOPE_CHARS = (1 << 20) + 4096
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
    ``open_channel`` and ``queue``: for tests (JavaScript's ``BroadcastChannel`` and
    ``queueMicrotask`` by default)."""

    def __init__(self, room: str, address: str, gate: TabGate | None = None,
                 open_channel: ChannelOpener | None = None,
                 queue: Callable[[Callable[[], None]], None] | None = None) -> None:
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

    async def close(self) -> None:
        if self._channel is None:
            return
        self.flush()
        if not self._closed:
            self._post("bye", "")
        self._closed = True
        self._flush_soon.close()
        self._close_pairs()
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
        if env.sender not in self.peers:
            logger.info("%s: linked to %s over BroadcastChannel", self.address, env.sender)
            self._pair(env.sender)
        self.peers[env.sender] = env.instance
        if env.kind == "hello":
            self._post("here", env.sender)

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
        if self.gate is None or self.gate.incoming(peer, env.payloads):
            self._room.deliver(peer, env.payloads)

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
        channel = self._pairs.pop(peer, None)
        if channel is not None:
            channel.close()

    def _close_pairs(self) -> None:
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
            channel = self._pairs.get(peer)
            if channel is not None:
                channel.postMessage(envelope("data", self.address, peer, self.instance,
                                             _encode(payloads)))


_encode = json.JSONEncoder(separators=(",", ":")).encode


class _JsChannel:
    """JavaScript's BroadcastChannel and the proxy of its message handler, released together."""

    def __init__(self, name: str, on_message: Callable[[Any], None]) -> None:
        from js import BroadcastChannel  # only in Pyodide

        self._channel = BroadcastChannel.new(name)
        self._listener, self._proxy = data_listener(on_message)
        self._channel.addEventListener("message", self._listener)
        #: The channel's postMessage, looked up once (each lookup makes a proxy).
        self.postMessage: Callable[[str], None] = self._channel.postMessage

    def close(self) -> None:
        # A closed channel dispatches nothing more, so the proxy can go after it.
        self._channel.removeEventListener("message", self._listener)
        self._channel.close()
        self._proxy.destroy()


def _open_js_channel(name: str, on_message: Callable[[Any], None]) -> Channel:
    return _JsChannel(name, on_message)

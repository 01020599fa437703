"""A Raft node whose peers are the members of a relay room, whatever carries the frames.

Both relay transports, CPython's (:mod:`webraft.transport.websocket`) and the browser's
(:mod:`webraft.browser.transport`), differ only in how a WebSocket is opened, read and
written. Everything else lives here, once:

* :func:`receive_frame` parses one frame with the :class:`~webraft.transport.relay.RelayClient`
  and hands the event to a :class:`RelayListener`;
* :class:`RelayNode` is that listener: a :class:`~webraft.runtime.RaftInterface` whose room
  membership drives the seed's ``join``/``leave``, whose incoming messages go to
  ``got_data``, and whose peers (:class:`RelayPeer`) write into one shared connection.

A connection object needs ``start()``, ``send(to, data)``, ``async close()`` and a
``connected`` property; its I/O layer calls :func:`receive_frame` for every frame.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..errors import MessageError
from ..runtime import NodeConfig, NodeInstance, RaftInterface
from ..storage import Storage
from .relay import (
    Batch,
    FrameError,
    Joined,
    Left,
    Message,
    Rejected,
    RelayClient,
    RelayRejected,
    Welcome,
)

__all__ = ["COMMAND_ENVELOPE_BYTES", "LINK_OFFER", "RelayConnectionLike", "RelayListener",
           "RelayNode", "RelayPeer", "host_port", "is_wildcard", "link_host", "link_offer",
           "parse_link_offer", "receive_frame"]

logger = logging.getLogger("webraft.transport")

#: Room a command leaves in a relay frame for the AppendEntries and frame envelopes.
COMMAND_ENVELOPE_BYTES = 4096
#: ``type`` of the one message that travels between relay members without being Raft's.
LINK_OFFER = "link"
_AT = re.compile(r"(?:\[([0-9A-Fa-f:.]{2,45})\]|([A-Za-z0-9_.:-]{1,253})):([0-9]{1,5})")
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")
_KEY = re.compile(r"[0-9a-f]{32,128}")


def link_host(host: str) -> str | None:
    """``host`` as an offer carries it (a name, an IPv4 or a bare IPv6 address; brackets
    dropped), or None if it is none of those (``10.0.0.1:7001``, spaces, an empty string)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        return host
    return host if _HOST.fullmatch(host) else None


def is_wildcard(host: str | None) -> bool:
    """True for a listening host that means every interface: no address a peer can dial."""
    if not host:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """``HOST:PORT``, an IPv6 host in brackets (the form offers and the command line use)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def link_offer(host: str, port: int, key: str) -> dict[str, Any]:
    """The offer of direct links at ``host:port`` to one peer, who must prove ``key``."""
    at = host_port(host, port)
    return {"type": LINK_OFFER, "at": at, "key": key}


def parse_link_offer(message: dict[str, Any]) -> tuple[str, int, str]:
    """``(host, port, key)`` of an untrusted offer; raises MessageError."""
    at, key = message.get("at"), message.get("key")
    if not isinstance(at, str) or not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise MessageError("a link offer needs at=HOST:PORT and a hex key")
    match = _AT.fullmatch(at)
    if match is not None:
        host, port = link_host(match[1] or match[2]), int(match[3])
        if host is not None and 0 < port < 65536:
            return host, port, key
    raise MessageError(f"a link offer's address is not HOST:PORT: {at!r:.80}")


class RelayListener(Protocol):
    """What a relay connection reports to; every method must return quickly."""

    def relay_welcome(self, peers: tuple[str, ...]) -> None:
        """A connection was accepted; ``peers`` are the room's other members right now."""

    def relay_join(self, address: str) -> None:
        """``address`` entered the room."""

    def relay_leave(self, address: str) -> None:
        """``address`` left the room."""

    def relay_data(self, sender: str, messages: Sequence[Any]) -> None:
        """The messages of one frame from ``sender`` (stamped by the relay)."""

    def relay_error(self, exc: Exception) -> None:
        """Something the application should know about (a malformed frame, a refusal, or the
        :class:`~webraft.transport.relay.RelayClosed` that ended reconnecting)."""


class RelayConnectionLike(Protocol):
    """The I/O side a :class:`RelayNode` drives."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def send(self, to: str, data: Any) -> None: ...

    async def close(self) -> None: ...


def receive_frame(client: RelayClient, listener: RelayListener,
                  raw: str | bytes) -> type | None:
    """Parse one frame of the current connection and deliver its event to ``listener``.

    Returns the event's type, or None when the connection is unusable (a bad first frame:
    close it). Malformed frames after the welcome are reported and otherwise ignored; a
    listener that raises is reported too. Nothing escapes.
    """
    try:
        event = client.receive(raw)
    except FrameError as exc:
        logger.warning("%s: ignored a relay frame: %s", client.address, exc)
        _report(listener, exc)
        return FrameError if client.joined else None
    try:
        match event:
            case Batch(sender=sender, messages=messages):
                listener.relay_data(sender, messages)
            case Message(sender=sender, data=data):
                listener.relay_data(sender, (data,))
            case Joined(address=address):
                listener.relay_join(address)
            case Left(address=address):
                listener.relay_leave(address)
            case Welcome(peers=peers):
                listener.relay_welcome(peers)
            case Rejected(code="unknown_peer", to=to):
                # The peer left while our message was on its way: a lost message.
                logger.debug("%s: relay dropped a message to %r (not in the room)",
                             client.address, to)
            case Rejected(code=code, message=message, to=to):
                logger.warning("%s: relay rejected a frame: %s: %s", client.address, code,
                               message)
                _report(listener, RelayRejected(code, message, to))
            case _:  # Pong: nothing waits for it
                pass
    except Exception as exc:  # a listener bug must not kill the connection
        logger.exception("%s: handling %r failed", client.address, event)
        _report(listener, exc)
    return type(event)


def _report(listener: RelayListener, exc: Exception) -> None:
    try:
        listener.relay_error(exc)
    except Exception:
        logger.exception("relay error listener failed")


class RelayPeer(NodeInstance):
    """A peer reached through the relay: writes go into the node's shared connection."""

    raft: RelayNode

    def write(self, payload: dict[str, Any]) -> None:
        self.raft.connection.send(self.address, payload)


class RelayNode(RaftInterface):
    """A Raft node whose peers are the other members of a relay room.

    ``client`` holds the room, this node's address there (both limited to the relay's
    charset), the room token and the session secret. Subclasses set :attr:`connection`.

    The seed's events: peers in the welcome and in ``join`` frames are ``join``\\ ed, ``leave``
    frames ``leave`` them; after a reconnect the new welcome is the truth (peers that vanished
    meanwhile are left). Malformed frames, relay refusals and the terminal
    :class:`~webraft.transport.relay.RelayClosed` (4001 unauthorized, 4008 address in use,
    4009 replaced) are ``error`` events.
    """

    connection: RelayConnectionLike

    def __init__(self, client: RelayClient, *, members: Iterable[str] | None = None,
                 storage: Storage | None = None, config: NodeConfig | None = None) -> None:
        config = config or NodeConfig()
        frame = client.buffer.max_frame_bytes - COMMAND_ENVELOPE_BYTES
        super().__init__(client.address, members=members, storage=storage,
                         config=config.replace(
                             max_command_bytes=min(config.max_command_bytes, frame)))
        self.client = client
        self._relay_closed = False

    @property
    def room(self) -> str:
        return self.client.room

    @property
    def connected(self) -> bool:
        """True while joined to the room through the relay."""
        return self.connection.connected

    def create_instance(self, address: str) -> RelayPeer:
        return RelayPeer(address, self)

    def start(self) -> None:
        """Start Raft and the relay connection (needs a running loop)."""
        super().start()
        if not self._relay_closed:
            self.connection.start()

    async def close(self) -> None:
        """Close Raft, then the connection (after sending what is buffered)."""
        self._relay_closed = True
        await super().close()
        await self.connection.close()

    # ------------------------------------------------------------------ RelayListener

    def relay_welcome(self, peers: tuple[str, ...]) -> None:
        if self._relay_closed:
            return
        # A welcome is the room as it is now: a leave for whoever vanished while we were
        # away, a join for everyone there (subclasses act on each, as on live ones).
        present = set(peers)
        for address in [a for a in self.nodes if a not in present]:
            self.relay_leave(address)
        for address in peers:
            self.relay_join(address)

    def relay_join(self, address: str) -> None:
        if not self._relay_closed:
            self.join(address)

    def relay_leave(self, address: str) -> None:
        if not self._relay_closed:
            self.leave(address)

    def relay_data(self, sender: str, messages: Sequence[Any]) -> None:
        if any(m.__class__ is dict and m.get("type") == LINK_OFFER for m in messages):
            messages = [m for m in messages if not self._link_offer(sender, m)]
        self.got_messages(sender, messages)

    def _link_offer(self, sender: str, message: Any) -> bool:
        """Take ``message`` if it is a link offer (True): a member that accepts direct links
        tells each peer where, and the key that peer must prove (see ``docs/direct-links.md``).
        """
        if message.__class__ is not dict or message.get("type") != LINK_OFFER:
            return False
        try:
            host, port, key = parse_link_offer(message)
        except MessageError as exc:
            logger.warning("%s: ignored a link offer from %r: %s", self.address, sender, exc)
            self.emit("error", exc)
            return True
        self.relay_link_offer(sender, host, port, key)
        return True

    def relay_link_offer(self, sender: str, host: str, port: int, key: str) -> None:
        """``sender`` accepts direct links at ``host:port`` from us, proven with ``key``.

        A node that cannot dial (a browser tab) ignores it; :class:`~webraft.transport.
        websocket.RelayRaft` with ``listen`` links to the sender and sends through the link.
        """

    def relay_error(self, exc: Exception) -> None:
        self.emit("error", exc)

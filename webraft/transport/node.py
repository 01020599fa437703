"""The relay transport: a room's members as a node's peers, whatever carries the frames.

Owns :class:`RelayTransport`, the frame dispatch (:func:`receive_frame`) and the link offers'
format. Imports the relay protocol and the runtime's port only: no I/O, no ``websockets``,
no node.

Both relay connections, CPython's (:mod:`webraft.transport.websocket`) and the browser's
(:mod:`webraft.browser.transport`), differ only in how a WebSocket is opened, read and
written. Everything else lives here, once:

* :func:`receive_frame` parses one frame with the :class:`~webraft.transport.relay.RelayClient`
  and hands the event to a :class:`RelayListener`;
* :class:`RelayTransport` is that listener, and the :class:`~webraft.runtime.port.Transport`
  a node holds: room membership becomes the node's ``join``/``leave``, frames its
  ``got_messages``, and its sends go into the one shared connection.

A connection object (:class:`RelayConnectionLike`) needs ``start()``, ``send(to, data)``,
``async close()``, ``connected`` and ``connections``; its I/O layer calls
:func:`receive_frame` for every frame.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from ..errors import MessageError
from ..runtime.port import TransportHandler
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

__all__ = ["COMMAND_ENVELOPE_BYTES", "LINK_OFFER", "InRoom", "RelayConnectionLike",
           "RelayListener", "RelayTransport", "host_port", "is_wildcard", "link_host",
           "link_offer", "parse_link_offer", "receive_frame", "renew_token"]

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
        import ipaddress  # here: 40 ms to compile in a tab, which offers no links

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
    import ipaddress  # here: 40 ms to compile in a tab, which offers no links

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
    """The I/O side a :class:`RelayTransport` drives: it keeps ``client`` connected and
    reports every frame to ``listener`` (through :func:`receive_frame`)."""

    client: RelayClient
    listener: RelayListener | None

    @property
    def connected(self) -> bool: ...

    @property
    def connections(self) -> int:
        """Completed connections (welcomes received) so far."""

    def start(self) -> None: ...

    def send(self, to: str, data: Any) -> None: ...

    async def close(self) -> None: ...


C = TypeVar("C", bound=RelayConnectionLike)


async def renew_token(client: RelayClient) -> None:
    """Before a (re)connect: ask the client's token provider, if it has one, for the token
    the hello will carry. Shared by both I/O layers; what the provider raises (or a
    non-string) propagates, and the caller counts a failed attempt and backs off."""
    provider = client.token_provider
    if provider is None:
        return
    token = provider()
    if inspect.isawaitable(token):  # an async function, or a browser's Promise
        token = await token
    client.renew_token(token)


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


class InRoom:
    """Mixed into what holds a :class:`RelayTransport` (:attr:`relay`), such as the thin
    constructors of nodes: the room, and whether the relay connection is joined."""

    relay: RelayTransport[Any]

    @property
    def room(self) -> str:
        return self.relay.room

    @property
    def connected(self) -> bool:
        """True while joined to the room through the relay."""
        return self.relay.connected


class RelayTransport(Generic[C]):
    """Reaches the other members of a relay room, whatever carries the frames: a
    :class:`~webraft.runtime.port.Transport` a node holds, and the :class:`RelayListener` of
    its ``connection`` (which it takes over from whoever listened before, such as a tab's
    address claim).

    The room is the truth about who is a peer: peers in the welcome and in ``join`` frames
    are reported as ``join``\\ s, ``leave`` frames as ``leave``\\ s; after a reconnect the
    new welcome is the truth (peers that vanished meanwhile are left). What the room says
    before :meth:`start` is kept, and reported then. Malformed frames, relay refusals and the
    terminal :class:`~webraft.transport.relay.RelayClosed` (4001 unauthorized, 4008 address in
    use, 4009 replaced) go to ``transport_error``.

    Link offers (see ``docs/direct-links.md``) never reach the node: they go to
    :attr:`on_link_offer` when something can dial (a :class:`~webraft.transport.linked.
    LinkedTransport`), and are dropped otherwise (a browser tab).
    """

    def __init__(self, connection: C) -> None:
        self.connection: C = connection
        self.client = connection.client
        connection.listener = self
        #: At most what fits in one relay frame with its envelopes.
        self.max_command_bytes: int | None = (self.client.buffer.max_frame_bytes
                                              - COMMAND_ENVELOPE_BYTES)
        #: The room's other members, as the relay last said.
        self.peers: set[str] = set()
        #: Called with ``(sender, host, port, key)`` for each valid link offer.
        self.on_link_offer: Callable[[str, str, int, str], None] | None = None
        self._handler: TransportHandler | None = None
        self._closed = False

    @property
    def room(self) -> str:
        return self.client.room

    @property
    def connected(self) -> bool:
        """True while joined to the room through the relay."""
        return self.connection.connected

    def start(self, handler: TransportHandler) -> None:
        """Report the room's members to ``handler`` and keep the connection up."""
        if self._closed or self._handler is not None:
            return
        self._handler = handler
        for address in sorted(self.peers):
            handler.join(address)
        self.connection.start()

    def send(self, to: str, payload: dict[str, Any]) -> None:
        self.connection.send(to, payload)

    async def close(self) -> None:
        """Stop reporting, then close the connection (after sending what is buffered)."""
        self._closed = True
        await self.connection.close()

    # ------------------------------------------------------------------ RelayListener

    def relay_welcome(self, peers: tuple[str, ...]) -> None:
        if self._closed:
            return
        # A welcome is the room as it is now: a leave for whoever vanished while we were
        # away, a join for everyone there.
        present = set(peers)
        for address in sorted(self.peers - present):
            self.relay_leave(address)
        for address in peers:
            self.relay_join(address)

    def relay_join(self, address: str) -> None:
        if self._closed or address == self.client.address:
            return
        self.peers.add(address)
        if self._handler is not None:
            self._handler.join(address)

    def relay_leave(self, address: str) -> None:
        if self._closed:
            return
        self.peers.discard(address)
        if self._handler is not None:
            self._handler.leave(address)

    def relay_data(self, sender: str, messages: Sequence[Any]) -> None:
        if self._closed:
            return
        for m in messages:  # (a loop, not any(): no generator on every frame)
            if m.__class__ is dict and m.get("type") == LINK_OFFER:
                messages = [m for m in messages if not self._link_offer(sender, m)]
                break
        if messages:
            self._deliver(sender, messages)

    def _deliver(self, sender: str, messages: Sequence[Any]) -> None:
        """Hand the messages of one frame to the node (once started; Raft retries what an
        early frame carried)."""
        if self._handler is not None:
            self._handler.got_messages(sender, messages)

    def _link_offer(self, sender: str, message: Any) -> bool:
        """Take ``message`` if it is a link offer (True): a member that accepts direct links
        tells each peer where, and the key that peer must prove."""
        if message.__class__ is not dict or message.get("type") != LINK_OFFER:
            return False
        try:
            host, port, key = parse_link_offer(message)
        except MessageError as exc:
            logger.warning("%s: ignored a link offer from %r: %s", self.client.address,
                           sender, exc)
            self.relay_error(exc)
            return True
        if self.on_link_offer is not None:
            self.on_link_offer(sender, host, port, key)
        return True

    def relay_error(self, exc: Exception) -> None:
        if self._handler is not None:
            self._handler.transport_error(exc)
        else:
            logger.warning("%s: relay error before the node started: %r", self.client.address,
                           exc)

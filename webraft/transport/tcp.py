"""Direct links over TCP (asyncio): the socket layer of every transport that links members.

Owns :class:`DirectLinks`, a thin asyncio layer around the sans-I/O
:mod:`webraft.transport.direct`; imports no node and no transport class (of
:mod:`webraft.transport.node`, only its ``host_port`` helper), and never ``js``: those hold
the links (:mod:`webraft.transport.direct_raft`, :mod:`webraft.transport.offers`).

:class:`DirectLinks` listens for links from peers and keeps one link to every peer it was
told to dial (reconnecting with jittered back-off), and writes messages into them. A link is
one-way (the dialer writes, the acceptor reads), so each pair of members has two. A link
coming up from either side cuts the redial back-off to that peer short: a restarted peer
dials us at once, so our link to it follows at once, not after a back-off grown while it
was down.

Links may run over TLS (:class:`TLS`, the standard library's :mod:`ssl`), mutual if the
acceptor asks for the dialer's certificate; the handshake's HMAC proof is made either way,
inside the encrypted link (see ``docs/direct-links.md``).

Nothing the network sends can crash a node: malformed messages are dropped with a log line
and an ``error`` event, a broken or refused conversation closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from os import PathLike
from typing import Any, Protocol

from .direct import (
    DEFAULT_MAX_LINE_BYTES,
    Accepted,
    Acceptor,
    Data,
    Dialer,
    LinkBroken,
    Malformed,
    Token,
)
from .node import host_port
from .relay import Backoff
from .wire import check_name

__all__ = ["TLS", "DirectLinks", "DirectListener", "check_endpoint"]

logger = logging.getLogger("webraft.transport")

#: Seconds a connection may take to complete the handshake, on either side (read at each
#: connection, so tests may patch it).
HANDSHAKE_TIMEOUT = 5.0
#: A refusal repeated from one host is reported the first time and every this many times.
REPORT_EVERY = 100
#: Seconds :meth:`DirectLinks.close` waits for written data to leave before it aborts links.
CLOSE_TIMEOUT = 2.0
#: Bytes a link may have waiting in its socket buffer before new messages are dropped (Raft
#: retransmits what matters); bounds memory while a peer is slow or gone silent.
MAX_BUFFERED_BYTES = 16 << 20


@dataclass(frozen=True)
class TLS:
    """How links are encrypted: ``server`` wraps the links we accept, ``client`` those we
    dial (it is given the dialed host as the server's name, to check the acceptor's
    certificate against). :meth:`from_files` makes both from PEM files."""

    server: ssl.SSLContext
    client: ssl.SSLContext

    @classmethod
    def from_files(cls, cert: str | PathLike[str], key: str | PathLike[str],
                   ca: str | PathLike[str] | None = None) -> TLS:
        """This member's certificate ``cert`` (its chain) and private ``key``, presented
        on both sides of every link. With ``ca``, mutual TLS: each side accepts only a
        certificate ``ca`` signed, the acceptor asks the dialer for one; without it, the
        dialer checks the acceptor's against the system's CAs and the acceptor asks for
        none. Raises OSError or ssl.SSLError if a file is missing or unusable."""
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.minimum_version = ssl.TLSVersion.TLSv1_2
        server.load_cert_chain(cert, key)
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        client.minimum_version = ssl.TLSVersion.TLSv1_2
        client.load_cert_chain(cert, key)
        if ca is not None:
            server.load_verify_locations(ca)
            server.verify_mode = ssl.CERT_REQUIRED
        return cls(server, client)


class DirectListener(Protocol):
    """What :class:`DirectLinks` reports to; every method must return quickly."""

    def direct_up(self, peer: str) -> None:
        """Our link to ``peer`` is established: messages to it can be sent."""

    def direct_down(self, peer: str) -> None:
        """Our link to ``peer`` was lost (it is being re-dialed)."""

    def direct_data(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        """Messages from ``peer``: all those one read of its link to us completed."""

    def direct_error(self, exc: Exception) -> None:
        """Something the application should know (a refused link, a malformed message)."""


def _keepalive(transport: asyncio.BaseTransport) -> None:
    """Notice a peer whose machine vanished within seconds, not the kernel's two hours."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


def check_endpoint(host: Any, port: Any) -> tuple[str, int]:
    """``(host, port)`` if a peer can be dialed there, else ValueError: a typo fails at once
    rather than as an endless series of failed attempts."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a host name or address, got {host!r:.60}")
    if type(port) is not int or not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port!r:.20}")
    return host, port


class _Connection(asyncio.Protocol):
    """What both ends of a link share: the transport, a handshake deadline, a closed future."""

    def __init__(self, links: DirectLinks) -> None:
        self.links = links
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _keepalive(transport)
        self._deadline = asyncio.get_running_loop().call_later(
            HANDSHAKE_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        """The handshake took longer than :data:`HANDSHAKE_TIMEOUT`: give up on it."""
        self._deadline = None
        if self.transport is not None:
            self.transport.close()

    def _handshake_done(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._handshake_done()
        if not self.closed.done():
            self.closed.set_result(None)


class _Incoming(_Connection):
    """An accepted connection: the handshake, then the peer's messages."""

    def __init__(self, links: DirectLinks) -> None:
        super().__init__(links)
        self.acceptor = Acceptor(links.room, links.address, token=links.token,
                                 allow=links.allow, max_line_bytes=links.max_line_bytes)
        self.peer = ""  # once proven
        if links.tls is None:
            links._incoming.add(self)  # from the accept on, so that close() waits for it too

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Over TLS, from the end of the TLS handshake: one that fails ends with no call here
        # nor to connection_lost, so an earlier entry would never leave the set.
        self.links._incoming.add(self)
        super().connection_made(transport)
        assert self.transport is not None
        if self.links._closed:  # accepted while closing: the server is going away
            self.transport.close()
            return
        self.transport.write(self.acceptor.data_to_send())

    def _too_slow(self) -> None:
        logger.info("%s: closed a connection from %s that sent no valid hello in %.3g s",
                    self.links.address, self._who(), HANDSHAKE_TIMEOUT)
        super()._too_slow()

    def _who(self) -> Any:
        if self.peer:
            return self.peer
        return self.transport.get_extra_info("peername") if self.transport else None

    def _host(self) -> str:
        peername = self.transport.get_extra_info("peername") if self.transport else None
        return str(peername[0]) if peername else ""

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        links = self.links
        try:
            events = self.acceptor.receive(data)
        except LinkBroken as exc:
            transport.write(self.acceptor.data_to_send())  # why, before closing
            transport.close()
            links._refused(self._who(), self._host(), exc)
            return
        except Exception as exc:  # an allow() or token() function failed: refuse, stay up
            logger.exception("%s: checking a link from %s failed", links.address, self._who())
            transport.close()
            links._report(exc)
            return
        payloads = []
        for event in events:
            if type(event) is Data:
                payloads.append(event.payload)
            elif type(event) is Accepted:
                self.peer = event.peer
                self._handshake_done()
                links._accepted_from(self._host(), event.peer)
                transport.write(self.acceptor.data_to_send())
                logger.debug("%s: accepted a link from %s", links.address, event.peer)
            elif type(event) is Malformed:
                logger.warning("%s: dropped a message from %s: %s", links.address,
                               self.peer, event.error)
                links._report(event.error)
        if payloads:
            links._deliver(self.peer, payloads)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.links._incoming.discard(self)


class _Outgoing(_Connection):
    """A dialed connection: the handshake, then our messages to the peer."""

    def __init__(self, links: DirectLinks, peer: str, token: str | None) -> None:
        super().__init__(links)
        self.peer = peer
        self.dialer = Dialer(links.room, links.address, peer, token=token,
                             max_line_bytes=links.max_line_bytes)
        #: Why the conversation broke (a refusal, a confused or silent acceptor), if it did.
        self.failure: LinkBroken | None = None
        self._heard = False  # anything from the acceptor yet

    def _too_slow(self) -> None:
        self.failure = LinkBroken("handshake_timeout",
                                  f"no welcome within {HANDSHAKE_TIMEOUT:.3g} s")
        super()._too_slow()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self._heard = True
        try:
            events = self.dialer.receive(data)
        except LinkBroken as exc:
            self.failure = exc
            transport.close()
            return
        out = self.dialer.data_to_send()
        if out:
            transport.write(out)
        if events:
            self._handshake_done()
            self.links._up(self.peer, self)

    def send(self, payload: Any) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        line = self.dialer.encode(payload)
        if transport.get_write_buffer_size() + len(line) > self.links.max_buffered_bytes:
            self.links.dropped += 1
            return False
        transport.write(line)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.links.tls is not None and self.failure is None and not self._heard:
            # TLS 1.3: an acceptor refuses our certificate after our side of the handshake
            # is done, and closes before it says anything (its challenge).
            self.failure = LinkBroken("tls", str(exc) if isinstance(exc, ssl.SSLError) else
                                      "closed after the TLS handshake, before its challenge: "
                                      "does it accept our certificate?")
        super().connection_lost(exc)
        self.links._down(self.peer, self)


class _Redial:
    """The pause of one dial loop between attempts: the back-off's delay, cut short by
    :meth:`now` (the peer linked to us, so it listens again: no reason to wait)."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self._now = asyncio.Event()

    async def pause(self) -> None:
        self._now.clear()  # a link accepted before this attempt ended already reset the delay
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.backoff.next()):
                await self._now.wait()

    def now(self) -> None:
        """Start the back-off again from its first delay, and end the pause under way."""
        self.backoff.reset()
        self._now.set()


class DirectLinks:
    """The links of the member at ``address`` in ``room`` (see the module doc).

    ``token`` is the room's shared secret (the relay's room token, if the members also use a
    relay), or a function giving the key each peer must prove to link to us (then each
    :meth:`dial` says which key we prove); ``allow(peer)`` may restrict who can link to us.
    :meth:`listen` and :meth:`dial` need a running loop; :meth:`send` never blocks.
    ``backoff`` makes the delays between two attempts to link to a peer; a link that peer
    makes to us resets them and ends the wait (see :meth:`redialing`). ``tls`` encrypts
    every link, both ways.
    """

    def __init__(self, address: str, listener: DirectListener, *, room: str = "webraft",
                 token: Token = None, allow: Callable[[str], bool] | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_buffered_bytes: int = MAX_BUFFERED_BYTES,
                 backoff: Callable[[], Backoff] = Backoff, tls: TLS | None = None) -> None:
        self.address = check_name(address, "address")
        self.room = check_name(room, "room")
        if token is not None and not isinstance(token, str) and not callable(token):
            raise ValueError("token must be a string or a function of the peer")
        self.token = token
        self.listener = listener
        self.allow = allow
        self.max_line_bytes = max_line_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self.tls = tls
        self._backoff = backoff
        #: Messages not sent because a link's buffer was full.
        self.dropped = 0
        #: The last link refused or broken, either way ("unauthorized: wrong room token"):
        #: the first thing to look at when a peer never shows up.
        self.link_error: str | None = None
        self._server: asyncio.Server | None = None
        self._endpoints: dict[str, tuple[str, int, str | None]] = {}  # peer -> host, port, key
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._redials: dict[str, _Redial] = {}  # each dial loop's back-off
        self._attempts: dict[str, _Outgoing] = {}  # each dial loop's current connection
        self._links: dict[str, _Outgoing] = {}  # established outgoing links, by peer
        self._incoming: set[_Incoming] = set()
        self._creating: set[asyncio.Future[asyncio.Server]] = set()  # listen()s under way
        self._closed = False
        #: Refused attempts by (remote host, code): a misconfigured peer retries forever,
        #: and is reported the first time (and every REPORT_EVERY-th), not every time.
        self._refusals: dict[tuple[str, str], int] = {}

    @property
    def bound(self) -> tuple[str, int] | None:
        """Where :meth:`listen` accepts links (the real port if it was 0), once it does."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def is_up(self, peer: str) -> bool:
        """True while our link to ``peer`` is established."""
        return peer in self._links

    def redialing(self, peer: str) -> Backoff | None:
        """The back-off of our dial loop to ``peer`` (None if we do not dial it): reset each
        time a link to ``peer`` comes up, ours or its to us."""
        redial = self._redials.get(peer)
        return redial.backoff if redial is not None else None

    def status(self, peers: Iterable[str],
               addresses: Mapping[str, tuple[str, int]] | None = None) -> dict[str, Any]:
        """Where we listen, whether our link to each of ``peers`` is up (and, from
        ``addresses``, where it is dialed), and :attr:`link_error`: for status pages."""
        bound = self.bound
        where = addresses or {}
        return {
            "listen": None if bound is None else host_port(*bound),
            "links": {peer: {**({"address": host_port(*where[peer])} if peer in where
                                else {}), "up": self.is_up(peer)}
                      for peer in sorted(peers)},
            "link_error": self.link_error,
        }

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Accept links on ``host:port`` (port 0: any free one); returns the bound address.

        Cancelling it loses no server: one that comes up after all is closed, as is one that
        comes up after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("the links are closed")
        if self._server is None:
            # Shielded: asyncio's create_server cancelled at its last await (its socket bound
            # and accepting) would leave that server open, owned by nobody.
            tls = self.tls
            creating = asyncio.ensure_future(asyncio.get_running_loop().create_server(
                lambda: _Incoming(self), host, port, ssl=tls.server if tls else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls else None))
            self._creating.add(creating)
            creating.add_done_callback(self._created)  # runs before the await below returns
            await asyncio.shield(creating)
            if self._closed:
                raise RuntimeError("the links are closed")
        bound = self.bound
        assert bound is not None
        return bound

    def _created(self, creating: asyncio.Future[asyncio.Server]) -> None:
        """A server :meth:`listen` asked for is up (or failed): keep it, or close it if we
        are closed or already listen."""
        self._creating.discard(creating)
        if creating.cancelled() or creating.exception() is not None:
            return
        server = creating.result()
        if self._closed or self._server is not None:
            server.close()
        else:
            self._server = server

    def dial(self, peer: str, host: str, port: int, *, token: str | None = None) -> bool:
        """Keep a link to ``peer`` at ``host:port`` up until :meth:`forget` or :meth:`close`.

        ``token`` is the key to prove to that peer (default: the links' token, if it is a
        string). Dialing a peer again with another endpoint or key moves the link there.
        Returns True if this started dialing (False: dialing there already, or closed).
        """
        check_name(peer, "peer")
        check_endpoint(host, port)
        if self._closed or peer == self.address:
            return False
        if token is None and isinstance(self.token, str):
            token = self.token
        endpoint = (host, port, token)
        if self._endpoints.get(peer) == endpoint and peer in self._dialers:
            return False
        self.forget(peer)
        self._endpoints[peer] = endpoint
        redial = self._redials[peer] = _Redial(self._backoff())
        self._dialers[peer] = asyncio.get_running_loop().create_task(
            self._dial_loop(peer, endpoint, redial), name=f"link {self.address}->{peer}")
        return True

    def forget(self, peer: str) -> None:
        """Stop dialing ``peer`` and close our link to it (or the attempt under way)."""
        self._endpoints.pop(peer, None)
        self._redials.pop(peer, None)
        task = self._dialers.pop(peer, None)
        if task is not None:
            task.cancel()
        attempt = self._attempts.pop(peer, None)
        if attempt is not None and attempt.transport is not None:
            attempt.transport.close()  # its connection_lost says direct_down if it was up

    def disconnect(self, peer: str) -> None:
        """Close the links ``peer`` made to us (it may link again, with a valid key)."""
        for incoming in [i for i in self._incoming if i.peer == peer]:
            if incoming.transport is not None:
                incoming.transport.close()

    def send(self, peer: str, payload: Any) -> bool:
        """Write ``payload`` to ``peer`` now; False if no link is up or its buffer is full.

        Raises ValueError (not JSON) or MessageTooLarge, like a socket would.
        """
        link = self._links.get(peer)
        return link is not None and link.send(payload)

    async def close(self) -> None:
        """Stop listening and dialing, close every link; idempotent.

        What is written still goes out: this waits up to :data:`CLOSE_TIMEOUT` for it, then
        aborts the links that could not deliver (a peer that stopped reading).
        """
        self._closed = True
        # An attempt with no transport yet never reached connection_made (a TLS handshake
        # under way): cancelling its dial closes its socket, and no connection_lost follows.
        outgoing = [a for a in self._attempts.values() if a.transport is not None]
        tasks = list(self._dialers.values())
        for peer in list(self._dialers):
            self.forget(peer)
        if self._creating:  # a server coming up is closed as soon as it is (see _created)
            await asyncio.wait(list(self._creating), timeout=CLOSE_TIMEOUT)
        server = self._server
        if server is not None and server.is_serving():
            # asyncio (3.11) loses a connection whose accept is under way when its server
            # closes: the socket stays open, owned by nobody. Stop accepting, let the accepts
            # under way attach (their connections close at once: we are closed), then close.
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                with contextlib.suppress(NotImplementedError, ValueError, OSError):
                    loop.remove_reader(sock.fileno())
            await asyncio.sleep(0)
        if server is not None:
            server.close()
        connections: list[_Connection] = [*outgoing, *self._incoming]
        for incoming in self._incoming:
            if incoming.transport is not None:
                incoming.transport.close()
        # The dial loops end at once (cancelled); awaiting them leaves no task behind.
        await asyncio.gather(*tasks, return_exceptions=True)
        pending = [c.closed for c in connections if not c.closed.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
            if late:
                for conn in connections:
                    if not conn.closed.done() and conn.transport is not None:
                        conn.transport.abort()
                await asyncio.wait(late, timeout=CLOSE_TIMEOUT)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    # ------------------------------------------------------------------ internals

    async def _dial_loop(self, peer: str, endpoint: tuple[str, int, str | None],
                         redial: _Redial) -> None:
        """Link to ``peer`` again and again until cancelled (by :meth:`forget`)."""
        loop = asyncio.get_running_loop()
        host, port, token = endpoint
        tls = self.tls.client if self.tls is not None else None
        reported: str | None = None  # a failure is reported once per kind, not per attempt
        while not self._closed:
            link: _Outgoing | None = None
            made: list[_Outgoing] = []  # this attempt's connection, even if it never connects
            failure: LinkBroken | None = None
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    _, link = await loop.create_connection(
                        partial(self._attempt, peer, token, made), host, port, ssl=tls,
                        server_hostname=host if tls else None)
                await link.closed
            except ssl.SSLError as exc:  # before OSError, its base: the peer's certificate
                failure = LinkBroken("tls", str(exc))
            except (OSError, TimeoutError) as exc:
                logger.debug("%s: cannot link to %s at %s:%s: %r", self.address, peer, host,
                             port, exc)
            except asyncio.CancelledError:
                if link is not None and link.transport is not None:
                    link.transport.close()
                raise
            except Exception as exc:  # a bug or an odd endpoint: log it, keep trying
                logger.exception("%s: linking to %s at %s:%s failed", self.address, peer,
                                 host, port)
                if reported != type(exc).__name__:
                    reported = type(exc).__name__
                    self._report(exc)
            finally:
                if made and self._attempts.get(peer) is made[0]:
                    del self._attempts[peer]
            if link is not None and link.dialer.established:
                redial.backoff.reset()
                reported = None
            if link is not None and link.failure is not None:
                failure = link.failure
            if failure is not None and reported != failure.code:
                reported = failure.code
                logger.error("%s: the link to %s at %s:%s failed: %s", self.address, peer,
                             host, port, failure)
                self._report(failure)
            await redial.pause()

    def _attempt(self, peer: str, token: str | None, made: list[_Outgoing]) -> _Outgoing:
        """A new connection of ``peer``'s dial loop (the protocol factory), also put in
        ``made``."""
        link = _Outgoing(self, peer, token)
        self._attempts[peer] = link
        made.append(link)
        return link

    def _up(self, peer: str, link: _Outgoing) -> None:
        if self._closed or self._attempts.get(peer) is not link:  # forgotten meanwhile
            if link.transport is not None:
                link.transport.close()
            return
        self._links[peer] = link
        logger.debug("%s: linked to %s", self.address, peer)
        self._call(self.listener.direct_up, peer)

    def _down(self, peer: str, link: _Outgoing) -> None:
        if self._links.get(peer) is link:
            del self._links[peer]
            logger.debug("%s: lost the link to %s", self.address, peer)
            self._call(self.listener.direct_down, peer)

    def _deliver(self, peer: str, payloads: list[dict[str, Any]]) -> None:
        try:
            self.listener.direct_data(peer, payloads)
        except Exception as exc:  # a listener bug must not break the connection
            logger.exception("%s: handling a message from %s failed", self.address, peer)
            self._report(exc)

    def _call(self, method: Callable[[str], None], peer: str) -> None:
        try:
            method(peer)
        except Exception as exc:
            logger.exception("%s: link listener failed", self.address)
            self._report(exc)

    def _accepted_from(self, host: str, peer: str) -> None:
        """``peer`` linked to us from ``host``: its next refusal is news again, and it
        listens again (it may have restarted), so our dial loop to it tries at once."""
        for key in [k for k in self._refusals if k[0] == host]:
            del self._refusals[key]
        redial = self._redials.get(peer)
        if redial is not None:
            redial.now()

    def _refused(self, who: Any, host: str, exc: LinkBroken) -> None:
        """Log and report a refused or broken incoming link, once per host and reason (and
        then every :data:`REPORT_EVERY` times, saying how many)."""
        if len(self._refusals) >= 1024:  # bounded whatever hosts try
            self._refusals.clear()
        key = (host, exc.code)
        count = self._refusals[key] = self._refusals.get(key, 0) + 1
        if count == 1 or count % REPORT_EVERY == 0:
            again = f" ({count} times from {host})" if count > 1 else ""
            logger.warning("%s: refused or broke a link from %s: %s%s", self.address, who,
                           exc, again)
            self._report(exc)
        else:
            logger.debug("%s: refused or broke a link from %s again: %s", self.address, who,
                         exc)

    def _report(self, exc: Exception) -> None:
        if isinstance(exc, LinkBroken):
            self.link_error = str(exc)
        try:
            self.listener.direct_error(exc)
        except Exception:
            logger.exception("%s: link error listener failed", self.address)

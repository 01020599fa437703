"""The member's control interface: a tiny local HTTP/1.1 server, and a client for it.

Owns :class:`ControlServer` and :func:`request`. Imports the node's public API, the errors and
:mod:`webraft.transport.wire`'s decoder; never a transport's I/O or a storage.

Standard library only (asyncio streams for the server, urllib for the client): a member must
not need more than webraft and websockets. One request per connection, JSON both ways:

==============================  ===============================================================
``GET /status``                 ``{address, room, state, term, leader, commit_index,
                                last_applied, members, learners, snapshot_index, peers,
                                connected}``, plus what the server's ``details`` add (direct
                                links: ``listen``, ``links``, ``link_error``, see
                                :mod:`webraft.member.__main__`)
``GET /kv``                     ``{"data": {...}, "last_applied": n}``: everything this node
                                has applied
``GET /kv/KEY``                 ``{"key", "value"}``, or 404
``PUT /kv/KEY``                 body = a JSON value; proposes ``put`` and answers its outcome,
                                ``{"index"}``, once the command is committed and applied on
                                this node
``DELETE /kv/KEY``              proposes ``del``; answers ``{"index", "deleted"}``
``GET /metrics``                 the metrics, in the Prometheus text format (see
                                :mod:`webraft.member.metrics`); 404 without metrics
``POST /cas/KEY``               body = ``{"value": V, "expected": E}``: compare-and-set, done
                                in the state machine; without ``"expected"`` the key must be
                                absent. Answers ``{"index", "swapped"}``
==============================  ===============================================================

Reads are local by default: they see what this node has applied, which may lag the leader
(a node cut off from the others answers at once, from its own state). Add
``?linearizable=1`` to a ``GET`` of ``/kv`` or ``/kv/KEY`` for a linearizable read: the node
asks the leader for a read index (:meth:`~webraft.RaftInterface.read_index`), waits until it
has applied it, then reads; the answer adds that ``"index"``. Local reads stay the default
because they are what a status page or a script watching each member wants, and they answer
without a leader; a client that needs linearizability asks for it.

Writes take ``?request_id=R`` (1-128 characters): the command carries it, and the state
machine applies a request id once, answering every retry with the first outcome (see
:mod:`webraft.member.kv`). So a write that failed with ``may_have_committed: true`` (or whose
answer was lost) can be sent again, to this member or another, with the same id. Without
one, the server makes one up (so it can find the outcome), and a retry is a new request.

Failures are ``{"error": <exception class>, "message", "may_have_committed"}``: a proposal
that failed with ``may_have_committed: false`` can be retried safely (see
:mod:`webraft.errors`); one with ``true`` safely only with its request id. A member cut off
from the others (it knew a leader, then none for about a second:
:attr:`~webraft.NodeConfig.cut_off_after`) answers writes and linearizable reads at once
rather than after the proposal timeout: ``NoLeaderError`` (503; not sent) or
``ProposalTimeout`` (504; it may have committed), so that the client retries through another
member with the same request id. KEY is
percent-decoded. The server binds to loopback by default and has no authentication: it is a
developer's tool, not a public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from ..errors import InvalidCommand, ProposalError, ProposalTimeout
from ..prometheus import CONTENT_TYPE
from ..runtime import RaftInterface
from ..transport.wire import loads
from .kv import KVStore, cas, check_command, check_request_id, delete, put
from .metrics import Metrics

__all__ = ["ControlServer", "Reachable", "request"]

logger = logging.getLogger("webraft.member")

#: Largest request body accepted (a command is at most 1 MiB of JSON, plus the envelope).
MAX_BODY = (1 << 20) + 1024
#: Seconds a client has to send its whole request (headers and body).
REQUEST_TIMEOUT = 10.0
_MAX_HEADERS = 100


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Unavailable(Exception):
    """A request the node cannot serve now: answered with ``answer``."""

    def __init__(self, status: HTTPStatus, answer: dict[str, Any]) -> None:
        super().__init__(answer["message"])
        self.status = status
        self.answer = answer


class Reachable(Protocol):
    """What ``GET /status`` tells about how a node reaches its peers (its transport)."""

    @property
    def room(self) -> str: ...

    @property
    def connected(self) -> bool: ...


class ControlServer:
    """Serves the control API of ``node`` (whose applied state is ``kv``) on ``host:port``.

    ``port=0`` picks a free port; :attr:`url` is the address to use once :meth:`start` ran.
    ``transport`` tells the room and whether it is connected; ``details()`` returns fields
    ``GET /status`` adds: what only one kind of transport knows. ``metrics`` (watching the
    node) is served at ``GET /metrics`` and told of every proposal this server makes.
    """

    def __init__(self, node: RaftInterface, kv: KVStore, host: str = "127.0.0.1",
                 port: int = 0, *, transport: Reachable,
                 details: Callable[[], dict[str, Any]] | None = None,
                 metrics: Metrics | None = None) -> None:
        self.node = node
        self.metrics = metrics
        self.transport = transport
        self.kv = kv
        self.details = details
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving (raises OSError if the address is unavailable)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting, and end requests still in progress."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        unread = False  # the request was refused before it was read to its end
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    method, path, query, body = await _read_request(reader)
                status, payload = await self._route(method, path, query, body)
            except _BadRequest as exc:
                unread = True
                status, payload = exc.status, _error("BadRequest", str(exc))
            except _Unavailable as exc:
                status, payload = exc.status, exc.answer
            except TimeoutError:
                status, payload = HTTPStatus.REQUEST_TIMEOUT, _error("RequestTimeout",
                                                                     "request too slow")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception as exc:  # a bug: answer 500 rather than drop the connection
                logger.exception("control request failed")
                status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, _error(
                    type(exc).__name__, str(exc), may_have_committed=True)
            if isinstance(payload, str):  # the metrics' text
                kind, data = CONTENT_TYPE, payload.encode()
            else:
                kind = "application/json"
                data = json.dumps(payload, allow_nan=False).encode() + b"\n"
            writer.write(f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                         f"Content-Type: {kind}\r\n"
                         f"Content-Length: {len(data)}\r\n"
                         "Connection: close\r\n\r\n".encode() + data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
                if unread:
                    await _linger(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _route(self, method: str, path: str, query: dict[str, str],
                     body: bytes) -> tuple[HTTPStatus, Any]:
        if path == "/status":
            _allow(method, "GET")
            return HTTPStatus.OK, self.status()
        if path == "/metrics" and self.metrics is not None:
            _allow(method, "GET")
            return HTTPStatus.OK, self.metrics.render()
        if path == "/kv":
            _allow(method, "GET")
            read = await self._read_index(query)
            return HTTPStatus.OK, {"data": self.kv.data, "last_applied": self.kv.last_applied,
                                   **read}
        for prefix in ("/kv/", "/cas/"):
            if path.startswith(prefix) and len(path) > len(prefix):
                try:
                    key = urllib.parse.unquote(path[len(prefix):], errors="strict")
                except UnicodeDecodeError:
                    raise _BadRequest(HTTPStatus.BAD_REQUEST, "the key is not UTF-8") from None
                if prefix == "/cas/":
                    _allow(method, "POST")
                    return await self._cas(key, body, query)
                return await self._key(method, key, body, query)
        return HTTPStatus.NOT_FOUND, _error("NotFound", f"no route {path!r}")

    async def _key(self, method: str, key: str, body: bytes,
                   query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        if method == "GET":
            read = await self._read_index(query)
            if key not in self.kv:
                return HTTPStatus.NOT_FOUND, {**_error("KeyNotFound", f"no key {key!r}"),
                                              "key": key, **read}
            return HTTPStatus.OK, {"key": key, "value": self.kv.get(key), **read}
        if method == "PUT":
            return await self._propose(put(key, _json(body), _request_id(query)))
        if method == "DELETE":
            return await self._propose(delete(key, _request_id(query)))
        raise _BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed here")

    async def _cas(self, key: str, body: bytes,
                   query: dict[str, str]) -> tuple[HTTPStatus, Any]:
        spec = _json(body)
        if not isinstance(spec, dict) or "value" not in spec or not set(spec) <= {
                "value", "expected"}:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, 'the body must be {"value": V} or '
                              '{"value": V, "expected": E}')
        return await self._propose(cas(key, spec["value"], expected=spec.get("expected"),
                                       absent="expected" not in spec,
                                       request_id=_request_id(query)))

    async def _read_index(self, query: dict[str, str]) -> dict[str, int]:
        """``{}`` for a local read; for ``?linearizable=1``, ``{"index": read index}`` once
        this node applied it (:class:`_Unavailable` if no leader confirmed one)."""
        if not _flag(query, "linearizable"):
            return {}
        try:
            return {"index": await self.node.read_index()}
        except ProposalError as exc:  # a read proposes nothing: nothing may have committed
            raise _Unavailable(HTTPStatus.SERVICE_UNAVAILABLE,
                               _error(type(exc).__name__, str(exc))) from None

    async def _propose(self, command: dict[str, Any]) -> tuple[HTTPStatus, Any]:
        """Propose ``command`` (with a request id: the client's, or one made up to find the
        outcome) and answer its outcome."""
        command.setdefault("id", secrets.token_hex(12))
        try:
            check_command(command)
        except ValueError as exc:
            return HTTPStatus.BAD_REQUEST, _error("InvalidCommand", str(exc))
        start = time.perf_counter()
        try:
            index = await self.node.propose(command)
        except ProposalError as exc:
            if self.metrics is not None:
                self.metrics.proposal_done(time.perf_counter() - start, exc)
            if isinstance(exc, InvalidCommand):
                status = HTTPStatus.BAD_REQUEST
            elif isinstance(exc, ProposalTimeout):
                status = HTTPStatus.GATEWAY_TIMEOUT
            else:
                status = HTTPStatus.SERVICE_UNAVAILABLE
            return status, _error(type(exc).__name__, str(exc), exc.may_have_committed)
        if self.metrics is not None:
            self.metrics.proposal_done(time.perf_counter() - start)
        outcome = self.kv.outcome(command["id"])
        if outcome is None:  # so many requests applied since that this one is forgotten
            return HTTPStatus.INTERNAL_SERVER_ERROR, {
                **_error("OutcomeForgotten", f"committed at {index}; its outcome is no "
                         "longer remembered", may_have_committed=True), "index": index}
        return HTTPStatus.OK, outcome

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` answers."""
        node = self.node
        core = node.core.status()
        return {
            "address": node.address,
            "room": self.transport.room,
            "state": core.role,
            "term": core.term,
            "leader": core.leader,
            "commit_index": core.commit_index,
            "last_applied": node.last_applied,
            "members": list(core.config.voters),
            "learners": list(core.config.learners),
            "snapshot_index": core.snapshot.index,
            "peers": sorted(node.nodes),
            "connected": self.transport.connected,
            **(self.details() if self.details is not None else {}),
        }


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _BadRequest(HTTPStatus.METHOD_NOT_ALLOWED, f"only {allowed} is allowed here")


def _json(body: bytes) -> Any:
    try:
        return loads(body)
    except ValueError as exc:
        raise _BadRequest(HTTPStatus.BAD_REQUEST,
                          f"the body must be one JSON value: {exc}") from None


def _request_id(query: dict[str, str]) -> str | None:
    if "request_id" not in query:
        return None
    try:
        return check_request_id(query["request_id"])
    except ValueError as exc:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None


def _flag(query: dict[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None or value.lower() in ("0", "false", "no"):
        return False
    if value.lower() in ("", "1", "true", "yes"):
        return True
    raise _BadRequest(HTTPStatus.BAD_REQUEST, f"?{name}= takes 1 or 0, got {value!r:.20}")


def _error(kind: str, message: str, may_have_committed: bool = False) -> dict[str, Any]:
    return {"error": kind, "message": message, "may_have_committed": may_have_committed}


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read (and discard) what the client still sends before closing: closing a socket with
    unread data resets the connection, and the client could lose our answer with it."""
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            for _ in range(64):  # at most 4 MiB
                if not await reader.read(1 << 16):
                    break


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # longer than the stream's limit (64 KiB)
        raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "line too long") from None


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str],
                                                               bytes]:
    """Method, path, query parameters (the last of each name) and body of one HTTP/1.x
    request."""
    line = await _readline(reader)
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target = parts[0], parts[1]
    length = 0
    for _ in range(_MAX_HEADERS):
        header = await _readline(reader)
        if header in (b"\r\n", b"\n"):
            break
        if not header:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = header.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
            if not 0 <= length <= MAX_BODY:
                raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                  f"body over {MAX_BODY} bytes")
        elif name == "transfer-encoding":
            raise _BadRequest(HTTPStatus.NOT_IMPLEMENTED, "send a Content-Length body")
    else:
        raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
    body = await reader.readexactly(length) if length else b""
    url = urllib.parse.urlsplit(target)
    try:
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True,
                                            errors="strict", max_num_fields=16))
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed query string") from None
    return method, url.path, query, body


# ------------------------------------------------------------------ the client side


def request(base_url: str, method: str, path: str, body: Any = None,
            timeout: float = 30.0) -> tuple[int, Any]:
    """One request to a control server: ``(status, decoded JSON answer)``.

    Proxies from the environment are ignored: the control server is on this machine.
    Raises OSError (urllib.error.URLError) when the server cannot be reached.
    """
    if "://" not in base_url:
        base_url = "http://" + base_url
    data = None if body is None else json.dumps(body, allow_nan=False).encode()
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": "HTTPError", "message": raw.decode(errors="replace")}


def key_path(key: str, prefix: str = "/kv/") -> str:
    """``/kv/<key>`` (or ``prefix<key>``) with the key percent-encoded (any character may be
    in a key)."""
    return prefix + urllib.parse.quote(key, safe="")

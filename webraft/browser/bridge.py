"""What ``browser/webraft.js`` calls: start a node in this tab and expose it to JavaScript.

Owns the tab's node and its JavaScript API. Imports the runtime, storages and transports; runs
in Pyodide only (``js`` and ``pyodide`` are imported lazily); nothing imports it.

Starting a node in a tab takes three steps, in an order that matters:

1. **Claim an address.** The tab tries its own previous address first (kept with its relay
   session in ``sessionStorage``, so a reload is the same node). Then, with automatic
   membership (no ``members`` given), the addresses of nodes whose state this origin's
   localStorage holds but no tab runs (a closed tab's node: taking it over reuses its log
   and its seat), and finally a fresh random address; with fixed slots (``members``), the
   slots in order. The relay grants each address to one session at a time (4008
   otherwise). Only the relay can arbitrate between tabs opened at the same moment, so the
   claim happens *before* anything else. The whole claim is bounded (``connectTimeout``): an
   unreachable relay is a :class:`RelayUnreachable`, not a page that waits forever.
2. **Open storage** in ``localStorage`` under ``webraft/<room>/<address>/``. Loading
   garbage-collects keys of an interrupted write, which is only safe for a namespace nobody
   else writes: the claim in step 1 is what guarantees that.
3. **Build the node** on the already-joined connection, replaying what arrived meanwhile.
   With automatic membership a node without stored state *founds* the cluster (as its only
   voter) if and only if every peer the relay's welcome listed (those that joined before
   it) holds no state either: it asks each with a pre-vote probe for term 1, which only a
   node at term 0 with an empty log grants (:func:`_may_found`). An empty room is the
   trivial case; a room holding only ``webraft-node --join`` members, which never found, is
   the other. Otherwise it starts outside any cluster and waits for the leader to add it.
   No two tabs found in one room: of two, the later one has the earlier in its welcome, and
   the earlier either founded (it then refuses the probe) or is not built yet (it does not
   answer) or waits to be added for good (``docs/browser.md`` has the whole rule and what a
   relay restart means).

:class:`JsNode` is the handle JavaScript holds. Crossing between JavaScript and Python costs
far more per call than the work being carried, and on Pyodide's event loop every
``call_soon`` (and every resolved future's callback) is a browser task of its own, so the
hot paths cross in bulk:

* **proposals** arrive as one JSON array per JavaScript turn (:meth:`JsNode.propose_many`)
  and are handed to the node in slices of a few milliseconds, at most
  :data:`MAX_IN_FLIGHT` unfinished at a time, so a burst of thousands never blocks the tab
  for longer than a slice nor piles up more work in the cluster than it clears in a few
  hundred milliseconds;
* **outcomes** go back in one call at the end of the browser task (``settle(json)``),
  found by sweeping the pending futures instead of one done-callback (one browser task)
  per future;
* **apply** calls the JavaScript handler with plain values (term, index, the command as
  JSON text for ``JSON.parse``) and learns from its return value whether ``cb`` was already
  called, so a synchronous handler costs one call and no callback object.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import repeat
from typing import Any

from ..core.messages import Entry, MessageError, VoteRequest, VoteResponse, decode, encode
from ..errors import InvalidCommand, ProposalError, WebraftError
from ..runtime.sessions import ClientSession
from ..storage.localstorage import LocalStorage, json_text
from ..transport.node import RelayListener
from ..transport.relay import RelayClient, RelayClosed, TokenProvider
from ..transport.wire import CloseCode
from .broadcast import JsPortExchange
from .page import helpers
from .scheduling import EndOfTask
from .transport import HIDDEN_ELECTION_DELAY, BrowserConnection, BrowserRaft, browser_config

__all__ = ["JsError", "JsNode", "RelayUnreachable", "RoomFull", "create", "create_for_js"]

#: Default bound on claiming a slot (seconds): an unreachable relay fails ``create`` then.
CONNECT_TIMEOUT = 15.0
#: Longest a burst of proposals keeps the loop before the node gets to persist and send.
PROPOSE_SLICE = 0.005
#: Pause between two slices of a burst. Not ``call_soon``: on Pyodide's WebLoop that is a
#: MessageChannel task, and chains of those starve the page's timers (the node's heartbeat
#: timer among them) and delay its WebSocket events; a timer this short (a ``setTimeout``)
#: lets them run.
PROPOSE_PAUSE = 0.003
#: Most proposals of this tab handed to the node and not yet finished; later ones wait here.
#: A burst of thousands then never becomes one long run of work in every tab (persisting,
#: replicating, applying), which would delay heartbeats past the election timeout.
MAX_IN_FLIGHT = 1000
#: Pending proposals are also swept on this period, for outcomes no ``updated`` announces
#: (timeouts, superseded entries, answers that arrive after their entry was applied).
SWEEP_PERIOD = 0.025
#: Most addresses of closed tabs' nodes a new tab tries to take over before a fresh one.
MAX_ADOPT = 8
#: Longest a tab waits (seconds) for the peers present when it joined to answer its founding
#: probe; one that has not answered by then counts as a possible founder.
PROBE_TIMEOUT = 1.0
#: The founding probe: a pre-vote for term 1 with an empty log, which a node grants only if
#: it is at term 0 with an empty log (it never was in a cluster) and never adopts.
FOUNDING_PROBE = encode(VoteRequest(1, 0, 0, pre=True))
#: What a JavaScript apply adapter returns (anything else is ``[name, message]`` of an error).
APPLIED, WAITING = 0, 1


_encode = json.JSONEncoder(separators=(",", ":")).encode


class RoomFull(WebraftError):
    """Every member slot of the room is held by another tab."""


class RelayUnreachable(WebraftError):
    """No slot was granted within the connect timeout: the relay could not be reached, or
    never answered."""


class JsError(WebraftError):
    """An error from JavaScript (an apply handler's ``cb(err)`` or throw); ``name`` is the
    JavaScript error's name, which JavaScript ``error`` listeners see."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class _Claim:
    """Listens to a connection until the relay grants or refuses its address.

    Events that arrive after the welcome (peers joining, the first Raft messages) are kept
    and replayed to the node once it exists.
    """

    def __init__(self) -> None:
        self.outcome: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        #: Peers whose answer to the founding probe is awaited, and whether each was stateless.
        self.probing: set[str] = set()
        self.stateless: dict[str, bool] = {}
        self.probed: asyncio.Future[None] | None = None

    def probe(self, connection: BrowserConnection, peers: tuple[str, ...]) -> None:
        """Send the founding probe to ``peers``; :attr:`probed` resolves once all answered."""
        self.probing = set(peers)
        self.probed = asyncio.get_running_loop().create_future()
        for peer in peers:
            connection.send(peer, FOUNDING_PROBE)
        connection.flush()

    def _answered(self, peer: str, stateless: bool) -> None:
        if peer in self.probing:
            self.probing.discard(peer)
            self.stateless[peer] = stateless
            if not self.probing and self.probed is not None and not self.probed.done():
                self.probed.set_result(None)

    def relay_welcome(self, peers: tuple[str, ...]) -> None:
        if not self.outcome.done():
            self.outcome.set_result(peers)
        self.events.append(("relay_welcome", (peers,)))

    def relay_join(self, address: str) -> None:
        self.events.append(("relay_join", (address,)))

    def relay_leave(self, address: str) -> None:
        self.events.append(("relay_leave", (address,)))
        self._answered(address, True)  # gone: it cannot add us, nor found

    def relay_data(self, sender: str, messages: Sequence[Any]) -> None:
        self.events.append(("relay_data", (sender, messages)))
        if sender in self.probing:
            for payload in messages:
                try:
                    msg = decode(payload)
                except MessageError:
                    continue  # the node reports it when the frame is replayed
                if isinstance(msg, VoteResponse) and msg.pre:
                    self._answered(sender, msg.granted and msg.term == 1)

    def relay_error(self, exc: Exception) -> None:
        if isinstance(exc, RelayClosed) and not self.outcome.done():
            self.outcome.set_exception(exc)

    def replay(self, listener: RelayListener) -> None:
        for method, args in self.events:
            getattr(listener, method)(*args)


async def _claim(room: str, url: str, candidates: list[str], session: str,
                 token: str | TokenProvider | None,
                 timeout: float = CONNECT_TIMEOUT) -> tuple[RelayClient, BrowserConnection, _Claim]:
    """Claim the first free address of ``candidates``, within ``timeout`` seconds in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for address in candidates:
        client = RelayClient(room, address, session=session, token=token)
        claim = _Claim()
        connection = BrowserConnection(url, client, claim)
        try:
            connection.start()
        except Exception as exc:  # e.g. a malformed URL: the WebSocket constructor throws
            raise RelayUnreachable(f"cannot open a WebSocket to {url!r}: {exc}") from exc
        try:
            await asyncio.wait_for(claim.outcome, max(0.0, deadline - loop.time()))
        except TimeoutError:
            await connection.close()
            last = connection.last_close
            why = (f"; last attempt closed with {last[0]} {last[1]}".rstrip()
                   if last is not None else "")
            raise RelayUnreachable(f"no answer from the relay at {url} within "
                                   f"{timeout:g} s{why}") from None
        except RelayClosed as exc:
            await connection.close()
            if exc.code == CloseCode.ADDRESS_IN_USE:
                continue
            raise
        return client, connection, claim
    raise RoomFull(f"room {room!r} is full: {', '.join(candidates)} are all taken")


async def _may_found(connection: BrowserConnection, claim: _Claim) -> bool:
    """May this tab, which holds no state, found the room's cluster? Only if every peer
    present when it joined answers the founding probe as a node that holds no state either
    (see the module doc): then none of them leads, or will lead, a cluster that would add us.
    A peer that does not answer within :data:`PROBE_TIMEOUT` may be founding right now."""
    peers = claim.outcome.result()
    if not peers:
        return True
    claim.probe(connection, peers)
    assert claim.probed is not None
    try:
        await asyncio.wait_for(asyncio.shield(claim.probed), PROBE_TIMEOUT)
    except TimeoutError:
        return False
    return all(claim.stateless.values())


async def create(config_json: str, token_provider: TokenProvider | None = None) -> JsNode:
    """Claim an address, open storage and build the node (not started: see :meth:`start`).

    ``config_json`` holds ``room``, ``relay`` (ws URL), ``members``, and optionally
    ``address``, ``token`` (or, outside the JSON, ``token_provider``: a JavaScript function
    returning the token or a Promise of it, called before each connection, so that an
    expired token is renewed), ``connectTimeout`` (ms, default 15 000) and the timeouts in
    milliseconds (``electionTimeout`` as ``[low, high]``, ``heartbeatFrequency``,
    ``heartbeatTimeout``, ``proposalTimeout``); ``broadcast: false`` turns the
    BroadcastChannel link to this browser's other tabs off; ``portsURL`` is the port
    exchange's script (null: none), through which those tabs trade ports. Raises :class:`RoomFull`,
    :class:`RelayUnreachable` or the relay's :class:`~webraft.transport.relay.RelayClosed`.
    """
    from js import localStorage, sessionStorage

    cfg = json.loads(config_json)
    room = cfg["room"]
    fixed = list(cfg.get("members") or [])
    tab_key = f"webraft/{room}/tab"
    saved = json.loads(sessionStorage.getItem(tab_key) or "{}")
    session = saved.get("session") or os.urandom(16).hex()
    mine = saved.get("address")
    if cfg.get("address"):
        candidates = [cfg["address"]]
    elif fixed:
        candidates = ([mine] if mine in fixed else []) + [m for m in fixed if m != mine]
    else:
        orphans = [a for a in _stored_nodes(room) if a != mine][:MAX_ADOPT]
        candidates = [*([mine] if mine else []), *orphans, f"t-{os.urandom(4).hex()}"]
    # The options are checked before a member slot is claimed: a bad one claims nothing.
    timing = _timing(cfg)
    hidden = _seconds(cfg.get("hiddenElectionDelay"), "hiddenElectionDelay")  # 0: no delay
    timeout = _seconds(cfg.get("connectTimeout"), "connectTimeout")
    client, connection, claim = await _claim(
        room, cfg["relay"], candidates, session,
        token_provider if token_provider is not None else cfg.get("token"),
        timeout or CONNECT_TIMEOUT)
    sessionStorage.setItem(tab_key, json.dumps({"address": client.address,
                                                "session": session}))
    prefix = f"webraft/{room}/{client.address}/"
    if fixed:
        members = fixed
    else:
        timing["auto_membership"] = True
        # Stored state decides by itself; otherwise found only if no present peer can.
        # (getItem gives JavaScript's null, not None, for a missing key)
        stateful = isinstance(localStorage.getItem(prefix + "meta"), str)
        founds = not stateful and await _may_found(connection, claim)
        members = [client.address] if founds else []
    page = helpers()
    storage = LocalStorage(prefix, holds=None if page is None else page.holdsIn(localStorage))
    broadcast = cfg.get("broadcast") is not False
    ports_url = cfg.get("portsURL")
    exchange = (page.portExchange(ports_url)
                if broadcast and page is not None and isinstance(ports_url, str) else None)
    node = BrowserRaft(client, connection, members=members, storage=storage,
                       config=browser_config(**timing),
                       hidden_election_delay=HIDDEN_ELECTION_DELAY if hidden is None else hidden,
                       broadcast=broadcast,
                       ports=None if exchange is None else JsPortExchange(exchange))
    claim.replay(node.relay)  # the node's transport listens to the connection now
    return JsNode(node)


async def create_for_js(config_json: str,
                        token_provider: TokenProvider | None = None) -> JsNode | str:
    """:func:`create` for JavaScript: a webraft error (or a bad option) comes back as JSON
    text ``{"name", "message"[, "code"]}`` so that ``webraft.js`` can throw an ``Error``
    with that name, instead of a ``PythonError`` carrying a traceback."""
    try:
        return await create(config_json, token_provider)
    except (WebraftError, ValueError) as exc:
        fields: dict[str, Any] = {"name": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, RelayClosed):
            fields["code"] = exc.code
        return json.dumps(fields)


def _stored_nodes(room: str) -> list[str]:
    """Addresses whose node state this origin's localStorage holds for ``room``, sorted."""
    from js import localStorage

    prefix, found = f"webraft/{room}/", set()
    for i in range(localStorage.length):
        key = localStorage.key(i) or ""
        if key.startswith(prefix) and key.endswith("/meta"):
            found.add(key[len(prefix):-len("/meta")])
    return sorted(a for a in found if a and "/" not in a)


def _timing(cfg: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~webraft.NodeConfig` fields the page sets: milliseconds from JavaScript
    become the seconds webraft uses. A value of the wrong kind raises ValueError naming the
    page's option; :class:`~webraft.NodeConfig` checks the ranges."""
    timing: dict[str, Any] = {}
    window = cfg.get("electionTimeout")
    if window:
        if not isinstance(window, list) or len(window) != 2 or None in window:
            raise ValueError(f"electionTimeout must be [low, high] in milliseconds, "
                             f"got {window!r}")
        timing["election_timeout"] = tuple(_seconds(ms, "electionTimeout") for ms in window)
    for js_name, name in (("heartbeatFrequency", "heartbeat_frequency"),
                          ("heartbeatTimeout", "heartbeat_timeout"),
                          ("proposalTimeout", "proposal_timeout"),
                          ("memberGrace", "member_grace")):
        seconds = _seconds(cfg.get(js_name), js_name)
        if seconds:  # 0 keeps the default
            timing[name] = seconds
    lazy = _seconds(cfg.get("lazyInterval"), "lazyInterval")
    if lazy is not None:  # 0 turns lazy followers off
        timing["lazy_interval"] = lazy
    for js_name, name in (("snapshotEntries", "snapshot_entries"),
                          ("snapshotBytes", "snapshot_bytes"),
                          ("snapshotTail", "snapshot_tail")):
        count = cfg.get(js_name)
        if count is not None:
            if type(count) is float and count.is_integer():
                count = int(count)  # JavaScript has no integers: 1000 may come as 1000.0
            if type(count) is not int:
                raise ValueError(f"{js_name} must be a whole number, got {count!r}")
            timing[name] = count
    return timing


def _seconds(ms: Any, js_name: str) -> float | None:
    """``ms``, the page's option ``js_name`` in milliseconds, in seconds; None if not given."""
    if ms is None:
        return None
    if type(ms) not in (int, float) or not 0 <= ms < math.inf:
        raise ValueError(f"{js_name} must be a number of milliseconds, at least 0, "
                         f"got {ms!r}")
    return ms / 1000


_ffi: tuple[Any, Any, Any] | None = None


def _pyodide_ffi() -> tuple[Any, Any, Any]:
    """``(to_js, create_once_callable, Object.fromEntries)``, imported once (only Pyodide
    has them; importing per call showed up in profiles)."""
    global _ffi
    if _ffi is None:
        from js import Object
        from pyodide.ffi import create_once_callable, to_js

        _ffi = (to_js, create_once_callable, Object.fromEntries)
    return _ffi


def _to_js(value: Any) -> Any:
    if value is None or value.__class__ in (str, int, float, bool):
        return value  # converted implicitly, and cheaply
    to_js, _, from_entries = _pyodide_ffi()
    return to_js(value, dict_converter=from_entries)


def _error_fields(exc: BaseException) -> tuple[str, str, bool]:
    may = exc.may_have_committed if isinstance(exc, ProposalError) else True
    if isinstance(exc, JsError):
        return exc.name, exc.message, may
    return type(exc).__name__, str(exc), may


def _snapshot_caller(adapter: Any) -> Callable[[int, int], Any]:
    """A ``snapshot`` handler from ``webraft.js``'s adapter, which returns the state as JSON
    text, or a promise of it."""
    def call(index: int, term: int) -> Any:
        result = adapter(index, term)
        if isinstance(result, str):
            return json.loads(result)
        return _parse_later(result)

    return call


async def _parse_later(promise: Any) -> Any:
    return json.loads(await promise)


async def _answer(work: Awaitable[dict[str, Any]]) -> str:
    """The result of ``work`` as JSON text, or ``{"name", "message", "mayHaveCommitted"}``
    of the webraft error it raised: an awaited call from JavaScript then never rejects with
    a Python traceback."""
    try:
        return _encode(await work)
    except WebraftError as exc:
        return _error_json(exc)


def _error_json(exc: BaseException) -> str:
    name, message, may = _error_fields(exc)
    answer = {"name": name, "message": message, "mayHaveCommitted": may}
    seq = getattr(exc, "seq", None)
    if seq is not None:  # a session's ProposalTimeout: retry with it
        answer["seq"] = seq
    return _encode(answer)


def _positive(value: Any) -> bool:
    return value.__class__ is int and value > 0


def _outcome(rid: int, fut: asyncio.Future[int]) -> list[Any]:
    """``[id, index]`` for a committed proposal, ``[id, name, message, may]`` for a failed
    one (a cancelled future was dropped by a closing node)."""
    try:
        return [rid, fut.result()]
    except asyncio.CancelledError:
        return [rid, "RaftClosed", "cancelled", True]
    except Exception as exc:
        return [rid, *_error_fields(exc)]


class JsSession:
    """A client session as JavaScript sees it (``webraft.js`` wraps it in
    ``WebRaftSession``)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    @property
    def id(self) -> int:
        # Only explicit sessions reach JavaScript, and the cluster numbers them; the node's
        # implicit session (a string id) is never handed out.
        session_id = self.session.id
        assert isinstance(session_id, int)
        return session_id

    @property
    def next_seq(self) -> int:
        return self.session.next_seq

    async def propose(self, command_json: str, timeout_ms: float | None = None) -> str:
        """Propose a command (JSON text) exactly once: ``{"index"}`` where it was first
        applied, or an error (see :func:`_answer`)."""
        return await _answer(self._propose(command_json, timeout_ms))

    async def _propose(self, command_json: str, timeout_ms: float | None) -> dict[str, Any]:
        try:
            command = json.loads(command_json)
        except ValueError as exc:
            raise InvalidCommand(f"not JSON: {exc}") from None
        timeout = None if timeout_ms is None else timeout_ms / 1000
        return {"index": await self.session.propose(command, timeout)}


class JsNode:
    """The node as JavaScript sees it (``browser/webraft.js`` wraps it in ``WebRaft``).

    Call :meth:`bind` first with the function that receives proposal outcomes.
    """

    def __init__(self, node: BrowserRaft) -> None:
        self.node = node
        self._settle: Callable[[str], Any] | None = None
        self._backlog: deque[tuple[int, Any, float]] = deque()  # (id, command, since)
        self._continue: asyncio.Handle | None = None  # the next slice of the backlog
        self._pending: deque[tuple[int, asyncio.Future[int]]] = deque()  # in proposal order
        self._settled: list[list[Any]] = []  # outcomes not yet sent to JavaScript
        self._sweep_soon = EndOfTask(self._sweep)  # at the end of the current task
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._waiting_applies: dict[int, Callable[..., None]] = {}  # token -> cb
        self._next_token = 0
        self._listening = False  # to "updated", from this tab's first proposal on

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.node.start()

    async def close(self) -> None:
        if self._continue is not None:
            self._continue.cancel()
            self._continue = None
        await self.node.close()
        for rid, _, _ in self._backlog:
            self._settled.append([rid, "RaftClosed", "closed before it was proposed", False])
        self._backlog.clear()
        self._sweep(full=True)
        self._sweep_soon.close()

    # -- proposals -----------------------------------------------------------------------

    def bind(self, settle: Callable[[str], Any]) -> None:
        """``settle(json)`` receives a JSON array of outcomes: ``[id, index]`` once a
        proposal is committed and applied here, ``[id, name, message, mayHaveCommitted]``
        when it failed."""
        self._settle = settle

    def propose_many(self, first: int, count: int, commands_json: str) -> None:
        """Propose the ``count`` commands of the JSON array ``commands_json``, the k-th with
        id ``first + k``; outcomes go to the function given to :meth:`bind`."""
        try:
            commands = json.loads(commands_json)
            if not isinstance(commands, list) or len(commands) != count:
                raise ValueError(f"expected an array of {count} commands")
        except ValueError as exc:
            self._settled.extend([rid, "InvalidCommand", f"not JSON: {exc}", False]
                                 for rid in range(first, first + count))
            self._want_sweep()
            return
        now = asyncio.get_running_loop().time()
        self._backlog.extend(zip(range(first, first + count), commands, repeat(now, count),
                                 strict=True))
        if self._continue is None:
            self._propose_slice()

    def _propose_slice(self) -> None:
        """Hand the backlog to the node for at most :data:`PROPOSE_SLICE` seconds, then let
        the node persist and send that much, and the page's timers and sockets run before
        continuing.

        The slice's Ready round runs at its end, in this task (the node's :meth:`~webraft.
        runtime.driver.Driver.batch`), rather than one loop turn later: a browser task of
        its own, queued behind whatever the page has, and one more task for every
        sequential proposal."""
        self._continue = None
        with self.node.driver.batch():
            self._hand_over()

    def _hand_over(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + PROPOSE_SLICE
        too_old = now - self.node.proposal_timeout
        # The commands came from json.loads in propose_many: nobody else holds them.
        backlog, pending, propose = self._backlog, self._pending, self.node.propose_decoded
        settled = False
        count = 0
        while backlog and len(pending) < MAX_IN_FLIGHT:
            count += 1
            if not count % 32 and loop.time() >= deadline:
                self._continue = self.node.loop.call_later(PROPOSE_PAUSE, self._propose_slice)
                break
            rid, command, since = backlog.popleft()
            if since < too_old:  # the proposals ahead of it made no progress for that long
                self._settled.append([rid, "ProposalTimeout", "not proposed within the "
                                      "proposal timeout: the proposals ahead of it did not "
                                      "finish", False])
                settled = True
                continue
            fut = propose(command)
            if fut.done():  # refused at once (invalid, closed, ...)
                self._settled.append(_outcome(rid, fut))
                settled = True
            else:
                pending.append((rid, fut))
        if settled:
            self._want_sweep()
        if pending:
            # Tabs that propose nothing do not pay for it. One that does keeps listening: a
            # call per applied entry costs less than listening anew for every proposal.
            if not self._listening:
                self._listening = True
                self.node.listen("updated", self._on_updated)
            self._arm_sweep_timer()

    def _on_updated(self, _index: int) -> None:
        """An entry was applied here: the oldest pending proposals may be done."""
        if self._pending and self._pending[0][1].done():
            self._want_sweep()

    def _want_sweep(self) -> None:
        self._sweep_soon.schedule()

    def _arm_sweep_timer(self) -> None:
        if self._sweep_timer is None:
            self._sweep_timer = self.node.loop.call_later(
                SWEEP_PERIOD, self._periodic_sweep)

    def _periodic_sweep(self) -> None:
        self._sweep_timer = None
        self._sweep(full=True)
        if self._pending:
            self._arm_sweep_timer()

    def _sweep(self, full: bool = False) -> None:
        """Send the outcomes of finished proposals to JavaScript in one call.

        Proposals of one tab finish in the order they were made almost always (consecutive
        log indexes), so the common sweep only looks at the oldest ones; the periodic
        ``full`` sweep catches the rest.
        """
        self._sweep_soon.cancel()
        pending, settled = self._pending, self._settled
        while pending and pending[0][1].done():
            settled.append(_outcome(*pending.popleft()))
        if full and pending:
            still: deque[tuple[int, asyncio.Future[int]]] = deque()
            for rid, fut in pending:
                if fut.done():
                    settled.append(_outcome(rid, fut))
                else:
                    still.append((rid, fut))
            self._pending = pending = still
        if self._backlog and self._continue is None and len(pending) < MAX_IN_FLIGHT:
            # Room in the window again: the next slice in a task of its own, since this may
            # be the end of another task's work (a microtask), which must not grow unbounded.
            self._continue = self.node.loop.call_soon(self._propose_slice)
        if settled and self._settle is not None:
            self._settled = []
            self._settle(_encode(settled))

    def step_down(self) -> str | None:
        """Hand leadership to the most up-to-date member, if leading; returns who."""
        return self.node.transfer_leadership()

    # -- events --------------------------------------------------------------------------

    def listen(self, event: str, handler: Any, once: bool) -> Callable[[], None]:
        """Register a JavaScript handler; returns the function that unregisters it.

        ``apply`` handlers are ``webraft.js``'s adapters: ``(term, index, commandJSON,
        token)`` returning :data:`APPLIED`, :data:`WAITING` (then :meth:`apply_done` follows
        with the token) or ``[name, message]`` of an error.
        """
        call: Callable[..., Any]
        if event == "apply":
            call = self._apply_caller(handler)
        elif event == "snapshot":
            call = _snapshot_caller(handler)
        else:
            def call(*args: Any) -> Any:
                return handler(*self._js_args(event, args))

        if once:
            return self.node.listen_once(event, call)
        return self.node.listen(event, call)

    def _apply_caller(self, adapter: Any) -> Callable[[Entry, int, Callable[..., None]], None]:
        waiting = self._waiting_applies
        storage = self.node.storage
        # The text the tab's storage wrote for the entry, rather than building it twice.
        command_text: Callable[[Entry], str] = (
            storage.command_text if isinstance(storage, LocalStorage)
            else lambda e: json_text(e.command))

        def call(entry: Entry, index: int, cb: Callable[..., None]) -> None:
            self._next_token += 1
            token = self._next_token
            outcome = adapter(entry.term, index, command_text(entry), token)
            if outcome.__class__ is not int:
                cb(JsError(str(outcome[0]), str(outcome[1])))
            elif outcome == APPLIED:
                cb()
            else:  # WAITING
                waiting[token] = cb

        return call

    def snapshot_json(self) -> str:
        """``{"index", "term", "data"}`` of the snapshot a ``refresh`` handler loads (or the
        newest one), as JSON text; ``null`` before the first."""
        snap = self.node.snapshot
        return _encode(None if snap is None else
                       {"index": snap.index, "term": snap.term, "data": snap.data})

    async def read_index(self) -> str:
        """:meth:`~webraft.RaftInterface.read_index` for JavaScript: ``{"index"}`` or an
        error (see :func:`_answer`)."""
        return await _answer(self._read_index())

    async def _read_index(self) -> dict[str, Any]:
        return {"index": await self.node.read_index()}

    # -- client sessions (exactly-once proposals) -----------------------------------------

    async def open_session(self) -> JsSession | str:
        """:meth:`~webraft.RaftInterface.open_session` for JavaScript: the session, or the
        error as JSON text (see :func:`_answer`)."""
        try:
            return JsSession(await self.node.open_session())
        except WebraftError as exc:
            return _error_json(exc)

    def resume_session(self, client_id: int, next_seq: int) -> JsSession:
        """A session opened earlier (by this tab before a reload, or by another node);
        ``next_seq`` is the next proposal's number (see
        :meth:`~webraft.RaftInterface.resume_session`)."""
        if not (_positive(client_id) and _positive(next_seq)):
            raise ValueError("a session id and its next sequence number are positive "
                             "integers")
        return JsSession(self.node.resume_session(client_id, next_seq))

    def set_hidden(self, hidden: bool) -> None:
        self.node.set_hidden(hidden)

    def hand_over_now(self) -> str | None:
        return self.node.hand_over_now()

    def apply_done(self, token: int, name: str | None = None, message: str = "") -> None:
        """An apply handler that returned :data:`WAITING` finished (``name``: it failed)."""
        cb = self._waiting_applies.pop(token, None)
        if cb is not None:
            cb(None if name is None else JsError(name, message))

    def emit(self, event: str, args_json: str) -> None:
        self.node.emit(event, *json.loads(args_json))

    def _js_args(self, event: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if event == "refresh":
            (cb,) = args
            create_once_callable = _pyodide_ffi()[1]
            # The snapshot goes with the call: a handler given to connect() runs before
            # connect() resolves, when the page cannot reach ``raft.snapshot`` yet.
            return (create_once_callable(self._refresh_done(cb)), self.snapshot_json())
        if event == "error":
            (exc,) = args
            name, message, _ = _error_fields(exc)
            return (_to_js({"name": name, "message": message}),)
        return tuple(_to_js(a) for a in args)

    @staticmethod
    def _refresh_done(cb: Callable[..., None]) -> Callable[..., None]:
        """The ``cb`` a JavaScript ``refresh`` handler calls: whole numbers arrive as floats
        and become ints; the runtime checks the rest (``cb()`` means "loaded", an index the
        node cannot go on from is a ``SnapshotNotLoaded`` error and the handler is asked
        again)."""

        def done(*args: Any) -> None:
            cb(*(int(a) if isinstance(a, float) and a.is_integer() else a for a in args))

        return done

    # -- state ---------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.node.address

    @property
    def room(self) -> str:
        return self.node.room

    @property
    def is_leader(self) -> bool:
        return self.node.is_leader

    @property
    def leader(self) -> str | None:
        return self.node.leader

    @property
    def state(self) -> str:
        return self.node.state

    @property
    def term(self) -> int:
        return self.node.term

    @property
    def commit_index(self) -> int:
        return self.node.commit_index

    @property
    def last_applied(self) -> int:
        return self.node.last_applied

    @property
    def members_json(self) -> str:
        return json.dumps(list(self.node.members))

    def set_paused(self, paused: bool) -> None:
        self.node.paused = paused

    def set_online(self, online: bool) -> None:
        self.node.set_online(online)

    def status_json(self) -> str:
        """Everything a dashboard shows, as JSON text."""
        node = self.node
        node.check_stall()  # the count of stalls is the page's, taken on frames and ticks
        core = node.core.status()
        tail = [{"index": e.index, "term": e.term, "kind": e.kind, "command": e.command}
                for e in node.core.last_entries(12)]
        storage = node.storage
        return json.dumps({
            "address": node.address, "room": node.room, "state": core.role,
            "term": core.term, "leader": core.leader, "commitIndex": core.commit_index,
            "lastApplied": node.last_applied, "lastIndex": core.last_index,
            "members": list(core.config.voters), "learners": list(core.config.learners),
            "snapshotIndex": core.snapshot.index, "hidden": node.hidden, "stalls": node.stalls,
            "peers": sorted(node.nodes), "log": tail,
            "connected": node.connected, "online": node.connection.online,
            "paused": node.paused, "connections": node.connection.connections,
            "linked": sorted(node.broadcast.peers) if node.broadcast is not None else [],
            "ported": node.broadcast.ported if node.broadcast is not None else [],
            "sent": dict(node.traffic.sent), "received": dict(node.traffic.received),
            "recent": [{"t": t, "dir": d, "peer": p, "type": k}
                       for t, d, p, k in node.traffic.recent],
            "storageChars": storage.usage() if isinstance(storage, LocalStorage) else None,
        }, default=str)

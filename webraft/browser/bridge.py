"""What ``browser/webraft.js`` calls: start a node in this tab and expose it to JavaScript.

Starting a node in a tab takes three steps, in an order that matters:

1. **Claim an address.** The room has a fixed set of member slots (``members``). The tab
   tries them in order, its own previous slot first (kept with its relay session in
   ``sessionStorage``, so a reload is the same node), and the relay grants each address to
   one session at a time (4008 otherwise). Only the relay can arbitrate between tabs opened
   at the same moment, so the claim happens *before* anything else.
2. **Open storage** in ``localStorage`` under ``webraft/<room>/<address>/``. Loading
   garbage-collects keys of an interrupted write, which is only safe for a namespace nobody
   else writes: the claim in step 1 is what guarantees that.
3. **Build the node** on the already-joined connection, replaying what arrived meanwhile.

:class:`JsNode` is the handle JavaScript holds: plain values in and out (JSON text for
commands), callbacks for results, and listeners whose arguments are converted to JavaScript.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import ProposalError, WebraftError
from ..storage.localstorage import LocalStorage
from ..transport.relay import RelayClient, RelayClosed
from .transport import ADDRESS_TAKEN, BrowserConnection, BrowserRaft

__all__ = ["JsNode", "RoomFull", "create"]


class RoomFull(WebraftError):
    """Every member slot of the room is held by another tab."""


class _Claim:
    """Listens to a connection until the relay grants or refuses its address.

    Events that arrive after the welcome (peers joining, the first Raft messages) are kept
    and replayed to the node once it exists.
    """

    def __init__(self) -> None:
        self.outcome: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def relay_welcome(self, peers: tuple[str, ...]) -> None:
        if not self.outcome.done():
            self.outcome.set_result(peers)
        self.events.append(("relay_welcome", (peers,)))

    def relay_join(self, address: str) -> None:
        self.events.append(("relay_join", (address,)))

    def relay_leave(self, address: str) -> None:
        self.events.append(("relay_leave", (address,)))

    def relay_data(self, sender: str, data: Any) -> None:
        self.events.append(("relay_data", (sender, data)))

    def relay_error(self, exc: Exception) -> None:
        if isinstance(exc, RelayClosed) and not self.outcome.done():
            self.outcome.set_exception(exc)

    def replay(self, node: BrowserRaft) -> None:
        for method, args in self.events:
            getattr(node, method)(*args)


async def _claim(room: str, url: str, candidates: list[str], session: str,
                 token: str | None) -> tuple[RelayClient, BrowserConnection, _Claim]:
    for address in candidates:
        client = RelayClient(room, address, session=session, token=token)
        claim = _Claim()
        connection = BrowserConnection(url, client, claim)
        connection.start()
        try:
            await claim.outcome
        except RelayClosed as exc:
            await connection.close()
            if exc.code == ADDRESS_TAKEN:
                continue
            raise
        return client, connection, claim
    raise RoomFull(f"room {room!r} is full: {', '.join(candidates)} are all taken")


async def create(config_json: str) -> JsNode:
    """Claim an address, open storage and build the node (not started: see :meth:`start`).

    ``config_json`` holds ``room``, ``relay`` (ws URL), ``members``, and optionally
    ``address``, ``token`` and the timeouts in milliseconds (``electionTimeout`` as
    ``[low, high]``, ``heartbeatFrequency``, ``heartbeatTimeout``, ``proposalTimeout``).
    """
    from js import sessionStorage

    cfg = json.loads(config_json)
    room, members = cfg["room"], list(cfg["members"])
    tab_key = f"webraft/{room}/tab"
    saved = json.loads(sessionStorage.getItem(tab_key) or "{}")
    session = saved.get("session") or secrets.token_hex(16)
    if cfg.get("address"):
        candidates = [cfg["address"]]
    else:
        mine = saved.get("address")
        candidates = ([mine] if mine in members else []) + [m for m in members if m != mine]
    client, connection, claim = await _claim(room, cfg["relay"], candidates, session,
                                             cfg.get("token"))
    sessionStorage.setItem(tab_key, json.dumps({"address": client.address,
                                                "session": session}))
    storage = LocalStorage(f"webraft/{room}/{client.address}/")
    node = BrowserRaft(client, connection, members=members, storage=storage,
                       timing=_timing(cfg))
    connection.listener = node
    claim.replay(node)
    return JsNode(node)


def _timing(cfg: dict[str, Any]) -> dict[str, Any]:
    """Milliseconds from JavaScript to the seconds webraft uses."""
    timing: dict[str, Any] = {}
    if cfg.get("electionTimeout"):
        low, high = cfg["electionTimeout"]
        timing["election_timeout"] = (low / 1000, high / 1000)
    for js_name, name in (("heartbeatFrequency", "heartbeat_frequency"),
                          ("heartbeatTimeout", "heartbeat_timeout"),
                          ("proposalTimeout", "proposal_timeout")):
        if cfg.get(js_name):
            timing[name] = cfg[js_name] / 1000
    return timing


def _to_js(value: Any) -> Any:
    from js import Object
    from pyodide.ffi import to_js

    return to_js(value, dict_converter=Object.fromEntries)


def _error_fields(exc: BaseException) -> tuple[str, str, bool]:
    may = exc.may_have_committed if isinstance(exc, ProposalError) else True
    return type(exc).__name__, str(exc), may


class JsNode:
    """The node as JavaScript sees it (``browser/webraft.js`` wraps it in ``WebRaft``)."""

    def __init__(self, node: BrowserRaft) -> None:
        self.node = node

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.node.start()

    async def close(self) -> None:
        await self.node.close()

    # -- proposals -----------------------------------------------------------------------

    def propose(self, text: str, resolve: Any, reject: Any) -> None:
        """Propose the JSON ``text``; ``resolve(index)`` or ``reject(name, message, may)``."""
        try:
            command = json.loads(text)
        except ValueError as exc:
            reject("InvalidCommand", f"not JSON: {exc}", False)
            return
        future = self.node.propose(command)

        def done(fut: asyncio.Future[int]) -> None:
            if fut.cancelled():
                reject("RaftClosed", "cancelled", True)
            elif fut.exception() is not None:
                reject(*_error_fields(fut.exception()))  # type: ignore[arg-type]
            else:
                resolve(fut.result())

        future.add_done_callback(done)

    def step_down(self) -> str | None:
        """Hand leadership to the most up-to-date member, if leading; returns who."""
        return self.node.transfer_leadership()

    # -- events --------------------------------------------------------------------------

    def listen(self, event: str, handler: Any, once: bool) -> Callable[[], None]:
        """Register a JavaScript handler; returns the function that unregisters it."""

        def call(*args: Any) -> Any:
            return handler(*self._js_args(event, args))

        if once:
            return self.node.listen_once(event, call)
        return self.node.listen(event, call)

    def emit(self, event: str, args_json: str) -> None:
        self.node.emit(event, *json.loads(args_json))

    @staticmethod
    def _js_args(event: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        from pyodide.ffi import create_once_callable

        if event == "apply":
            entry, index, cb = args
            js_entry = _to_js({"term": entry.term, "index": index, "command": entry.command})
            return js_entry, index, create_once_callable(lambda err=None: cb(err))
        if event == "refresh":
            (cb,) = args
            return (create_once_callable(lambda term=0, index=0: cb(int(term), int(index))),)
        if event == "error":
            (exc,) = args
            name, message, _ = _error_fields(exc)
            return (_to_js({"name": name, "message": message}),)
        return tuple(_to_js(a) for a in args)

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
        log = node.core.log
        tail = [{"index": e.index, "term": e.term, "kind": e.kind, "command": e.command}
                for e in log.entries[-12:]]
        storage = node.storage
        return json.dumps({
            "address": node.address, "room": node.room, "state": node.state,
            "term": node.term, "leader": node.leader, "commitIndex": node.commit_index,
            "lastApplied": node.last_applied, "lastIndex": log.last_index,
            "members": list(node.members), "peers": sorted(node.nodes), "log": tail,
            "connected": node.connected, "online": node.connection.online,
            "paused": node.paused, "connections": node.connection.connections,
            "sent": dict(node.traffic.sent), "received": dict(node.traffic.received),
            "recent": [{"t": t, "dir": d, "peer": p, "type": k}
                       for t, d, p, k in node.traffic.recent],
            "storageChars": storage.usage() if isinstance(storage, LocalStorage) else None,
        }, default=str)

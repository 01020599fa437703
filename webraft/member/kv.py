"""A replicated key-value store: the state machine of ``python -m webraft.member``.

Owns :class:`KVStore` and its commands. Imports the core's :class:`Entry` only; never the
runtime, a storage or a transport, so it loads anywhere.

Commands are JSON objects, proposed through Raft and applied in log order on every node:

* ``{"op": "put", "key": K, "value": V}`` sets ``K`` (a string) to any JSON value ``V``;
* ``{"op": "del", "key": K}`` removes ``K`` (a no-op if absent);
* ``{"op": "cas", "key": K, "value": V, "expected": E}`` sets ``K`` to ``V`` only if it holds
  ``E``; without ``"expected"``, only if ``K`` is absent (compare-and-set).

Each has an outcome, computed when it is applied, so the same on every node:
``{"index": i}`` for a put, plus ``"deleted"`` (whether the key was there) for a del and
``"swapped"`` (whether the comparison held) for a cas, where ``i`` is the entry's log index.

A command may carry a client request id, ``"id": R`` (a string): the store remembers the
outcomes of the last :data:`REMEMBERED_REQUESTS` ids, in apply order (so every node remembers
the same ones, and the snapshot carries them). A command whose id is remembered is not applied
again: its outcome is the first one. So a client that lost an answer can retry through any
member, and its command takes effect once; a retry must come before that many other requests
are applied, and an id must not be reused for another command.

Applying must be deterministic and must never fail: every node applies the same log, and a
handler that raised would be retried forever by the runtime. So a command that is not one of
the above (another client may propose anything) is *ignored* the same way on every node and
counted in :attr:`KVStore.ignored`; :func:`check_command` lets a front end refuse such
commands before proposing them.

Reads are local (:meth:`KVStore.get`): they see what this node has applied, which may lag the
leader. Durability comes from the node's storage, not from this object: the store is the
node's snapshot (taken through the ``snapshot`` handler, so the log stays short) plus the
committed entries after it. On start, and when a leader sends a snapshot to a follower that
fell behind, the ``refresh`` handler loads the snapshot; the entries after it are applied again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.messages import Entry

__all__ = ["MAX_KEY_LENGTH", "MAX_REQUEST_ID_LENGTH", "REMEMBERED_REQUESTS", "KVStore", "cas",
           "check_command", "check_request_id", "delete", "put", "same_json"]

#: Longest key accepted (in characters): keys travel in URLs and log lines.
MAX_KEY_LENGTH = 1024
#: Longest client request id accepted (in characters).
MAX_REQUEST_ID_LENGTH = 128
#: Request ids (with their outcomes) the store remembers; the oldest applied is forgotten
#: first. Outcomes are a few small fields, so this bounds memory and snapshot size.
REMEMBERED_REQUESTS = 10_000


def _with_id(command: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    if request_id is not None:
        command["id"] = request_id
    return command


def put(key: str, value: Any, request_id: str | None = None) -> dict[str, Any]:
    """The command that sets ``key`` to ``value``."""
    return _with_id({"op": "put", "key": key, "value": value}, request_id)


def delete(key: str, request_id: str | None = None) -> dict[str, Any]:
    """The command that removes ``key``."""
    return _with_id({"op": "del", "key": key}, request_id)


def cas(key: str, value: Any, *, expected: Any = None, absent: bool = False,
        request_id: str | None = None) -> dict[str, Any]:
    """The command that sets ``key`` to ``value`` if it holds ``expected`` (or, with
    ``absent``, if it holds nothing)."""
    command = {"op": "cas", "key": key, "value": value}
    if not absent:
        command["expected"] = expected
    return _with_id(command, request_id)


def check_request_id(request_id: Any) -> str:
    """Return ``request_id`` if it is a valid client request id, else raise ValueError."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_LENGTH:
        raise ValueError(f"a request id must be a string of 1-{MAX_REQUEST_ID_LENGTH} "
                         "characters")
    return request_id


def check_command(command: Any) -> dict[str, Any]:
    """Return ``command`` if the store would apply it, else raise ValueError saying why."""
    if not isinstance(command, dict):
        raise ValueError("a command must be an object")
    op = command.get("op")
    key = command.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"'key' must be a string of 1-{MAX_KEY_LENGTH} characters")
    if op in ("put", "cas"):
        if "value" not in command:
            raise ValueError(f"a {op} needs a 'value'")
    elif op != "del":
        raise ValueError(f"unknown op {op!r:.40}; expected 'put', 'del' or 'cas'")
    if "id" in command:
        check_request_id(command["id"])
    return command


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same value: ``1``, ``1.0`` and ``true`` differ, as
    they do in JSON text. Iterative, so no nesting depth makes applying raise."""
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            pairs.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


class KVStore:
    """The applied state: a dict, the index of the last entry applied, a count of ignored
    commands, and the outcomes of recent requests by id. Attach it to a node with
    :meth:`attach` before the node starts."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.last_applied = 0
        self.ignored = 0
        #: Outcomes by request id, oldest applied first (see the module docstring).
        self.requests: dict[str, dict[str, Any]] = {}
        #: Snapshots this store handed its node (not part of the state: a count for metrics).
        self.snapshots_taken = 0
        self._raft: Any = None

    def attach(self, raft: Any) -> Callable[[], None]:
        """Apply ``raft``'s committed entries here, and snapshot and restore this store through
        its ``snapshot`` and ``refresh`` events; returns a function that detaches."""
        self._raft = raft
        offs = [raft.listen("apply", self._on_apply), raft.listen("snapshot", self._on_snapshot),
                raft.listen("refresh", self._on_refresh)]

        def detach() -> None:
            for off in offs:
                off()

        return detach

    def snapshot(self, index: int = 0, term: int = 0) -> dict[str, Any]:
        """The store as JSON-able data (the node serializes it before applying goes on)."""
        return {"data": self.data, "ignored": self.ignored,
                "requests": [[rid, outcome] for rid, outcome in self.requests.items()]}

    def restore(self, index: int, state: Any) -> None:
        """Load a :meth:`snapshot` taken at ``index`` (what is malformed in it is left out:
        a snapshot is storage, and storage is not trusted)."""
        if not isinstance(state, dict):
            state = {}
        data = state.get("data")
        self.data = dict(data) if isinstance(data, dict) else {}
        ignored = state.get("ignored")
        self.ignored = ignored if isinstance(ignored, int) else 0
        requests = state.get("requests")
        self.requests = {
            pair[0]: pair[1] for pair in (requests if isinstance(requests, list) else [])
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            and isinstance(pair[1], dict)}
        self.last_applied = index

    def _on_snapshot(self, index: int, term: int) -> dict[str, Any]:
        self.snapshots_taken += 1
        return self.snapshot(index, term)

    def _on_refresh(self, cb: Callable[..., None]) -> None:
        snap = self._raft.snapshot
        if snap is None:
            cb()  # no snapshot: start empty, the whole log is applied
            return
        self.restore(snap.index, snap.data)
        cb(snap.term, snap.index)

    def _on_apply(self, entry: Entry, index: int, cb: Callable[..., None]) -> None:
        self.apply(index, entry.command)
        cb()

    def apply(self, index: int, command: Any) -> dict[str, Any] | None:
        """Apply the command at log ``index``; its outcome (the first one, for a request id
        seen before), or None if it was ignored. Never raises (see the module docstring)."""
        self.last_applied = index
        try:
            check_command(command)
        except ValueError:
            self.ignored += 1
            return None
        request_id = command.get("id")
        if request_id is not None and request_id in self.requests:
            return self.requests[request_id]
        key = command["key"]
        outcome: dict[str, Any] = {"index": index}
        if command["op"] == "put":
            self.data[key] = command["value"]
        elif command["op"] == "del":
            outcome["deleted"] = key in self.data
            self.data.pop(key, None)
        else:
            if "expected" in command:
                swapped = key in self.data and same_json(self.data[key], command["expected"])
            else:
                swapped = key not in self.data
            if swapped:
                self.data[key] = command["value"]
            outcome["swapped"] = swapped
        if request_id is not None:
            self.requests[request_id] = outcome
            if len(self.requests) > REMEMBERED_REQUESTS:
                del self.requests[next(iter(self.requests))]
        return outcome

    def outcome(self, request_id: str) -> dict[str, Any] | None:
        """The outcome of the request ``request_id``, while it is remembered."""
        return self.requests.get(request_id)

    def get(self, key: str, default: Any = None) -> Any:
        """The value this node has applied for ``key``."""
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

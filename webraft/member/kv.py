"""A replicated key-value store: the state machine of ``python -m webraft.member``.

Commands are JSON objects, proposed through Raft and applied in log order on every node:

* ``{"op": "put", "key": K, "value": V}`` sets ``K`` (a string) to any JSON value ``V``;
* ``{"op": "del", "key": K}`` removes ``K`` (a no-op if absent).

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

__all__ = ["MAX_KEY_LENGTH", "KVStore", "check_command", "delete", "put"]

#: Longest key accepted (in characters): keys travel in URLs and log lines.
MAX_KEY_LENGTH = 1024


def put(key: str, value: Any) -> dict[str, Any]:
    """The command that sets ``key`` to ``value``."""
    return {"op": "put", "key": key, "value": value}


def delete(key: str) -> dict[str, Any]:
    """The command that removes ``key``."""
    return {"op": "del", "key": key}


def check_command(command: Any) -> dict[str, Any]:
    """Return ``command`` if the store would apply it, else raise ValueError saying why."""
    if not isinstance(command, dict):
        raise ValueError("a command must be an object")
    op = command.get("op")
    key = command.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"'key' must be a string of 1-{MAX_KEY_LENGTH} characters")
    if op == "put":
        if "value" not in command:
            raise ValueError("a put needs a 'value'")
    elif op != "del":
        raise ValueError(f"unknown op {op!r:.40}; expected 'put' or 'del'")
    return command


class KVStore:
    """The applied state: a dict, the index of the last entry applied, and a count of ignored
    commands. Attach it to a node with :meth:`attach` before the node starts."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.last_applied = 0
        self.ignored = 0
        self._raft: Any = None

    def attach(self, raft: Any) -> Callable[[], None]:
        """Apply ``raft``'s committed entries here, and snapshot and restore this store through
        its ``snapshot`` and ``refresh`` events; returns a function that detaches."""
        self._raft = raft
        offs = [raft.listen("apply", self._on_apply), raft.listen("snapshot", self.snapshot),
                raft.listen("refresh", self._on_refresh)]

        def detach() -> None:
            for off in offs:
                off()

        return detach

    def snapshot(self, index: int = 0, term: int = 0) -> dict[str, Any]:
        """The store as JSON-able data (the node serializes it before applying goes on)."""
        return {"data": self.data, "ignored": self.ignored}

    def restore(self, index: int, state: Any) -> None:
        """Load a :meth:`snapshot` taken at ``index``."""
        data = state.get("data") if isinstance(state, dict) else None
        self.data = dict(data) if isinstance(data, dict) else {}
        ignored = state.get("ignored") if isinstance(state, dict) else 0
        self.ignored = ignored if isinstance(ignored, int) else 0
        self.last_applied = index

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

    def apply(self, index: int, command: Any) -> None:
        """Apply the command at log ``index`` (never raises; see the module docstring)."""
        self.last_applied = index
        try:
            check_command(command)
        except ValueError:
            self.ignored += 1
            return
        if command["op"] == "put":
            self.data[command["key"]] = command["value"]
        else:
            self.data.pop(command["key"], None)

    def get(self, key: str, default: Any = None) -> Any:
        """The value this node has applied for ``key``."""
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

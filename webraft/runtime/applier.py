"""Committed entries into the application: the apply queue, refresh, snapshots and sessions.

Owns what the application has applied (last applied index and term, the replicated session
table, entries still to apply) and the handlers' protocol: ``apply``, ``refresh``, ``snapshot``
and ``updated``. Imports the core's types and the session table; it must not import the driver,
the proposals or the membership policy, which it reaches through the node.

Entries are applied strictly in order. Synchronous handlers run in one loop over the queue
(bounded in time, so that a long backlog never starves heartbeats); the first handler that
finishes later moves the rest to a task. A snapshot to load (from the leader, or older
application state after a restart) stops the queue until the ``refresh`` handler reports it
loaded. The handlers of ``apply``, ``updated`` and ``snapshot`` are looked up once per slice
(at most :data:`APPLY_SLICE` long), not per entry: one registered during a slice (by a
handler) takes part from the next.

An ``apply`` handler gets the log's own entry, not a copy: its ``command`` is the
application's command, and its ``kind`` :data:`~webraft.core.messages.COMMAND`, or
:data:`~webraft.core.messages.SESSION` for a command proposed in a session (every plain
``propose``), whose ``client`` and ``seq`` say which.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.messages import COMMAND, SESSION, Entry
from ..core.raft import Ready
from ..core.sessions import APPLY, SessionTable, pack_snapshot, unpack_snapshot
from ..core.state import SnapshotMeta
from ..errors import RaftClosed, SnapshotNotLoaded, WebraftError

if TYPE_CHECKING:
    from .interface import RaftInterface

logger = logging.getLogger("webraft")

#: Longest the application's apply handlers run in one go before yielding to the event loop.
APPLY_SLICE = 0.01
#: Pause between two such slices.
APPLY_PAUSE = 0.002
#: What a ``refresh`` callback's arguments default to: ``cb()`` says nothing about an index.
_UNSAID: Any = object()


@dataclass(frozen=True, slots=True)
class Load:
    """In the apply queue: the application must load this snapshot before going on."""

    meta: SnapshotMeta
    text: str


class _Callback:
    """The ``cb`` given to an apply handler: records the outcome, wakes a waiter if any."""

    __slots__ = ("called", "error", "future")

    def __init__(self) -> None:
        self.called = False
        self.error: BaseException | None = None
        self.future: asyncio.Future[BaseException | None] | None = None

    def __call__(self, exc: object = None) -> None:
        if self.called:
            return
        self.called = True
        if exc is not None:
            self.error = exc if isinstance(exc, BaseException) else WebraftError(str(exc))
        if self.future is not None and not self.future.done():
            self.future.set_result(self.error)


#: What starting an apply handler gave: None (done), an error, or an awaitable of either.
_Outcome = BaseException | Awaitable[BaseException | None] | None


class Applier:
    """Hands committed entries and snapshots to the application, in order."""

    def __init__(self, node: RaftInterface, applied: int, snapshot_text: str | None) -> None:
        self.node = node
        self.core = node.core
        #: Index and term of the last entry the application has fully applied.
        self.last_applied = applied
        self.applied_term = 0
        #: The replicated session table, as of :attr:`last_applied`.
        self.sessions = unpack_snapshot(snapshot_text or "")[1] if applied else SessionTable()
        #: The snapshot a ``refresh`` handler is loading, if any.
        self.loading: Load | None = None
        #: Inside the apply loop: an entry may be half applied.
        self.pumping = False
        self._queue: deque[Entry | Load] = deque()
        self._task: asyncio.Task[None] | None = None  # a handler completing asynchronously
        self._resume: asyncio.Handle | None = None  # the next slice of a long backlog
        self._gate: asyncio.Future[None] | None = None  # open once the app told its index
        self._skip_to = 0
        self._skip_term: int | None = None
        # Applied since the last snapshot, in entries and approximate bytes.
        self._since_snapshot = 0
        self._since_snapshot_bytes = 0
        self._index_watchers: dict[int, list[asyncio.Future[None]]] = {}  # until applied

    def start(self) -> None:
        if self.node.listeners("refresh"):
            self._request_refresh()  # the application tells where it is
        else:
            self._need_snapshot(0)  # it starts empty

    def take(self, rd: Ready) -> None:
        """Queue what a Ready round committed or installed, and apply what can be."""
        if rd.install and rd.snapshot is not None and rd.snapshot_data is not None:
            # Everything still queued is older than the snapshot, which replaces it.
            self._queue.clear()
            self._queue.append(Load(rd.snapshot, rd.snapshot_data))
        if rd.committed:
            self._queue.extend(rd.committed)
        if rd.install or rd.committed:
            self.pump()

    def wait_applied(self, index: int) -> asyncio.Future[None] | None:
        """A future that resolves once entry ``index`` is applied (None: it is already)."""
        if self.last_applied >= index:
            return None
        watcher: asyncio.Future[None] = self.node.loop.create_future()
        self._index_watchers.setdefault(index, []).append(watcher)
        return watcher

    def close(self) -> None:
        for watchers in self._index_watchers.values():
            for watcher in watchers:
                if not watcher.done():
                    watcher.set_exception(RaftClosed(may_have_committed=False))
        self._index_watchers.clear()
        if self._task is not None:
            self._task.cancel()
        if self._resume is not None:
            self._resume.cancel()

    # ------------------------------------------------------------------ refresh

    def _request_refresh(self, load: Load | None = None) -> None:
        """Emit ``refresh``: the application reports its state (``load`` None, at start) or
        loads the snapshot ``load``; applying waits until its callback comes."""
        node = self.node
        gate: asyncio.Future[None] = node.loop.create_future()
        self._gate, self.loading = gate, load

        def cb(term: Any = _UNSAID, index: Any = _UNSAID) -> None:
            if gate.done():
                return
            said = not (term is _UNSAID and index is _UNSAID)  # cb(): empty, or loaded
            if not said:
                term = index = 0
            if type(index) is not int or type(term) is not int or index < 0 or term < 0:
                node.emit("error", WebraftError(f"refresh callback got ({term!r}, {index!r})"))
                return
            if load is None:
                self._skip_to, self._skip_term = index, term
                self._need_snapshot(index)
            elif said and (index, term) != (load.meta.index, load.meta.term):
                meta = load.meta
                node.emit("error", SnapshotNotLoaded(
                    f"the refresh handler reported ({term}, {index}), but this node's log "
                    f"starts after its snapshot at index {meta.index} (term {meta.term}): "
                    "load the snapshot's data (raft.snapshot; in JavaScript also the "
                    "handler's second argument) and call cb(snapshot.term, snapshot.index), "
                    f"here cb({meta.term}, {meta.index}), or cb(); asking again in 1 s"))
                node.loop.call_later(1.0, self._refresh_again, gate, cb)
                return
            else:
                self._snapshot_loaded(load)
            self.loading = None
            gate.set_result(None)
            self.pump()

        self._refresh_again(gate, cb)

    def _refresh_again(self, gate: asyncio.Future[None], cb: Callable[..., None]) -> None:
        node = self.node
        if gate.done() or node.closed:
            return
        if not node.listeners("refresh") and self.loading is not None:
            node.emit("error", WebraftError(
                "a snapshot must be loaded but no refresh handler is registered"))
            node.loop.call_later(1.0, self._refresh_again, gate, cb)
            return
        node.emit("refresh", cb)

    def _need_snapshot(self, applied: int) -> None:
        """The application's state is at ``applied``: if the node's snapshot is newer, the
        entries in between are gone, so the application loads the snapshot first."""
        meta = self.core.status().snapshot
        if applied < meta.index:
            self._queue.appendleft(Load(meta, self.core.snapshot_data))

    def _snapshot_loaded(self, load: Load) -> None:
        """The application loaded the snapshot: it has applied up to its index."""
        meta = load.meta
        self.sessions = unpack_snapshot(load.text)[1]
        self._since_snapshot = self._since_snapshot_bytes = 0
        self.last_applied = meta.index
        proposals = self.node.proposals
        # Waiters inside the snapshot first: their entries committed, whatever their term.
        # Only those past it, of older terms, can no longer commit.
        proposals.snapshot_loaded(meta.index)
        if meta.term > self.applied_term:
            self.applied_term = meta.term
            proposals.drop_dead_waiters(meta.term)
        for index in [i for i in self._index_watchers if i <= meta.index]:
            for watcher in self._index_watchers.pop(index):
                if not watcher.done():
                    watcher.set_result(None)

    # ------------------------------------------------------------------ applying

    def pump(self) -> None:
        """Apply queued entries in order; synchronous handlers never leave this loop.

        The first handler that does not finish at once (its ``cb`` comes later, it is a
        coroutine, or it failed and must be retried) moves the rest to a task.
        """
        if (self._task is not None or self._resume is not None
                or (self._gate is not None and not self._gate.done())):
            return
        pumping, self.pumping = self.pumping, True
        try:
            self._pump_slice()
        finally:
            self.pumping = pumping

    def _pump_slice(self) -> None:
        node = self.node
        if node.closed:  # asked once: close() is a coroutine, so it cannot begin in a slice
            return
        handlers = node.listeners("apply")
        updated = node.has_listeners("updated")
        snapshots = node.has_listeners("snapshot")
        loop = node.loop
        deadline = loop.time() + APPLY_SLICE
        count = 0
        queue = self._queue
        record = self.sessions.apply  # a Load, which replaces the table, ends the slice
        proposals = node.proposals
        # This node's proposals waiting for their outcome (the dicts stay the same objects).
        implicit, explicit = proposals.implicit.waiting, proposals.waiting
        while queue:
            count += 1
            if not count % 64 and loop.time() >= deadline:
                # A long backlog must not starve the loop: heartbeats, answers and timers
                # run between slices, or this node would look dead to its peers. A short
                # timer rather than call_soon: on Pyodide, chained call_soon tasks starve
                # the page's timers.
                self._resume = loop.call_later(APPLY_PAUSE, self._resume_apply)
                return
            entry = queue.popleft()
            if isinstance(entry, Load):
                self._request_refresh(entry)
                return
            if entry.index <= self._skip_to:
                self._skipped(entry)
                continue
            kind = entry.kind
            if kind == SESSION:  # every plain proposal: inline
                verdict, first = record(entry)
                if implicit or explicit:  # a proposal of this node may be this one
                    proposals.session_applied(entry, verdict, first)
                apply = verdict == APPLY
            else:
                apply = kind == COMMAND
            if apply:
                for i, handler in enumerate(handlers):
                    outcome = _start_apply(handler, entry)
                    if outcome is not None:
                        self._task = loop.create_task(
                            self._apply_slowly(entry, handlers[i:], outcome))
                        return
            if self._applied(entry, apply and updated, snapshots):
                pending = self._take_snapshot()
                if pending is not None:
                    self._task = loop.create_task(self._apply_after(pending))
                    return

    def _resume_apply(self) -> None:
        self._resume = None
        self.pump()

    async def _apply_slowly(self, entry: Entry, handlers: list[Callable[..., Any]],
                            outcome: _Outcome) -> None:
        """Finish applying ``entry``: the rest of ``handlers``, the first of which started
        with ``outcome``."""
        node = self.node
        try:
            for handler in handlers:
                if outcome is None:
                    outcome = _start_apply(handler, entry)
                delay = 0.01
                while outcome is not None:
                    error = outcome if isinstance(outcome, BaseException) else await outcome
                    if error is None:
                        break
                    logger.error("%s: apply of %d failed, retrying: %r", node.address,
                                 entry.index, error)
                    node.emit("error", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    outcome = _start_apply(handler, entry)
                outcome = None
            if self._applied(entry, node.has_listeners("updated"),
                             node.has_listeners("snapshot")):
                pending = self._take_snapshot()
                if pending is not None:
                    await pending
        finally:
            self._task = None
        self.pump()

    async def _apply_after(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        finally:
            self._task = None
        self.pump()

    def _skipped(self, entry: Entry) -> None:
        if entry.kind == SESSION:
            self.sessions.apply(entry)  # the application has it; the table must too
        if entry.index == self._skip_to and entry.term != self._skip_term:
            self.node.emit("error", WebraftError(
                f"application state is at ({self._skip_term}, {entry.index}) but the log has "
                f"term {entry.term} there"))
        self._applied(entry, False, self.node.has_listeners("snapshot"))

    def _applied(self, entry: Entry, updated: bool, snapshots: bool) -> bool:
        """``entry`` counts as applied now: emit ``updated`` if ``updated`` (the application
        saw it and the event has handlers); return whether a snapshot is due (checked here,
        once per entry, rather than by another call; never without ``snapshots``, a
        ``snapshot`` handler)."""
        node = self.node
        self._since_snapshot += 1
        index, term = entry.index, entry.term
        self.last_applied = index
        proposals = node.proposals
        if term > self.applied_term:
            self.applied_term = term
            proposals.drop_dead_waiters(term)
        if proposals.settling is not None or proposals.held:  # a call less on a follower
            proposals.applied(index, term)
        if self._index_watchers:
            for watcher in self._index_watchers.pop(index, ()):
                if not watcher.done():
                    watcher.set_result(None)
        if updated:
            node.emit("updated", index)
        if not snapshots:
            return False
        self._since_snapshot_bytes += entry.size  # sizes only matter to the threshold
        config = node.config
        return (self._since_snapshot >= config.snapshot_entries
                or self._since_snapshot_bytes >= config.snapshot_bytes)

    # ------------------------------------------------------------------ snapshots

    def _take_snapshot(self) -> Awaitable[None] | None:
        """Ask the ``snapshot`` handler for the state as of the last applied entry and compact
        the log with it; return an awaitable when the handler answers later (applying waits
        for it, so the state it returns is exactly that entry's)."""
        self._since_snapshot = self._since_snapshot_bytes = 0  # a failure retries later
        index = self.last_applied
        handlers = self.node.listeners("snapshot")
        if not handlers:
            return None  # removed during the slice
        try:
            result = handlers[0](index, self.applied_term)
        except Exception as exc:
            self._snapshot_failed(exc)
            return None
        if inspect.isawaitable(result):
            return self._compact_when_ready(result, index)
        self._compact(index, result)
        return None

    async def _compact_when_ready(self, result: Awaitable[Any], index: int) -> None:
        try:
            data = await result
        except Exception as exc:
            self._snapshot_failed(exc)
            return
        self._compact(index, data)

    def _compact(self, index: int, data: Any) -> None:
        try:
            text = pack_snapshot(data, self.sessions)
        except (TypeError, ValueError, RecursionError) as exc:
            self._snapshot_failed(exc)
            return
        try:
            self.core.compact(index, text, self.node.config.snapshot_tail)
        except ValueError:
            return  # a snapshot from the leader overtook this one
        self.node.kick()

    def _snapshot_failed(self, exc: BaseException) -> None:
        logger.error("%s: snapshot handler failed: %r", self.node.address, exc)
        self.node.emit("error", exc)


def _start_apply(handler: Callable[..., Any], entry: Entry) -> _Outcome:
    """Call one apply handler; report its outcome without waiting if it is already known."""
    cb = _Callback()
    try:
        result = handler(entry, entry.index, cb)
    except Exception as exc:
        return exc
    if result is not None and inspect.isawaitable(result):
        return _await_handler(result)
    if cb.called:
        return cb.error
    cb.future = asyncio.get_running_loop().create_future()
    return cb.future


async def _await_handler(result: Awaitable[Any]) -> BaseException | None:
    try:
        await result
    except Exception as exc:
        return exc
    return None

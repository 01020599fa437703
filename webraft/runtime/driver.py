"""The Ready loop: persist, then send, then hand over to proposals and the applier, then advance.

Owns the drive state (one round at a time, the round kicked for the next loop turn, the core's
timer) and the storage retries. Imports the core and the storage interface; it must not import
the proposals, applier or membership modules, which it reaches through the node it serves.

One round persists the core's Ready before anything that depends on it leaves: a vote is
saved before the vote is sent, entries before they are acknowledged. A leader's appends,
which promise nothing stored (``Ready.send_first``), leave before its save instead.

Messages and proposals that arrive while a save is in progress are stepped into the core at
once and leave together in the next Ready, which is where batching under load comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..core.events import LeaderChanged
from ..core.messages import Message, encode
from ..core.raft import Ready
from ..core.state import StorageUpdate
from ..errors import RaftClosed
from .events import seed_events

if TYPE_CHECKING:
    from .interface import RaftInterface

logger = logging.getLogger("webraft")


class Driver:
    """Runs the core's Ready rounds for one node, never two at once."""

    def __init__(self, node: RaftInterface) -> None:
        self.node = node
        self.core = node.core
        self.loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        #: A round is running (or awaiting storage): new work joins it.
        self.driving = False
        #: A round is scheduled for the next loop turn.
        self.kicked = False
        #: Inside :meth:`batch`: the round runs when it is done, so a kick meanwhile
        #: schedules none.
        self.receiving = False
        self._task: asyncio.Task[None] | None = None  # a round awaiting storage
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        #: Called when a round has written messages that should leave now rather than at the
        #: end of the loop turn, where a transport that batches (a browser tab's) would send
        #: them: before the round applies entries it committed, so that answers (a
        #: follower's acknowledgement) do not wait for the application's handlers; and
        #: before a save that a leader's appends need not wait for.
        self.send_now: Callable[[], None] | None = None
        #: Called when the timer fires, before the core's clock moves: a browser tab checks
        #: there whether its loop was blocked (:meth:`~webraft.RaftInterface.stalled`), so
        #: that an overdue election or quorum timer never acts on a silence the tab made.
        self.before_tick: Callable[[], None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._t0 = loop.time()

    def now(self) -> float:
        """The core's clock: seconds since the node started."""
        return self.loop.time() - self._t0 if self.loop is not None else 0.0

    def kick(self) -> None:
        """Run a round on the next loop turn (once, however often it is kicked meanwhile)."""
        if (self.kicked or self.driving or self.receiving or self.node.closed
                or self.loop is None):
            return
        self.kicked = True
        self.loop.call_soon(self._kicked_round)

    def _kicked_round(self) -> None:
        self.kicked = False
        self.round_now()

    def round_now(self) -> None:
        """Run Ready rounds now, unless one is in progress (it picks up the new work)."""
        if not self.driving and not self.node.closed and self.loop is not None:
            self.driving = True
            self._drive()

    def batch(self) -> _Batch:
        """Work added inside (messages that arrived together, a burst of proposals) runs in
        one Ready round at the end, now, rather than in a round kicked for the next loop
        turn: on Pyodide's loop that is a browser task of its own, which every message hop
        and every sequential proposal would pay for. Nested, the outermost runs the round.

        Inside the node's own apply loop (an apply or ``updated`` handler feeding it through
        a synchronous transport), the round waits for the next loop turn instead: it may
        commit entries, which must not be applied while an earlier one is half done."""
        return _Batch(self)

    async def close(self) -> None:
        """Stop the timer and let a save in progress finish: storage must not be left
        half-written."""
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)

    def tick(self) -> None:
        """Move the core's clock to now and fire its due timers, after :attr:`before_tick`."""
        if self.before_tick is not None:
            self.before_tick()
        self.core.tick(self.now())

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self.node.closed:
            return
        self.tick()
        if self.driving:
            self._arm_timer()  # the round in progress picks up what the tick produced
        else:
            # Already a callback of the loop: run the round now rather than in one more
            # (on Pyodide every callback is a browser task). _drive re-arms the timer.
            self.driving = True
            self._drive()

    def _arm_timer(self) -> None:
        loop = self.loop
        if self.node.closed or loop is None:
            return
        at = self._t0 + self.core.next_deadline
        # Only ever move the timer earlier: a later deadline is picked up when it fires.
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            # A relative, non-negative delay: Pyodide's WebLoop refuses to schedule in the
            # past, which a deadline that is already due would be.
            self._timer = loop.call_later(max(0.0, at - loop.time()), self._on_timer)

    def _drive(self) -> None:
        """Run Ready rounds until there is no work, synchronously while storage is.

        A storage whose ``save`` returns an awaitable hands the rest of the round to a task;
        ``driving`` stays set meanwhile, so rounds never overlap.
        """
        node = self.node
        try:
            while not node.closed:
                node.proposals.flush_outbox()
                if not self.core.has_ready():
                    break
                rd = self.core.ready()
                if rd.hard is not None or rd.entries or rd.snapshot is not None:
                    if rd.send_first and rd.messages:
                        # A leader's appends leave while it saves their entries (the core
                        # says when that is safe): the followers' part of the commit
                        # overlaps the leader's save instead of following it.
                        self._send(rd.messages)
                        rd.messages = []
                        if self.send_now is not None:
                            self.send_now()
                    update = StorageUpdate(rd.hard, tuple(rd.entries), rd.snapshot,
                                           rd.snapshot_data, rd.compact_to)
                    failed = False
                    try:
                        pending = node.storage.save(update)
                    except Exception as exc:
                        self._storage_failed(exc)
                        pending, failed = None, True
                    if pending is not None or failed:
                        assert self.loop is not None
                        self._task = self.loop.create_task(
                            self._finish_round(pending, update, rd))
                        return
                self._handle_ready(rd)
        except Exception as exc:  # pragma: no cover - a bug; report it, keep the node alive
            logger.exception("%s: Ready loop failed", node.address)
            node.emit("error", exc)
        self.driving = False
        self._arm_timer()

    async def _finish_round(self, pending: Awaitable[None] | None, update: StorageUpdate,
                            rd: Ready) -> None:
        """The rest of a round whose save completes later (``pending``), or failed at once
        (None): retried until it succeeds, then the round goes on."""
        try:
            if pending is None:
                await self._persist_retry(update)
            else:
                await pending
        except Exception as exc:
            self._storage_failed(exc)
            await self._persist_retry(update)
        except asyncio.CancelledError:
            self.driving = False
            raise
        self._task = None
        if self.node.closed:
            self.driving = False
            return
        self._handle_ready(rd)
        self._drive()

    def _storage_failed(self, exc: BaseException) -> None:
        logger.error("%s: storage failed: %r", self.node.address, exc)
        self.node.emit("error", exc)

    async def _persist_retry(self, update: StorageUpdate) -> None:
        """Save until it succeeds: nothing that depends on it may be sent before."""
        delay = 0.01
        node = self.node
        while not node.closed:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                pending = node.storage.save(update)
                if pending is not None:
                    await pending
                return
            except Exception as exc:
                self._storage_failed(exc)
        raise RaftClosed("closed while storage was failing")

    def _send(self, messages: list[tuple[str, Message]]) -> None:
        """Write ``messages`` to their peers' links (a peer not reachable now is skipped:
        Raft retries)."""
        node = self.node
        peers = node.nodes
        for dst, msg in messages:
            peer = peers.get(dst)
            if peer is None:
                continue
            try:
                peer.write(encode(msg))
            except Exception as exc:
                logger.warning("%s: write to %r failed: %r", node.address, dst, exc)
                node.emit("error", exc)

    def _handle_ready(self, rd: Ready) -> None:
        """Everything after persistence: send, resolve, emit, apply; then advance."""
        node = self.node
        self._send(rd.messages)
        proposals = node.proposals
        for result in rd.proposals:
            proposals.on_result(result)
        for read in rd.reads:
            proposals.on_read(read)
        for event in rd.events:
            if isinstance(event, LeaderChanged):
                proposals.leader_changed(event.leader)
            for name, *args in seed_events(event):
                node.emit(name, *args)
        proposals.leader_known()
        self.core.advance(rd)
        if rd.committed and rd.messages and self.send_now is not None:
            self.send_now()
        node.applier.take(rd)


class _Batch:
    """What :meth:`Driver.batch` returns: a class rather than a generator-based context
    manager, which costs twice the calls on every message and every proposal."""

    __slots__ = ("_driver", "_outer")

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._outer = False

    def __enter__(self) -> None:
        driver = self._driver
        self._outer = driver.receiving
        driver.receiving = True

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        driver, outer = self._driver, self._outer
        driver.receiving = outer
        if outer or kind is not None:
            return
        if driver.node.applier.pumping:
            driver.kick()
        else:
            driver.round_now()

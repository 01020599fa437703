"""The simulated application: a key-value store of registers behind the runtime's handlers.

It owns one node incarnation's state machine and the application's own durable copy of it
(:class:`AppDisk`, which outlives crashes). Its ``apply``, ``refresh`` and ``snapshot``
handlers answer at once, later, through a coroutine, or fail (the runtime retries), as the
scenario's :class:`AppFaults` say. It reports every value it applies to the
:class:`~webraft.sim.checker.SafetyChecker`, the one part of the simulation it imports.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.messages import Entry
from ..errors import WebraftError
from ..runtime import RaftInterface
from .checker import SafetyChecker

#: Commands write one of this many registers, chosen by the command.
KEYS = 4


def key_of(value: str) -> str:
    """The register ``value`` is written to (a string: the state travels as JSON)."""
    return str(zlib.crc32(value.encode()) % KEYS)


@dataclass(slots=True)
class AppFaults:
    """How one scenario's application behaves."""

    slow: float = 0.0  # share of handler calls that answer later
    fail: float = 0.0  # share of handler calls that fail (and are retried)
    persist: float = 0.5  # share of applies after which the application saves its state
    delay: tuple[float, float] = (0.001, 0.02)  # how long a slow handler takes


@dataclass(slots=True)
class AppDisk:
    """The application's durable copy of its state: the register values as of entry
    ``index`` of ``term``."""

    term: int = 0
    index: int = 0
    state: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AppStats:
    applied: int = 0
    failed: int = 0  # handler calls that failed on purpose
    slow: int = 0
    snapshots: int = 0
    loads: int = 0  # snapshots loaded through refresh


class KVApp:
    """One incarnation's registers, registered as ``raft``'s handlers."""

    def __init__(self, address: str, raft: RaftInterface, disk: AppDisk,
                 loop: asyncio.AbstractEventLoop, rng: random.Random, faults: AppFaults,
                 checker: SafetyChecker, stats: AppStats,
                 observe: Callable[[str], None]) -> None:
        self.address = address
        self.raft = raft
        self.disk = disk
        self._loop = loop
        self._rng = rng
        self._faults = faults
        self._checker = checker
        self.stats = stats
        self._observe = observe
        # It restarts from its durable copy and says so through refresh.
        self.state = dict(disk.state)
        self.index, self.term = disk.index, disk.term
        self.dead = False
        self._started = False
        raft.listen("apply", self.apply)
        raft.listen("refresh", self.refresh)
        raft.listen("snapshot", self.snapshot)

    def read(self, key: str) -> str | None:
        return self.state.get(key)

    # -- handlers ------------------------------------------------------------------------

    def _mode(self) -> str:
        r = self._rng.random()
        faults = self._faults
        if r < faults.fail:
            self.stats.failed += 1
            return "fail"
        if r < faults.fail + faults.slow:
            self.stats.slow += 1
            return "slow"
        return "now"

    def apply(self, entry: Entry, index: int,
              cb: Callable[..., None]) -> Awaitable[None] | None:
        if self.dead:
            return None  # crashed: its cb never comes; the node's close ends the wait
        mode = self._mode()
        rng = self._rng
        if mode == "now":
            self._apply(entry)
            cb()
            return None
        if mode == "fail":
            how = rng.randrange(3)
            if how == 0:
                raise WebraftError("simulated apply failure")
            if how == 1:
                cb(WebraftError("simulated apply failure"))
                return None
            return self._fail_later()
        if rng.random() < 0.5:
            self._loop.call_later(rng.uniform(*self._faults.delay), self._apply_later, entry, cb)
            return None
        return self._apply_slowly(entry)

    def _apply_later(self, entry: Entry, cb: Callable[..., None]) -> None:
        if not self.dead:  # a crashed process answers nothing: "applied" would be a lie
            self._apply(entry)
            cb()

    async def _apply_slowly(self, entry: Entry) -> None:
        await asyncio.sleep(self._rng.uniform(*self._faults.delay))
        if self.dead:
            await self._loop.create_future()  # never returns; the node's close cancels it
        self._apply(entry)

    async def _fail_later(self) -> None:
        await asyncio.sleep(self._rng.uniform(*self._faults.delay))
        raise WebraftError("simulated apply failure")

    def _apply(self, entry: Entry) -> None:
        index, value = entry.index, entry.command
        if index <= self.index:
            self._checker.fail(f"{self.address}: given entry {index} again or out of order, "
                               f"after {self.index}")
        self._checker.on_apply(self.address, index, value)
        self.state[key_of(value)] = value
        self.index, self.term = index, entry.term
        self.stats.applied += 1
        if self._rng.random() < self._faults.persist:
            self._save()

    def _save(self) -> None:
        self.disk.term, self.disk.index, self.disk.state = self.term, self.index, dict(self.state)

    def refresh(self, cb: Callable[..., None]) -> None:
        """At start: report the durable copy's position. Later: load the node's snapshot."""
        if not self._started:
            self._started = True
            self._answer(cb, self.term, self.index)
            return
        snap = self.raft.snapshot
        if snap is None:
            self._checker.fail(f"{self.address}: asked to load a snapshot, but has none")
            return
        if snap.index < self.index:
            self._checker.fail(f"{self.address}: asked to load the snapshot at {snap.index}, "
                               f"behind its state at {self.index}")
        self.state = dict(snap.data["kv"])
        self.index, self.term = snap.index, snap.term
        self.stats.loads += 1
        self._checker.on_snapshot(self.address, snap.index, self.state)
        self._save()
        if self._rng.random() < 0.5:
            self._answer(cb)
        else:
            self._answer(cb, snap.term, snap.index)

    def _answer(self, cb: Callable[..., None], *args: int) -> None:
        if self._rng.random() < self._faults.slow:
            self._loop.call_later(self._rng.uniform(*self._faults.delay), self._answer_now,
                                  cb, *args)
        else:
            cb(*args)

    def _answer_now(self, cb: Callable[..., None], *args: int) -> None:
        if not self.dead:
            cb(*args)

    def snapshot(self, index: int, term: int) -> Any:
        """The registers as of entry ``index`` (applying waits while this runs)."""
        self._observe(self.address)  # the checker sees the entries before they are compacted
        self.stats.snapshots += 1
        state = dict(self.state)
        self._checker.on_snapshot(self.address, index, state)
        mode = self._mode()
        if mode == "fail":
            raise WebraftError("simulated snapshot failure")
        if mode == "slow":
            return self._snapshot_later(state)
        return {"kv": state}

    async def _snapshot_later(self, state: dict[str, str]) -> Any:
        await asyncio.sleep(self._rng.uniform(*self._faults.delay))
        return {"kv": state}

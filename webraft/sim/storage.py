"""Simulated disks: saves that take virtual time, fail now and then, and die with a crash.

It owns what survives a crash (:class:`Disk`, one per address) and what one incarnation of a
node writes through (:class:`SimStorage`, a :class:`webraft.storage.Storage`). It must not
import the runtime: the runtime sees it only through the storage protocol.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..core.state import StorageUpdate, StoredState
from ..errors import StorageError
from ..storage import MemoryStorage
from ..storage.base import plan_update
from .checker import SafetyChecker


@dataclass(slots=True)
class DiskFaults:
    """How one scenario's disks behave."""

    delay: tuple[float, float] = (0.0002, 0.003)  # virtual seconds a save takes
    sync: float = 0.2  # share of saves that finish before returning (no awaitable)
    errors: float = 0.0  # share of saves that fail (the runtime retries them)


class Disk:
    """What one address has durably: it outlives every incarnation of the node."""

    def __init__(self) -> None:
        self.memory = MemoryStorage()

    def load(self) -> StoredState | None:
        return self.memory.load()

    def write(self, update: StorageUpdate) -> None:
        """Apply ``update``; raise :class:`StorageError` for one no correct node writes."""
        mem = self.memory
        entries = mem.entries
        plan_update(mem.snapshot.index if mem.snapshot else None,
                    entries[0].index if entries else None,
                    entries[-1].index if entries else None, update)
        mem.write(update)


class SimStorage:
    """One incarnation's view of its :class:`Disk`. After :meth:`crash` nothing more reaches
    the disk: a save in progress is lost, and later ones fail."""

    def __init__(self, address: str, disk: Disk, loop: asyncio.AbstractEventLoop,
                 rng: random.Random, faults: DiskFaults, checker: SafetyChecker,
                 leading: Callable[[], bool]) -> None:
        self.address = address
        self.disk = disk
        self._loop = loop
        self._rng = rng
        self._faults = faults
        self._checker = checker
        self._leading = leading
        self._pending: asyncio.Future[None] | None = None
        self.dead = False
        self.saves = 0
        self.failures = 0

    def load(self) -> StoredState | None:
        return self.disk.load()

    def save(self, update: StorageUpdate) -> asyncio.Future[None] | None:
        if self.dead:
            raise StorageError("the node crashed")
        rng, faults = self._rng, self._faults
        if faults.errors and rng.random() < faults.errors:
            self.failures += 1
            if rng.random() < 0.5:
                raise StorageError("simulated write error")
            fut = self._loop.create_future()
            self._loop.call_later(rng.uniform(*faults.delay), _fail, fut)
            return fut
        leading = self._leading()
        if rng.random() < faults.sync:
            self._write(update, leading)
            return None
        fut = self._pending = self._loop.create_future()
        self._loop.call_later(rng.uniform(*faults.delay), self._done, fut, update, leading)
        return fut

    def _done(self, fut: asyncio.Future[None], update: StorageUpdate, leading: bool) -> None:
        if fut.done() or self.dead:
            return
        self._pending = None
        self._write(update, leading)
        fut.set_result(None)

    def _write(self, update: StorageUpdate, leading: bool) -> None:
        self.saves += 1
        try:
            self.disk.write(update)
        except StorageError as exc:
            self._checker.fail(f"{self.address}: wrote an update no correct node makes: {exc}")
        self._checker.on_persist(self.address, update, leading)

    def crash(self) -> None:
        """Power loss: what is being saved is not on the disk, and nothing more will be."""
        self.dead = True
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_exception(StorageError("the node crashed during the save"))


def _fail(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(StorageError("simulated write error"))

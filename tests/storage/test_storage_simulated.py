"""The updates a real runtime makes, through both durable storages: simulator runs (crashes,
partitions, snapshots, compactions, InstallSnapshot) whose nodes' disks are teed to
LocalStorage (small data chunks) and SQLiteStorage next to the simulator's MemoryStorage and
the reference model; every load (each restart after a crash, and every 20th write) must find
the same state in all of them."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest
from storage_model import Model, canon

from webraft.core.state import StorageUpdate, StoredState
from webraft.sim.cluster import Scenario, Simulation
from webraft.sim.storage import Disk
from webraft.storage import LocalStorage, SQLiteStorage

#: A RAM file system where there is one: the same code, without waiting for the disk's fsync.
TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class WebStorage:
    """A dict with the Web Storage interface."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def getItem(self, key: str) -> Any:
        return self.data.get(key)

    def setItem(self, key: str, value: str) -> None:
        self.data[key] = value

    def removeItem(self, key: str) -> None:
        self.data.pop(key, None)

    def key(self, i: int) -> Any:
        return list(self.data)[i] if 0 <= i < len(self.data) else None

    @property
    def length(self) -> int:
        return len(self.data)


class TeeDisk(Disk):
    """What the simulator calls a node's disk (``load``, ``write``), written everywhere."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.model = Model()
        self.store = WebStorage()
        self.local = LocalStorage("webraft/sim/", self.store)
        self.local.data_chunk = 64
        self.sqlite = SQLiteStorage(path)
        self.writes = 0

    def load(self) -> StoredState | None:
        state = self.memory.load()
        expected = canon(self.model.state())
        assert canon(state) == expected
        assert canon(LocalStorage("webraft/sim/", self.store).load()) == expected
        assert canon(self.sqlite.load()) == expected
        return state

    def write(self, update: StorageUpdate) -> None:
        super().write(update)
        self.model.apply(update)
        self.local.save(update)
        self.sqlite.save(update)
        self.writes += 1
        if self.writes % 20 == 0:
            self.load()


#: Seeds whose runs snapshot, compact and load snapshots (from a leader, or on a restart).
SEEDS = [0, 4, 13, 20, 32, 33, 54]


@pytest.mark.parametrize("seed", SEEDS)
def test_simulated_cluster_through_both_storages(seed: int) -> None:
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:
        sim = Simulation(Scenario.from_seed(seed))
        disks = {}
        for m in sim.members.values():  # nothing is persisted before run()
            m.disk = disks[m.address] = TeeDisk(os.path.join(tmp, f"{m.address}.db"))
        try:
            stats = sim.run()
            for disk in disks.values():
                disk.load()
        finally:
            for disk in disks.values():
                disk.sqlite.close()
    assert stats.snapshots and stats.loads
    assert all(disk.writes for disk in disks.values() if disk.memory.load() is not None)
    assert any(disk.model.data for disk in disks.values())

"""Benchmark (not a test): storage save and load throughput, snapshots and compaction.

SQLiteStorage: saves/s for single-entry updates (each with a hard state, as a leader's round
has) in both modes, entries/s for 1000-entry updates and for loading the resulting log, then
the time of one snapshot save (``--snapshot-kb`` of data, compacting the log but a tail of
1000 entries) and of loading the result.

LocalStorage, on a dict-backed stand-in for Web Storage (so: the Python cost only, not a
browser's): the same save and load figures, the snapshot save, and the namespace's size in
characters before and after the compaction.

    python bench/storage_bench.py [--dir DIR] [--quick] [--snapshot-kb KB]

Every SQLite save is a durable transaction (WAL, synchronous=FULL): single-entry figures
measure the disk's fsync latency far more than Python, so run it on the disk the nodes will
use (``--dir``; the default is the system's temporary directory, which may be a RAM file
system).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import time
from typing import Any

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import LocalStorage, SQLiteStorage

CONFIG = ClusterConfig(("n0",))
BOOT = StorageUpdate(HardState(1, "n0", 0), (), SnapshotMeta(0, 0, CONFIG))


def command(i: int) -> dict[str, object]:
    return {"op": "set", "key": f"k{i}", "value": i}


def single_sync(path: str, n: int) -> float:
    with SQLiteStorage(path) as storage:
        storage.save(BOOT)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            storage.save(StorageUpdate(HardState(1, "n0", i - 1),
                                       (Entry(1, i, COMMAND, command(i)),)))
        return n / (time.perf_counter() - t0)


async def single_threaded(path: str, n: int) -> float:
    with SQLiteStorage(path, threaded=True) as storage:
        await storage.save(BOOT)  # type: ignore[misc]
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            await storage.save(StorageUpdate(  # type: ignore[misc]
                HardState(1, "n0", i - 1), (Entry(1, i, COMMAND, command(i)),)))
        return n / (time.perf_counter() - t0)


def batches(path: str, rounds: int, size: int = 1000) -> tuple[float, float]:
    """(entries/s saving ``rounds`` updates of ``size`` entries, entries/s loading them)."""
    with SQLiteStorage(path) as storage:
        storage.save(BOOT)
        t0 = time.perf_counter()
        for r in range(rounds):
            first = r * size + 1
            entries = tuple(Entry(1, i, COMMAND, command(i)) for i in range(first, first + size))
            storage.save(StorageUpdate(HardState(1, "n0", first - 1), entries))
        save_rate = rounds * size / (time.perf_counter() - t0)
    with SQLiteStorage(path) as storage:
        t0 = time.perf_counter()
        state = storage.load()
        load_rate = rounds * size / (time.perf_counter() - t0)
    assert state is not None and len(state.entries) == rounds * size
    return save_rate, load_rate


def snapshot_data(kb: int) -> str:
    """JSON text of about ``kb`` KiB: a key-value state."""
    return json.dumps({f"key{i}": "v" * 100 for i in range(kb * 1024 // 112)})


def snapshot_sqlite(path: str, last: int, kb: int) -> tuple[float, float]:
    """(seconds to save a snapshot at ``last`` compacting all but 1000 entries, seconds to
    load the result), on the database ``batches`` left."""
    data = snapshot_data(kb)
    with SQLiteStorage(path) as storage:
        t0 = time.perf_counter()
        storage.save(StorageUpdate(None, (), SnapshotMeta(last, 1, CONFIG), data, last - 1000))
        save = time.perf_counter() - t0
    with SQLiteStorage(path) as storage:
        t0 = time.perf_counter()
        state = storage.load()
        load = time.perf_counter() - t0
    assert state is not None and len(state.entries) == 1000 and state.snapshot_data == data
    return save, load


class WebStorage:
    """A dict with the Web Storage interface (what LocalStorage needs of localStorage)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self._keys: list[str] | None = None  # key(i)'s order, until the next change

    def getItem(self, key: str) -> Any:
        return self.data.get(key)

    def setItem(self, key: str, value: str) -> None:
        if key not in self.data:
            self._keys = None
        self.data[key] = value

    def removeItem(self, key: str) -> None:
        if self.data.pop(key, None) is not None:
            self._keys = None

    def key(self, i: int) -> Any:
        if self._keys is None:
            self._keys = list(self.data)
        return self._keys[i] if 0 <= i < len(self._keys) else None

    @property
    def length(self) -> int:
        return len(self.data)


def local_storage(n: int, rounds: int, kb: int) -> dict[str, float]:
    store = WebStorage()
    local = LocalStorage("webraft/bench/n0/", store)
    local.save(BOOT)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        local.save(StorageUpdate(HardState(1, "n0", i - 1), (Entry(1, i, COMMAND, command(i)),)))
    out["single"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for r in range(rounds):
        first = n + r * 1000 + 1
        entries = tuple(Entry(1, i, COMMAND, command(i)) for i in range(first, first + 1000))
        local.save(StorageUpdate(HardState(1, "n0", first - 1), entries))
    last = n + rounds * 1000
    out["batch"] = rounds * 1000 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    state = LocalStorage("webraft/bench/n0/", store).load()
    out["load"] = last / (time.perf_counter() - t0)
    assert state is not None and len(state.entries) == last
    out["before"] = local.usage()
    data = snapshot_data(kb)
    del state
    gc.collect()  # not the collection of the 101000 entries just loaded in what follows
    t0 = time.perf_counter()
    local.save(StorageUpdate(None, (), SnapshotMeta(last, 1, CONFIG), data, last - 1000))
    out["snapshot"] = time.perf_counter() - t0
    out["after"] = local.usage()
    t0 = time.perf_counter()
    state = LocalStorage("webraft/bench/n0/", store).load()
    out["snapshot load"] = time.perf_counter() - t0
    assert state is not None and len(state.entries) == 1000 and state.snapshot_data == data
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="directory for the database files (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--snapshot-kb", type=int, default=500,
                        help="size of the snapshot data in KiB (default: 500)")
    args = parser.parse_args()
    n, rounds = (200, 20) if args.quick else (1000, 100)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"database directory: {tmp}")
        rate = single_sync(os.path.join(tmp, "sync.db"), n)
        print(f"single-entry saves, threaded=False: {rate:9.0f} saves/s")
        rate = asyncio.run(single_threaded(os.path.join(tmp, "threaded.db"), n))
        print(f"single-entry saves, threaded=True:  {rate:9.0f} saves/s (each awaited)")
        save_rate, load_rate = batches(os.path.join(tmp, "batch.db"), rounds)
        print(f"1000-entry saves:                   {save_rate:9.0f} entries/s")
        print(f"load of {rounds * 1000} entries:             {load_rate:9.0f} entries/s")
        save, load = snapshot_sqlite(os.path.join(tmp, "batch.db"), rounds * 1000,
                                     args.snapshot_kb)
        print(f"snapshot save ({args.snapshot_kb} KiB, compacting to a 1000-entry tail): "
              f"{save * 1000:7.1f} ms; load after it: {load * 1000:7.1f} ms")
    ls = local_storage(n, rounds, args.snapshot_kb)
    print("LocalStorage (dict-backed Web Storage stand-in, Python cost only):")
    print(f"single-entry saves:                 {ls['single']:9.0f} saves/s")
    print(f"1000-entry saves:                   {ls['batch']:9.0f} entries/s")
    print(f"load of {n + rounds * 1000} entries:             {ls['load']:9.0f} entries/s")
    print(f"snapshot save ({args.snapshot_kb} KiB, compacting to a 1000-entry tail): "
          f"{ls['snapshot'] * 1000:7.1f} ms; load after it: {ls['snapshot load'] * 1000:7.1f} ms")
    print(f"namespace size: {ls['before']:,.0f} characters before the snapshot, "
          f"{ls['after']:,.0f} after")


if __name__ == "__main__":
    main()

"""Benchmark (not a test): SQLiteStorage save and load throughput.

Prints saves/s for single-entry updates (each with a hard state, as a leader's round has) in
both modes, entries/s for 1000-entry updates, and entries/s for loading the resulting log.

    python bench/storage_bench.py [--dir DIR] [--quick]

Every save is a durable transaction (WAL, synchronous=FULL): single-entry figures measure the
disk's fsync latency far more than Python, so run it on the disk the nodes will use (``--dir``;
the default is the system's temporary directory, which may be a RAM file system).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from webraft.core.messages import COMMAND, Entry
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StorageUpdate
from webraft.storage import SQLiteStorage

BOOT = StorageUpdate(HardState(1, "n0", 0), (), SnapshotMeta(0, 0, ClusterConfig(("n0",))))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="directory for the database files (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
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


if __name__ == "__main__":
    main()

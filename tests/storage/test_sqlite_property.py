"""Property: after any valid sequence of updates (appends, truncations, snapshots with data,
compactions keeping a tail or not, installed snapshots, ...), SQLiteStorage loads exactly what
the reference model of the contract holds, also after closing and reopening in between."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_model import Model, canon, updates

from webraft.storage import SQLiteStorage

#: A RAM file system where there is one: the same code, without waiting for the disk's fsync.
TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_sqlite_matches_the_model(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:
        path = Path(tmp) / "node.db"
        model = Model()
        disk = SQLiteStorage(path)
        try:
            for _ in range(data.draw(st.integers(1, 12), label="updates")):
                update = data.draw(updates(model))
                assert disk.save(update) is None
                model.apply(update)
                expected = model.state()
                assert expected is not None
                expected.check()  # the generator only makes valid states
                assert canon(disk.load()) == canon(expected)
                if data.draw(st.integers(0, 3), label="reopen") == 0:
                    disk.close()
                    disk = SQLiteStorage(path)
                    assert canon(disk.load()) == canon(expected)
        finally:
            disk.close()
        with SQLiteStorage(path) as again:
            assert canon(again.load()) == canon(model.state())

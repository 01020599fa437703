"""Crash atomicity: a child process saving in a loop is killed with SIGKILL at random moments.

After each kill the database must open, load and pass ``check()``, and hold exactly the state
after the last acknowledged update or after the one following it (which may have committed
before its acknowledgement was printed): every acknowledged update complete, nothing partial.
The updates include snapshots with data, compactions and installed snapshots
(:func:`sqlite_helpers.crash_update`).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlite_helpers import canon, replay

from webraft.storage import SQLiteStorage

HERE = str(Path(__file__).resolve().parent)
CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); import sqlite_helpers; "
         "sqlite_helpers.crash_child(sys.argv[2], sys.argv[3] == 'threaded', int(sys.argv[4]))")


def run_and_kill(path: Path, threaded: bool, acks_before_kill: int, rng: random.Random) -> int:
    """Start a child, wait for ``acks_before_kill`` acks, kill it; the last acked update."""
    mode = "threaded" if threaded else "sync"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, HERE, str(path), mode, "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        while len(lines) < acks_before_kill:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
        # Vary where in the next saves the kill lands: at once or a little later. Nothing
        # depends on this delay; it only spreads the kills over the save loop.
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0, 0.02))
    finally:
        proc.kill()  # SIGKILL on POSIX
        proc.wait(timeout=60)
        # Read through the file objects, not communicate(): readline() may already hold later
        # acks in its buffer, which communicate() (reading the pipe itself) would skip.
        out = proc.stdout.read()  # type: ignore[union-attr]
        err = proc.stderr.read()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert len(lines) == acks_before_kill, f"child stopped early: {err}"
    lines.extend(out.splitlines(keepends=True))
    acked = [int(line.split()[1]) for line in lines if line.endswith("\n")]
    assert acked == list(range(acked[0], acked[0] + len(acked)))
    return acked[-1]


@pytest.mark.parametrize("threaded", [False, True])
def test_killed_writer_leaves_every_acked_update_and_nothing_partial(
        tmp_path: Path, threaded: bool) -> None:
    rng = random.Random()
    path = tmp_path / "node.db"
    last_acked = 0
    for _ in range(6):
        acked = run_and_kill(path, threaded, rng.randint(1, 40), rng)
        assert acked > last_acked
        last_acked = acked
        with SQLiteStorage(path) as storage:
            state = storage.load()
        assert state is not None
        state.check()
        assert state.hard.commit in (acked, acked + 1)
        # Exactly the state after the acked update, or after the next one: never a mix.
        assert canon(state) == canon(replay(state.hard.commit).state())
        assert state.hard.commit >= acked
    # The sequence went through snapshots with data and compactions (every 7th and 13th).
    assert last_acked < 14 or state.snapshot.index > 0

"""The simulator runs the real runtime deterministically, and its checks catch broken code."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import pytest

from webraft.core import log as log_module
from webraft.core.raft import RaftCore
from webraft.core.sessions import APPLY, DUPLICATE, SessionTable
from webraft.runtime import applier as applier_module
from webraft.runtime import proposals as proposals_module
from webraft.sim import LivenessFailure, SafetyViolation, Scenario, Simulation
from webraft.sim.__main__ import main as sim_main
from webraft.sim.network import Network
from webraft.sim.storage import SimStorage


def _outcome(seed: int) -> tuple[str, str]:
    """The trace digest of ``seed`` and what it ended with."""
    sim = Simulation(Scenario.from_seed(seed))
    try:
        sim.run()
        end = "passed"
    except (SafetyViolation, LivenessFailure) as exc:
        end = str(exc)
    return sim.digest(), end


def test_a_seed_replays_exactly() -> None:
    assert _outcome(7) == _outcome(7)
    assert _outcome(7)[0] != _outcome(8)[0]


def test_runs_do_not_depend_on_hash_seed() -> None:
    code = ("from webraft.sim import Simulation, Scenario\n"
            "s = Simulation(Scenario.from_seed(2))\n"
            "try:\n    s.run()\nexcept AssertionError as e:\n    print(e)\n"
            "print(s.digest(), s.stats.steps, s.now())")
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True, timeout=120)
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_a_run_drives_every_part_of_the_runtime() -> None:
    """Across a few seeds the faults and the workload all happen, so the checks have
    something to check."""
    total = {"sessions": 0, "retries": 0, "forwarded": 0, "loads": 0, "failures": 0,
             "crashes": 0, "membership": 0, "refused": 0}
    for seed in range(12):
        sim = Simulation(Scenario.from_seed(seed))
        with contextlib.suppress(SafetyViolation, LivenessFailure):
            sim.run()  # what it found is the business of the other tests
        w = sim.workload.stats
        total["sessions"] += w.sessions_opened
        total["retries"] += w.session_retries
        total["refused"] += w.refused
        total["loads"] += sim.app_stats.loads
        total["failures"] += sim.app_stats.failed
        total["crashes"] += sim.stats.crashes
        total["membership"] += sim.stats.membership
        total["forwarded"] += sim.network.stats.messages
    assert all(total.values()), total


def _violation(seeds: Iterable[int], *expected: str) -> str | None:
    """The first violation the simulator reports over ``seeds`` that says one of
    ``expected``."""
    for seed in seeds:
        try:
            Simulation(Scenario.from_seed(seed)).run()
        except (SafetyViolation, LivenessFailure) as exc:
            if any(e in str(exc) for e in expected):
                return str(exc)
    return None


def test_failing_seed_prints_replay_command(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def vote_again(self: RaftCore, src: str, m: Any) -> None:
        self.vote = None  # forget the vote: two grants in one term
        self.leader = None
        original(self, src, m)

    original = RaftCore._step_vote
    monkeypatch.setattr(RaftCore, "_step_vote", vote_again)
    assert sim_main(["--seeds", "5"]) == 1
    out = capsys.readouterr().out
    assert "replay: webraft-sim --seed" in out
    assert "changed its vote" in out or "two leaders" in out


def test_checker_catches_a_core_without_the_up_to_date_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_module.RaftLog, "is_up_to_date", lambda self, i, t: True)
    assert _violation(range(40), "lacks committed entry", "state machine safety",
                      "log matching", "which holds") is not None


def test_checker_catches_a_core_that_truncates_on_duplicates(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def merge(self: log_module.RaftLog, entries: list[Any]) -> int:
        # Wrong: cut at the first entry already present, even when its term matches.
        first = entries[0].index
        if first <= self.last_index:
            del self.entries[first - self.offset - 1:]
            self.stable = min(self.stable, first - 1)
        self.entries.extend(entries)
        return int(entries[-1].index)

    monkeypatch.setattr(log_module.RaftLog, "merge", merge)
    assert _violation(range(40), "before persisting", "overwrote", "lacks committed",
                      "state machine safety", "which holds", "no agreement") is not None


def test_checker_catches_a_runtime_that_answers_with_the_wrong_index(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = proposals_module.Proposals._succeed

    def off_by_one(self: object, proposal: object, index: int) -> None:
        original(self, proposal, index + 1)  # type: ignore[arg-type]

    monkeypatch.setattr(proposals_module.Proposals, "_succeed", off_by_one)
    assert _violation(range(20), "was acknowledged at index") is not None


def test_checker_catches_a_runtime_that_applies_an_entry_twice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = applier_module.Applier.pump

    def pump_twice(self: applier_module.Applier) -> None:
        if self._queue and self._queue[0].__class__ is not applier_module.Load:
            self._queue.insert(1, self._queue[0])  # the head entry, queued again
        original(self)

    monkeypatch.setattr(applier_module.Applier, "pump", pump_twice)
    # Every plain command is in a session now, whose table would answer the copy as a
    # duplicate: it must not, for the copy to reach the application.
    _without_dedupe(monkeypatch)
    assert _violation(range(20), "again or out of order", "and again at") is not None


def _without_dedupe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the session table: a copy of a number already applied is applied again."""
    table_apply = SessionTable.apply

    def no_dedupe(self: SessionTable, entry: Any) -> tuple[str, int]:
        verdict, first = table_apply(self, entry)
        return (APPLY, entry.index) if verdict == DUPLICATE else (verdict, first)

    monkeypatch.setattr(SessionTable, "apply", no_dedupe)


def test_checker_catches_a_resent_plain_proposal_applied_twice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes resend plain proposals whose fate is unknown (a lost answer, a new leader):
    without the session table's dedupe, the copies that reach the log are applied again."""
    _without_dedupe(monkeypatch)
    assert _violation(range(40), "and again at", "was acknowledged at") is not None


def test_checker_catches_stale_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that returns before the node applied its read index sees an old state."""

    async def read_now(self: object) -> int:
        return 0

    from webraft.runtime import RaftInterface
    monkeypatch.setattr(RaftInterface, "read_index", read_now)
    assert _violation(range(40), "is not linearizable") is not None


def test_checker_catches_a_storage_that_acknowledges_before_saving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Sends that overtake their own save: the durability check must notice."""

    def save_late(self: SimStorage, update: object) -> None:
        self._loop.call_later(0.01, self._write, update, False)  # type: ignore[arg-type]

    monkeypatch.setattr(SimStorage, "save", save_late)
    assert _violation(range(10), "before persisting") is not None


def test_liveness_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A network that never delivers anything: no leader can ever be elected."""
    monkeypatch.setattr(Network, "_deliver", lambda self, src, dst, payload: None)
    sim = Simulation(Scenario(seed=3, settle_time=1.0))
    with pytest.raises(LivenessFailure, match=r"replay: webraft-sim --seed 3"):
        sim.run()

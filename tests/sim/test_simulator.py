"""The simulator: hundreds of faulty seeds pass, runs replay exactly, and it catches bugs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from webraft.core import log as log_module
from webraft.core.messages import Entry
from webraft.core.raft import RaftCore
from webraft.core.sessions import APPLY, DUPLICATE, SessionTable
from webraft.sim import LivenessFailure, SafetyViolation, Scenario, Simulation, Stats
from webraft.sim.__main__ import main as sim_main

SEEDS = int(os.environ.get("WEBRAFT_SIM_SEEDS", "300"))


def test_many_faulty_seeds_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--seeds", str(SEEDS), "--jobs", str(os.cpu_count() or 1)]) == 0
    out = capsys.readouterr().out
    assert f"{SEEDS} passed, 0 failed" in out


def _fingerprint(seed: int) -> tuple[object, ...]:
    sim = Simulation(Scenario.from_seed(seed))
    stats = sim.run()
    logs = tuple(tuple((e.term, e.command) for e in n.core.log.entries)
                 for n in sim.nodes.values() if n.core is not None)
    return stats.events, stats.messages, stats.elections, sim.now, logs


def test_a_seed_replays_exactly() -> None:
    assert _fingerprint(7) == _fingerprint(7)
    assert _fingerprint(7) != _fingerprint(8)


def test_runs_do_not_depend_on_hash_seed() -> None:
    code = ("from webraft.sim import Simulation, Scenario\n"
            "s = Simulation(Scenario.from_seed(11)); st = s.run()\n"
            "print(st.events, st.messages, round(s.now, 9), s.checker.max_committed)")
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True)
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_failing_seed_prints_replay_command(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def vote_again(self: RaftCore, src: str, m: object) -> None:
        self.vote = None  # forget the vote: two grants in one term
        self.leader = None
        original(self, src, m)

    original = RaftCore._step_vote
    monkeypatch.setattr(RaftCore, "_step_vote", vote_again)
    assert sim_main(["--seeds", "5"]) == 1
    out = capsys.readouterr().out
    assert "replay: python -m webraft.sim --seed" in out
    assert "changed its vote" in out or "two leaders" in out


@pytest.mark.parametrize("bug", ["no_up_to_date_check", "truncate_on_duplicate"])
def test_checker_catches_broken_cores(bug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if bug == "no_up_to_date_check":
        monkeypatch.setattr(log_module.RaftLog, "is_up_to_date", lambda self, i, t: True)
    else:
        def merge(self: log_module.RaftLog, entries: list) -> int:
            # Wrong: cut at the first entry already present, even when its term matches.
            first = entries[0].index
            if first <= self.last_index:
                del self.entries[first - self.offset - 1:]
                self.stable = min(self.stable, first - 1)
            self.entries.extend(entries)
            return entries[-1].index
        monkeypatch.setattr(log_module.RaftLog, "merge", merge)
    caught = 0
    for seed in range(60):
        try:
            Simulation(Scenario.from_seed(seed)).run()
        except (SafetyViolation, LivenessFailure):
            caught += 1
    assert caught > 0


def _violation(seeds: range, expected: str) -> str | None:
    """The first violation the simulator reports over ``seeds`` that says ``expected``."""
    for seed in seeds:
        try:
            Simulation(Scenario.from_seed(seed)).run()
        except (SafetyViolation, LivenessFailure) as exc:
            if expected in str(exc):
                return str(exc)
    return None


def test_sessions_are_exercised_under_faults() -> None:
    """Seeds with sessions open them, retry, filter duplicates and expire sessions (a small
    capacity), so the checks below have something to check."""
    total = Stats()
    for seed in range(30):
        total.add(Simulation(Scenario.from_seed(seed)).run())
    assert total.sessions_opened and total.session_retries
    assert total.duplicates and total.expired


@pytest.mark.parametrize("bug", ["applies_retries_again", "answers_a_retry_with_its_index",
                                 "snapshots_without_sessions"])
def test_checker_catches_broken_sessions(bug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SessionTable.apply

    def broken_apply(self: SessionTable, entry: Entry) -> tuple[str, int]:
        verdict, index = original(self, entry)
        if verdict == DUPLICATE and bug == "applies_retries_again":
            return APPLY, entry.index
        if verdict == DUPLICATE and index:  # the retry's own index, not the original one
            return DUPLICATE, entry.index
        return verdict, index

    if bug == "snapshots_without_sessions":  # a restored node forgets every session
        monkeypatch.setattr(SessionTable, "to_json", lambda self: [])
    else:
        monkeypatch.setattr(SessionTable, "apply", broken_apply)
    expected = {"applies_retries_again": "and again at",
                "answers_a_retry_with_its_index": "but it was first applied at",
                "snapshots_without_sessions": "another node's table gave"}[bug]
    assert _violation(range(40), expected) is not None


def test_liveness_failure_is_reported() -> None:
    class BlackHole(Simulation):
        """A network that never delivers anything: no leader can ever be elected."""

        def _send(self, src: str, dst: str, msg: object) -> None:
            self.stats.dropped += 1

    with pytest.raises(LivenessFailure, match=r"replay: python -m webraft\.sim --seed 3"):
        BlackHole(Scenario(seed=3, settle_time=1.0)).run()

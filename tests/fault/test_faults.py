"""The short fault run (CI): three ``webraft-node`` processes on direct links through the
fault proxy, four clients writing, reading linearizably and doing CAS, one fault each.

Each test passes if the history is linearizable, every acknowledged write is in the store all
members converge on, nothing reported failed was applied, and the fault really happened (the
leader changed, or messages were lost). Nothing asserts how long anything took; the longer,
random run is ``python -m tests.fault`` (docs/fault-testing.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .scenarios import SCENARIOS, Outcome, run

#: Seconds each fault lasts (the run adds a second of traffic before and the recovery after).
DURATION = 6.0


def judged(outcome: Outcome) -> None:
    assert outcome.problems == [], "\n".join(outcome.problems)
    assert any(r.status == "ok" for r in outcome.records if r.kind == "r")
    assert any(r.status == "ok" for r in outcome.records if r.kind == "cas")
    assert any(r.status == "ok" for r in outcome.records if r.kind == "own")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_fault(tmp_path: Path, name: str) -> None:
    outcome = await run(tmp_path, SCENARIOS[name], duration=DURATION, seed=14)
    judged(outcome)
    if name in ("leader-cut", "lossy"):
        assert outcome.dropped > 0
    if name in ("leader-kill", "leader-cut"):
        assert outcome.terms[1] > outcome.terms[0], "the leader was never replaced"

"""The short fault run (CI): three ``webraft-node`` processes on direct links through the
fault proxy, four clients writing, reading linearizably and doing CAS, one fault each.

Each scenario passes if the history is linearizable, every acknowledged write is in the store all
members converge on, nothing reported failed was applied, and the fault really happened (the
leader changed, or messages were lost). Nothing asserts how long anything took; the longer,
random run is ``python -m tests.fault`` (docs/fault-testing.md). A last test checks what a
client of a cut-off leader meets: an answer it can retry elsewhere, without the proposal
timeout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from .client import http
from .procs import GUARD, Cluster
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


async def test_a_cut_off_leader_answers_at_once_and_a_retry_elsewhere_applies_once(
        tmp_path: Path) -> None:
    """The members' proposal timeout is an hour, so only the cut-off rule can answer here.
    The leader, cut off from its peers, answers a compare-and-set with a JSON error (may
    have committed if it had appended it), and then a linearizable read with one. The
    client's retry through another member, with the same request id, swaps once; healed,
    every member holds the value."""
    async with Cluster(tmp_path, 3, seed=14, extra=("--proposal-timeout", "3600")) as cluster:
        leader = await cluster.wait_leader()
        cluster.network.isolate(leader.name)
        path = "/cas/k?request_id=r1"
        status, answer = await http(leader.control, "POST", path, {"value": "v"}, GUARD)
        sent = answer["error"] == "ProposalTimeout"
        assert (status, answer["may_have_committed"]) == ((504, True) if sent else (503, False))
        status, answer = await http(leader.control, "GET", "/kv/k?linearizable=1",
                                    timeout=GUARD)
        assert (status, answer["error"]) == (503, "NoLeaderError")
        others = [node for node in cluster.nodes.values() if node is not leader]
        async with asyncio.timeout(GUARD):
            while True:  # until the others have elected a leader of their own
                status, answer = await http(others[0].control, "POST", path, {"value": "v"},
                                            GUARD)
                if status == 200:
                    break
                await asyncio.sleep(0.05)
        assert answer["swapped"] is True
        assert await http(others[1].control, "POST", path, {"value": "v"}, GUARD) == (
            200, answer)
        cluster.network.heal()
        assert (await cluster.converged())["k"] == "v"

"""Runtime bugs the simulator found, each reproduced in a few steps on its virtual loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any

from webraft.errors import ProposalError
from webraft.runtime import NodeConfig, RaftInterface
from webraft.sim.cluster import Scenario, Simulation
from webraft.sim.network import Endpoint, LinkFaults

QUIET = LinkFaults(drop=0.0, duplicate=0.0, slow=0.0)


def _compacting() -> Simulation:
    """A quiet network, and members that snapshot after every entry and keep no tail."""
    return Simulation(Scenario(seed=1, links=QUIET,
                               config=NodeConfig(snapshot_entries=1, snapshot_tail=0)))


def _drive(sim: Simulation, main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on the simulation's loop, then close its nodes and its loop: one left
    open is reported as a ResourceWarning wherever the garbage collector finds it."""
    try:
        sim.loop.run_until_complete(main)
    finally:
        sim._shutdown()


async def _leader(sim: Simulation) -> RaftInterface:
    """Boot ``sim`` and wait (virtual time) for a settled leader."""
    sim.boot()
    while sim.leader() is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # settled: the leader's no-op is applied everywhere
    leader = sim.leader()
    assert leader is not None
    return leader


def _assert_told_the_truth(sim: Simulation, fut: asyncio.Future[int]) -> None:
    """"x" was applied, so its caller must not hear that it certainly was not."""
    assert sim.checker.value_index.get("x"), "the command was applied"
    error = fut.exception() if fut.done() else None
    assert error is None or (isinstance(error, ProposalError) and error.may_have_committed), \
        f"the caller was told {error!r}"


HANDOVER = """
import asyncio
from webraft.sim.cluster import Scenario, Simulation
from webraft.sim.network import Endpoint, LinkFaults
sim = Simulation(Scenario(seed=1, links=LinkFaults(drop=0, duplicate=0, slow=0)))

async def main():
    sim.boot()
    while sim.leader() is None:
        await asyncio.sleep(0.05)
    leader = sim.leader()
    leader.transfer_leadership()
    fut = leader.propose("x")  # refused while handing over: parked, retried
    await asyncio.wait([fut], timeout=5)

sim.loop.run_until_complete(main())
print("done")
"""


def test_a_proposal_on_a_leader_that_hands_over_does_not_spin() -> None:
    """``webraft-sim`` seeds 3, 4, 11, 19, 23, ... hang: a leader handing over refuses
    proposals (``ProposalResult`` index 0), ``Proposals.on_result`` parks the batch, and
    ``leader_known`` (after the same Ready round) calls ``_retry_parked`` at once because
    the node still leads, which proposes it again: the driver never leaves its loop and the
    event loop freezes."""
    assert _run_bounded(HANDOVER) == "done"


def _run_bounded(code: str) -> str:
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "hung"
    return out.stdout.strip() or out.stderr[-2000:]


def test_an_answer_overtaken_by_compaction_is_not_reported_as_lost() -> None:
    """Seeds 50, 62, 72, 82, 89, ...: a follower forwards a proposal; the entry commits,
    the follower applies it and a later one, and compacts both away (a small
    ``snapshot_entries``, no tail) before the leader's answer arrives. ``_await_entry``
    (proposals.py) then finds ``term_at(index)`` None and fails the caller with
    ``LeadershipLost`` ("taken by a leader of term None"), which says the command certainly
    did not commit, though it did."""
    sim = _compacting()
    outcome: list[asyncio.Future[int]] = []

    async def main() -> None:
        leader = await _leader(sim)
        follower = next(m.raft for m in sim.members.values()
                        if m.raft is not None and m.raft is not leader)
        send = sim.network.send

        def late_answers(src: Endpoint, dst: str, payload: dict[str, Any]) -> None:
            if payload["type"] == "propose_resp":  # overtaken by the entries themselves
                sim.loop.call_later(0.3, send, src, dst, payload)
            else:
                send(src, dst, payload)

        sim.network.send = late_answers  # type: ignore[method-assign]
        fut = follower.propose("x")
        await asyncio.sleep(0.05)
        leader.propose("y")  # and a snapshot after it: "x" is compacted away
        await asyncio.wait([fut], timeout=3)
        outcome.append(fut)

    _drive(sim, main())
    _assert_told_the_truth(sim, outcome[0])


def test_a_waiter_inside_a_loaded_snapshot_is_resolved_not_dropped() -> None:
    """Seeds 13, 29, 78, 112, 124, ...: a follower's proposal is appended at ``i`` in term
    1 and committed, but the follower hears nothing more until a leader of term 2 sends it a
    snapshot past ``i``. ``Applier._snapshot_loaded`` calls ``drop_dead_waiters(2)`` before
    ``proposals.snapshot_loaded`` resolves the waiters the snapshot covers, so the caller
    gets ``LeadershipLost`` ("entry i of term 1 was superseded by term 2"): certainly not
    committed, though it was."""
    sim = _compacting()
    outcome: list[asyncio.Future[int]] = []

    async def main() -> None:
        leader = await _leader(sim)
        others = [m.raft for m in sim.members.values()
                  if m.raft is not None and m.raft is not leader]
        follower, successor = others[0], others[1]
        assert follower is not None and successor is not None
        send = sim.network.send
        deaf = [True]

        def only_answers(src: Endpoint, dst: str, payload: dict[str, Any]) -> None:
            if not deaf[0] or dst != follower.address or payload["type"] == "propose_resp":
                send(src, dst, payload)

        sim.network.send = only_answers  # type: ignore[method-assign]
        fut = follower.propose("x")
        await asyncio.sleep(0.1)  # appended, answered and committed; the follower knows 0
        leader.transfer_leadership(successor.address)
        await asyncio.sleep(0.5)
        assert successor.is_leader and successor.term > 1
        successor.propose("y")  # a snapshot in term 2, past "x"
        await asyncio.sleep(0.2)
        deaf[0] = False  # the follower catches up through the snapshot
        await asyncio.wait([fut], timeout=3)
        outcome.append(fut)

    _drive(sim, main())
    _assert_told_the_truth(sim, outcome[0])


def test_a_crashed_application_never_says_it_applied() -> None:
    """Seed 103042: the leader's application answered an apply later (a slow handler); the
    member crashed before the answer, and the simulated application still called ``cb()``
    without applying the entry (``_apply`` returned early once dead). The node, whose close
    had not run yet, resolved the proposal at an index its application never held. The
    runtime was right to believe ``cb()``; the simulated application lied. A crashed one
    now answers nothing, whichever slow way it took (a timer or a coroutine: the seed
    picks it)."""
    for seed in range(1, 7):
        sim = Simulation(Scenario(seed=seed, links=QUIET))
        outcome: list[asyncio.Future[int]] = []

        async def main(sim: Simulation = sim, outcome: list[asyncio.Future[int]] = outcome,
                       ) -> None:
            leader = await _leader(sim)
            app = next(m.app for m in sim.members.values() if m.raft is leader)
            assert app is not None
            app._faults.slow, app._faults.fail = 1.0, 0.0
            slow_apply = app.apply

            def apply_then_crash(entry: Any, index: int, cb: Any) -> Any:
                answer = slow_apply(entry, index, cb)
                app.dead = True  # the power goes before the slow answer
                return answer

            leader.unlisten("apply", app.apply)
            leader.listen("apply", apply_then_crash)
            fut = leader.propose("x")
            await asyncio.wait([fut], timeout=0.5)
            outcome.append(fut)

        _drive(sim, main())
        fut = outcome[0]
        acknowledged = fut.done() and fut.exception() is None
        assert not acknowledged or sim.checker.value_index.get("x"), \
            f"seed {seed}: acknowledged at {fut.result()}, never applied"

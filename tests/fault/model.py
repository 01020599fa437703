"""A linearizability checker for compare-and-set registers: the fault tests' histories.

Owns :class:`RegOp` and :func:`check_register`. Imports nothing of webraft. The simulator's
checker (:mod:`webraft.sim.linearizability`) models a register of reads and writes only;
``webraft-node`` also has compare-and-set, whose outcome depends on the value it finds, so this
is the same search (Wing & Gong, with Lowe's memo of explored states) over a register that
also steps through CAS.

An operation is called at ``call`` and returned at ``ret``; ``ret`` is ``inf`` when its outcome
never became known (a write whose answer was lost may or may not have taken effect). The
history is linearizable if its operations can be put in one order that respects real time, in
which each operation is legal given the value before it (a read returns it; a CAS that swapped
found its ``expected`` value, one that did not found another) and which holds every completed
operation (those of unknown outcome may be left out). A CAS whose outcome is unknown is
decided by the value it finds, like the state machine decides it.

Writes and CASes that were acknowledged carry their log index (``order``): they take effect in
that order, which is how the state machine applied them. That prunes the search and makes it a
stronger check: a history only another order of writes would explain is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ABSENT", "INF", "RegOp", "check_register"]

INF = float("inf")
#: The value of a key that holds nothing (JSON has no such value, so it cannot collide).
ABSENT = ("absent",)


@dataclass(frozen=True, slots=True)
class RegOp:
    """``kind`` is ``"w"`` (write ``value``), ``"r"`` (a read that returned ``value``) or
    ``"cas"`` (set ``value`` if the register holds ``expected``; ``swapped`` says whether it
    did, None if unknown)."""

    kind: str
    value: Any
    call: float
    ret: float = INF
    expected: Any = None
    swapped: bool | None = None
    order: int = 0  # its log index, when known (0: any order)


def _step(op: RegOp, state: Any) -> tuple[bool, Any]:
    """Whether ``op`` is legal on a register holding ``state``, and the value after it."""
    if op.kind == "w":
        return True, op.value
    if op.kind == "r":
        return op.value == state, state
    found = state == op.expected
    if op.swapped is not None and op.swapped != found:
        return False, state
    return True, op.value if found else state


def check_register(ops: list[RegOp], initial: Any = ABSENT,
                   budget: int = 500_000) -> bool | None:
    """True if linearizable, False if not; None if the search gave up after ``budget``
    states (too much concurrency to decide). Each state keeps a bit per operation, so the
    budget bounds memory too: many operations of unknown outcome make a refutation
    exponential, and a gigabyte of states would otherwise end the process."""
    ops = sorted((op for op in ops if op.kind != "r" or op.ret != INF), key=lambda op: op.call)
    n = len(ops)
    done_all = sum(1 << i for i, op in enumerate(ops) if op.ret != INF)
    before = [0] * n  # before[i]: the ordered ops that must go before op i
    prefix = 0
    for _, i in sorted((op.order, i) for i, op in enumerate(ops) if op.order):
        before[i] = prefix
        prefix |= 1 << i
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = [(0, initial)]
    while stack:
        mask, state = stack.pop()
        if mask & done_all == done_all:
            return True
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        if len(seen) > budget:
            return None
        # Only an operation called before every remaining one returned can go next: scan in
        # call order from the first one left, tracking the earliest return seen so far.
        first_ret = INF
        nexts: list[tuple[float, int, Any]] = []
        i = (~mask & -~mask).bit_length() - 1  # the lowest op not linearized yet
        while i < n:
            op = ops[i]
            if op.call > first_ret:
                break
            if not mask >> i & 1:
                first_ret = min(first_ret, op.ret)
                if mask & before[i] == before[i]:
                    legal, after = _step(op, state)
                    if legal:
                        nexts.append((op.ret, i, after))
            i += 1
        # Try the one that returned first first: operations of unknown outcome last, since
        # leaving them out is usually what explains a history.
        nexts.sort(reverse=True)
        stack.extend((mask | 1 << i, after) for _, i, after in nexts)
    return False

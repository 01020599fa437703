"""A linearizability checker for histories of one register (Wing & Gong, with Lowe's memo);
the simulator's histories and those of the fault tests of real processes both go through it.

Owns :func:`linearizable` and :class:`Op`. Imports nothing of webraft: it checks plain
histories.

A history is a list of :class:`Op`: writes, reads and compare-and-sets of one register, each
with the time it was called and the time it returned (``inf`` when its outcome never became
known: a write whose client crashed may or may not have taken effect). The history is
linearizable if the operations can be put in one order that respects real time (an operation
that returned before another was called comes first), in which each operation is legal given
the value before it (a read returns it; a CAS that swapped found its ``expected`` value, one
that did not found another), and which contains every completed operation (pending ones may
be left out).

The search linearizes, at each step, one operation among those called before every remaining
operation returned, and backtracks on a dead end; states already explored (the set of
linearized operations and the register's value) are remembered. Linearizability is
compositional, so a key-value history is checked one key at a time (Herlihy & Wing).

A write or CAS may carry its place in the replicated log (``order``): they then linearize in
that order, which is how the state machine applied them. That prunes the search to what matters
(where the reads fall) and makes it a stronger check: a history that only some other order of
writes would explain is refused too.

When every write has its place and every value is written once (the simulator's histories),
:func:`linearizable_in_log_order` decides the same question greedily, in linear time after a
sort; the simulator cross-checks it against the search on small histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Op:
    """``kind`` is ``"w"`` (write ``value``), ``"r"`` (a read that returned ``value``) or
    ``"cas"`` (set ``value`` if the register holds ``expected``; ``swapped`` says whether it
    did, None if unknown: then the value it finds decides, as in the state machine)."""

    kind: str
    value: Any
    call: float
    ret: float = INF
    order: int = 0  # a write's or CAS's log index, when known (0: any order)
    expected: Any = None
    swapped: bool | None = None


def _step(op: Op, state: Any) -> tuple[bool, Any]:
    """Whether ``op`` is legal on a register holding ``state``, and the value after it."""
    if op.kind == "w":
        return True, op.value
    if op.kind == "r":
        return op.value == state, state
    found = state == op.expected
    if op.swapped is not None and op.swapped != found:
        return False, state
    return True, op.value if found else state


def linearizable(ops: list[Op], initial: Any = None, budget: int = 2_000_000) -> bool | None:
    """True or False; None if the search gave up after ``budget`` steps (too concurrent)."""
    ops = [op for op in ops if op.kind != "r" or op.ret != INF]  # a lost read constrains nothing
    ops.sort(key=lambda op: op.call)
    n = len(ops)
    done_all = sum(1 << i for i, op in enumerate(ops) if op.ret != INF)
    # before[i]: the operations that must be linearized before op i (earlier in the log).
    before = [0] * n
    prefix = 0
    for _, i in sorted((op.order, i) for i, op in enumerate(ops) if op.order):
        before[i] = prefix
        prefix |= 1 << i
    seen: set[tuple[int, Any]] = set()
    # Depth-first: (linearized bitmask, register value).
    stack: list[tuple[int, Any]] = [(0, initial)]
    steps = 0
    while stack:
        mask, value = stack.pop()
        if mask & done_all == done_all:
            return True
        if (mask, value) in seen:
            continue
        seen.add((mask, value))
        steps += 1
        if steps > budget:
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
                    legal, after = _step(op, value)
                    if legal:
                        nexts.append((op.ret, i, after))
            i += 1
        # Try the one that returned first first: operations of unknown outcome last, since
        # leaving them out is usually what explains a history.
        nexts.sort(reverse=True)
        stack.extend((mask | 1 << i, after) for _, i, after in nexts)
    return False


def linearizable_in_log_order(ops: list[Op], initial: Any = None) -> bool:
    """Linearizability when every write has an ``order`` and a value no other write has.

    The writes must then take effect in log order at points ``p1 <= p2 <= ...``, each in its
    write's interval, and a read of the k-th value must fall between ``pk`` and the next
    point. Choosing every point as early as the constraints allow is optimal: an earlier
    point never hurts a later write nor the reads that must follow it.

    Writes and reads only: a compare-and-set's effect depends on the value it finds, which
    this greedy order cannot decide (:func:`linearizable` can), so a history with one is
    refused with a ValueError rather than judged as if it had none.
    """
    if any(op.kind == "cas" for op in ops):
        raise ValueError("linearizable_in_log_order checks writes and reads only; a history "
                         "with compare-and-set needs linearizable()")
    writes = sorted((op for op in ops if op.kind == "w"), key=lambda op: op.order)
    position = {op.value: k for k, op in enumerate(writes, 1)}
    # For each write k (0: the initial value), the reads that returned its value.
    reads: list[list[Op]] = [[] for _ in range(len(writes) + 1)]
    for op in ops:
        if op.kind == "r" and op.ret != INF:
            k = 0 if op.value == initial and op.value not in position else position.get(op.value)
            if k is None:
                return False  # a value nobody wrote
            reads[k].append(op)
    point = float("-inf")
    for k in range(len(writes) + 1):
        if k:
            # After the previous point, within this write, and after every read of the
            # previous value was called (they must fit before this point).
            write = writes[k - 1]
            point = max(point, write.call, *(r.call for r in reads[k - 1]))
            if point > write.ret:
                return False
        if any(r.ret < point for r in reads[k]):
            return False  # a read of this value returned before it could be written
    return True

"""A linearizability checker for histories of one register (Wing & Gong, with Lowe's memo).

Owns :func:`linearizable` and :class:`Op`. Imports nothing of webraft: it checks plain
histories.

A history is a list of :class:`Op`: writes and reads of one register, each with the time it
was called and the time it returned (``inf`` when its outcome never became known: a write
whose client crashed may or may not have taken effect). The history is linearizable if the
operations can be put in one order that respects real time (an operation that returned before
another was called comes first), in which every read returns the latest write before it, and
which contains every completed operation (pending ones may be left out).

The search linearizes, at each step, one operation among those called before every remaining
operation returned, and backtracks on a dead end; states already explored (the set of
linearized operations and the register's value) are remembered. Linearizability is
compositional, so a key-value history is checked one key at a time (Herlihy & Wing).

A write may carry its place in the replicated log (``order``): writes then linearize in that
order, which is how the state machine applied them. That prunes the search to what matters
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
    """``kind`` is ``"w"`` (write ``value``) or ``"r"`` (a read that returned ``value``)."""

    kind: str
    value: Any
    call: float
    ret: float = INF
    order: int = 0  # a write's log index, when known (0: any order)


def linearizable(ops: list[Op], initial: Any = None, budget: int = 2_000_000) -> bool | None:
    """True or False; None if the search gave up after ``budget`` steps (too concurrent)."""
    ops = [op for op in ops if op.kind == "w" or op.ret != INF]  # a lost read constrains nothing
    ops.sort(key=lambda op: op.call)
    n = len(ops)
    done_all = sum(1 << i for i, op in enumerate(ops) if op.ret != INF)
    # before[i]: the writes that must be linearized before write i (earlier in the log).
    ordered = [(op.order, i) for i, op in enumerate(ops) if op.kind == "w" and op.order]
    ordered.sort()
    before = [0] * n
    prefix = 0
    for _, i in ordered:
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
        # Only an operation called before every remaining operation returned can go next.
        first_ret = min((op.ret for i, op in enumerate(ops) if not mask >> i & 1), default=INF)
        for i in range(n):
            op = ops[i]
            if op.call > first_ret:
                break  # sorted by call: none of the rest can go next either
            if mask >> i & 1:
                continue
            if op.kind == "w":
                if mask & before[i] == before[i]:
                    stack.append((mask | 1 << i, op.value))
            elif op.value == value:
                stack.append((mask | 1 << i, value))
    return False


def linearizable_in_log_order(ops: list[Op], initial: Any = None) -> bool:
    """Linearizability when every write has an ``order`` and a value no other write has.

    The writes must then take effect in log order at points ``p1 <= p2 <= ...``, each in its
    write's interval, and a read of the k-th value must fall between ``pk`` and the next
    point. Choosing every point as early as the constraints allow is optimal: an earlier
    point never hurts a later write nor the reads that must follow it.
    """
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

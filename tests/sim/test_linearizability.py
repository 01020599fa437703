"""The register linearizability checker used by the simulator, on small known histories."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webraft.sim.linearizability import INF, Op, linearizable, linearizable_in_log_order


def w(value: str, call: float, ret: float = INF, order: int = 0) -> Op:
    return Op("w", value, call, ret, order)


def r(value: str | None, call: float, ret: float) -> Op:
    return Op("r", value, call, ret)


def test_a_sequential_history_is_linearizable() -> None:
    assert linearizable([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("b", 6, 7)]) is True


def test_a_read_of_an_overwritten_value_after_the_overwrite_returned_is_not() -> None:
    assert linearizable([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]) is False


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in ("a", "b"):
        assert linearizable([w("a", 0, 1), w("b", 2, 6), r(seen, 3, 4)]) is True


def test_a_value_nobody_wrote_is_not_linearizable() -> None:
    assert linearizable([w("a", 0, 1), r("zzz", 2, 3)]) is False


def test_reads_cannot_go_back_in_time() -> None:
    # Both writes overlap both reads, but once one read saw "b" a later one cannot see "a".
    history = [w("a", 0, 10), w("b", 0, 10), r("b", 1, 2), r("a", 3, 4)]
    assert linearizable(history) is True  # "b" then "a": the writes may go in either order
    assert linearizable([w("a", 0, 10, order=1), w("b", 0, 10, order=2),
                         r("b", 1, 2), r("a", 3, 4)]) is False  # not in log order


def test_a_pending_write_may_or_may_not_have_taken_effect() -> None:
    assert linearizable([w("a", 0, 1), w("b", 2), r("a", 3, 4)]) is True
    assert linearizable([w("a", 0, 1), w("b", 2), r("b", 3, 4)]) is True
    # ...but once seen it stays: a later read cannot miss it.
    assert linearizable([w("a", 0, 1), w("b", 2), r("b", 3, 4), r("a", 5, 6)]) is False


def test_the_initial_value_is_read_before_any_write() -> None:
    assert linearizable([r(None, 0, 1), w("a", 2, 3)]) is True
    assert linearizable([w("a", 0, 1), r(None, 2, 3)]) is False


def test_a_lost_read_constrains_nothing() -> None:
    assert linearizable([w("a", 0, 1), Op("r", "nonsense", 2)]) is True


def test_the_search_gives_up_instead_of_running_forever() -> None:
    wide = [w(f"v{i}", 0) for i in range(40)] + [r("v39", 1, 2), r("never", 3, 4)]
    assert linearizable(wide, budget=1000) is None


# ------------------------------------------------- the fast check for log-ordered writes


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    """Small histories: writes with unique values in log order, reads of any written value
    (or the initial one), all with random intervals: linearizable or not."""
    n_writes = draw(st.integers(0, 5))
    times = st.floats(0, 10, allow_nan=False)
    ops = []
    for k in range(1, n_writes + 1):
        call = draw(times)
        ret = draw(st.one_of(st.just(INF), st.floats(call, 12, allow_nan=False)))
        ops.append(w(f"v{k}", call, ret, order=k))
    for _ in range(draw(st.integers(0, 5))):
        call = draw(times)
        ret = draw(st.floats(call, 12, allow_nan=False))
        value = draw(st.sampled_from([None, *(f"v{k}" for k in range(1, n_writes + 1))]))
        ops.append(r(value, call, ret))
    return ops


@given(histories())
@settings(max_examples=400, deadline=None)
def test_the_fast_check_agrees_with_the_search(ops: list[Op]) -> None:
    assert linearizable_in_log_order(ops) == linearizable(ops)


def test_the_fast_check_on_known_histories() -> None:
    ordered = [w("a", 0, 1, order=1), w("b", 2, 3, order=2)]
    assert linearizable_in_log_order([*ordered, r("b", 4, 5)])
    assert not linearizable_in_log_order([*ordered, r("a", 4, 5)])
    assert not linearizable_in_log_order([*ordered, r("zzz", 4, 5)])
    assert linearizable_in_log_order([*ordered, r(None, -1, 0.5)])
    assert not linearizable_in_log_order([*ordered, r(None, 1.5, 1.7)])


def test_the_fast_check_refuses_a_compare_and_set() -> None:
    cas = Op("cas", "b", 2, 3, order=2, expected="a", swapped=False)
    with pytest.raises(ValueError, match="compare-and-set"):
        linearizable_in_log_order([w("a", 0, 1, order=1), cas])

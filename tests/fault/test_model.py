"""The fault tests' judges on histories made by hand: the register checker with CAS
(:func:`webraft.sim.linearizability.linearizable`, from an absent key) and
:func:`~.client.check` (durability of a client's own keys).

Each anomaly the fault tests look for is shown refused here, next to a close history that is
accepted, so a checker that accepted everything would fail.
"""

from __future__ import annotations

from webraft.sim.linearizability import INF, Op, linearizable

from .client import ABSENT, Record, check


def check_register(ops: list[Op], budget: int = 2_000_000) -> bool | None:
    """The check the fault tests make: a key is absent until written."""
    return linearizable(ops, ABSENT, budget)


def w(value: str, call: float, ret: float = INF, order: int = 0) -> Op:
    return Op("w", value, call, ret, order=order)


def r(value: object, call: float, ret: float) -> Op:
    return Op("r", value, call, ret)


def cas(expected: object, value: str, swapped: bool | None, call: float, ret: float = INF,
        order: int = 0) -> Op:
    return Op("cas", value, call, ret, order=order, expected=expected, swapped=swapped)


def test_sequential_reads_see_the_last_write() -> None:
    assert check_register([w("a", 0, 1), r("a", 2, 3), w("b", 4, 5), r("b", 6, 7)])
    assert check_register([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]) is False  # stale


def test_a_read_before_any_write_sees_nothing() -> None:
    assert check_register([r(ABSENT, 0, 1), w("a", 2, 3)])
    assert check_register([r("a", 0, 1), w("a", 2, 3)]) is False  # from the future


def test_concurrent_operations_may_take_either_order() -> None:
    assert check_register([w("a", 0, 10), r(ABSENT, 1, 2), r("a", 3, 4)])
    # Once a read saw the new value, a later read may not see the old one.
    assert check_register([w("a", 0, 10), r("a", 1, 2), r(ABSENT, 3, 4)]) is False


def test_cas_outcome_must_match_the_value_it_found() -> None:
    assert check_register([w("a", 0, 1), cas("a", "b", True, 2, 3), r("b", 4, 5)])
    assert check_register([w("a", 0, 1), cas("a", "b", False, 2, 3)]) is False
    assert check_register([w("a", 0, 1), cas("x", "b", True, 2, 3)]) is False
    assert check_register([cas(ABSENT, "b", True, 0, 1), r("b", 2, 3)])
    # A CAS that did not swap changes nothing.
    assert check_register([w("a", 0, 1), cas("x", "b", False, 2, 3), r("b", 4, 5)]) is False


def test_an_unknown_write_may_or_may_not_have_happened() -> None:
    assert check_register([w("a", 0, 1), w("b", 2), r("a", 3, 4)])
    assert check_register([w("a", 0, 1), w("b", 2), r("b", 3, 4), r("b", 5, 6)])
    # But once seen, it stays.
    assert check_register([w("a", 0, 1), w("b", 2), r("b", 3, 4), r("a", 5, 6)]) is False


def test_an_unknown_cas_is_decided_by_the_value_it_finds() -> None:
    assert check_register([w("a", 0, 1), cas("a", "b", None, 2), r("b", 3, 4)])
    assert check_register([w("a", 0, 1), cas("x", "b", None, 2), r("b", 3, 4)]) is False


def test_acknowledged_writes_take_effect_in_log_order() -> None:
    concurrent = [w("a", 0, 10, order=2), w("b", 0, 10, order=3), r("b", 11, 12)]
    assert check_register(concurrent)
    swapped = [w("a", 0, 10, order=3), w("b", 0, 10, order=2), r("b", 11, 12)]
    assert check_register(swapped) is False  # only b-before-a's real time order explains it


def test_an_undecidable_history_says_so() -> None:
    many = [w(str(i), 0) for i in range(40)] + [r("x", 1, 2)]
    assert check_register(many, budget=1000) is None


def own(status: str, value: str, key: str = "own-0-0") -> Record:
    return Record(0, "own", key, value, 0.0, 1.0 if status == "ok" else INF, status)


def test_check_finds_lost_and_phantom_writes() -> None:
    assert check([own("ok", "v"), own("info", "u", "own-0-1")], {"own-0-0": "v"}) == []
    assert len(check([own("ok", "v")], {})) == 1  # acknowledged, then lost
    assert len(check([own("fail", "v")], {"own-0-0": "v"})) == 1  # refused, yet applied
    assert check([own("info", "v")], {}) == []


def test_check_reads_the_final_store_as_a_last_read() -> None:
    records = [Record(0, "w", "k0", "a", 0.0, 1.0, "ok", index=1)]
    assert check(records, {"k0": "a"}) == []
    assert len(check(records, {})) == 1

"""The key-value state machine: what it applies, what it ignores, and that it never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webraft.member import kv as kv_module
from webraft.member.kv import (
    MAX_KEY_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    KVStore,
    cas,
    check_command,
    delete,
    put,
    same_json,
)


def test_put_and_del_in_log_order():
    kv = KVStore()
    kv.apply(1, put("x", {"deep": [1, 2]}))
    kv.apply(2, put("y", None))
    kv.apply(3, put("x", 2))
    kv.apply(4, delete("y"))
    kv.apply(5, delete("never-there"))
    assert kv.data == {"x": 2}
    assert kv.last_applied == 5 and kv.ignored == 0
    assert "x" in kv and "y" not in kv and len(kv) == 1
    assert kv.get("y", "default") == "default"


BAD_COMMANDS: list[Any] = [
    None, 3, "put", [], {"op": "put", "key": "x"}, {"op": "get", "key": "x"},
    {"op": "put", "key": 1, "value": 1}, {"op": "del"}, {"op": "put", "key": "", "value": 1},
    {"op": "del", "key": "k" * (MAX_KEY_LENGTH + 1)}, {"op": "cas", "key": "x"},
    {**put("x", 1), "id": 7}, put("x", 1, ""), delete("x", "r" * (MAX_REQUEST_ID_LENGTH + 1)),
]


@pytest.mark.parametrize("command", BAD_COMMANDS)
def test_commands_it_cannot_apply_are_refused_up_front_and_ignored_in_the_log(command: Any):
    with pytest.raises(ValueError):
        check_command(command)
    kv = KVStore()
    kv.apply(1, put("x", 1))
    kv.apply(2, command)
    assert kv.data == {"x": 1}
    assert (kv.last_applied, kv.ignored) == (2, 1)


@given(st.lists(st.one_of(
    st.builds(put, st.sampled_from(["a", "b", "c"]), st.integers()),
    st.builds(delete, st.sampled_from(["a", "b", "c"])),
    st.sampled_from(BAD_COMMANDS),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)))
def test_replaying_a_log_rebuilds_the_same_store(log: list[Any]):
    """What a restarted member relies on: applying the same log again gives the same state."""
    first, second = KVStore(), KVStore()
    for index, command in enumerate(log, start=1):
        first.apply(index, command)
    for index, command in enumerate(log, start=1):
        second.apply(index, command)
    assert first.data == second.data
    assert first.ignored == second.ignored
    model: dict[str, Any] = {}
    for command in log:
        try:
            check_command(command)
        except ValueError:
            continue
        if command["op"] == "put":
            model[command["key"]] = command["value"]
        else:
            model.pop(command["key"], None)
    assert first.data == model


def test_outcomes_are_computed_when_applied():
    kv = KVStore()
    assert kv.apply(1, put("x", 1)) == {"index": 1}
    assert kv.apply(2, delete("x")) == {"index": 2, "deleted": True}
    assert kv.apply(3, delete("x")) == {"index": 3, "deleted": False}
    assert kv.apply(4, cas("x", "new", absent=True)) == {"index": 4, "swapped": True}
    assert kv.apply(5, cas("x", "newer", absent=True)) == {"index": 5, "swapped": False}
    assert kv.apply(6, cas("x", "newer", expected="old")) == {"index": 6, "swapped": False}
    assert kv.data == {"x": "new"}
    assert kv.apply(7, cas("x", "newer", expected="new")) == {"index": 7, "swapped": True}
    assert kv.apply(8, cas("y", 1, expected=None)) == {"index": 8, "swapped": False}, \
        "an absent key does not hold null"
    assert kv.apply(9, {"op": "nope"}) is None
    assert kv.data == {"x": "newer"} and kv.requests == {}


@pytest.mark.parametrize(("held", "expected", "same"), [
    (1, 1, True), (1, 1.0, False), (1, True, False), (0, False, False), (None, None, True),
    ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True), ({"a": 1}, {"a": 1, "b": 1}, False),
    ([1, 2], [2, 1], False), ("1", 1, False),
])
def test_compare_and_set_compares_json_values_strictly(held: Any, expected: Any, same: bool):
    assert same_json(held, expected) is same
    kv = KVStore()
    kv.apply(1, put("x", held))
    assert kv.apply(2, cas("x", "set", expected=expected))["swapped"] is same  # type: ignore[index]


def test_comparing_absurdly_nested_values_does_not_raise():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert same_json(deep, deep)
    kv = KVStore()
    kv.apply(1, put("x", deep))
    assert kv.apply(2, cas("x", 1, expected=[]))["swapped"] is False  # type: ignore[index]


def test_a_request_id_applies_once_and_its_retries_get_the_first_outcome():
    kv = KVStore()
    first = kv.apply(1, cas("x", 1, absent=True, request_id="r1"))
    assert first == {"index": 1, "swapped": True}
    kv.apply(2, put("x", 2))
    assert kv.apply(3, cas("x", 1, absent=True, request_id="r1")) == first
    assert kv.apply(4, put("x", 99, "r2")) == {"index": 4}
    assert kv.apply(5, put("x", 100, "r2")) == {"index": 4}, "not applied again"
    assert kv.data == {"x": 99} and kv.last_applied == 5
    assert kv.outcome("r1") == first and kv.outcome("other") is None


def test_request_ids_are_forgotten_oldest_first(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kv_module, "REMEMBERED_REQUESTS", 3)
    kv = KVStore()
    for index in range(1, 5):
        kv.apply(index, put("n", index, f"r{index}"))
    assert list(kv.requests) == ["r2", "r3", "r4"]
    assert kv.apply(5, put("n", 1, "r1")) == {"index": 5}, "forgotten: applied again"
    assert list(kv.requests) == ["r3", "r4", "r1"]
    assert kv.apply(6, put("n", 4, "r4")) == {"index": 4}, "remembered: not applied"
    assert kv.data == {"n": 1}


def test_a_snapshot_carries_the_remembered_requests():
    kv = KVStore()
    kv.apply(1, put("x", 1, "r1"))
    kv.apply(2, delete("x", "r2"))
    restored = KVStore()
    restored.restore(2, json.loads(json.dumps(kv.snapshot())))
    assert restored.requests == kv.requests and list(restored.requests) == ["r1", "r2"]
    assert restored.apply(3, put("x", 5, "r1")) == {"index": 1}
    assert restored.data == {}


@pytest.mark.parametrize("state", [
    None, [], {"data": 3, "ignored": "x", "requests": {"r": {}}},
    {"data": {"k": 1}, "requests": [["r", {"index": 1}], ["bad"], [1, {}], ["s", 2], 5]},
])
def test_a_malformed_snapshot_restores_what_is_well_formed(state: Any):
    kv = KVStore()
    kv.restore(7, state)
    assert kv.last_applied == 7 and kv.ignored == 0
    if isinstance(state, dict) and state.get("data") == {"k": 1}:
        assert kv.data == {"k": 1} and kv.requests == {"r": {"index": 1}}
    else:
        assert kv.data == {} and kv.requests == {}


COMMANDS = st.one_of(
    st.builds(put, st.sampled_from("abc"), st.integers(0, 2), st.sampled_from([None, "r1", "r2"])),
    st.builds(delete, st.sampled_from("abc"), st.sampled_from([None, "r3"])),
    st.builds(lambda k, v, e, absent, r: cas(k, v, expected=e, absent=absent, request_id=r),
              st.sampled_from("abc"), st.integers(0, 2), st.integers(0, 2), st.booleans(),
              st.sampled_from([None, "r1", "r4"])),
    st.sampled_from(BAD_COMMANDS),
)


@given(st.lists(COMMANDS, max_size=30), st.integers(0, 30))
def test_outcomes_are_the_same_on_a_member_restored_from_a_snapshot(log: list[Any], cut: int):
    """Every member computes the same outcomes, whether it applied the whole log or started
    from a snapshot taken part way."""
    whole, early = KVStore(), KVStore()
    outcomes = [whole.apply(i, c) for i, c in enumerate(log, start=1)]
    cut = min(cut, len(log))
    for index, command in enumerate(log[:cut], start=1):
        early.apply(index, command)
    late = KVStore()
    late.restore(cut, json.loads(json.dumps(early.snapshot())))
    assert [late.apply(i, c) for i, c in enumerate(log[cut:], start=cut + 1)] == outcomes[cut:]
    assert late.data == whole.data and late.requests == whole.requests

"""The key-value state machine: what it applies, what it ignores, and that it never raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webraft.member.kv import MAX_KEY_LENGTH, KVStore, check_command, delete, put


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
    {"op": "del", "key": "k" * (MAX_KEY_LENGTH + 1)},
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

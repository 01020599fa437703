"""Property-based tests: garbage from the network, commands at the edge, fault schedules.

* got_data with garbage / arbitrary messages never raises; what the codec refuses is
  reported via ``error`` and changes nothing; the cluster still commits afterwards;
* a command propose() accepts is one every peer accepts on the wire (else the log wedges);
* random partitions, restarts and losses: no proposal hangs, outcomes tell the truth
  (``may_have_committed``), every node applies the same sequence.

The got_data fuzzers feed one *running* cluster. Hypothesis runs in a worker thread and each
example hops onto the event loop (:func:`cluster.on_loop`), so the cluster keeps its
heartbeats going between examples while each check (snapshot, got_data, snapshot) is atomic.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from typing import Any

import pytest
from cluster import RELAXED, Cluster, FastRaft, Network, on_loop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import until

import webraft
from webraft.core.messages import _SCHEMA, MAX_INT, decode
from webraft.errors import MessageError

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def snapshot(node: webraft.RaftInterface) -> tuple[Any, ...]:
    return (node.term, node.commit_index, node.state, node.leader, node.last_applied,
            node.core.vote, node.core.log.last_index)


def feed(node: webraft.RaftInterface, src: str, payload: Any,
         via_instance: bool = False) -> tuple[Any, ...]:
    """On the loop: got_data, and what it did (exception, errors, state before/after)."""
    errors: list[BaseException] = []
    before = snapshot(node)
    off = node.listen("error", errors.append)
    raised = None
    try:
        if via_instance:
            node.nodes[src].got_data(payload)
        else:
            node.got_data(src, payload)
    except BaseException as exc:
        raised = exc
    finally:
        off()
    return raised, errors, before, snapshot(node)


# ---------------------------------------------------------------------- strategies

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=MAX_INT - 2)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=12)
odd_objects = st.sampled_from([(), (1, 2), {1, 2}, b"bytes", object(), frozenset(), 1j,
                               Ellipsis, float("nan"), math.inf])

# The wire schema, from the codec itself so that new message types are fuzzed too.
SPECS = {kind: specs for kind, (_cls, specs) in _SCHEMA.items()}
TYPES = tuple(SPECS)
REQUIRED = {kind: tuple(f.name for f in specs if f.required) for kind, specs in SPECS.items()}
KIND_OF = {(kind, f.name): f.kind for kind, specs in SPECS.items() for f in specs}

bad_ints = (st.booleans() | st.floats() | st.text(max_size=5) | st.none()
            | st.lists(st.integers(0, 3), max_size=2) | st.integers(max_value=-1)
            | st.integers(min_value=MAX_INT + 1) | st.just({"n": 1}) | odd_objects)
bad_bools = (st.integers() | st.text(max_size=5) | st.none() | st.floats()
             | st.lists(st.booleans(), max_size=2) | st.just({}))
bad_strings = (st.integers() | st.none() | st.booleans() | st.lists(st.text(), max_size=2)
               | st.text(min_size=257, max_size=300))
bad_commands = (st.just([]) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
                | st.text(max_size=5) | st.integers() | st.none() | st.booleans())
bad_types = (st.text(max_size=12).filter(lambda t: t not in TYPES) | st.none() | st.integers()
             | st.lists(st.text(max_size=3), max_size=2) | st.booleans())


def templates(term: int, last: int, commit: int) -> list[dict[str, Any]]:
    """One valid wire message of every type (every field present), plausible at ``term``."""
    values = {"int": lambda name: term if name in ("term", "last_term", "prev_term", "snap_term",
                                                   "hint_term")
              else 0 if name == "kind" else min(last, commit),
              "bool": lambda name: True,
              "str": lambda name: "a",
              "text": lambda name: "",
              "config": lambda name: {"voters": ["a", "b", "c"]},
              "commands": lambda name: [1, {"a": [2]}],
              "entries": lambda name: [[term, 0, {"x": 1}], [term, 1, None],
                                       [term, 2, {"voters": ["a", "b", "c"]}]]}
    out = []
    for kind, specs in SPECS.items():
        msg = {"type": kind}
        for f in specs:
            msg[f.name] = values[f.kind](f.name)
        decode(msg)  # the templates themselves must be valid
        out.append(msg)
    return out


@st.composite
def broken(draw: st.DrawFn, valid: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid message with one mutation that makes it certainly invalid."""
    msg = copy.deepcopy(draw(st.sampled_from(valid)))
    kind = msg["type"]
    fields = [f for f in msg if f != "type"]
    how = draw(st.sampled_from(["drop", "retype", "type", "entries", "commands"]))
    if how == "drop":
        del msg[draw(st.sampled_from(["type", *REQUIRED[kind]]))]
    elif how == "type":
        msg["type"] = draw(bad_types)
    elif how == "entries" and kind == "append":
        msg["entries"] = draw(bad_entries(msg["term"], msg["prev_term"]))
    elif how == "commands" and kind == "propose":
        msg["commands"] = draw(bad_commands)
    else:
        name = draw(st.sampled_from(fields))
        field_kind = KIND_OF.get((kind, name))
        if field_kind == "int":
            msg[name] = draw(bad_ints)
        elif field_kind == "bool":
            msg[name] = draw(bad_bools)
        elif field_kind == "str":
            msg[name] = draw(bad_strings)
        elif field_kind == "text":
            msg[name] = draw(json_scalars.filter(lambda v: not isinstance(v, str)))
        elif field_kind == "config":
            msg[name] = draw(json_values.filter(
                lambda d: not (isinstance(d, dict) and d.get("voters"))))
        elif field_kind == "entries":
            msg[name] = draw(bad_entries(msg["term"], msg["prev_term"]))
        elif field_kind == "commands":
            msg[name] = draw(bad_commands)
        else:  # a field the schema does not know: make the message lose its type instead
            msg["type"] = draw(bad_types)
    return msg


def bad_entries(term: int, prev_term: int) -> st.SearchStrategy[Any]:
    good = st.just([term, 0, {"ok": 1}])
    bad_item = st.one_of(
        json_scalars,
        st.lists(st.integers(0, 2), max_size=2),  # too short
        st.just([term, 0, None, "extra"]),
        bad_ints.map(lambda t: [t, 0, None]),
        st.sampled_from([3, -1, True, False, "0", 0.0, None, [0]]).map(
            lambda k: [term, k, None]),
        st.just([term + 1, 0, None]),  # newer than the message
        st.just([prev_term - 1, 0, None]) if prev_term > 0 else st.just([term, 9, None]),
        json_values.map(lambda d: [term, 2, d]).filter(
            lambda e: not (isinstance(e[2], dict) and e[2].get("voters"))),  # bad config
    )
    listed = st.tuples(st.lists(good, max_size=2), bad_item, st.lists(good, max_size=2)).map(
        lambda t: [*t[0], t[1], *t[2]])
    return listed | json_scalars | st.dictionaries(st.text(max_size=3), json_scalars,
                                                   max_size=2)


@st.composite
def flipped(draw: st.DrawFn, valid: list[dict[str, Any]]) -> dict[str, Any]:
    """A message with arbitrary but well-typed values (it may or may not be valid)."""
    msg = copy.deepcopy(draw(st.sampled_from(valid)))
    for name in list(msg):
        if name == "type" or not draw(st.booleans()):
            continue
        field_kind = KIND_OF.get((msg["type"], name))
        if field_kind == "int":
            msg[name] = draw(st.integers(0, 2**40))
        elif field_kind == "bool":
            msg[name] = not msg[name]
        elif field_kind == "entries":
            msg[name] = draw(st.lists(st.tuples(st.integers(0, msg["term"]), st.just(0),
                                                json_values.filter(lambda v: v == v)).map(list),
                                      max_size=3))
        elif field_kind == "commands":
            msg[name] = draw(st.lists(st.integers() | st.text(max_size=4), min_size=1,
                                      max_size=3))
        elif field_kind == "str":
            msg[name] = draw(st.sampled_from(["", "a", "b", "c", "zz"]))
    if draw(st.booleans()):
        msg["type"] = draw(st.sampled_from(TYPES))
    return msg


# ---------------------------------------------------------------------- got_data fuzzing


async def _fuzz_cluster(make_cluster: Any) -> tuple[Cluster, list[webraft.RaftInterface]]:
    c = make_cluster(timing=RELAXED).start()
    lead = await c.leader()
    for k in range(3):
        await lead.propose({"warmup": k})
    await c.converged()
    return c, [lead, *(n for n in c.nodes.values() if n is not lead)]


async def test_garbage_never_raises_reports_error_and_changes_nothing(
        make_cluster: Any) -> None:
    c, (lead, f1, f2) = await _fuzz_cluster(make_cluster)
    loop = asyncio.get_running_loop()
    valid = templates(lead.term, lead.core.log.last_index, lead.commit_index)
    recorded = [copy.deepcopy(p) for _, _, p in list(c.net.log)[-200:]]
    garbage = st.one_of(
        json_values.filter(lambda v: not isinstance(v, dict)),
        odd_objects,
        st.dictionaries(st.text(max_size=8), json_values, max_size=4).filter(
            lambda d: d.get("type") not in TYPES),
        broken(valid),
        broken(recorded),
    )

    @FUZZ
    @given(payload=garbage, target=st.sampled_from([lead, f1, f2]),
           src=st.sampled_from(["a", "b", "c", "zz", ""]), via_instance=st.booleans())
    def check(payload: Any, target: webraft.RaftInterface, src: str, via_instance: bool) -> None:
        with pytest.raises(MessageError):
            decode(payload)  # the generator only makes invalid messages
        raised, errors, before, after = on_loop(
            loop, feed, target, src, payload, via_instance and src in target.nodes)
        assert raised is None, f"got_data raised {raised!r}"
        assert len(errors) >= 1, "no error event for garbage"
        assert all(isinstance(e, webraft.WebraftError) for e in errors), errors
        assert after == before

    await asyncio.to_thread(check)
    await still_commits(c)


async def test_arbitrary_messages_never_raise_and_rejections_change_nothing(
        make_cluster: Any) -> None:
    """Any message (valid or not, from members, strangers or itself) to one follower.

    Invalid ones (the codec refuses them) must change nothing. Valid ones may do anything a
    faulty peer can cause, so the test only asks that the honest majority (the leader and the
    other follower) still commits afterwards.
    """
    c, (lead, f1, _f2) = await _fuzz_cluster(make_cluster)
    loop = asyncio.get_running_loop()
    valid = templates(lead.term, lead.core.log.last_index, lead.commit_index)
    typed = st.builds(
        lambda kind, fields: {"type": kind, **fields},
        st.sampled_from(TYPES),
        st.dictionaries(st.sampled_from(sorted({name for _, name in KIND_OF})), json_values,
                        max_size=6))
    messages = st.one_of(typed, flipped(valid))

    @FUZZ
    @given(payload=messages, src=st.sampled_from(["a", "b", "c", "zz"]))
    def check(payload: Any, src: str) -> None:
        try:
            decode(payload)
            invalid = False
        except MessageError:
            invalid = True
        raised, errors, before, after = on_loop(loop, feed, f1, src, payload)
        assert raised is None, f"got_data raised {raised!r}"
        if invalid:
            assert errors, "no error event for an invalid message"
            assert after == before, f"rejected with {errors!r} but the state changed"

    await asyncio.to_thread(check)
    await still_commits(c, everywhere=False)


async def test_messages_refused_by_the_core_change_nothing(make_cluster: Any) -> None:
    """Well-formed messages that no correct peer could send in this state are refused whole."""
    c = make_cluster(timing=RELAXED).start()
    lead = await c.leader()
    await lead.propose("x")
    await c.converged()
    f1, f2 = (n for n in c.nodes.values() if n is not lead)
    last = lead.core.log.last_index
    cases = [
        (f1, f1.address, {"type": "heartbeat", "term": f1.term, "commit": 0}),  # from itself
        (lead, lead.address, {"type": "append_resp", "term": lead.term, "index": 1,
                              "success": True}),
        # a second leader of the leader's own term
        (lead, f1.address, {"type": "heartbeat", "term": lead.term, "commit": 0}),
        (lead, f1.address, {"type": "append", "term": lead.term, "prev_index": last,
                            "prev_term": lead.term, "commit": 0}),
        # acknowledging entries the leader never had
        (lead, f2.address, {"type": "append_resp", "term": lead.term, "index": last + 5,
                            "success": True}),
    ]
    for target, src, payload in cases:
        decode(payload)  # well-formed
        raised, errors, before, after = feed(target, src, payload)
        assert raised is None
        assert len(errors) == 1 and isinstance(errors[0], MessageError), (payload, errors)
        assert after == before, payload
    await still_commits(c)


async def still_commits(c: Cluster, everywhere: bool = True) -> None:
    """The cluster, whatever the fuzzer did to it, elects a leader and commits again: applied
    on every node, or (``everywhere=False``) on a majority."""
    async def attempt() -> int:
        while True:
            lead = await c.leader(timeout=10)
            try:
                return await lead.propose({"after": "fuzz"})
            except webraft.ProposalError:
                continue  # leadership moved meanwhile: try with the next leader

    index = await asyncio.wait_for(attempt(), 20)
    need = len(c.nodes) if everywhere else len(c.nodes) // 2 + 1
    await until(lambda: sum((index, {"after": "fuzz"}) in n.applied
                            for n in c.nodes.values()) >= need,
                10, f"{need} nodes applied the post-fuzz entry")


# ---------------------------------------------------------------------- forwarded commands


@pytest.mark.parametrize("commands", [
    [float("nan")], [{"x": math.inf}], [{1, 2}], ["x" * (1 << 21)],
], ids=["nan", "inf", "set", "oversized"])
async def test_forwarded_commands_are_held_to_propose_rules(
        cluster: Cluster, commands: list[Any]) -> None:
    """A forwarded command that propose() would refuse (InvalidCommand) must not enter the log.

    Otherwise one message poisons the log: with a JSON transport the entry can never be sent
    to followers and nothing commits again (or every node applies something propose() forbids).
    """
    lead = await cluster.leader()
    src = next(n for n in cluster.names if n != lead.address)
    for command in commands:
        with pytest.raises(webraft.InvalidCommand):
            await lead.propose(command)
    raised, errors, before, after = feed(
        lead, src, {"type": "propose", "term": lead.term, "id": 1, "commands": commands})
    assert raised is None
    assert errors, "the invalid forwarded command was accepted silently"
    assert after[6] == before[6], "the leader appended a command propose() refuses"
    await still_commits(cluster)


# ---------------------------------------------------------------------- fault schedules

ops = st.lists(st.one_of(
    st.tuples(st.just("propose"), st.integers(0, 2)),
    st.tuples(st.just("propose"), st.integers(0, 2)),
    st.tuples(st.just("propose_leader")),
    st.tuples(st.just("isolate_leader")),
    st.tuples(st.just("cut"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("isolate"), st.integers(0, 2)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.02, 0.1])),
    st.tuples(st.just("restart"), st.integers(0, 2)),
    st.tuples(st.just("drop_proposals")),
), max_size=14)


async def run_schedule(schedule: list[tuple[Any, ...]]) -> None:
    c = Cluster(proposal_timeout=0.4, message_timeout=0.3)
    c.start()
    try:
        await c.leader()
        futs: list[tuple[asyncio.Future[int], str]] = []
        for k, op in enumerate(schedule):
            name = c.names[op[1]] if len(op) > 1 and isinstance(op[1], int) else ""
            leader = next((n for n in c.nodes.values() if n.is_leader), None)
            if op[0] == "propose":
                command = f"cmd-{k}"
                futs.append((c.nodes[name].propose(command), command))
            elif op[0] == "propose_leader" and leader is not None:
                command = f"cmd-{k}"
                futs.append((leader.propose(command), command))
            elif op[0] == "isolate_leader" and leader is not None:
                c.isolate(leader.address)
            elif op[0] == "cut":
                c.cut(name, c.names[op[2]])
            elif op[0] == "isolate":
                c.isolate(name)
            elif op[0] == "heal":
                c.heal()
            elif op[0] == "wait":
                await asyncio.sleep(op[1])
            elif op[0] == "restart":
                await c.restart(name)
            elif op[0] == "drop_proposals":
                c.net.drops.append(lambda s, d, p: p["type"] == "propose")
        # Nothing hangs: every proposal has an outcome within its timeout (plus slack).
        pending = [f for f, _ in futs]
        if pending:
            _, not_done = await asyncio.wait(pending, timeout=0.4 + 5)
            assert not not_done, f"{len(not_done)} proposals never completed"
        c.heal()
        await c.converged(timeout=10)
        reference = c.nodes[c.names[0]].applied
        for node in c.nodes.values():
            assert node.applied == reference, "nodes applied different sequences"
        applied = dict(reference)
        assert len(applied) == len(reference), "an index was applied twice"
        for fut, command in futs:
            if fut.exception() is None:
                assert applied.get(fut.result()) == command
            else:
                exc = fut.exception()
                assert isinstance(exc, webraft.ProposalError), repr(exc)
                if not exc.may_have_committed:
                    assert command not in applied.values(), f"{exc!r} but {command} committed"
    finally:
        await c.close()


async def test_random_fault_schedules_never_hang_and_keep_logs_consistent() -> None:
    loop = asyncio.get_running_loop()

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(schedule=ops)
    def check(schedule: list[tuple[Any, ...]]) -> None:
        asyncio.run_coroutine_threadsafe(run_schedule(schedule), loop).result(timeout=60)

    await asyncio.to_thread(check)


# ---------------------------------------------------------------------- propose vs. the wire


def nest(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


strict_scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                  | st.floats(allow_nan=False, allow_infinity=False))
strict_json = st.recursive(
    strict_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=20)
big_json = st.one_of(
    st.builds(nest, st.integers(0, 100), strict_scalars),
    st.builds(lambda n, v: [v] * n, st.integers(0, 300_000), strict_scalars),
    st.builds(lambda n: {f"k{i}": i for i in range(n)}, st.integers(0, 60_000)),
    st.builds(lambda n, s: [s] * n, st.integers(0, 100_000), st.text(max_size=12)),
)


async def test_whatever_propose_accepts_the_wire_accepts() -> None:
    """A command propose() takes is one a follower accepts in an append (else it wedges).

    Checked without a cluster: propose() on an unstarted node validates synchronously, and
    the codec is what every follower runs on the leader's append.
    """
    loop = asyncio.get_running_loop()
    raft = FastRaft("a", Network(), members=["a", "b", "c"])

    def accepted(command: Any) -> bool:
        fut = raft.propose(command)
        if fut.done() and isinstance(fut.exception(), webraft.InvalidCommand):
            return False
        assert not fut.done(), fut
        return True

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(command=strict_json | big_json)
    def check(command: Any) -> None:
        if not on_loop(loop, accepted, command):
            return
        wire = json.loads(json.dumps(command))
        decode({"type": "append", "term": 1, "prev_index": 0, "prev_term": 0, "commit": 0,
                "entries": [[1, 0, wire]]})
        decode({"type": "propose", "term": 1, "id": 1, "commands": [wire]})

    try:
        await asyncio.to_thread(check)
    finally:
        await raft.close()


@pytest.mark.parametrize("command", [
    [1] * 200_000,  # 600 kB of JSON
    {f"k{i}": 0 for i in range(60_000)},  # under 1 MiB of JSON
    nest(100),  # 201 bytes of JSON, 100 levels deep
    nest(60),
    ["é" * 100] * 1_000,  # escapes make the JSON 6x longer than the text
], ids=["ints-600kB", "dict-60k-keys", "nested-100", "nested-60", "escapes"])
async def test_a_command_propose_accepts_commits_everywhere(
        make_cluster: Any, command: Any) -> None:
    c = make_cluster(timing=RELAXED, proposal_timeout=3.0).start()
    lead = await c.leader()
    try:
        index = await lead.propose(command)
    except webraft.InvalidCommand:
        pass  # refused at the edge: fine
    else:
        await until(lambda: all((index, command) in n.applied for n in c.nodes.values()), 10,
                    "every node applied it")
    await still_commits(c)

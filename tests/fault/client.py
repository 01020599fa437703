"""Concurrent HTTP clients of ``webraft-node`` control ports, and the history they record.

Owns :class:`Workload`, :class:`Record` and :func:`check`. Imports the simulator's checker
(:mod:`webraft.sim.linearizability`) and the standard library; it talks to members only
over HTTP, like an operator's client.

Each client runs one operation at a time, on a member picked at random (followers forward):
a write (``PUT /kv/K``), a linearizable read (``GET /kv/K?linearizable=1``), a compare-and-set
(``POST /cas/K``, expecting the last value this client saw), or a write of a key of its own
that nothing overwrites (for the durability check). Writes carry ``?request_id=``, so a write
whose answer was lost is retried, through any member, until an answer comes or the operation's
attempts run out; the state machine applies it once. Each operation is recorded with the time
it was called and the time it returned, and ends:

* **ok**: acknowledged (with its log index and, for a CAS, whether it swapped);
* **fail**: certainly not applied: every attempt was refused before it was sent or answered
  an error with ``may_have_committed: false``;
* **info**: unknown: an attempt timed out, lost its connection or said ``may_have_committed``.

:func:`check` then judges the history: each register key linearizable (with CAS), every
acknowledged own-key write present in the final store, every failed one absent.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from webraft.sim.linearizability import INF, Op, linearizable

from .proxy import HOST

__all__ = ["ABSENT", "Lost", "NotSent", "Record", "Workload", "check", "http"]

#: The value of a key that holds nothing (JSON has no such value, so it cannot collide).
ABSENT = ("absent",)
#: Attempts of one write before it is recorded as failed or unknown.
ATTEMPTS = 8
#: Seconds one HTTP attempt may take: beyond the members' proposal timeout, so that a member
#: that is alive answers before the client gives up on it.
ATTEMPT_TIMEOUT = 8.0


class NotSent(Exception):
    """The request never reached a member (connection refused): it had no effect."""


class Lost(Exception):
    """The request was sent but no answer came: it may have taken effect."""


async def http(port: int, method: str, path: str, body: Any = None,
               timeout: float = ATTEMPT_TIMEOUT) -> tuple[int, Any]:
    """One request to a control port: ``(status, decoded JSON)``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2.0)
    except (OSError, TimeoutError) as exc:
        raise NotSent(str(exc)) from None
    data = b"" if body is None else json.dumps(body).encode()
    try:
        async with asyncio.timeout(timeout):
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                         "\r\n".encode() + data)
            raw = await reader.read()
    except (OSError, TimeoutError) as exc:
        raise Lost(repr(exc)) from None
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), json.loads(payload)
    except (IndexError, ValueError):
        raise Lost(f"malformed answer {raw[:80]!r}") from None


@dataclass
class Record:
    """One operation of the history (see the module docstring)."""

    client: int
    kind: str  # "w", "r", "cas" on register keys; "own" on a client's own key
    key: str
    value: Any  # written; read (ABSENT for none); a CAS's new value
    call: float
    ret: float = INF
    status: str = "info"  # "ok", "fail", "info"
    expected: Any = ABSENT  # a CAS's expected value
    swapped: bool | None = None
    index: int = 0  # a write's log index, when acknowledged
    attempts: int = 0
    error: str = ""  # the last error an attempt met

    def as_op(self) -> Op:
        kind = "w" if self.kind == "own" else self.kind
        return Op(kind, self.value, self.call, self.ret if self.status == "ok" else INF,
                  self.index, self.expected, self.swapped)


@dataclass
class Workload:
    """``clients`` concurrent clients over ``keys`` register keys, against ``ports``.

    ``mix`` weighs the operations (write, read, cas, own); :attr:`records` is the history.
    """

    ports: list[int]
    clients: int = 4
    keys: int = 3
    seed: int = 0
    mix: tuple[int, int, int, int] = (3, 3, 2, 1)
    think: float = 0.01
    attempts: int = ATTEMPTS  # of each write
    records: list[Record] = field(default_factory=list)

    async def run(self, stop: asyncio.Event, max_ops: int = 100_000) -> None:
        """Run every client until ``stop`` is set (or each did ``max_ops``)."""
        rng = random.Random(self.seed)
        await asyncio.gather(*(self._client(c, random.Random(rng.random()), stop, max_ops)
                               for c in range(self.clients)))

    async def _client(self, me: int, rng: random.Random, stop: asyncio.Event,
                      max_ops: int) -> None:
        seen: dict[str, Any] = {}
        for n in range(max_ops):
            if stop.is_set():
                return
            kind = rng.choices(("w", "r", "cas", "own"), self.mix)[0]
            key = f"own-{me}-{n}" if kind == "own" else f"k{rng.randrange(self.keys)}"
            value = f"{me}-{n}"
            if kind == "r":
                record = await self._read(me, rng, key)
            else:
                expected = seen.get(key, ABSENT) if kind == "cas" else ABSENT
                record = await self._write(me, rng, kind, key, value, expected, f"c{me}-{n}")
            if record.status == "ok":
                # What this client knows the key held last: a CAS that did not swap tells
                # only that it held something else.
                now = record.value if kind != "cas" or record.swapped else ABSENT
                if now is ABSENT:
                    seen.pop(key, None)
                else:
                    seen[key] = now
            await asyncio.sleep(rng.uniform(0, self.think))

    async def _read(self, me: int, rng: random.Random, key: str) -> Record:
        record = Record(me, "r", key, ABSENT, time.monotonic())
        self.records.append(record)
        path = "/kv/" + urllib.parse.quote(key, safe="") + "?linearizable=1"
        try:
            status, answer = await http(rng.choice(self.ports), "GET", path)
        except (NotSent, Lost):
            record.status = "fail"  # a read that returned nothing constrains nothing
            return record
        record.attempts = 1
        if status == 200:
            record.value = answer["value"]
        elif status != 404 or answer.get("error") != "KeyNotFound":
            record.status = "fail"
            return record
        record.ret, record.status = time.monotonic(), "ok"
        return record

    async def _write(self, me: int, rng: random.Random, kind: str, key: str, value: Any,
                     expected: Any, request_id: str) -> Record:
        record = Record(me, kind, key, value, time.monotonic(), expected=expected)
        self.records.append(record)
        quoted = urllib.parse.quote(key, safe="")
        query = "?request_id=" + request_id
        if kind == "cas":
            body = {"value": value} if expected is ABSENT else {"value": value,
                                                                "expected": expected}
            method, path = "POST", "/cas/" + quoted + query
        else:
            method, path, body = "PUT", "/kv/" + quoted + query, value
        unknown = False
        for attempt in range(1, self.attempts + 1):
            record.attempts = attempt
            try:
                status, answer = await http(rng.choice(self.ports), method, path, body)
            except NotSent:
                record.error = "NotSent"
                await asyncio.sleep(0.05)
                continue
            except Lost:
                record.error = "Lost"
                unknown = True
                continue
            if status == 200:
                record.ret, record.status = time.monotonic(), "ok"
                record.index = answer["index"]
                if kind == "cas":
                    record.swapped = answer["swapped"]
                return record
            if status not in (500, 503, 504):
                raise AssertionError(f"{method} {path}: {status} {answer}")
            record.error = str(answer.get("error"))
            if record.error == "OutcomeForgotten":
                break  # applied, but a retry would apply it again: its id is forgotten
            unknown = unknown or bool(answer.get("may_have_committed", True))
            await asyncio.sleep(0.05)
        record.status = "info" if unknown or record.error == "OutcomeForgotten" else "fail"
        return record


def check(records: list[Record], final: dict[str, Any]) -> list[str]:
    """What is wrong with the history given the store every member converged on (``final``):
    an empty list if nothing."""
    problems = []
    for record in records:
        if record.kind != "own":
            continue
        if record.status == "ok" and final.get(record.key, ABSENT) != record.value:
            problems.append(f"acknowledged write lost: {record}")
        if record.status == "fail" and record.key in final:
            problems.append(f"a write reported failed was applied: {record}")
    keys = sorted({r.key for r in records if r.kind != "own"})
    end = max((r.ret for r in records if r.ret != INF), default=0.0) + 1.0
    for key in keys:
        ops = [r.as_op() for r in records if r.key == key and r.status != "fail"]
        # The converged store is a read after everything: it must be the last value too.
        ops.append(Op("r", final.get(key, ABSENT), end, end + 1))
        verdict = linearizable(ops, ABSENT, budget=500_000)
        if verdict is not True:
            what = "not linearizable" if verdict is False else "undecided (search too large)"
            problems.append(f"key {key}: {what}; {len(ops)} operations")
    return problems

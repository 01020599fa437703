"""Benchmark (not a test): a tab's commit path, in CPython, without a browser.

A :class:`~webraft.browser.transport.BrowserRaft` on :class:`~webraft.storage.LocalStorage`
(over a dict standing in for Web Storage) takes ``--frames`` relay frames, each carrying the
next AppendEntries from its leader, through its socket's message handler, exactly as a tab's
``WebSocket`` ``message`` event hands them over: the frame is parsed, the append stepped,
saved and answered, and the previous entry applied. Prints the µs and the Python function
calls per frame (``--profile``: also the functions by own time).

In a tab the same path costs far more (``bench/browser_bench.py --steps``): Python runs on
WebAssembly, every browser call crosses into JavaScript, and the tabs share the cores. But
the Python calls per frame are the same, and here they are counted exactly and timed without
noise, so a change that slims the path shows here first.

With ``--leader`` it takes the leader's side instead: a ``BrowserRaft`` elected leader of
three, proposing ``--frames`` commands one at a time through the page's entry
(:class:`~webraft.browser.bridge.JsNode`'s ``propose_many``), each answered at once by both
followers as a relay frame would bring it, until the outcome reaches the page's ``settle``
function: per commit, the leader's proposal, its save and appends, the followers' answers,
the commit, the apply and the outcome. The end-of-task work (the frames' flush, the
outcomes' sweep) runs on the loop's next turn, as a microtask would after the task.

    .venv/bin/python bench/tab_path_bench.py [--frames N] [--profile] [--leader]

Imports webraft only; the browser's ``js`` and ``pyodide`` are never needed (the node's
end-of-task flush falls back to sending before each apply, which is what the benchmark
counts as sent).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import pstats
import time
from dataclasses import dataclass
from typing import Any

from webraft.browser.bridge import JsNode
from webraft.browser.scheduling import EndOfTask
from webraft.browser.transport import WS_OPEN, BrowserConnection, BrowserRaft
from webraft.core.messages import (
    COMMAND,
    AppendRequest,
    AppendResponse,
    Entry,
    HeartbeatResponse,
    VoteResponse,
    encode,
)
from webraft.storage import LocalStorage
from webraft.transport.relay import RelayClient

WARMUP = 200  # frames before the measured ones (the log and the session table fill up)


class DictStorage:
    """The Web Storage calls LocalStorage makes, on a dict."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    @property
    def length(self) -> int:
        return len(self.data)

    def key(self, i: int) -> str | None:
        keys = list(self.data)
        return keys[i] if i < len(keys) else None

    def getItem(self, key: str) -> str | None:
        return self.data.get(key)

    def setItem(self, key: str, value: str) -> None:
        self.data[key] = value

    def removeItem(self, key: str) -> None:
        self.data.pop(key, None)


class Socket:
    """The parts of a browser ``WebSocket`` the connection uses; counts what is sent."""

    readyState = WS_OPEN
    bufferedAmount = 0

    def __init__(self) -> None:
        self.sent = 0
        self.frames: list[str] = []  # kept only while ``keep`` (the leader's answers)
        self.keep = False

    def send(self, frame: str) -> None:
        self.sent += 1
        if self.keep:
            self.frames.append(frame)

    def close(self, *_args: Any) -> None:
        pass


@dataclass
class Result:
    frames: int
    seconds: float
    calls: int  # Python function calls while measured (0 without --profile)
    sent: int
    commit: int
    profile: str


def frame(index: int) -> str:
    """The relay frame carrying the leader's append of entry ``index`` (term 1)."""
    msg = AppendRequest(term=1, prev_index=index - 1, prev_term=1 if index > 1 else 0,
                        commit=index - 1,
                        entries=(Entry(1, index, COMMAND, f"inc:{index:06d}"),))
    return json.dumps({"type": "msg", "from": "a", "data": encode(msg)}, separators=(",", ":"))


async def run(frames: int, profile: bool = False) -> Result:
    client = RelayClient("room", "b")
    connection = BrowserConnection("ws://127.0.0.1:1/ws", client, None)
    node = BrowserRaft(client, connection, members=["a", "b", "c"],
                       storage=LocalStorage("bench:b:", DictStorage()), broadcast=False)
    node.listen("apply", lambda _entry, _index, cb: cb())
    socket = Socket()
    connection._ws = socket  # as if open: the handler takes frames of the current socket
    node.start()
    # Without a page the end-of-task flush cannot be scheduled: it says so once, in the
    # warm-up. Quiet while measuring, and as before afterwards (tests run this in-process).
    logger = logging.getLogger("webraft")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        connection._on_message(socket, json.dumps(
            {"type": "welcome", "v": 1, "room": "room", "address": "b", "peers": ["a", "c"]}))
        texts = [frame(i) for i in range(1, WARMUP + frames + 1)]
        for text in texts[:WARMUP]:
            connection._on_message(socket, text)
        sent = socket.sent
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        began = time.perf_counter()
        for text in texts[WARMUP:]:
            connection._on_message(socket, text)
        seconds = time.perf_counter() - began
        calls, report = _report(profiler)
        return Result(frames, seconds, calls, socket.sent - sent, node.core.log.commit, report)
    finally:
        await node.close()
        logger.setLevel(level)


def _answers(frames: list[str]) -> list[str]:
    """The followers' answers, as relay frames, to what the leader sent in ``frames``: every
    append and heartbeat acknowledged in full, every vote granted."""
    out = []
    for text in frames:
        obj = json.loads(text)
        items = obj["msgs"] if obj["type"] == "batch" else [obj]
        for item in items:
            data = item["data"]
            kind, term = data["type"], data["term"]
            if kind == "append":
                reply: Any = AppendResponse(term, data["prev_index"] + len(data.get(
                    "entries", ())), True)
            elif kind == "heartbeat":
                reply = HeartbeatResponse(term, data.get("ctx", 0))
            elif kind == "vote":
                reply = VoteResponse(term, True, data.get("pre", False))
            else:
                continue
            out.append(json.dumps({"type": "msg", "from": item["to"], "data": encode(reply)},
                                  separators=(",", ":")))
    return out


async def run_leader(commits: int, profile: bool = False) -> Result:
    """``--leader``: ``commits`` sequential proposals through the leader's whole path."""
    loop = asyncio.get_running_loop()

    def soon(run: Any) -> None:  # a microtask after the task, here the loop's next turn
        loop.call_soon(run)

    client = RelayClient("room", "a")
    connection = BrowserConnection("ws://127.0.0.1:1/ws", client, None)
    connection._flush_soon = EndOfTask(connection.flush, soon)
    node = BrowserRaft(client, connection, members=["a", "b", "c"],
                       storage=LocalStorage("bench:a:", DictStorage()), broadcast=False)
    node.listen("apply", lambda _entry, _index, cb: cb())
    page = JsNode(node)
    page._sweep_soon = EndOfTask(page._sweep, soon)
    outcomes: list[str] = []
    page.bind(outcomes.append)
    socket = Socket()
    socket.keep = True
    connection._ws = socket
    node.start()

    async def answer_until(done: Any) -> None:
        for _ in range(1000):
            while socket.frames:
                frames, socket.frames = socket.frames, []
                for text in _answers(frames):
                    connection._on_message(socket, text)
            if done():
                return
            await asyncio.sleep(0)
        raise RuntimeError("the leader's path stopped")

    try:
        connection._on_message(socket, json.dumps(
            {"type": "welcome", "v": 1, "room": "room", "address": "a", "peers": ["b", "c"]}))
        node.core.tick(node.core.election_deadline)  # campaign now
        await answer_until(lambda: node.is_leader and node.core.log.commit > 0)
        profiler = cProfile.Profile() if profile else None
        began = 0.0
        sent = 0
        for k in range(WARMUP + commits):
            if k == WARMUP:
                sent = socket.sent
                if profiler is not None:
                    profiler.enable()
                began = time.perf_counter()
            page.propose_many(k, 1, f'["inc:{k:06d}"]')
            await answer_until(lambda: outcomes)
            outcomes.clear()
        seconds = time.perf_counter() - began
        calls, report = _report(profiler)
        return Result(commits, seconds, calls, socket.sent - sent, node.core.log.commit,
                      report)
    finally:
        await page.close()


def _report(profiler: cProfile.Profile | None) -> tuple[int, str]:
    """The calls counted and the functions by own time (nothing without a profiler)."""
    if profiler is None:
        return 0, ""
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    return stats.total_calls, out.getvalue()  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=3000,
                    help="frames measured (with --leader: commits)")
    ap.add_argument("--leader", action="store_true",
                    help="the leader's path of a sequential commit instead of a follower's")
    ap.add_argument("--profile", action="store_true",
                    help="count the Python calls and print the functions by own time "
                    "(the profiler slows the path down several times)")
    args = ap.parse_args()
    if args.frames < 1:
        ap.error("--frames must be at least 1")
    if args.leader:
        result = asyncio.run(run_leader(args.frames, args.profile))
        what, unit, sent = "a tab leader's commit path", "sequential commits", "frames sent"
    else:
        result = asyncio.run(run(args.frames, args.profile))
        what, unit, sent = "a tab follower's message path", "AppendEntries frames", "answers sent"
    each = unit.split()[-1][:-1]
    print(f"{what} in CPython: {result.frames} {unit}, "
          f"{result.seconds / result.frames * 1e6:.1f} µs per {each}"
          + (f", {result.calls / result.frames:.0f} Python calls per {each} (profiled)"
             if args.profile else "")
          + f"; {result.sent} {sent}, commit index {result.commit}")
    if result.profile:
        print(result.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

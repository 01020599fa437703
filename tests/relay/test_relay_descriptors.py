"""The connection cap follows the descriptor limit (issue 13, defect 3): at the cap clients
hear 1013 instead of hanging in a failing accept, and accept errors are not logged per try."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from webraft_relay.limits import FD_RESERVE, AcceptErrorFilter, connection_cap

ROOT = Path(__file__).resolve().parents[2]
GUARD = 10.0  # hang guard only
FD_LIMIT = 100


def test_cap_leaves_headroom_below_the_descriptor_limit():
    assert connection_cap(10_000, 1024) == 1024 - FD_RESERVE - 102
    assert connection_cap(50, 1024) == 50  # the operator's lower cap stands
    assert connection_cap(10_000, 10) == 1  # never zero


def test_accept_errors_are_logged_once_per_interval_without_traceback():
    now = [0.0]
    flt = AcceptErrorFilter(interval=10.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            return logging.LogRecord("asyncio", logging.ERROR, "", 0, msg, (), sys.exc_info())

    first = record("socket.accept() out of system resource\nsocket: <x>")
    assert flt.filter(first) and first.exc_info is None
    assert not any(flt.filter(record("socket.accept() out of system resource")) for _ in range(50))
    assert flt.filter(record("something else")) is True
    now[0] = 10.0
    again = record("socket.accept() out of system resource")
    assert flt.filter(again) and "50 more" in again.getMessage()


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def test_relay_under_a_low_descriptor_limit_answers_1013():
    cap = connection_cap(10_000, FD_LIMIT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webraft_relay", "--port", "0", "--static", "",
        "--pyodide-dir", "", "--dist", "", "--log-level", "INFO",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_low_fd_limit,
    )
    conns = []
    try:
        async with asyncio.timeout(GUARD * 3):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
            url = re.search(r"\((ws://\S+)\)", line)
            assert url, line
            for i in range(cap):
                ws = await connect(url[1], compression=None)
                await ws.send(json.dumps({"type": "hello", "v": 1, "room": f"r{i // 10}",
                                          "address": f"n{i}"}))
                assert json.loads(await ws.recv())["type"] == "welcome"
                conns.append(ws)
            for _ in range(3):  # over the cap: refused at once, not left hanging
                extra = await connect(url[1], compression=None)
                with pytest.raises(ConnectionClosed):
                    await extra.recv()
                assert (extra.close_code, extra.close_reason) == (1013, "try again later")
    finally:
        for ws in conns:  # unread join notices would slow a closing handshake down
            ws.transport.abort()
        proc.terminate()
        await proc.wait()
    stderr = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
    assert f"max connections: {cap} (asked 10000; {FD_LIMIT} file descriptors)" in stderr
    assert "Traceback" not in stderr

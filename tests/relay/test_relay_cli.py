"""The command line: start-up line, graceful shutdown on signals, and the token helper."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from webraft_relay import room_token
from webraft_relay.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
GUARD = 10.0  # hang guard only (the child pays Python's start-up time)
LISTENING = re.compile(
    r"webraft relay listening on (http://127\.0\.0\.1:(\d+)/) \((ws://127\.0\.0\.1:\2/ws)\)"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_clients_with_1001_and_exits_0(sig: signal.Signals):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webraft_relay",
        "--port",
        "0",
        "--static",
        "",
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(GUARD):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
            match = LISTENING.fullmatch(line.strip())
            assert match, line
            ws = await connect(match[3], compression=None)
            await ws.send(json.dumps({"type": "hello", "v": 1, "room": "r", "address": "a"}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            proc.send_signal(sig)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
            assert ws.close_reason == "going away"
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = await proc.stderr.read()  # type: ignore[union-attr]
    assert b"Traceback" not in stderr


def test_token_command_prints_the_room_token(capsys: pytest.CaptureFixture[str]):
    assert main(["token", "--secret", "s3cret", "--room", "demo"]) == 0
    assert capsys.readouterr().out.strip() == room_token("s3cret", "demo")


def test_token_command_reads_the_secret_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("WEBRAFT_RELAY_SECRET", "from-env")
    assert main(["token", "--room", "demo"]) == 0
    assert capsys.readouterr().out.strip() == room_token("from-env", "demo")


def test_token_command_needs_a_secret(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WEBRAFT_RELAY_SECRET", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["token", "--room", "demo"])
    assert caught.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "70000"],
        ["--rate", "-1"],
        ["--max-batch", "10", "--burst", "5"],
        ["--static", "/definitely/not/a/dir"],
        ["--bogus"],
    ],
)
def test_bad_flags_exit_2(argv: list[str]):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2


def test_flags_reach_the_config(tmp_path: Path):
    from webraft_relay.__main__ import _serve_parser, build_config

    args = _serve_parser().parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--static",
            str(tmp_path),
            "--dist",
            "",
            "--library",
            str(tmp_path),
            "--secret",
            "x",
            "--allow-origin",
            "http://a",
            "--allow-origin",
            "http://b",
            "--rate",
            "0",
            "--max-room-size",
            "3",
            "--ping-interval",
            "0",
            "--compression",
        ]
    )
    config = build_config(args)
    assert config.static_dir == tmp_path
    assert config.dist_dir is None
    assert config.library_dir == tmp_path
    assert config.allow_origins == ("http://a", "http://b")
    assert (config.rate, config.max_room_size, config.ping_interval) == (0, 3, None)
    assert config.secret == "x" and config.compression and config.host == "0.0.0.0"


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--static", ""]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_token_command_with_ttl_and_address(capsys: pytest.CaptureFixture[str]):
    import time

    from webraft_relay.protocol import check_token

    assert main(["token", "--secret", "s", "--room", "demo", "--ttl", "60", "--address", "a"]) == 0
    token = capsys.readouterr().out.strip()
    now = time.time()
    assert check_token("s", token, "demo", "a", now) is None
    assert check_token("s", token, "demo", "b", now) == "unauthorized"
    assert check_token("s", token, "demo", "a", now + 120) == "token expired"

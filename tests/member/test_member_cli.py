"""``python -m webraft.member`` as a process: usage errors, refusals, signals, restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from member_support import GUARD, ROOT, Member, Relay, poll

UNREACHABLE = "ws://127.0.0.1:9/ws"  # the discard port: nothing listens there


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webraft.member", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=GUARD)


def node_args(data: Path, address: str = "a", relay: str = UNREACHABLE,
              members: str = "a,b,c") -> list[str]:
    return ["--relay", relay, "--room", "demo", "--data", str(data), "--address", address,
            "--members", members]


@pytest.mark.parametrize(("change", "message"), [
    ({"address": "d"}, "not one of --members"),
    ({"relay": "http://127.0.0.1:1/ws"}, "not a relay URL"),
    ({"address": "a b", "members": "a b,c"}, "--members must be"),
    ({"members": "a,b,c/d"}, "--members must be"),
])
def test_usage_errors_exit_2_before_touching_the_disk(tmp_path: Path, change: dict[str, str],
                                                      message: str):
    result = run(*node_args(tmp_path / "d", **change))
    assert result.returncode == 2, result
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_missing_flags_exit_2(tmp_path: Path):
    result = run("--relay", UNREACHABLE, "--room", "demo")
    assert result.returncode == 2 and "required" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_node_with_status_0(tmp_path: Path, sig: signal.Signals):
    # The relay is unreachable: the node runs (and retries) anyway, and stops cleanly.
    member = Member("a", UNREACHABLE, tmp_path / "a", tmp_path)
    assert member.status()["connected"] is False
    member.proc.signal(sig)
    assert member.proc.wait() == 0
    assert "Traceback" not in member.proc.stderr()


def test_json_logs_are_one_object_per_line(tmp_path: Path):
    member = Member("a", UNREACHABLE, tmp_path / "a", tmp_path,
                    extra=["--log-level", "DEBUG", "--log-format", "json"])
    member.proc.signal(signal.SIGTERM)
    assert member.proc.wait() == 0
    lines = member.proc.stderr().splitlines()
    assert lines, "DEBUG logs something (asyncio's selector, the relay attempts)"
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert record["time"].endswith("Z") and record["level"] in ("DEBUG", "INFO",
                                                                    "WARNING", "ERROR")


def test_one_data_directory_serves_one_process(tmp_path: Path):
    first = Member("a", UNREACHABLE, tmp_path / "a", tmp_path)
    result = run(*node_args(tmp_path / "a"))
    assert result.returncode == 1
    assert "locked" in result.stderr and "Traceback" not in result.stderr
    first.proc.signal(signal.SIGTERM)
    assert first.proc.wait() == 0


def test_an_address_held_by_another_node_ends_the_newcomer_with_status_1(tmp_path: Path):
    relay = Relay(tmp_path)
    try:
        holder = Member("a", relay.ws_url, tmp_path / "a1", tmp_path)
        poll(lambda: holder.status()["connected"], what="the first a joined")
        newcomer = Member("a", relay.ws_url, tmp_path / "a2", tmp_path)
        assert newcomer.proc.wait() == 1
        assert "4008" in newcomer.proc.stderr()
        assert holder.status()["connected"]
        holder.proc.signal(signal.SIGTERM)
        assert holder.proc.wait() == 0
    finally:
        relay.proc.kill()


def test_a_restarted_node_keeps_its_session_and_its_state(tmp_path: Path):
    relay = Relay(tmp_path)
    try:
        solo = Member("a", relay.ws_url, tmp_path / "a", tmp_path, members="a")
        poll(lambda: solo.status()["state"] == "leader", what="a leads its one-node cluster")
        status, answer = solo.put("k", [1, 2])
        assert status == 200, answer
        session = (tmp_path / "a" / "session").read_text()
        solo.proc.kill()  # SIGKILL: nothing is flushed on the way out
        solo.proc.wait()
        again = Member("a", relay.ws_url, tmp_path / "a", tmp_path, members="a,b,c")
        # The stored configuration wins over --members, and the log rebuilds the store.
        poll(lambda: again.status()["state"] == "leader", what="a leads again")
        assert again.status()["members"] == ["a"]
        assert again.kv() == {"k": [1, 2]}
        assert (tmp_path / "a" / "session").read_text() == session
        again.proc.signal(signal.SIGTERM)
        assert again.proc.wait() == 0
    finally:
        relay.proc.kill()


@pytest.mark.parametrize(("extra", "message"), [
    (["--snapshot-entries", "0"], "at least 1"),
    (["--snapshot-entries", "many"], "invalid"),
    (["--grace", "-1"], "positive"),
    (["--join"], "not allowed with"),
])
def test_bad_membership_and_snapshot_flags_exit_2(tmp_path: Path, extra: list[str],
                                                  message: str):
    result = run(*node_args(tmp_path / "d"), *extra)
    assert result.returncode == 2, result
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()

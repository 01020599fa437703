"""``bench/_proc_cpu.py`` on a fake ``/proc``: which processes count, how Chromium's are told
apart, and the arithmetic of a phase's CPU. No browser runs here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import _proc_cpu  # found through the path above
from _proc_cpu import Meter, Usage, diff, kind_of, snapshot, split_cmdline

TICK = os.sysconf("SC_CLK_TCK")
CHROMIUM = "/usr/lib/chromium/chromium"
ROOT = 100  # the benchmark's Python process in the fake /proc


def process(proc: Path, pid: int, ppid: int, ticks: tuple[int, int], cmdline: bytes | None,
            comm: str = "x") -> None:
    """A fake /proc/PID: its stat (utime, stime in clock ticks) and, unless None, cmdline."""
    (proc / str(pid)).mkdir()
    utime, stime = ticks
    (proc / str(pid) / "stat").write_text(
        f"{pid} ({comm}) S {ppid} 0 0 0 0 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0\n")
    if cmdline is not None:
        (proc / str(pid) / "cmdline").write_bytes(cmdline)


def title(*args: str) -> bytes:
    """A title Chromium rewrote: one space-joined string, one NUL at its end."""
    return " ".join(args).encode() + b"\0"


def nul(*args: str) -> bytes:
    return b"".join(arg.encode() + b"\0" for arg in args)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A run: Python (100) -> Playwright's node driver (101) -> the chromium wrapper's
    exec'd browser (102) -> zygote (103) -> renderers; the relay (110) below Python; and
    processes that must not count."""
    process(tmp_path, 1, 0, (5, 5), nul("/sbin/init"))
    process(tmp_path, ROOT, 1, (50, 10), nul(sys.executable, "bench/browser_bench.py"))
    process(tmp_path, 101, ROOT, (30, 3), nul("node", "cli.js", "run-driver"))
    process(tmp_path, 102, 101, (200, 50), nul(CHROMIUM, "--headless", "--no-sandbox",
                                               "--disable-features=A,B"))
    process(tmp_path, 103, 102, (1, 1), title(CHROMIUM, "--type=zygote", "--no-sandbox"))
    process(tmp_path, 104, 103, (300, 20), title(CHROMIUM, "--type=renderer", "--lang=en-US"),
            comm="chromium) (x")  # a name with parentheses and a space
    process(tmp_path, 105, 103, (100, 10), title(CHROMIUM, "--type=renderer"))
    process(tmp_path, 106, 103, (4, 0), title(CHROMIUM, "--type=renderer",
                                              "--top-chrome-webui"))
    process(tmp_path, 107, 102, (40, 40), title(
        CHROMIUM, "--type=utility", "--utility-sub-type=network.mojom.NetworkService",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost"))
    process(tmp_path, 108, 102, (7, 3), title(CHROMIUM, "--type=gpu-process"))
    process(tmp_path, 110, ROOT, (60, 20), nul(sys.executable, "-m", "webraft_relay"))
    # Vanished between the listing and the reading: its cmdline is gone; its stat unreadable.
    process(tmp_path, 111, 103, (9, 9), None)
    (tmp_path / "112").mkdir()
    (tmp_path / "112" / "stat").mkdir()
    process(tmp_path, 113, 102, (1, 0), b"")  # a zombie: an empty cmdline
    # Another run's Chromium, not below this process.
    process(tmp_path, 200, 1, (100, 0), nul(CHROMIUM, "--headless"))
    process(tmp_path, 201, 200, (100, 0), title(CHROMIUM, "--type=renderer"))
    return tmp_path


def test_cmdlines_split_whether_nul_separated_or_a_rewritten_title() -> None:
    assert split_cmdline(nul(CHROMIUM, "--type=renderer", "--lang=en")) == [
        CHROMIUM, "--type=renderer", "--lang=en"]
    assert split_cmdline(title(CHROMIUM, "--type=renderer", "--lang=en")) == [
        CHROMIUM, "--type=renderer", "--lang=en"]
    assert split_cmdline(b"") == []


def test_chromium_processes_are_told_apart_by_their_switches() -> None:
    assert kind_of([CHROMIUM, "--headless"]) == "browser"
    assert kind_of(["/opt/chrome/chrome", "--type=renderer"]) == "renderer"
    assert kind_of([CHROMIUM, "--type=renderer", "--top-chrome-webui"]) == "webui-renderer"
    assert kind_of([CHROMIUM, "--type=zygote"]) == "zygote"
    assert kind_of([CHROMIUM, "--type=gpu-process"]) == "gpu-process"
    assert kind_of([CHROMIUM, "--type=utility",
                    "--utility-sub-type=storage.mojom.StorageService"]) == "StorageService"
    assert kind_of([CHROMIUM, "--type=utility"]) == "utility"
    # the wrapper script, other programs, a zombie: not Chromium's
    assert kind_of(["/bin/sh", "/usr/bin/chromium", "--type=renderer"]) is None
    assert kind_of(["node", "cli.js"]) is None
    assert kind_of([]) is None


def test_snapshot_takes_this_runs_chromium_and_the_relay_only(proc: Path) -> None:
    got = snapshot(relay_pid=110, root_pid=ROOT, proc=proc)
    assert got == {
        102: ("browser", 250 / TICK),
        103: ("zygote", 2 / TICK),
        104: ("renderer", 320 / TICK),
        105: ("renderer", 110 / TICK),
        106: ("webui-renderer", 4 / TICK),
        107: ("NetworkService", 80 / TICK),
        108: ("gpu-process", 10 / TICK),
        110: ("relay", 80 / TICK),
    }
    # without a relay, the relay's process is just another program
    assert 110 not in snapshot(root_pid=ROOT, proc=proc)
    # the other run's browser is below its own root, not ours
    assert set(snapshot(root_pid=200, proc=proc)) == {201}


def test_a_phase_is_the_difference_of_two_snapshots() -> None:
    before = {1: ("browser", 1.0), 2: ("renderer", 2.0), 3: ("renderer", 1.0),
              4: ("relay", 0.5), 5: ("renderer", 9.0), 6: ("zygote", 3.0)}
    after = {1: ("browser", 1.5), 2: ("renderer", 2.25), 3: ("renderer", 1.0),
             4: ("relay", 0.75), 7: ("renderer", 0.125),  # 5 exited, 7 is new
             6: ("gpu-process", 0.25)}  # 6's pid now belongs to another process
    used = diff(before, after)
    assert used.pids == {1: ("browser", 0.5), 2: ("renderer", 0.25), 3: ("renderer", 0.0),
                         4: ("relay", 0.25), 7: ("renderer", 0.125), 6: ("gpu-process", 0.25)}
    assert used.total == 1.375
    assert list(used.by_kind().items()) == [("browser", 0.5), ("renderer", 0.375),
                                            ("relay", 0.25), ("gpu-process", 0.25)]
    assert list(used.renderers().items()) == [(2, 0.25), (7, 0.125), (3, 0.0)]
    summed = used + Usage({2: ("renderer", 1.0), 9: ("relay", 1.0)})
    assert summed.pids[2] == ("renderer", 1.25)
    assert summed.pids[9] == ("relay", 1.0)
    assert summed.pids[1] == ("browser", 0.5)


def test_rows_give_per_commit_figures_and_the_busiest_renderers() -> None:
    used = Usage({1: ("browser", 0.1), 2: ("renderer", 0.2), 3: ("renderer", 0.4),
                  4: ("renderer", 0.3), 5: ("renderer", 0.05), 6: ("relay", 0.0)})
    idle = Usage({2: ("renderer", 0.002), 3: ("renderer", 0.006), 5: ("renderer", 0.5)},
                 seconds=2.0)
    (_, total), (_, renderers) = _proc_cpu.rows(used, 100, idle)
    assert total == "10.50: renderer 9.50, browser 1.00"  # ms per commit; no zero kinds
    assert renderers == ("4.00, 3.00, 2.00 (+0.50 other renderers) ms; "
                         "idle before: 4.0 ms/s (3.0, 0.0, 1.0)")
    # 100 commits in 5 s: 50 ms each, so 4 ms/s of idling is 0.2 ms of each commit
    used.seconds = 5.0
    assert _proc_cpu.rows(used, 100, idle)[1][1].endswith(
        "(3.0, 0.0, 1.0) = 0.20 ms a commit at its pace")


def test_a_meter_measures_a_call_in_its_proc(proc: Path) -> None:
    meter = Meter(relay_pid=110, root_pid=ROOT, proc=proc)
    # a renderer starts during the call, and spends one second
    result, used = meter.during(process, proc, 120, 103, (TICK, 0),
                                title(CHROMIUM, "--type=renderer"))
    assert result is None
    assert used.renderers() == {120: 1.0, 104: 0.0, 105: 0.0}
    assert used.seconds > 0
    idle = meter.idle(0.01)
    assert idle.total == 0 and idle.seconds >= 0.01
    # off: the call runs, nothing is read
    off = Meter(root_pid=ROOT, proc=proc / "none", on=False)
    assert off.during(len, "abc") == (3, Usage())
    assert off.idle() == Usage()


def test_without_a_proc_it_says_so(tmp_path: Path) -> None:
    with pytest.raises(_proc_cpu.ProcUnavailable, match="Linux's /proc"):
        _proc_cpu.require_proc(tmp_path / "none")
    _proc_cpu.require_proc(tmp_path)

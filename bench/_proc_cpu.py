"""CPU time of this run's Chromium processes and relay, read from Linux's ``/proc``.

Owns reading ``/proc/PID/stat`` and ``/proc/PID/cmdline``, telling Chromium's processes apart
by their switches, and laying out CPU per commit for the browser benchmarks. Must not import
webraft, Playwright or the other bench modules: the standard library only, and the ``/proc``
root is a parameter, so a test can hand it a fake one.

Why: on a 2-core machine a tab's sequential commit is bound by the CPU that *every* process
spends on it (the three renderers, the browser process, the network and storage services,
the relay), not by the proposing tab alone. A phase's CPU per commit is the difference of two
:func:`snapshot` calls, divided by its commits.

Only processes below ``root_pid`` (by default this Python process) count: the Chromium that
this run's Playwright driver launched, never another run's on the same machine. Chromium
rewrites its children's process titles, so their ``cmdline`` is one space-joined string, not
NUL-separated arguments; both are split alike. Times are ``utime + stime`` (all threads), in
clock ticks (10 ms with the usual 100 Hz): a phase should last long enough for that to be
small against its total. A process that exits during a phase loses its time; one that starts
during it counts from zero.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

PROC = Path("/proc")
#: Executable names (the first argument's last path part) of Chromium's processes.
CHROMIUM_NAMES = frozenset({"chromium", "chrome", "chromium-browser", "headless_shell"})
#: Kinds with a name of their own; the tabs' renderers are :data:`RENDERER`.
RENDERER = "renderer"
BROWSER = "browser"
RELAY = "relay"
#: Seconds of doing nothing over which the idle CPU is measured before a phase.
IDLE_SECONDS = 2.0
#: Renderers that are not a page's: Chromium's own UI (``--top-chrome-webui``), extensions.
_RENDERER_ROLES = {"--top-chrome-webui": "webui-renderer",
                   "--extension-process": "extension-renderer"}

#: pid -> (kind, CPU seconds since the process started)
Snapshot = dict[int, tuple[str, float]]


class ProcUnavailable(RuntimeError):
    """There is no ``/proc`` to read (not Linux)."""


def require_proc(proc: Path = PROC) -> None:
    """Raise :class:`ProcUnavailable` unless this is Linux with its ``/proc`` at ``proc``."""
    if not sys.platform.startswith("linux") or not proc.is_dir():
        raise ProcUnavailable(f"CPU figures read Linux's /proc; this is {sys.platform}"
                              f"{'' if proc.is_dir() else f' with no {proc}'}")


def kind_of(argv: list[str]) -> str | None:
    """A Chromium process's kind from its arguments, or None for any other process.

    ``--type=`` names it (renderer, gpu-process, zygote, utility...); a utility process goes
    by the last dotted part of its ``--utility-sub-type=`` (NetworkService, StorageService);
    the main browser process has no ``--type=``."""
    if not argv or Path(argv[0]).name not in CHROMIUM_NAMES:
        return None
    switches = dict(arg.partition("=")[::2] for arg in argv[1:] if arg.startswith("--"))
    kind = switches.get("--type")
    if kind is None:
        return BROWSER
    if kind == "utility" and switches.get("--utility-sub-type"):
        return switches["--utility-sub-type"].rsplit(".", 1)[-1]
    if kind == RENDERER:
        return next((role for flag, role in _RENDERER_ROLES.items() if flag in switches),
                    RENDERER)
    return kind


def split_cmdline(raw: bytes) -> list[str]:
    """Arguments from a ``cmdline``: NUL-separated, or one space-joined rewritten title."""
    return raw.replace(b"\0", b" ").decode(errors="replace").split()


def _stats(proc: Path) -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) of every process that can still be read."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # Fields after the command name, which may hold spaces and parentheses: state,
            # ppid, ...; utime and stime are the stat file's 14th and 15th fields.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            found[int(stat.parent.name)] = (int(fields[1]),
                                            (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, IndexError, ValueError):  # exited meanwhile, or not a process
            continue
    return found


def snapshot(relay_pid: int | None = None, root_pid: int | None = None,
             proc: Path = PROC) -> Snapshot:
    """The CPU time of every Chromium process below ``root_pid`` (default: this process)
    and of the relay process ``relay_pid``; processes that exit while being read are left
    out."""
    stats = _stats(proc)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    below, todo = [], [os.getpid() if root_pid is None else root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            below.append(child)
            todo.append(child)
    taken: Snapshot = {}
    for pid in below:
        try:
            kind = kind_of(split_cmdline((proc / str(pid) / "cmdline").read_bytes()))
        except OSError:  # exited meanwhile
            continue
        if kind is not None:
            taken[pid] = (kind, stats[pid][1])
    if relay_pid in stats:  # wherever it runs (ours is a child of this process)
        taken[relay_pid] = (RELAY, stats[relay_pid][1])
    return taken


@dataclass
class Usage:
    """CPU seconds spent by each process between two snapshots (:func:`diff`), and the
    wall-clock ``seconds`` between them when known (:meth:`Meter.during`); usages of several
    phases add up (``+``) per process."""

    pids: dict[int, tuple[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        summed = dict(self.pids)
        for pid, (kind, seconds) in other.pids.items():
            summed[pid] = (kind, summed.get(pid, (kind, 0.0))[1] + seconds)
        return Usage(summed, self.seconds + other.seconds)

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.pids.values())

    def by_kind(self) -> dict[str, float]:
        """Seconds per kind, largest first."""
        kinds: dict[str, float] = {}
        for kind, seconds in self.pids.values():
            kinds[kind] = kinds.get(kind, 0.0) + seconds
        return dict(sorted(kinds.items(), key=lambda item: -item[1]))

    def renderers(self) -> dict[int, float]:
        """Seconds per page renderer (pid), largest first."""
        return dict(sorted(((pid, s) for pid, (kind, s) in self.pids.items()
                            if kind == RENDERER), key=lambda item: -item[1]))


def diff(before: Snapshot, after: Snapshot) -> Usage:
    """What each process of ``after`` spent since ``before`` (all of it if it is new, or if
    its pid now belongs to a process of another kind)."""
    used = {}
    for pid, (kind, seconds) in after.items():
        was = before.get(pid)
        since = was[1] if was is not None and was[0] == kind else 0.0
        used[pid] = (kind, max(0.0, seconds - since))
    return Usage(used)


@dataclass
class Meter:
    """The processes of one run to measure: Chromium below ``root_pid`` (default: this
    process) and the relay ``relay_pid``, in the ``/proc`` at ``proc``. A meter that is not
    ``on`` (a run without ``--cpu``) reads nothing and measures nothing, so that callers need
    no branch of their own."""

    relay_pid: int | None = None
    root_pid: int | None = None
    proc: Path = PROC
    on: bool = True

    def during(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[T, Usage]:
        """``call(*args, **kwargs)``'s result, and what the processes spent while it ran."""
        if not self.on:
            return call(*args, **kwargs), Usage()
        began, before = time.monotonic(), snapshot(self.relay_pid, self.root_pid, self.proc)
        result = call(*args, **kwargs)
        used = diff(before, snapshot(self.relay_pid, self.root_pid, self.proc))
        used.seconds = time.monotonic() - began
        return result, used

    def idle(self, seconds: float = IDLE_SECONDS) -> Usage:
        """What the processes spend in ``seconds`` of waiting (the caller does nothing)."""
        return self.during(time.sleep, seconds)[1] if self.on else Usage()


def rows(usage: Usage, commits: int, idle: Usage, tabs: int = 3) -> list[tuple[str, str]]:
    """Two printable rows: CPU ms per commit in all and by kind (with the resolution that
    whole clock ticks give a process's figure); then per commit of each of the ``tabs``
    busiest renderers (the rest summed), with what each of them spent per second while
    ``idle`` (which must cover some time), and what that rate comes to per commit at the
    pace of ``usage`` (when its duration is known): the share of a commit's CPU that the
    tabs would have spent anyway.

    The busiest renderer is normally the Raft leader's (or the floor's tab A): it sends to
    both others and hears both answers."""
    per = 1e3 / commits
    kinds = ", ".join(f"{kind} {seconds * per:.2f}" for kind, seconds in usage.by_kind().items()
                      if seconds > 0)
    busy = usage.renderers()
    top = list(busy)[:tabs]
    rest = sum(busy.values()) - sum(busy[pid] for pid in top)
    idle_each = [idle.pids.get(pid, (RENDERER, 0.0))[1] * 1e3 / idle.seconds for pid in top]
    return [
        (f"  CPU per commit (ms; /proc: ±{per / os.sysconf('SC_CLK_TCK'):.2f} a process)",
         f"{usage.total * per:.2f}: {kinds}"),
        ("  its renderers, largest (normally the leader's) first",
         ", ".join(f"{busy[pid] * per:.2f}" for pid in top)
         + (f" (+{rest * per:.2f} other renderers)" if rest else "")
         + f" ms; idle before: {sum(idle_each):.1f} ms/s ("
         + ", ".join(f"{x:.1f}" for x in idle_each) + ")"
         + (f" = {sum(idle_each) * usage.seconds / commits:.2f} ms a commit at its pace"
            if usage.seconds else "")),
    ]

"""What the benchmark scripts share: one percentile definition, the facts about the machine,
and the member processes' workload and stdout protocol.

Kept in one place so that every script (and the suite that puts their figures side by side)
ranks samples the same way and describes the machine the same way, and so that the webraft
and the PySyncObj members run the same commands and answer alike. Imports neither library.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"

#: A member's failover probe proposes this often, and gives up after this long (seconds).
PROBE_INTERVAL = 0.01
PROBE_LIMIT = 30.0


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list: always a sample that was
    actually measured, never an interpolation between two."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def emit(ev: str, **fields: Any) -> None:
    """A member process's answer to its parent: one JSON object per line on stdout."""
    print(json.dumps({"ev": ev, **fields}), flush=True)


def command(i: int) -> str:
    """The workload's ``i``-th command: a 10-byte counter increment."""
    return f"inc:{i % 1_000_000:06d}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def ram_bytes() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def os_name() -> str:
    """The distribution's PRETTY_NAME and the kernel."""
    pretty = platform.system()
    with contextlib.suppress(OSError):
        match = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
        if match:
            pretty = match.group(1)
    return f"{pretty}, kernel {platform.release()}"


def package_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def chromium_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
        match = re.search(r"Chromium\s+([\d.]+)", out)
        if match:
            return match.group(1)
    return None


def pyodide_version() -> str | None:
    """The Pyodide the relay serves: installed under browser/node_modules, pinned in
    browser/package.json."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((ROOT / "browser/node_modules/pyodide/package.json").read_text())[
            "version"]
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((ROOT / "browser/package.json").read_text())["dependencies"]["pyodide"]
    return None


def git_revision() -> str:
    """Short HEAD, noting uncommitted changes in the code being measured."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "webraft", "relay"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + (" + uncommitted changes in webraft/ or relay/" if dirty.strip() else "")


def machine() -> str:
    """One line: CPUs, model, Python, OS (what cluster_compare prints above its table)."""
    return (f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {cpu_model()}; "
            f"{platform.python_implementation()} {platform.python_version()}, {os_name()}")

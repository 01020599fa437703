"""The core's unit tests pass inside Pyodide (Python 3.14, under Node) against the built wheel.

Runs ``.ci/pyodide-tests``: builds the wheel, installs Pyodide from ``browser/package-lock.json``
(``npm ci``), downloads pytest's wheels from PyPI, then runs ``tests/core`` with pytest inside
Pyodide. Nothing is skipped: without node or npm this test fails (CI must install them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "pyodide-tests"


def test_core_tests_pass_inside_pyodide() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the Pyodide tests need Node.js >= 18 "
            "and npm on PATH (e.g. apt-get install nodejs npm)",
            pytrace=False,
        )
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
        stdin=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{SCRIPT.name} exited {result.returncode}:\n{output[-6000:]}"
    assert re.search(r"^Python 3\.14\.\d+ on emscripten", result.stdout, re.M), output[-3000:]
    summary = re.search(r"^(\d+) passed in [\d.]+s", result.stdout, re.M)
    assert summary and int(summary.group(1)) > 0, output[-3000:]
    print(f"{summary.group(0)} inside Pyodide; {SCRIPT.name} took {elapsed:.1f} s")

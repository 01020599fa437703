"""The webraft wheel installs in Pyodide with ``micropip.install(url)``, as a Pyodide user
would install it from wherever it is served (here: dist/ over HTTP on loopback).

Runs the pinned Pyodide (``browser/node_modules/pyodide``, from ``.ci/build-browser``) under
Node. Pyodide's npm package holds no micropip, so the test downloads the version Pyodide's
lock names from PyPI with pip, as ``.ci/pyodide-tests`` does for pytest. Nothing is skipped:
without node this test fails.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYODIDE = ROOT / "browser" / "node_modules" / "pyodide"
DIST = ROOT / "dist"

SCRIPT = """
import { loadPyodide } from "%(pyodide)s";
const [micropipWheel, url] = process.argv.slice(1);
const pyodide = await loadPyodide();
await pyodide.loadPackage(micropipWheel, { messageCallback: () => {} });
await pyodide.runPythonAsync(`
import importlib.metadata, micropip
await micropip.install(${JSON.stringify(url)})
import webraft.browser.bridge
print("installed", importlib.metadata.version("webraft"), webraft.__file__)
`);
"""


class _Quiet(SimpleHTTPRequestHandler):
    """No line on stderr per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served_dist() -> Iterator[str]:
    """dist/ over HTTP on loopback; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=DIST))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def micropip_wheel(into: Path) -> Path:
    lock = json.loads((PYODIDE / "pyodide-lock.json").read_text())
    version = lock["packages"]["micropip"]["version"]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--python-version", "3.14", "--implementation",
         "py", "--platform", "any", "-d", str(into), f"micropip=={version}"],
        check=True, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    (wheel,) = into.glob("micropip-*.whl")
    return wheel


def test_the_wheel_installs_with_micropip(served_dist: str, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("node not found: this test runs Pyodide under Node.js", pytrace=False)
    manifest = DIST / "manifest.json"
    if not (PYODIDE / "pyodide.mjs").is_file() or not manifest.is_file():
        pytest.fail("run bash .ci/build-browser first (Pyodide and the wheel)", pytrace=False)
    wheel = json.loads(manifest.read_text())["wheel"]
    script = SCRIPT % {"pyodide": (PYODIDE / "pyodide.mjs").as_uri()}
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(micropip_wheel(tmp_path)),
         f"{served_dist}/{wheel}"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"installed {version} /lib/python3.14/site-packages/webraft/__init__.py" in done.stdout

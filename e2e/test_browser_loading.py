"""A page that cannot load Pyodide or the webraft wheel says so, visibly, naming the file.

Each case runs its own relay with a broken --dist or --pyodide-dir.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import ROOT, Relay, Tab

PYODIDE = ROOT / "browser" / "node_modules" / "pyodide"
#: A load error shows within one Pyodide boot (3-12 s here); this bounds a page that hangs.
LOAD_ERROR_TIMEOUT = 45.0


def visible_error(context: Any, relay: Relay) -> Tab:
    tab = Tab(context.new_page(), f"broken {' '.join(relay.args)}")
    tab.goto(f"{relay.url}/?room=broken")
    return tab


def test_missing_wheel_is_a_visible_error(context: Any, start_relay: Callable[..., Relay],
                                          tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    relay = start_relay("--dist", str(dist))
    # An empty dist/: the manifest is what is missing.
    tab = visible_error(context, relay)
    text = tab.wait_error(LOAD_ERROR_TIMEOUT)
    assert "WebRaftLoadError" in text and "manifest.json" in text, text
    assert tab.page.inner_text("#status") == "failed to start"
    assert tab.eval("window.webraft === undefined")
    # A manifest naming a wheel that is not there (Pyodide's loadPackage does not reject).
    missing = "webraft-9.9.9-py3-none-any.whl"
    (dist / "manifest.json").write_text(json.dumps({"wheel": missing}))
    tab.reload()
    text = tab.wait_error(LOAD_ERROR_TIMEOUT)
    assert "WebRaftLoadError" in text and missing in text, text
    assert tab.eval("window.webraft === undefined")


@pytest.mark.parametrize("missing", [
    None,                 # an empty directory
    "python_stdlib.zip",
    "pyodide.asm.wasm",
])
def test_missing_pyodide_file_is_a_visible_error(context: Any,
                                                 start_relay: Callable[..., Relay],
                                                 tmp_path: Path, missing: str | None) -> None:
    pyodide = tmp_path / "pyodide"
    pyodide.mkdir()
    if missing is not None:
        for path in PYODIDE.iterdir():
            if path.is_file() and path.name != missing:
                shutil.copy(path, pyodide / path.name)
    relay = start_relay("--pyodide-dir", str(pyodide))
    tab = visible_error(context, relay)
    text = tab.wait_error(LOAD_ERROR_TIMEOUT)
    assert "WebRaftLoadError" in text, text
    assert (missing or "pyodide.mjs") in text, text
    assert tab.eval("window.webraft === undefined")

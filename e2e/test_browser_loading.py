"""A page that cannot load Pyodide or the webraft wheel, or cannot reach its relay, says so
visibly, naming the file or the URL.

The loading cases run their own relay with a broken --dist or --pyodide-dir.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
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


def test_a_damaged_wheel_is_a_visible_error(context: Any, start_relay: Callable[..., Relay],
                                            tmp_path: Path) -> None:
    """A wheel whose first entry's recorded size is wrong (a damaged download, a proxy that
    cut it) is refused while unpacking, naming the wheel, rather than installed."""
    manifest = json.loads((ROOT / "dist" / "manifest.json").read_text())
    data = bytearray((ROOT / "dist" / manifest["wheel"]).read_bytes())
    end = data.rindex(b"PK\x05\x06")  # the end of the central directory
    (first,) = struct.unpack_from("<I", data, end + 16)  # where the directory starts
    (size,) = struct.unpack_from("<I", data, first + 24)  # entry 1's uncompressed size
    struct.pack_into("<I", data, first + 24, size + 1)
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / manifest["wheel"]).write_bytes(data)
    (dist / "manifest.json").write_text(json.dumps({"wheel": manifest["wheel"]}))
    tab = visible_error(context, start_relay("--dist", str(dist)))
    text = tab.wait_error(LOAD_ERROR_TIMEOUT)
    assert "cannot unpack" in text and manifest["wheel"] in text and "damaged entry" in text, \
        text
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


def test_unreachable_relay_is_a_visible_error(context: Any, relay: Relay) -> None:
    """The page loads, but the relay it is told to use never answers: within the connect
    timeout the demo shows a RelayUnreachable error naming the URL, instead of waiting."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"
    tab = Tab(context.new_page(), "unreachable relay")
    tab.goto(f"{relay.url}/?room=unreachable&relay={dead}&connectTimeout=2000")
    text = tab.wait_error(LOAD_ERROR_TIMEOUT)
    assert text.startswith("RelayUnreachable: "), text
    assert dead in text and "Traceback" not in text, text
    assert tab.page.inner_text("#status") == "failed to start"
    assert tab.eval("window.webraft === undefined")

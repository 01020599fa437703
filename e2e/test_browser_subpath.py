"""webraft.js served from a sub-path (as behind a reverse proxy, or inside an app's own
tree): it finds Pyodide and the wheel next to itself, not at the root of the origin."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from browser_support import ROOT, Relay, Tab, unique_room

PYODIDE = ROOT / "browser" / "node_modules" / "pyodide"

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>webraft at a sub-path</title>
<script type="module">
  import { connect } from "./webraft.js";
  const params = new URLSearchParams(location.search);
  connect({ room: params.get("room"), members: ["only"],
            relay: `ws://${location.host}/ws` }).then(
    (raft) => { window.webraft = raft; },
    (error) => { window.failure = `${error.name}: ${error.message}`; });
</script>
"""


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # Pyodide is megabytes: share them when the disk allows
    except OSError:
        shutil.copy(source, target)


def test_the_library_loads_from_a_sub_path(context: Any, start_relay: Callable[..., Relay],
                                           tmp_path: Path) -> None:
    site = tmp_path / "site"
    app = site / "sub" / "app"
    (app / "pyodide").mkdir(parents=True)
    (app / "dist").mkdir()
    shutil.copy(ROOT / "browser" / "webraft.js", app / "webraft.js")
    (app / "index.html").write_text(PAGE)
    for path in PYODIDE.iterdir():
        if path.is_file():
            link_or_copy(path, app / "pyodide" / path.name)
    for path in (ROOT / "dist").iterdir():
        if path.is_file() and path.suffix in (".whl", ".json"):
            link_or_copy(path, app / "dist" / path.name)
    # Nothing at the origin's /pyodide/ and /dist/: only the files next to webraft.js work.
    empty = tmp_path / "empty"
    empty.mkdir()
    relay = start_relay("--static", str(site), "--pyodide-dir", str(empty), "--dist", str(empty))
    tab = Tab(context.new_page(), "sub-path")
    tab.goto(f"{relay.url}/sub/app/?room={unique_room('subpath')}")
    tab.wait_connected()
    index = tab.eval("""async () => {
      for (let k = 0; k < 200 && !webraft.isLeader; k++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      return webraft.propose({op: "put", key: "here", value: 1});
    }""")
    assert isinstance(index, int) and index > 0
    assert tab.eval("webraft.address") == "only"

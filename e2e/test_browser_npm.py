"""The npm package: ``.ci/pack-npm``'s tarball installed into an app of its own, which two tabs
load from ``node_modules/`` and form a cluster with.

The app installs offline (``npm ci --offline``): its lockfile pins the same Pyodide as
``browser/package-lock.json``, whose tarballs ``.ci/setup`` left in npm's cache. (Without a
lockfile, ``npm install webraft-*.tgz`` also needs Pyodide's metadata from the npm registry.)
The relay serves only the app: no /pyodide/ and no /dist/, so everything the tabs load comes
from the package and its dependency. The same app is also bundled with esbuild (pinned in
``browser/package.json``), as the guide's "With a bundler" says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import BOOT_TIMEOUT, ROOT, Relay, Tab, wait_for

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>an app of its own</title>
<p id="error" hidden></p>
<script type="module">
  import { connect, persistentState } from "./node_modules/webraft/webraft.js";
  const room = new URLSearchParams(location.search).get("room");
  const log = persistentState({ initial: [], apply(state, command) { state.push(command); } });
  connect({ room, state: log }).then(
    (raft) => { window.log = log; window.webraft = raft; },
    (error) => { const e = document.getElementById("error");
                 e.textContent = `${error.name}: ${error.message}`; e.hidden = false; });
</script>
"""

# The bundled app: `import "webraft"` resolved by esbuild, Pyodide, the wheel and the port
# exchange copied to the app's public files and named by URL (the bundle is not beside them
# any more).
BUNDLED_SOURCE = """import { connect, persistentState } from "webraft";
const room = new URLSearchParams(location.search).get("room");
const log = persistentState({ initial: [], apply(state, command) { state.push(command); } });
connect({ room, state: log, pyodideURL: "/assets/pyodide/", distURL: "/assets/webraft/",
          portsURL: "/assets/webraft-ports.js" }).then(
  (raft) => { window.log = log; window.webraft = raft; },
  (error) => { const e = document.getElementById("error");
               e.textContent = `${error.name}: ${error.message}`; e.hidden = false; });
"""

BUNDLED_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>a bundled app</title>
<p id="error" hidden></p>
<script type="module" src="/app.js"></script>
"""

# Retried while the tabs elect a leader (NoLeaderError: nothing was committed).
PROPOSE = """async (command) => {
  for (let tries = 0; ; tries++) {
    try { return await webraft.propose(command); }
    catch (error) {
      if (error.name !== "NoLeaderError" || tries > 600) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}"""

PRECOMPILED = """() => webraft.pyodide.runPython(`
import importlib.util, sys
cached = sys.modules["webraft.core.raft"].__spec__.cached
with open(cached, "rb") as pyc:
    magic = pyc.read(4)
magic == importlib.util.MAGIC_NUMBER
`)"""


def npm(*args: str, cwd: Path) -> str:
    if shutil.which("npm") is None:
        pytest.fail("npm not found: the npm package test needs Node.js and npm", pytrace=False)
    done = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"npm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def pack(out: Path) -> Path:
    done = subprocess.run(["bash", str(ROOT / ".ci" / "pack-npm"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHON": sys.executable}, check=False)
    assert done.returncode == 0, f"pack-npm:\n{done.stdout}\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


def make_app(app: Path, tarball: Path) -> None:
    """package.json and a lockfile: webraft from the tarball, Pyodide (and its dependencies)
    exactly as browser/package-lock.json resolves them."""
    app.mkdir()
    shutil.copy(tarball, app / tarball.name)
    spec = f"file:{tarball.name}"
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("package/package.json")
        assert member is not None
        package = json.load(member)
    ours = json.loads((ROOT / "browser" / "package-lock.json").read_text())["packages"]
    packages = {path: entry for path, entry in ours.items()
                if path.startswith("node_modules/") and not entry.get("dev")}
    packages["node_modules/webraft"] = {"version": package["version"], "resolved": spec,
                                        "license": package["license"],
                                        "dependencies": package["dependencies"]}
    manifest = {"name": "my-app", "version": "1.0.0", "private": True,
                "dependencies": {"webraft": spec}}
    packages[""] = {key: manifest[key] for key in ("name", "version", "dependencies")}
    (app / "package.json").write_text(json.dumps(manifest, indent=2))
    (app / "package-lock.json").write_text(json.dumps(
        {"name": "my-app", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
         "packages": packages}, indent=2))
    (app / "index.html").write_text(PAGE)


def form_cluster(context: Any, relay: Relay, room: str) -> list[Tab]:
    """Two tabs of the app at ``relay``: both boot, and a proposal of the second is applied
    in the first, with the same state in both and no page error."""
    tabs: list[Tab] = []
    for name in ("one", "two"):
        tab = Tab(context.new_page(), name)
        tab.goto(f"{relay.url}/?room={room}")
        tab.wait_booted(BOOT_TIMEOUT)
        tabs.append(tab)
    index = tabs[1].eval(PROPOSE, {"from": "two"}, timeout=BOOT_TIMEOUT)
    wait_for(lambda: tabs[0].eval("log.index") >= index, what="the first tab applied it")
    assert tabs[0].eval("log.state") == tabs[1].eval("log.state")
    assert {"from": "two"} in tabs[0].eval("log.state")
    # The port exchange was found where the app put it: the tabs trade a port.
    wait_for(lambda: all(len(t.eval("webraft.status()")["ported"]) == 1 for t in tabs),
             what="the tabs linked by a port")
    for tab in tabs:
        assert tab.page_errors == [], tab.page_errors
    return tabs


def test_the_packed_package_is_an_es_module_with_types_and_the_wheel(tmp_path: Path) -> None:
    tarball = pack(tmp_path)
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        member = tar.extractfile("package/package.json")
        assert member is not None
        package = json.load(member)
        manifest_file = tar.extractfile("package/dist/manifest.json")
        assert manifest_file is not None
        manifest = json.load(manifest_file)
    wheel, bytecode = manifest["wheel"], manifest["bytecode"]
    assert package["name"] == "webraft" and package["type"] == "module"
    assert package["exports"]["."] == {"types": "./webraft.d.ts", "default": "./webraft.js"}
    assert package["types"] == "./webraft.d.ts"
    pinned = json.loads((ROOT / "browser" / "package.json").read_text())["dependencies"]
    assert package["dependencies"] == {"pyodide": pinned["pyodide"]}
    assert wheel.startswith(f"webraft-{package['version']}-") and wheel.endswith(".whl")
    assert {"package/webraft.js", "package/webraft.d.ts", "package/webraft-ports.js",
            f"package/dist/{wheel}",
            f"package/dist/{bytecode}"} <= names
    # The licence it declares, with the text of the repository's.
    assert package["license"] == "MIT"
    with tarfile.open(tarball) as tar:
        licence = tar.extractfile("package/LICENSE")
        assert licence is not None
        assert licence.read() == (ROOT / "LICENSE").read_bytes()


def test_an_app_installs_the_package_offline_and_two_tabs_form_a_cluster(
    context: Any, start_relay: Callable[..., Relay], room: str, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    make_app(app, pack(tmp_path / "out"))
    npm("ci", "--offline", "--no-audit", "--no-fund", "--loglevel=error", cwd=app)
    assert (app / "node_modules" / "pyodide" / "pyodide.asm.wasm").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    relay = start_relay("--static", str(app), "--pyodide-dir", str(empty), "--dist", str(empty))
    tabs = form_cluster(context, relay, room)
    assert tabs[0].eval("webraft.wheel") == json.loads(
        (app / "node_modules" / "webraft" / "dist" / "manifest.json").read_text())["wheel"]
    # The modules were imported from the package's bytecode (Pyodide writes none itself),
    # compiled for this Python.
    assert tabs[0].eval(PRECOMPILED) is True


def test_an_app_bundled_with_esbuild_forms_a_cluster_from_its_public_files(
    context: Any, start_relay: Callable[..., Relay], room: str, tmp_path: Path
) -> None:
    """The guide's recipe: ``import "webraft"`` bundled into one file, Pyodide, the wheel and
    the port exchange copied to the public folder and passed as ``pyodideURL``, ``distURL``
    and ``portsURL``. Only the public
    folder is served, so nothing can come from ``node_modules/``."""
    app = tmp_path / "app"
    make_app(app, pack(tmp_path / "out"))
    npm("ci", "--offline", "--no-audit", "--no-fund", "--loglevel=error", cwd=app)
    (app / "main.js").write_text(BUNDLED_SOURCE)
    public = app / "public"
    esbuild = ROOT / "browser" / "node_modules" / ".bin" / "esbuild"
    assert esbuild.is_file(), "esbuild missing: run .ci/setup (browser/package.json pins it)"
    done = subprocess.run([str(esbuild), "main.js", "--bundle", "--format=esm",
                           f"--outfile={public / 'app.js'}"], cwd=app, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"esbuild:\n{done.stdout}\n{done.stderr}"
    assert 'from "webraft"' not in (public / "app.js").read_text()  # bundled in, not imported
    shutil.copytree(app / "node_modules" / "pyodide", public / "assets" / "pyodide")
    shutil.copytree(app / "node_modules" / "webraft" / "dist", public / "assets" / "webraft")
    shutil.copy(app / "node_modules" / "webraft" / "webraft-ports.js", public / "assets")
    (public / "index.html").write_text(BUNDLED_PAGE)

    empty = tmp_path / "empty"
    empty.mkdir()
    relay = start_relay("--static", str(public), "--pyodide-dir", str(empty),
                        "--dist", str(empty))
    tabs = form_cluster(context, relay, room)
    assert tabs[0].eval("webraft.wheel") == json.loads(
        (public / "assets" / "webraft" / "manifest.json").read_text())["wheel"]

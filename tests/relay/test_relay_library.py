"""The library at a fixed path (/webraft/) whatever --static serves, and CORS for it, the wheel
and Pyodide (never for a site's own pages)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support import write_files

from webraft_relay import config
from webraft_relay.config import RelayConfig

if TYPE_CHECKING:
    from conftest import Harness


ELSEWHERE = "http://app.example:8000"


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Any]:
    """An app's own page as --static, and trees like browser/, pyodide and dist/."""
    app, library = tmp_path / "app", tmp_path / "browser"
    pyodide, dist = tmp_path / "pyodide", tmp_path / "dist"
    files = {
        app / "index.html": "<!doctype html><title>my app</title>",
        library / "webraft.js": "export const connect = 1;",
        library / "webraft.d.ts": "export const connect: number;",
        library / "webraft-ports.js": "self.onconnect = null;",
        library / "index.html": "the demo",
        library / "demo.js": "demo",
        pyodide / "pyodide.mjs": "export {}",
        dist / "manifest.json": '{"wheel": "webraft-0.1.0-py3-none-any.whl"}',
        dist / "webraft-0.1.0-py3-none-any.whl": "PK",
    }
    write_files(files)
    return {"static_dir": app, "library_dir": library, "pyodide_dir": pyodide, "dist_dir": dist}


async def test_the_library_is_served_at_a_fixed_path_beside_an_apps_own_page(
    harness: Harness, site: dict[str, Any]
) -> None:
    relay = await harness.start(**site)
    for path, body, kind in (
        ("/", b"<!doctype html><title>my app</title>", "text/html"),
        ("/webraft/webraft.js", b"export const connect = 1;", "text/javascript"),
        ("/webraft/webraft.d.ts", b"export const connect: number;", "text/plain"),
        ("/webraft/webraft-ports.js", b"self.onconnect = null;", "text/javascript"),
        ("/webraft/dist/manifest.json", b'{"wheel": "webraft-0.1.0-py3-none-any.whl"}',
         "application/json"),
        ("/webraft/dist/webraft-0.1.0-py3-none-any.whl", b"PK", "application/zip"),
        ("/pyodide/pyodide.mjs", b"export {}", "text/javascript"),
    ):
        status, headers, got = await harness.http(relay, path)
        assert (status, got) == (200, body), path
        assert headers["Content-Type"].startswith(kind), path


@pytest.mark.parametrize("path", ["/webraft/index.html", "/webraft/demo.js", "/webraft/",
                                  "/webraft/sub/webraft.js", "/webraft/../app/index.html"])
async def test_only_the_library_files_of_its_directory_are_served(
    harness: Harness, site: dict[str, Any], path: str
) -> None:
    relay = await harness.start(**site)
    status, _, _ = await harness.http(relay, path)
    assert status == 404


async def test_without_a_library_directory_the_path_is_404(
    harness: Harness, site: dict[str, Any]
) -> None:
    relay = await harness.start(**{**site, "library_dir": None})
    status, _, _ = await harness.http(relay, "/webraft/webraft.js")
    assert status == 404


async def test_any_origin_may_load_the_library_when_any_may_connect(
    harness: Harness, site: dict[str, Any]
) -> None:
    relay = await harness.start(**site)
    origin = {"Origin": ELSEWHERE}
    for path in ("/webraft/webraft.js", "/webraft/dist/manifest.json", "/pyodide/pyodide.mjs",
                 "/dist/manifest.json", "/pyodide/missing.wasm"):
        _, headers, _ = await harness.http(relay, path, headers=origin)
        assert headers.get("Access-Control-Allow-Origin") == "*", path
    # A site's own pages, and the counters, are not shared with other origins.
    for path in ("/", "/healthz", "/stats"):
        _, headers, _ = await harness.http(relay, path, headers=origin)
        assert "Access-Control-Allow-Origin" not in headers, path


async def test_only_allowed_origins_get_cors_headers(
    harness: Harness, site: dict[str, Any]
) -> None:
    relay = await harness.start(**site, allow_origins=(ELSEWHERE,))
    _, headers, body = await harness.http(relay, "/webraft/webraft.js",
                                          headers={"Origin": ELSEWHERE})
    assert headers["Access-Control-Allow-Origin"] == ELSEWHERE
    assert headers["Vary"] == "Origin"
    assert body == b"export const connect = 1;"
    for other in ({"Origin": "http://evil.example"}, {}):
        status, headers, _ = await harness.http(relay, "/pyodide/pyodide.mjs", headers=other)
        assert status == 200  # same-origin and non-browser clients still load it
        assert "Access-Control-Allow-Origin" not in headers
        assert headers["Vary"] == "Origin"


async def test_a_preflight_is_answered_for_the_library_only(
    harness: Harness, site: dict[str, Any]
) -> None:
    relay = await harness.start(**site, allow_origins=(ELSEWHERE,))
    asking = {"Origin": ELSEWHERE, "Access-Control-Request-Method": "GET",
              "Access-Control-Request-Headers": "cache-control"}
    status, headers, body = await harness.http(relay, "/webraft/dist/manifest.json",
                                               method="OPTIONS", headers=asking)
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == ELSEWHERE
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert headers["Access-Control-Allow-Headers"] == "cache-control"
    for path in ("/", "/stats"):
        status, headers, _ = await harness.http(relay, path, method="OPTIONS", headers=asking)
        assert status == 405, path
        assert headers["Allow"] == "GET, HEAD"


def test_the_library_defaults_are_webrafts_files_not_an_apps_folders_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay started in an app's folder, beside its own ``browser/`` and a bundler's
    ``dist/`` (even ones holding an old copy of the library, the old way round a 404), still
    serves webraft's library, wheel and Pyodide from webraft's checkout."""
    checkout, app = tmp_path / "checkout", tmp_path / "app"
    write_files({
        checkout / "browser" / "webraft.js": "export const connect = 1;",
        checkout / "browser" / "node_modules" / "pyodide" / "pyodide.mjs": "export {}",
        checkout / "dist" / "webraft-0.1.0-py3-none-any.whl": "PK",
        app / "browser" / "index.html": "the app's page",
        app / "browser" / "webraft.js": "an old copy",
        app / "browser" / "node_modules" / "pyodide" / "pyodide.mjs": "another version",
        app / "dist" / "index.js": "the app's bundle",
        app / "dist" / "webraft-0.0.9-py3-none-any.whl": "an old wheel",
    })
    monkeypatch.setattr(config, "CHECKOUT", checkout)
    monkeypatch.chdir(app)
    defaults = RelayConfig()
    assert defaults.library_dir == checkout / "browser"
    assert defaults.dist_dir == checkout / "dist"
    assert defaults.pyodide_dir == checkout / "browser" / "node_modules" / "pyodide"
    assert defaults.static_dir == app / "browser"  # the page is the app's: cwd first
    # Outside a checkout (an installed relay), the app's folder is the one place to look, and
    # a directory counts only if it holds the files.
    monkeypatch.setattr(config, "CHECKOUT", tmp_path / "site-packages")
    (app / "dist" / "webraft-0.0.9-py3-none-any.whl").unlink()
    installed = RelayConfig()
    assert (installed.library_dir, installed.dist_dir) == (app / "browser", None)


def test_without_webrafts_files_the_library_defaults_are_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed relay run outside a checkout, in a folder with look-alike directories,
    serves no library rather than the wrong files (a 404 names the missing path)."""
    write_files({tmp_path / "app" / "browser" / "index.html": "page",
                 tmp_path / "app" / "dist" / "index.js": "bundle"})
    monkeypatch.setattr(config, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path / "app")
    defaults = RelayConfig()
    assert (defaults.library_dir, defaults.dist_dir, defaults.pyodide_dir) == (None, None, None)

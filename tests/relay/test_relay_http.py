"""Plain HTTP on the relay port: health, stats, and static files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import write_files

from webraft_relay.web import content_type, resolve_file

if TYPE_CHECKING:
    from conftest import Harness

    from webraft_relay import Relay


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """Three small trees like browser/, browser/node_modules/pyodide/ and dist/."""
    static, pyodide, dist = tmp_path / "browser", tmp_path / "pyodide", tmp_path / "dist"
    files = {
        static / "index.html": "<!doctype html><title>webraft</title>",
        static / "app.js": "console.log(1)",
        static / "worker.mjs": "export {}",
        static / "data.json": "{}",
        static / "sub" / "index.html": "sub",
        static / ".env": "SECRET=1",
        pyodide / "pyodide.asm.wasm": "\0asm",
        pyodide / "pyodide.mjs": "export {}",
        pyodide / "python_stdlib.zip": "PK",
        pyodide / "pyodide.d.ts": "export {}",
        pyodide / "pyodide-lock.json": "{}",
        dist / "webraft-0.1.0-py3-none-any.whl": "PK",
        tmp_path / "outside.txt": "private",
    }
    write_files(files)
    (static / "escape").symlink_to(tmp_path / "outside.txt")
    return {"static_dir": static, "pyodide_dir": pyodide, "dist_dir": dist}


@pytest.fixture
async def web(harness: Harness, site: dict[str, Path]) -> Relay:
    return await harness.start(**site)


async def test_healthz(harness: Harness, relay: Relay):
    status, headers, body = await harness.http(relay, "/healthz")
    assert (status, body) == (200, b"ok")
    assert headers["Content-Type"].startswith("text/plain")


async def test_absolute_form_targets_are_served_like_paths(harness: Harness, web: Relay):
    """RFC 9112 requires servers to accept ``GET http://host/path``; it used to answer 500."""
    base = f"http://127.0.0.1:{web.port}"
    for target, body in ((f"{base}/healthz", b"ok"), (f"{base}/healthz?x=1", b"ok"),
                         (f"{base}/app.js", b"console.log(1)"),
                         (base, b"<!doctype html><title>webraft</title>")):
        status, _, got = await harness.http(web, target)
        assert (status, got) == (200, body), target
    status, _, _ = await harness.http(web, f"{base}/ws")
    assert status == 426  # the WebSocket path, named in absolute form


@pytest.mark.parametrize("target", ["*", "healthz", "ws", "ftp://host/healthz", "http:/x"])
async def test_targets_that_name_no_path_are_400_without_a_traceback(
    harness: Harness, web: Relay, target: str, caplog: pytest.LogCaptureFixture
):
    status, _, body = await harness.http(web, target)
    assert (status, body) == (400, b"the request target is not a path\n")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    status, _, _ = await harness.http(web, target, method="HEAD")
    assert status == 400


async def test_stats_counts_traffic(harness: Harness, relay: Relay):
    stats = await harness.stats(relay)
    assert stats["rooms"] == stats["connections"] == stats["messages_routed"] == 0
    a, b, c = await harness.members(relay, "demo", "a", "b", "c")
    await a.send(type="send", to="b", data="x")
    await b.expect("msg")
    await a.send(type="broadcast", data="y")
    await b.expect("msg")
    await c.expect("msg")
    await a.send(type="send", to="nobody", data="z")
    await a.expect("error")
    stats = await harness.stats(relay)
    assert stats["rooms"] == 1
    assert stats["members"] == stats["connections"] == 3
    assert stats["messages_routed"] == 3
    assert stats["bytes_routed"] == (
        len('{"type":"msg","from":"a","data":"x"}')
        + 2 * len('{"type":"msg","from":"a","data":"y","broadcast":true}')
    )
    assert stats["dropped"] == {"unknown_peer": 1}
    assert stats["uptime"] >= 0
    assert stats["version"] == 1


@pytest.mark.parametrize(
    ("path", "mime", "body"),
    [
        ("/", "text/html; charset=utf-8", b"<!doctype html><title>webraft</title>"),
        ("/index.html", "text/html; charset=utf-8", b"<!doctype html><title>webraft</title>"),
        ("/sub/", "text/html; charset=utf-8", b"sub"),
        ("/app.js", "text/javascript; charset=utf-8", b"console.log(1)"),
        ("/worker.mjs?v=3", "text/javascript; charset=utf-8", b"export {}"),
        ("/data.json", "application/json", b"{}"),
        ("/pyodide/pyodide.asm.wasm", "application/wasm", b"\0asm"),
        ("/pyodide/pyodide.mjs", "text/javascript; charset=utf-8", b"export {}"),
        ("/pyodide/python_stdlib.zip", "application/zip", b"PK"),
        ("/pyodide/pyodide.d.ts", "text/plain; charset=utf-8", b"export {}"),
        ("/pyodide/pyodide-lock.json", "application/json", b"{}"),
        ("/dist/webraft-0.1.0-py3-none-any.whl", "application/zip", b"PK"),
    ],
)
async def test_static_files_and_types(
    harness: Harness, web: Relay, path: str, mime: str, body: bytes
):
    status, headers, got = await harness.http(web, path)
    assert (status, got) == (200, body)
    assert headers["Content-Type"] == mime
    assert headers["Content-Length"] == str(len(body))
    assert headers["ETag"]
    if path.startswith("/pyodide/"):
        assert "immutable" in headers["Cache-Control"]
    else:
        assert headers["Cache-Control"] == "no-cache"


async def test_etag_revalidation(harness: Harness, web: Relay, site: dict[str, Path]):
    _, headers, _ = await harness.http(web, "/app.js")
    status, _, body = await harness.http(web, "/app.js", headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    target = site["static_dir"] / "app.js"
    target.write_text("console.log(2)")
    os.utime(target, ns=(0, 1))  # a different mtime even on coarse-grained filesystems
    status, _, body = await harness.http(web, "/app.js", headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (200, b"console.log(2)")


async def test_head_has_headers_but_no_body(harness: Harness, web: Relay):
    status, headers, body = await harness.http(web, "/pyodide/pyodide.asm.wasm", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "4"
    assert headers["Content-Type"] == "application/wasm"


async def test_other_methods_are_refused(harness: Harness, web: Relay):
    status, headers, _ = await harness.http(web, "/", method="DELETE")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


async def test_directory_without_slash_redirects(harness: Harness, web: Relay):
    status, headers, _ = await harness.http(web, "/sub")
    assert status == 301
    assert headers["Location"] == "/sub/"


@pytest.mark.parametrize(
    "path",
    [
        "/missing.html",
        "/../outside.txt",
        "/sub/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E%2Foutside.txt",
        "/..%5coutside.txt",
        "/pyodide/../outside.txt",
        "/dist/%2e%2e/browser/index.html",
        "/.env",
        "/%2eenv",
        "/escape",  # a symlink pointing out of the root
        "/app.js%00.html",
    ],
)
async def test_traversal_and_missing_files_are_404(harness: Harness, web: Relay, path: str):
    status, _, body = await harness.http(web, path)
    assert status == 404
    assert b"private" not in body


async def test_unconfigured_routes_are_404(harness: Harness, relay: Relay):
    for path in ("/", "/index.html", "/pyodide/pyodide.mjs", "/dist/x.whl"):
        status, _, _ = await harness.http(relay, path)
        assert status == 404


async def test_websocket_upgrade_elsewhere_is_404(harness: Harness, relay: Relay):
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    status, _, _ = await harness.http(relay, "/not-ws", headers=headers)
    assert status == 404


async def test_plain_get_on_the_websocket_path_is_426(harness: Harness, relay: Relay):
    status, _, _ = await harness.http(relay, "/ws")
    assert status == 426


def test_content_types_without_a_server(tmp_path: Path):
    assert content_type(Path("a.WASM")) == "application/wasm"
    assert content_type(Path("webraft.whl")) == "application/zip"
    assert content_type(Path("x.unknown-ext")) == "application/octet-stream"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text("x")
    assert resolve_file(tmp_path, "a/") == tmp_path.resolve() / "a" / "index.html"
    assert resolve_file(tmp_path, "a/../a/index.html") is None
    assert resolve_file(tmp_path / "nope", "index.html") is None


async def test_stats_is_json(harness: Harness, relay: Relay):
    status, headers, body = await harness.http(relay, "/stats")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert set(json.loads(body)) >= {
        "rooms",
        "connections",
        "messages_routed",
        "bytes_routed",
        "dropped",
        "uptime",
    }

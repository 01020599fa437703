"""Plain HTTP on the relay's port: health, stats, the library and the static files of pages.

Owns :class:`Site`, the HTTP side of the port. Imports :mod:`.metrics`, ``websockets``' HTTP
types and the standard library; nothing of webraft.

Serving the page, Pyodide and our wheel from the same origin as the WebSocket means one process
to start and no CDN (the machines that run the demo and the tests are offline). The library
(``/webraft/``: ``webraft.js``, ``webraft.d.ts``, ``webraft-ports.js`` and ``/webraft/dist/``,
the wheel) is at a
fixed path whatever ``--static`` serves, so an app's own page imports
``/webraft/webraft.js``; it finds Pyodide at ``/pyodide/`` (``../pyodide/`` from there, as in
an npm install). Pages on other origins may load the library, the wheel and Pyodide: those
answer with CORS headers for the origins allowed to connect (``*`` when any may).

websockets hands every request to ``process_request`` before the upgrade; :class:`Site` answers
everything except the WebSocket path. Must not import the relay's routing (``server``,
``rooms``): it only sees requests. A file is never read whole: :meth:`Site.stream` sends it in
chunks, each once the client has taken the previous one, so a client that does not read holds
one chunk of the relay's memory, not the file (``pyodide.asm.wasm`` is over 10 MB).
"""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import http
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from webraft.prometheus import CONTENT_TYPE

from .metrics import render

__all__ = [
    "MIME_TYPES",
    "FileResponse",
    "Mount",
    "Site",
    "content_type",
    "resolve_file",
    "target_path",
]

#: Bytes read from a file at a time; with the socket's write limit, a download's footprint.
CHUNK = 64 * 1024

# Explicit types for everything the browser demo loads. mimetypes alone is not enough: its
# answers depend on the host's /etc/mime.types, it maps ".ts" to MPEG transport streams, and a
# ".wasm" served as anything but application/wasm disables streaming compilation.
MIME_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".ts": "text/plain; charset=utf-8",  # .d.ts type declarations shipped with Pyodide
    ".py": "text/x-python; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# Our own files change between runs under the same URL: always revalidate (cheap with ETag).
NO_CACHE = "no-cache"
# Pyodide's files are pinned to an exact npm version: cache them for good.
IMMUTABLE = "public, max-age=31536000, immutable"


def content_type(path: Path) -> str:
    """MIME type for a served file, from :data:`MIME_TYPES` first, then the system table."""
    known = MIME_TYPES.get(path.suffix.lower())
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def target_path(target: str) -> str | None:
    """The path a request target names, without its query, or ``None`` if it names none.

    RFC 9112 (3.2) gives four forms: the origin form (``/healthz``) and the absolute form
    (``http://host/healthz``, which servers must accept) name a path; the asterisk form
    (``*``) and anything else (``healthz``) do not, so they get a 400, never a lookup.
    """
    if target.startswith("/"):
        return target.split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https", "ws", "wss") or not parts.netloc:
        return None
    return parts.path or "/"


def resolve_file(root: Path, relative: str) -> Path | None:
    """Map a URL path below a mount to a file inside ``root``, or ``None`` (-> 404).

    Refuses ``..``, ``.`` and dot-files (``.env``, ``.git``) outright, then checks that the
    fully resolved path is still inside ``root`` so a symlink cannot lead out of it either.
    Directories map to their ``index.html``.
    """
    found = _locate(root, relative)
    return None if found is None else found[0]


def _locate(root: Path, relative: str) -> tuple[Path, bool] | None:
    """:func:`resolve_file`, also telling whether the URL named a directory."""
    parts = []
    for part in unquote(relative).split("/"):
        if not part:
            continue
        if part.startswith(".") or "\\" in part or "\x00" in part:
            return None
        parts.append(part)
    try:
        base = root.resolve(strict=True)
        target = base.joinpath(*parts).resolve(strict=True)
        is_dir = target.is_dir()
        if is_dir:
            target = (target / "index.html").resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target, is_dir


#: The library's files, served under /webraft/ from the directory that holds webraft.js; the
#: rest of that directory (the demo's page) is not the library's.
LIBRARY_FILES = frozenset({"webraft.js", "webraft.d.ts", "webraft-ports.js"})


@dataclass(frozen=True, slots=True)
class Mount:
    """A URL prefix served from a directory (``root=None``: configured off, always 404).

    ``only``: the names of the only files served (no subdirectories); ``cors``: pages on other
    origins may read them (the library, the wheel and Pyodide, never a site's own pages).
    """

    prefix: str
    root: Path | None
    cache_control: str
    only: frozenset[str] | None = None
    cors: bool = False


def _response(status: http.HTTPStatus, headers: list[tuple[str, str]], body: bytes) -> Response:
    base = [
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Response(status.value, status.phrase, Headers(base + headers), body)


def _text(status: http.HTTPStatus, text: str, *, head: bool = False) -> Response:
    body = text.encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    return _response(status, headers, b"" if head else body)


class FileResponse(NamedTuple):
    """A 200 whose body is the file at ``path`` (``size`` bytes), for :meth:`Site.stream`;
    ``head`` carries the status and headers, and no body."""

    head: Response
    path: Path
    size: int


class Site:
    """Answers the non-WebSocket requests of the relay's port.

    ``stats`` is called for ``/stats`` and ``/metrics`` so the numbers are taken at request
    time; with ``private_token`` set, both need it as ``Authorization: Bearer <token>``.
    ``allow_origins``: the origins whose pages may read the library, the wheel and Pyodide
    (the WebSocket's ``--allow-origin``); empty: any.
    """

    def __init__(
        self,
        *,
        static_dir: Path | None,
        pyodide_dir: Path | None,
        dist_dir: Path | None,
        stats: Callable[[], dict[str, Any]],
        library_dir: Path | None = None,
        allow_origins: tuple[str, ...] = (),
        private_token: str | None = None,
    ) -> None:
        # Longest prefix first: /webraft/dist/, /webraft/, /pyodide/ and /dist/ win over /.
        self.mounts = (
            Mount("/webraft/dist/", dist_dir, NO_CACHE, cors=True),
            Mount("/webraft/", library_dir, NO_CACHE, only=LIBRARY_FILES, cors=True),
            Mount("/pyodide/", pyodide_dir, IMMUTABLE, cors=True),
            Mount("/dist/", dist_dir, NO_CACHE, cors=True),
            Mount("/", static_dir, NO_CACHE),
        )
        self._stats = stats
        self._allow_origins = frozenset(allow_origins)
        self._private_token = private_token
        self.streaming = 0  # downloads under way, each holding at most a chunk

    async def stream(self, connection: ServerConnection, response: FileResponse) -> Response:
        """Send ``response`` on ``connection`` chunk by chunk, then close the connection.

        Writes straight to the transport and waits for each chunk to drain, which is the
        back-pressure websockets' buffered responses lack. The whole exchange stays within
        websockets' ``open_timeout`` (it runs inside ``process_request``); a client too slow for
        it is cut off. Returns ``head``, which websockets then does not send: the connection is
        closed by then.
        """
        transport = connection.transport
        transport.write(response.head.serialize())
        left = response.size
        self.streaming += 1
        try:
            with response.path.open("rb") as file:
                while left > 0 and not transport.is_closing():
                    chunk = await asyncio.to_thread(file.read, min(CHUNK, left))
                    if not chunk:
                        break  # truncated since the stat: the short body tells the client
                    transport.write(chunk)
                    left -= len(chunk)
                    await connection.drain()
        except (OSError, ConnectionError):
            pass  # a vanished file or client: nothing more to send either way
        finally:
            self.streaming -= 1
        if left:
            transport.abort()
        else:
            transport.close()
        # shield: websockets' own future, which must never be cancelled (by open_timeout here).
        await asyncio.shield(connection.connection_lost_waiter)
        return response.head

    async def respond(self, request: Request) -> Response | FileResponse:
        """Build the response for one plain HTTP request (GET and HEAD only)."""
        head = request.method == "HEAD"
        if request.method == "OPTIONS":
            return self._preflight(request)
        if request.method not in ("GET", "HEAD"):
            response = _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n")
            response.headers["Allow"] = "GET, HEAD"
            return response
        path = target_path(request.path)
        if path is None:
            return _text(http.HTTPStatus.BAD_REQUEST, "the request target is not a path\n",
                         head=head)
        if path == "/healthz":
            return _text(http.HTTPStatus.OK, "ok", head=head)
        if path in ("/stats", "/metrics"):
            if not self._authorized(request):
                response = _text(http.HTTPStatus.UNAUTHORIZED, "a bearer token is needed\n",
                                 head=head)
                response.headers["WWW-Authenticate"] = 'Bearer realm="webraft-relay"'
                return response
            if path == "/stats":
                body = json.dumps(self._stats(), sort_keys=True).encode()
                kind = "application/json"
            else:
                body = render(self._stats()).encode()
                kind = CONTENT_TYPE
            headers = [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ]
            return _response(http.HTTPStatus.OK, headers, b"" if head else body)
        return await self._static(request, path, head)

    def _mount(self, path: str) -> Mount:
        return next(m for m in self.mounts if path.startswith(m.prefix))

    def _cors(self, request: Request, mount: Mount) -> list[tuple[str, str]]:
        """The CORS headers of an answer from ``mount``: none for a site's own pages."""
        if not mount.cors:
            return []
        if not self._allow_origins:
            return [("Access-Control-Allow-Origin", "*")]
        # The answer depends on Origin: caches must keep one per origin.
        origin = request.headers.get("Origin")
        if origin is None or origin not in self._allow_origins:
            return [("Vary", "Origin")]
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]

    def _preflight(self, request: Request) -> Response:
        """``OPTIONS``: a browser asking whether a cross-origin request may be sent (only the
        library's paths say yes); anything else keeps the 405 of methods we do not serve."""
        path = target_path(request.path)
        mount = None if path is None else self._mount(path)
        cors = [] if mount is None else self._cors(request, mount)
        if not cors:
            response = _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD\n")
            response.headers["Allow"] = "GET, HEAD"
            return response
        headers = [*cors, ("Access-Control-Allow-Methods", "GET, HEAD"),
                   ("Access-Control-Max-Age", "86400"), ("Content-Length", "0")]
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            # Only simple request headers are ever needed; echoing them is what lets a
            # browser's own (Cache-Control, If-None-Match ...) through.
            headers.append(("Access-Control-Allow-Headers", asked))
        return _response(http.HTTPStatus.NO_CONTENT, headers, b"")

    async def _static(self, request: Request, path: str, head: bool) -> Response | FileResponse:
        mount = self._mount(path)
        cors = self._cors(request, mount)
        # A 404 carries the CORS headers too: a page elsewhere then learns "not found", not an
        # opaque network error.
        missing = _text(http.HTTPStatus.NOT_FOUND, "not found\n", head=head)
        missing.headers.update(cors)
        if mount.root is None:
            return missing
        relative = path[len(mount.prefix) :]
        if mount.only is not None and relative not in mount.only:
            return missing
        found = _locate(mount.root, relative)
        if found is None:
            return missing
        target, is_dir = found
        if is_dir and not path.endswith("/"):
            # /sub -> /sub/ so that relative links inside sub/index.html resolve correctly.
            response = _text(http.HTTPStatus.MOVED_PERMANENTLY, "moved\n", head=head)
            response.headers["Location"] = path + "/"
            return response
        try:
            stat = target.stat()
        except OSError:
            return missing
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        headers = [("ETag", etag), ("Cache-Control", mount.cache_control), *cors]
        if etag in _etags(request.headers.get("If-None-Match")):
            return _response(http.HTTPStatus.NOT_MODIFIED, headers, b"")
        headers += [
            ("Content-Type", content_type(target)),
            ("Content-Length", str(stat.st_size)),
        ]
        if head:
            return _response(http.HTTPStatus.OK, headers, b"")
        return FileResponse(_response(http.HTTPStatus.OK, headers, b""), target, stat.st_size)

    def _authorized(self, request: Request) -> bool:
        """Counters are public without a secret; with one, they need ``stats_token``."""
        if self._private_token is None:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._private_token.encode()
        )


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}

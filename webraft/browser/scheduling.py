"""Work deferred to the end of the current browser task: a JavaScript microtask.

Owns :class:`EndOfTask`. Imports nothing of webraft; ``js`` and ``pyodide`` only when first
scheduled, so it imports anywhere.

Why not ``loop.call_soon``: on Pyodide's WebLoop every ``call_soon`` is a browser task of its
own (a ``MessageChannel`` message, which Pyodide already uses instead of a clamped
``setTimeout(0)``). Each such task waits behind whatever else the renderer has queued, and a
commit crossed four of them (the leader's frame flush, each follower's flush, the sweep of
outcomes): 1.5-2.5 ms apiece on a busy machine, most of a tab's commit latency. A microtask
runs as soon as the current task's JavaScript returns, so what one task produced (a Ready
round's messages, the outcomes it settled) still leaves in one batch, with no wait.

A microtask never yields to the page, so it is only for work that does not reschedule itself
without bound; a flush of what one task produced is such work.

Work that must not run before the rest of the task's microtasks takes :func:`next_task`
instead: a tab's write of a commit index alone. Queued as a microtask while the leader commits,
it ran before the microtasks that hand the outcome to JavaScript, so every sequential commit
waited for a ``localStorage.setItem`` (0.3-0.9 ms) that the next proposal's save would have
carried anyway (see :meth:`~webraft.storage.localstorage.LocalStorage.defer_commits`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["EndOfTask", "next_task"]


def next_task(run: Callable[[], None]) -> None:
    """Call ``run`` in a browser task of its own, after everything the current task queued
    (its microtasks included): a ``queue`` for :class:`EndOfTask`."""
    asyncio.get_running_loop().call_soon(run)


class EndOfTask:
    """Runs ``callback`` once at the end of the current browser task, however often it was
    :meth:`schedule`\\ d meanwhile. One JavaScript proxy serves every run; :meth:`close`
    releases it (once no run is queued: JavaScript must never call a destroyed proxy).
    ``queue`` replaces JavaScript's ``queueMicrotask``: with :func:`next_task` the callback
    runs in a task of its own instead; tests outside a browser pass their own."""

    def __init__(self, callback: Callable[[], None],
                 queue: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._callback = callback
        self._queue = queue
        self._proxy: Any = None  # the JavaScript proxy of _run, once made
        self._queued = False  # a microtask will call _run
        self._wanted = False  # ... and _run should call the callback then
        self._closed = False

    def schedule(self) -> None:
        if self._closed:
            return
        self._wanted = True
        if self._queued:
            return
        self._queued = True
        if self._queue is not None:
            self._queue(self._run)
            return
        if self._proxy is None:
            from pyodide.ffi import create_proxy  # only in Pyodide

            self._proxy = create_proxy(self._run)
        from js import queueMicrotask

        queueMicrotask(self._proxy)

    def cancel(self) -> None:
        """Skip the scheduled run (a direct call did its work)."""
        self._wanted = False

    def _run(self) -> None:
        self._queued = False
        if self._closed:
            self._release()
        elif self._wanted:
            self._wanted = False
            self._callback()

    def close(self) -> None:
        self._closed = True
        self._wanted = False
        if not self._queued:
            self._release()

    def _release(self) -> None:
        if self._proxy is not None:
            self._proxy.destroy()
            self._proxy = None

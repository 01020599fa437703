"""How a tab's node schedules work: :class:`TabLoop` for its timers and next-task calls,
:class:`EndOfTask` for work at the end of the current browser task.

Owns both. Imports nothing of webraft; ``js`` and ``pyodide`` only when first used, so it
imports anywhere.

Why a loop of our own for the node's timers: Pyodide's WebLoop wraps every ``call_soon`` and
``call_later`` callback in a proxy that may switch stacks (JSPI, which Chromium has). Such a
call first waits one more ``MessageChannel`` task, then enters Python on a fresh stack: a
``call_soon`` costs two browser tasks, a timer one task more than its ``setTimeout``, and a
cancelled timer still fires to find itself cancelled. :class:`TabLoop` calls one persistent
synchronous proxy from ``setTimeout`` (and cancels with ``clearTimeout``) and one from a
``MessageChannel`` for what is due now. Three idle tabs spent 14-31% less CPU with it
(``bench/browser_bench.py --compare DIR --cpu``).

Why not ``loop.call_soon`` at the end of a task: every ``call_soon`` is a browser task of its
own. Each such task waits behind whatever else the renderer has queued, and a commit crossed
four of them (the leader's frame flush, each follower's flush, the sweep of outcomes):
1.5-2.5 ms apiece on a busy machine, most of a tab's commit latency. A microtask runs as soon
as the current task's JavaScript returns, so what one task produced (a Ready round's messages,
the outcomes it settled) still leaves in one batch, with no wait.

A microtask never yields to the page, so it is only for work that does not reschedule itself
without bound; a flush of what one task produced is such work.

Work that must not run before the rest of the task's microtasks waits for a timer instead:
a tab's write of a commit index alone. Queued as a microtask while the leader commits, it ran
before the microtasks that hand the outcome to JavaScript, so every sequential commit waited
for a ``localStorage.setItem`` (0.3-0.9 ms) that the next proposal's save would have carried
anyway (see :meth:`~webraft.storage.localstorage.LocalStorage.defer_commits`); in a task of
its own it woke the leader once more per commit, only to find it written.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["EndOfTask", "TabLoop"]

#: Delays up to this (seconds) are due now: they run in the next ``MessageChannel`` task, as
#: Pyodide's own scheduler does, not after a ``setTimeout`` (which browsers clamp to 4 ms
#: once timers nest).
IMMEDIATE = 0.002
#: The longest ``setTimeout`` delay (ms) browsers honour; a longer one fires at once.
MAX_TIMEOUT_MS = 2**31 - 1


class _Timer(asyncio.TimerHandle):
    """A timer handle that knows its browser timer (``TimerHandle`` has slots)."""

    __slots__ = ("key",)
    key: int  # the browser timer's key in TabLoop._timers; 0 for a call due now


class TabLoop(asyncio.AbstractEventLoop):
    """The event loop a tab's node sees: the page's loop, except that :meth:`call_soon` and
    :meth:`call_later` are browser tasks calling Python synchronously (see the module
    docstring). Everything else (time, futures, tasks, the exception handler) is the page's
    loop, so no future is ever bound to this one.

    ``set_timeout(callback, ms, key) -> id``, ``clear_timeout(id)`` and ``post(callback)``
    (``callback()`` in a task of its own) default to the page's, with persistent proxies;
    tests pass their own. After :meth:`close` the page's loop schedules everything, so a
    node closing does not lose its last callbacks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *,
                 set_timeout: Callable[[Callable[[int], None], float, int], Any] | None = None,
                 clear_timeout: Callable[[Any], None] | None = None,
                 post: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._loop = loop
        #: Makes the page's loop the running one where a callback runs (Pyodide's WebLoop
        #: does this before each of its own: with JSPI a call may run on another thread
        #: state).
        self._enter: Callable[[], None] | None = getattr(loop, "_install_running_loop", None)
        self._timers: dict[int, tuple[asyncio.TimerHandle, Any]] = {}  # key -> (handle, id)
        self._next_key = 0
        self._due: deque[asyncio.Handle] = deque()  # waiting for the next post
        self._posted = False  # a post will drain _due
        self._dispatching = False  # inside _fire or _drain: close() releases at their end
        self._proxies: list[Any] = []
        self._channel: Any = None
        if set_timeout is None or clear_timeout is None or post is None:
            set_timeout, clear_timeout, post = self._page_functions()
        self._set_timeout, self._clear_timeout, self._post = set_timeout, clear_timeout, post
        self._closed = False

    def _page_functions(self) -> tuple[Callable[[Callable[[int], None], float, int], Any],
                                       Callable[[Any], None], Callable[[Callable[[], None]],
                                                                       None]]:
        from js import MessageChannel, clearTimeout, setTimeout  # only in Pyodide
        from pyodide.ffi import create_proxy

        fire, drain = create_proxy(self._fire), create_proxy(lambda _event: self._drain())
        self._proxies = [fire, drain]
        channel = self._channel = MessageChannel.new()
        channel.port1.onmessage = drain
        port = channel.port2

        def set_timeout(_callback: Callable[[int], None], ms: float, key: int) -> Any:
            return setTimeout(fire, ms, key)

        post_message = port.postMessage  # looked up once: each lookup makes a proxy
        return set_timeout, clearTimeout, lambda _callback: post_message(0)

    # -- scheduling ------------------------------------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any,  # type: ignore[override]
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        if self._closed:
            return self._loop.call_soon(callback, *args, context=context)
        handle = asyncio.Handle(callback, args, self, context)
        self._queue(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., object],  # type: ignore[override]
                   *args: Any, context: contextvars.Context | None = None
                   ) -> asyncio.TimerHandle:
        if self._closed:
            return self._loop.call_later(delay, callback, *args, context=context)
        if delay < 0:
            raise ValueError("can't schedule in the past")
        handle = _Timer(self.time() + delay, callback, args, self, context)
        handle.key = 0
        if delay == math.inf:
            return handle  # never due (WebLoop's way too)
        if delay <= IMMEDIATE:
            self._queue(handle)
        else:
            self._next_key += 1
            handle.key = key = self._next_key
            ms = min(delay * 1000, MAX_TIMEOUT_MS)  # past it a browser fires at once
            self._timers[key] = (handle, self._set_timeout(self._fire, ms, key))
        return handle

    def call_at(self, when: float, callback: Callable[..., object],  # type: ignore[override]
                *args: Any, context: contextvars.Context | None = None
                ) -> asyncio.TimerHandle:
        return self.call_later(max(0.0, when - self.time()), callback, *args,
                               context=context)

    def _queue(self, handle: asyncio.Handle) -> None:
        self._due.append(handle)
        if not self._posted:
            self._posted = True
            self._post(self._drain)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        """``TimerHandle.cancel`` calls this: the browser forgets the timer too."""
        timer = self._timers.pop(handle.key, None) if isinstance(handle, _Timer) else None
        if timer is not None:
            self._clear_timeout(timer[1])

    def _fire(self, key: int) -> None:
        timer = self._timers.pop(key, None)
        if timer is None or timer[0].cancelled():
            return
        self._dispatching = True
        try:
            if self._enter is not None:
                self._enter()
            timer[0]._run()
        finally:
            self._dispatched()

    def _drain(self) -> None:
        """Run what was due when this task was posted; what those callbacks queue waits for
        the next task, so a callback that requeues itself cannot hold the page."""
        self._posted = False
        due = self._due
        self._dispatching = True
        try:
            if self._enter is not None:
                self._enter()
            for _ in range(len(due)):
                if not due:  # a callback closed this loop: the page's loop has the rest
                    break
                handle = due.popleft()
                if not handle.cancelled():
                    handle._run()
        finally:
            # Also after an exception _run does not catch (KeyboardInterrupt, SystemExit):
            # what is still due gets its task.
            if due and not self._posted and not self._closed:
                self._posted = True
                self._post(self._drain)
            self._dispatched()

    def _dispatched(self) -> None:
        self._dispatching = False
        if self._closed:
            self._release()

    def close(self) -> None:
        """Cancel the browser's timers and release the proxies; what was queued runs on the
        page's loop, and so does everything scheduled from now on."""
        if self._closed:
            return
        self._closed = True
        for handle, timer in self._timers.values():
            self._clear_timeout(timer)
            # Relative and never negative: WebLoop refuses a time already past.
            self._loop.call_later(max(0.0, handle.when() - self.time()),
                                  _run_unless_cancelled, handle)
        self._timers.clear()
        while self._due:
            self._loop.call_soon(_run_unless_cancelled, self._due.popleft())
        if not self._dispatching:  # else at the end of the callback that closed it
            self._release()

    def _release(self) -> None:
        if self._channel is not None:
            self._channel.port1.onmessage = None
            self._channel.port1.close()  # a message still queued is never delivered
            self._channel = None
        for proxy in self._proxies:
            proxy.destroy()
        self._proxies = []

    def is_closed(self) -> bool:
        return self._loop.is_closed()

    # -- the page's loop ---------------------------------------------------------------------

    def time(self) -> float:
        return self._loop.time()

    def create_future(self) -> asyncio.Future[Any]:
        return self._loop.create_future()

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return self._loop.create_task(coro, **kwargs)

    def is_running(self) -> bool:
        return self._loop.is_running()

    def call_soon_threadsafe(self, callback: Callable[..., object],  # type: ignore[override]
                             *args: Any, context: contextvars.Context | None = None
                             ) -> asyncio.Handle:
        return self._loop.call_soon_threadsafe(callback, *args, context=context)

    def run_in_executor(self, executor: Any, func: Callable[..., Any],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[Any]:
        return self._loop.run_in_executor(executor, func, *args)

    def set_exception_handler(self, handler: Any) -> None:
        self._loop.set_exception_handler(handler)

    def get_exception_handler(self) -> Any:
        return self._loop.get_exception_handler()

    def get_debug(self) -> bool:
        return self._loop.get_debug()

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self._loop.call_exception_handler(context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self._loop.default_exception_handler(context)


def _run_unless_cancelled(handle: asyncio.Handle) -> None:
    if not handle.cancelled():
        handle._run()


class EndOfTask:
    """Runs ``callback`` once at the end of the current browser task, however often it was
    :meth:`schedule`\\ d meanwhile. One JavaScript proxy serves every run; :meth:`close`
    releases it (once no run is queued: JavaScript must never call a destroyed proxy).
    ``queue`` replaces JavaScript's ``queueMicrotask``: tests outside a browser pass their
    own (a loop's ``call_soon``, say)."""

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
        if self._queue is None:  # the page's queueMicrotask, looked up once, and one proxy
            from js import queueMicrotask  # only in Pyodide
            from pyodide.ffi import create_proxy

            self._proxy = proxy = create_proxy(self._run)
            self._queue = lambda _run: queueMicrotask(proxy)
        self._queue(self._run)

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

"""The seed's event API (``listen`` / ``unlisten`` / ``listen_once`` / ``emit``) and the seed's
names for what the core reports. Imports only the core's event records, never the runtime.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from ..core.events import (
    ConfigChanged,
    CoreEvent,
    ElectionStarted,
    ElectionTimeout,
    LeaderChanged,
    RoleChanged,
)

logger = logging.getLogger("webraft")

Handler = Callable[..., Any]


class EventEmitter:
    """Named events with handlers; a handler that raises never breaks the emitter.

    A failing handler is logged and reported as an ``error`` event (a failing ``error``
    handler is only logged, so errors cannot loop). An ``async def`` handler is scheduled as a
    task on the running loop; its failure is reported the same way.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def listen(self, event: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(*args)`` on every ``event``; returns a function that unsubscribes."""
        self._handlers.setdefault(event, []).append(handler)
        return lambda: self.unlisten(event, handler)

    def unlisten(self, event: str, handler: Handler) -> None:
        """Remove ``handler`` (also one registered with :meth:`listen_once`); no-op if absent.

        Handlers match by equality, not identity: ``obj.method`` is a new bound method on
        every access, and ``unlisten(event, obj.method)`` must remove what
        ``listen(event, obj.method)`` added."""
        handlers = self._handlers.get(event, [])
        for i, h in enumerate(handlers):
            if h == handler or getattr(h, "__wrapped__", None) == handler:
                del handlers[i]
                return

    def listen_once(self, event: str, handler: Handler) -> Callable[[], None]:
        """Like :meth:`listen`, but the handler is removed before its first call."""

        def once(*args: Any) -> Any:
            self.unlisten(event, once)
            return handler(*args)

        once.__wrapped__ = handler  # type: ignore[attr-defined]
        return self.listen(event, once)

    def listeners(self, event: str) -> list[Handler]:
        return list(self._handlers.get(event, ()))

    def has_listeners(self, event: str) -> bool:
        """Whether ``event`` has a handler: :meth:`listeners` without copying the list, for
        checks made once per applied entry."""
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event`` with ``args``, in registration order."""
        handlers = self._handlers.get(event)
        if not handlers:
            return
        for handler in list(handlers):
            try:
                result = handler(*args)
                if result is not None and inspect.isawaitable(result):  # None: the usual
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(partial(self._task_done, event))
            except Exception as exc:
                self._handler_failed(event, exc)

    def _task_done(self, event: str, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._handler_failed(event, task.exception())  # type: ignore[arg-type]

    def _handler_failed(self, event: str, exc: BaseException) -> None:
        logger.error("handler for %r raised %r", event, exc, exc_info=exc)
        if event != "error":
            self.emit("error", exc)


def seed_events(event: CoreEvent) -> tuple[tuple[Any, ...], ...]:
    """The seed's ``(name, *args)`` events for one core event, in the order they are emitted.

    A role change is announced twice, as the seed did: under the role's own name (``leader``
    with no arguments) and as ``state changed`` with the role.
    """
    match event:
        case RoleChanged(role):
            return (role,), ("state changed", role)
        case ConfigChanged(voters, learners):
            return (("membership changed", list(voters), list(learners)),)
        case ElectionStarted():
            return (("start election",),)
        case ElectionTimeout():
            return (("heartbeat timeout",),)
        case LeaderChanged(leader, term):
            return (("leader changed", leader, term),)
    raise TypeError(f"no seed event for {event!r}")

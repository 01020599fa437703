"""A tab's node schedules on a :class:`~webraft.browser.scheduling.TabLoop`: browser tasks
that call Python synchronously, real timer cancellation, and the page's loop for everything
else. Here the browser's ``setTimeout``, ``clearTimeout`` and ``MessageChannel`` post are
played by the running asyncio loop, and every call to them is recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from webraft import RaftInterface
from webraft.browser.scheduling import IMMEDIATE, TabLoop


class Page:
    """The browser functions a TabLoop calls, on the running loop, with a record of calls."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.posts = 0
        self.timeouts: list[float] = []  # ms asked of setTimeout
        self.cleared = 0

    def set_timeout(self, callback: Callable[[int], None], ms: float, key: int) -> Any:
        self.timeouts.append(ms)
        return self.loop.call_later(ms / 1000, callback, key)

    def clear_timeout(self, timer: Any) -> None:
        self.cleared += 1
        timer.cancel()

    def post(self, callback: Callable[[], None]) -> None:
        self.posts += 1
        self.loop.call_soon(callback)

    def tab_loop(self, page_loop: Any = None) -> TabLoop:
        """A TabLoop on these browser functions, over ``page_loop`` (default: the running
        loop itself)."""
        return TabLoop(self.loop if page_loop is None else page_loop,
                       set_timeout=self.set_timeout, clear_timeout=self.clear_timeout,
                       post=self.post)


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_calls_due_now_run_in_order_in_one_later_task() -> None:
    page = Page()
    loop = page.tab_loop()
    ran: list[int] = []
    for k in range(5):
        loop.call_soon(ran.append, k)
    loop.call_later(IMMEDIATE, ran.append, 5)  # due now: no setTimeout
    assert ran == []  # never in the caller's task
    await turns()
    assert ran == [0, 1, 2, 3, 4, 5]
    assert page.posts == 1 and page.timeouts == []


async def test_a_call_queued_by_a_running_one_waits_for_the_next_task() -> None:
    page = Page()
    loop = page.tab_loop()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        loop.call_soon(ran.append, "queued by first")

    loop.call_soon(first)
    loop.call_soon(ran.append, "second")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ran[:2] == ["first", "second"]
    await turns()
    assert ran == ["first", "second", "queued by first"]
    assert page.posts == 2  # the requeued call took a task of its own


async def test_a_cancelled_call_does_not_run() -> None:
    page = Page()
    loop = page.tab_loop()
    ran: list[int] = []
    loop.call_soon(ran.append, 1).cancel()
    loop.call_soon(ran.append, 2)
    await turns()
    assert ran == [2]


async def test_a_timer_fires_after_its_delay_and_a_cancelled_one_is_cleared() -> None:
    page = Page()
    loop = page.tab_loop()
    fired: list[tuple[str, float]] = []
    start = loop.time()
    loop.call_later(0.03, lambda: fired.append(("kept", loop.time() - start)))
    dropped = loop.call_later(0.01, lambda: fired.append(("dropped", 0.0)))
    assert page.timeouts == [30.0, 10.0]
    dropped.cancel()
    dropped.cancel()  # twice: the browser is asked once
    assert page.cleared == 1
    await asyncio.sleep(0.06)
    assert [name for name, _ in fired] == ["kept"]
    assert fired[0][1] >= 0.03


async def test_call_at_is_call_later_from_now() -> None:
    page = Page()
    loop = page.tab_loop()
    handle = loop.call_at(loop.time() + 0.05, print)
    assert isinstance(handle, asyncio.TimerHandle)
    assert page.timeouts and 40 < page.timeouts[0] <= 50
    handle.cancel()


async def test_a_failing_callback_reaches_the_page_loops_handler_and_others_still_run(
) -> None:
    page = Page()
    seen: list[dict[str, Any]] = []
    page.loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        loop = page.tab_loop()
        ran: list[int] = []
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(ran.append, 1)
        loop.call_later(0.005, lambda: 1 / 0)
        await asyncio.sleep(0.03)
    finally:
        page.loop.set_exception_handler(None)
    assert ran == [1]
    assert [type(c["exception"]) for c in seen] == [ZeroDivisionError, ZeroDivisionError]


async def test_time_futures_and_tasks_are_the_page_loops() -> None:
    page = Page()
    loop = page.tab_loop()
    assert abs(loop.time() - page.loop.time()) < 0.01
    fut = loop.create_future()
    assert fut.get_loop() is page.loop  # awaitable from any task of the page
    task = loop.create_task(asyncio.sleep(0, "done"))
    assert task.get_loop() is page.loop
    assert await task == "done"
    assert loop.is_running() and not loop.is_closed()


async def test_a_negative_delay_is_refused() -> None:
    loop = Page().tab_loop()
    with pytest.raises(ValueError):
        loop.call_later(-1, print)


async def test_closing_hands_what_is_pending_to_the_page_loop() -> None:
    page = Page()
    loop = page.tab_loop()
    ran: list[str] = []
    loop.call_soon(ran.append, "due")
    loop.call_later(0.02, ran.append, "timer")
    loop.call_later(0.02, ran.append, "cancelled").cancel()
    cancelled_later = loop.call_later(0.02, ran.append, "cancelled after close")
    loop.close()
    loop.close()  # idempotent
    cancelled_later.cancel()
    assert page.cleared == 3  # every browser timer is gone
    posts = page.posts
    loop.call_soon(ran.append, "after close")
    loop.call_later(0.01, ran.append, "timer after close")
    assert page.posts == posts and len(page.timeouts) == 3  # the page's loop has them
    await asyncio.sleep(0.05)
    assert sorted(ran) == ["after close", "due", "timer", "timer after close"]


class TabNode(RaftInterface):
    """A node whose timers and calls all go through a TabLoop, as a tab's do."""

    page: Page

    def _event_loop(self, running: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        return self.page.tab_loop()


async def test_a_node_on_a_tab_loop_elects_itself_and_commits() -> None:
    page = Page()
    node = TabNode("solo", members=["solo"])
    node.page = page
    node.start()
    try:
        assert isinstance(node.loop, TabLoop)
        index = await asyncio.wait_for(node.propose("hello"), 5)
        assert index >= 1 and node.is_leader
        assert page.timeouts  # its election and heartbeat timers were browser timers
        assert page.posts  # and its rounds browser tasks
    finally:
        await node.close()


async def test_a_chain_of_requeued_calls_costs_one_task_each() -> None:
    page = Page()
    loop = page.tab_loop()
    ran: list[int] = []

    def step(k: int) -> None:
        ran.append(k)
        if k < 9:
            loop.call_soon(step, k + 1)  # the last callback of its task queues the next

    loop.call_soon(step, 0)
    await turns(30)
    assert ran == list(range(10))
    assert page.posts == 10


async def test_a_never_due_timer_is_not_set_and_a_huge_delay_is_clamped() -> None:
    page = Page()
    loop = page.tab_loop()
    never = loop.call_later(float("inf"), print)
    assert page.timeouts == [] and not never.cancelled()
    never.cancel()
    loop.call_later(10 * 365 * 86400, print).cancel()  # ten years: past setTimeout's range
    assert page.timeouts == [2**31 - 1]


class StrictLoop:
    """The parts of a page's loop a TabLoop uses, refusing a time in the past as Pyodide's
    WebLoop does, and counting how often a callback made it the running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.entered = 0

    def _install_running_loop(self) -> None:
        self.entered += 1

    def time(self) -> float:
        return self.loop.time()

    def call_soon(self, callback: Callable[..., object], *args: Any,
                  context: Any = None) -> asyncio.Handle:
        return self.loop.call_soon(callback, *args, context=context)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any,
                   context: Any = None) -> asyncio.TimerHandle:
        if delay < 0:
            raise ValueError("Can't schedule in the past")
        return self.loop.call_later(delay, callback, *args, context=context)

    def get_debug(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.loop.call_exception_handler(context)


async def test_closing_with_an_overdue_timer_hands_it_over_without_a_past_time() -> None:
    page = Page()
    strict = StrictLoop(page.loop)
    loop = page.tab_loop(strict)
    ran: list[str] = []
    loop.call_later(0.005, ran.append, "overdue")
    await asyncio.sleep(0)
    time.sleep(0.02)  # the timer is due, and its browser task has not run yet
    loop.close()  # the page loop refuses the past: the overdue timer goes at delay 0
    await asyncio.sleep(0.01)
    assert ran == ["overdue"]


async def test_each_callback_runs_with_the_page_loop_as_the_running_one() -> None:
    page = Page()
    strict = StrictLoop(page.loop)
    loop = page.tab_loop(strict)
    ran: list[int] = []
    loop.call_soon(ran.append, 1)
    loop.call_soon(ran.append, 2)
    loop.call_later(0.005, ran.append, 3)
    await asyncio.sleep(0.03)
    assert ran == [1, 2, 3]
    assert strict.entered == 2  # once per task: the drain and the timer


async def test_a_callback_may_close_its_loop() -> None:
    page = Page()
    loop = page.tab_loop()
    ran: list[str] = []

    def closing() -> None:
        ran.append("closing")
        loop.close()

    loop.call_soon(closing)
    loop.call_soon(ran.append, "after, on the page's loop")
    loop.call_later(0.005, lambda: (ran.append("timer closing"), loop.close()))
    await asyncio.sleep(0.03)
    # What was pending moved to the page's loop, the timer too (closing again is nothing).
    assert ran == ["closing", "after, on the page's loop", "timer closing"]
    loop2 = page.tab_loop()
    loop2.call_later(0.005, lambda: (ran.append("timer closing"), loop2.close()))
    loop2.call_soon(ran.append, "due")
    await asyncio.sleep(0.03)
    assert ran[3:] == ["due", "timer closing"]

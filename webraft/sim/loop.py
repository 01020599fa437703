"""A deterministic asyncio event loop on a virtual clock, for the simulator.

It owns the simulated time: ``time()`` is a counter that only moves when the loop has nothing
ready to run, straight to the next timer, so a run of virtual minutes takes real milliseconds
and depends on nothing outside the process (no I/O, no threads, no wall clock). Callbacks
run in the order asyncio's own scheduler gives them (ready queue first, then timers by time,
ties in insertion order), which is a function of the program alone. It must not import
anything from webraft: the runtime runs on it unchanged, as on any other asyncio loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Virtual seconds every loop iteration takes, as real ones take some CPU time. Without it a
#: timer armed for ``t0 + d`` and read back as ``now - t0`` may fall an ulp short of ``d``
#: and be re-armed for the same instant forever, while a real clock would have moved on.
TICK = 1e-6


class Stalled(RuntimeError):
    """The loop was asked to wait, but nothing is scheduled: it would wait forever."""


class _VirtualSelector:
    """Stands in for the I/O selector: waiting ``timeout`` seconds is moving the clock."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise Stalled("nothing is scheduled and nothing is ready")
        self._loop.now += max(timeout, TICK)
        return []

    def close(self) -> None:
        """Nothing to release."""


class VirtualLoop(asyncio.BaseEventLoop):
    """An event loop whose clock starts at 0 and advances only between callbacks.

    ``steps`` counts loop iterations (one batch of ready callbacks each), which bounds a run
    and gives the simulator its figure of work done.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.steps = 0
        self._selector = _VirtualSelector(self)
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.now

    def _process_events(self, event_list: list[Any]) -> None:
        """No file descriptors: nothing to process."""

    def _write_to_self(self) -> None:
        """One thread only: nobody to wake up."""

    def _run_once(self) -> None:
        self.steps += 1
        super()._run_once()  # type: ignore[misc]

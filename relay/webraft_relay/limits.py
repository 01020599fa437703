"""Per-connection rate limiting.

A token bucket rather than a fixed window: Raft traffic is bursty (a new leader sends to every
follower at once, a lagging follower gets a run of appends) and the bucket lets such bursts
through while still capping what one misbehaving tab can push into a room per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate`` tokens per second.

    ``rate == 0`` disables limiting (every :meth:`take` succeeds). The clock is injectable so
    unit tests step time by hand instead of sleeping.
    """

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self, n: int = 1) -> bool:
        """Spend ``n`` tokens if available; all or nothing, so a batch is never half-routed."""
        if self.rate <= 0:
            return True
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens >= n:
            self._tokens = tokens - n
            return True
        self._tokens = tokens
        return False

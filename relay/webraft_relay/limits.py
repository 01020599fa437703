"""Per-connection rate limiting, in messages and in bytes. Imports nothing from the relay.

A token bucket rather than a fixed window: Raft traffic is bursty (a new leader sends to every
follower at once, a lagging follower gets a run of appends) and the bucket lets such bursts
through while still capping what one misbehaving tab can push into a room per second.
Messages over the rate are dropped (:meth:`TokenBucket.take`); bytes over the rate are not
dropped but *paid for by waiting* (:meth:`TokenBucket.charge`): the relay stops reading the
connection, so its CPU goes to other rooms and TCP back-pressure slows the sender down.
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

    def charge(self, n: int) -> float:
        """Spend ``n`` tokens even if that overdraws the bucket; return the seconds to wait
        until it is out of debt (0.0 when it is not in debt).

        For pacing rather than dropping: the caller sleeps that long before it reads more.
        """
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - n
        self._stamp = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

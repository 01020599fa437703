"""Per-connection rate limiting, in messages and in bytes, and the process's descriptor
budget. Imports nothing from the relay.

A token bucket rather than a fixed window: Raft traffic is bursty (a new leader sends to every
follower at once, a lagging follower gets a run of appends) and the bucket lets such bursts
through while still capping what one misbehaving tab can push into a room per second.
Messages over the rate are dropped (:meth:`TokenBucket.take`); bytes over the rate are not
dropped but *paid for by waiting* (:meth:`TokenBucket.charge`): the relay stops reading the
connection, so its CPU goes to other rooms and TCP back-pressure slows the sender down.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable

__all__ = ["FD_RESERVE", "AcceptErrorFilter", "TokenBucket", "connection_cap", "raise_fd_limit"]

#: Descriptors kept out of the connection cap: listeners, stdio, the event loop's own, and
#: HTTP requests and handshakes (which are not counted as connections), plus a tenth of the
#: limit for downloads (a socket and a file each).
FD_RESERVE = 32


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (unprivileged, always allowed) and
    return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # keep what we have; the cap below follows it
    return soft


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """The most WebSocket connections that ``fd_limit`` descriptors carry with headroom.

    Past the descriptor limit ``accept`` fails and clients hang instead of hearing 1013, so
    the cap must trip first. At least 1, so a tiny limit still serves somebody.
    """
    usable = fd_limit - FD_RESERVE - fd_limit // 10
    return max(1, min(max_connections, usable))


class AcceptErrorFilter(logging.Filter):
    """Lets through one "out of system resource" accept error per ``interval``, without its
    traceback: at the descriptor limit asyncio logs one per attempt, megabytes a second."""

    MARKER = "socket.accept() out of system resource"

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._last = -interval
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.MARKER not in str(record.msg):
            return True
        now = self._clock()
        if now - self._last < self.interval:
            self.suppressed += 1
            return False
        self._last = now
        record.msg = f"{self.MARKER} ({self.suppressed} more since the last such line)"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        self.suppressed = 0
        return True


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

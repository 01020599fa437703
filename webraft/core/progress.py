"""What a leader knows about each follower, and how much it may send it (etcd's tracker idea).

Owns :class:`Progress` and its inflight window. Imports nothing of webraft, not even the rest of
the core.

A follower is in one of two modes:

* **probe**: the leader does not know where the follower's log matches its own. It sends one
  AppendEntries and waits for the answer (or a heartbeat reply) before sending another, walking
  ``next`` back with the follower's hints until the logs match.
* **replicate**: the logs match up to ``match``; the leader streams entries optimistically,
  advancing ``next`` as it sends, up to a window of in-flight messages and bytes so that a
  slow follower cannot make the leader buffer without bound.
* **snapshot**: the entries the follower needs were compacted away. The leader sends its
  snapshot in chunks, one at a time (``paused`` while one is unanswered), resuming from
  ``snap_offset`` after a loss, until the follower reports it matches ``snap_index``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


class Progress:
    """Replication state of one follower, as seen by the leader."""

    __slots__ = ("awaits", "idle_beats", "inflight", "inflight_bytes", "match", "next", "paused",
                 "read_ctx", "recent_active", "sent_at", "sent_commit", "snap", "snap_offset",
                 "state")

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.paused = False  # probe: an append is out and unanswered
        self.inflight: deque[tuple[int, int]] = deque()  # (last index, bytes) per message
        self.inflight_bytes = 0
        self.recent_active = False  # heard from since the last quorum check
        self.idle_beats = 0  # heartbeat intervals since the last answer or new flight
        self.sent_commit = -1  # the commit index last sent in an append
        self.sent_at = float("-inf")  # when the last append with entries left for it
        # The newest index the follower waits to see committed: its forwarded proposals and
        # the reads answered to it. Until commit reaches it, news of commits can wait for the
        # next append or heartbeat.
        self.awaits = 0
        self.read_ctx = 0  # the newest heartbeat round this follower answered
        # Snapshot mode: the snapshot being sent (``meta``, ``data``; kept, so that a return to
        # snapshot mode resumes it) and how many characters of it the follower has.
        self.snap: Any = None
        self.snap_offset = 0

    def become_probe(self) -> None:
        self.state = PROBE
        self.next = self.match + 1
        self.paused = False
        self._clear_inflight()

    def become_replicate(self) -> None:
        self.state = REPLICATE
        self.next = self.match + 1
        self.paused = False
        self._clear_inflight()

    @property
    def snap_index(self) -> int:
        """The index of the snapshot being sent (0: none yet)."""
        return 0 if self.snap is None else self.snap.meta.index

    def become_snapshot(self, snap: Any) -> None:
        """Send ``snap``; resume where we were if it is the one being sent."""
        self.state = SNAPSHOT
        self.paused = False
        self._clear_inflight()
        if snap.meta.index != self.snap_index:
            self.snap, self.snap_offset = snap, 0

    def _clear_inflight(self) -> None:
        self.inflight.clear()
        self.inflight_bytes = 0

    def can_send(self, max_inflight: int, max_bytes: int) -> bool:
        if self.state != REPLICATE:
            return not self.paused
        return len(self.inflight) < max_inflight and self.inflight_bytes < max_bytes

    def sent(self, last_index: int, nbytes: int) -> None:
        """Record an append carrying entries up to ``last_index``."""
        if self.state == REPLICATE:
            if not self.inflight:
                self.idle_beats = 0  # a new flight: count silence from now
            self.next = last_index + 1
            self.inflight.append((last_index, nbytes))
            self.inflight_bytes += nbytes
        else:
            self.paused = True

    def update(self, index: int) -> bool:
        """The follower matches up to ``index``; return True if that is news.

        Only news lets a paused probe send again: an answer that matches no more than before
        (a follower acknowledging what it has saved while the rest is still being saved)
        would otherwise make the leader resend the same entries at once, as fast as the
        network answers; the next heartbeat's answer resends instead."""
        self.idle_beats = 0
        if index <= self.match:
            return False
        self.paused = False
        self.match = index
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0][0] <= index:
            self.inflight_bytes -= self.inflight.popleft()[1]
        return True

    def rejected(self, rejected_prev: int, resume_at: int) -> bool:
        """The follower rejected an append at ``rejected_prev``; back off to ``resume_at``.

        Returns False for a stale rejection (one answering an append sent before the current
        probe or already superseded by a later success), which must be ignored: acting on it
        could move ``next`` backwards for nothing or loop forever on reordered answers.
        """
        self.idle_beats = 0
        if self.state == REPLICATE:
            if rejected_prev <= self.match:
                return False
        elif self.state == SNAPSHOT or rejected_prev != self.next - 1:
            return False
        self.become_probe()
        self.next = max(self.match + 1, min(resume_at, rejected_prev))
        return True

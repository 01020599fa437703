"""A node's configuration as data: timings, limits, policies and its source of randomness.

Owns :class:`NodeConfig` and its validation. Imports nothing from webraft but the core's
defaults: every other runtime module reads its settings from here, once, at construction.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from ..core.raft import CoreConfig

#: Default of :attr:`NodeConfig.max_command_bytes`: with its envelope, one command always
#: fits in a relay frame (1 MiB) and in one AppendEntries.
DEFAULT_MAX_COMMAND_BYTES = 256 * 1024
#: Proposals of one loop turn travel in batches of at most this many bytes of commands.
BATCH_BYTES = 256 * 1024
#: Least :attr:`NodeConfig.cut_off_after`, in seconds: a stall of the event loop (a loaded
#: machine, a long garbage collection) fires every timer at once, and must not make an
#: election with fast timeouts look like a cut-off.
MIN_CUT_OFF = 1.0

_CORE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CoreConfig)
                  if f.default is not dataclasses.MISSING}


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Everything that tunes a :class:`~webraft.RaftInterface`, validated once.

    Times are in seconds. A follower that hears nothing from a leader for
    ``heartbeat_timeout`` (plus a random fraction of ``heartbeat_frequency``, so that
    followers do not all start at once) campaigns; a candidate that has not won after a
    random ``election_timeout`` (drawn from the ``(low, high)`` range each time) starts
    another round; a leader sends heartbeats every ``heartbeat_frequency`` (but none to a
    follower that has its entries of a moment ago and answers: it hears from the leader at
    least every 1.5 ``heartbeat_frequency``, and less than ``heartbeat_timeout``) and steps
    down if a majority has not answered within ``heartbeat_timeout`` (CheckQuorum).

    A node that knew a leader (itself included) and then has known none for
    :attr:`cut_off_after` is *cut off*: until it knows one again, it fails at once the
    proposals that no leader holds, and new ones and reads, rather than keep them waiting
    ``proposal_timeout`` for a leader that cannot reach it (see :mod:`webraft.errors`).

    ``rng`` is the node's only source of randomness (timeouts, request ids): a seeded one
    makes a node replay exactly, which is what the simulator relies on. It takes no part in
    equality.
    """

    election_timeout: tuple[float, float] = (0.15, 0.30)
    heartbeat_frequency: float = 0.05
    heartbeat_timeout: float = 0.20
    #: Longest a proposal waits without a leader that took it (appended it to its log; a
    #: proposal is sent on to every new leader), and longest a read waits for a leader.
    proposal_timeout: float = 5.0
    #: Longest a follower waits for the leader to answer a forwarded request before it sends
    #: the request again.
    message_timeout: float = 3.0
    #: Largest command accepted, in bytes of (ASCII-escaped) JSON; a transport with a frame
    #: limit lowers it so that no entry can be too large to replicate.
    max_command_bytes: int = DEFAULT_MAX_COMMAND_BYTES
    #: Take a snapshot after this many entries, or this many bytes of entries, were applied
    #: since the last one (needs a ``snapshot`` handler), and keep this many in the log so
    #: that followers slightly behind catch up with entries rather than the whole snapshot.
    snapshot_entries: int = 4096
    snapshot_bytes: int = 1 << 20
    snapshot_tail: int = 1024
    #: Let the leader answer reads from its lease, without a quorum round. Unsafe wherever
    #: clocks do not advance steadily (a paused tab); it also turns off the fast failover on
    #: the transport's ``leave`` of the leader.
    read_lease: bool = False
    #: Let the transport's presence drive membership (see ``docs/membership-and-snapshots.md``):
    #: the leader adds reachable peers as learners, promotes caught-up learners while there
    #: are fewer than ``max_voters`` voters (keeping their number odd when it can), and
    #: removes members unreachable for longer than ``member_grace``.
    auto_membership: bool = False
    member_grace: float = 20.0
    max_voters: int = 5
    #: Forward proposals made on a follower to the leader (the seed's behaviour); otherwise
    #: they fail with :class:`~webraft.errors.NotLeaderError`.
    forward_proposals: bool = True
    #: Replication limits of the core (see :class:`~webraft.core.raft.CoreConfig`).
    max_append_entries: int = _CORE_DEFAULTS["max_append_entries"]
    max_append_bytes: int = _CORE_DEFAULTS["max_append_bytes"]
    max_inflight: int = _CORE_DEFAULTS["max_inflight"]
    max_inflight_bytes: int = _CORE_DEFAULTS["max_inflight_bytes"]
    snapshot_chunk: int = _CORE_DEFAULTS["snapshot_chunk"]
    #: Lazy followers (0: off; in a tab
    #: :data:`~webraft.browser.transport.LAZY_INTERVAL`): a leader sends new entries at once
    #: only to the voters a commit needs, and batches the rest's, one append per this many
    #: seconds at most (see :class:`~webraft.core.raft.CoreConfig`). Capped at
    #: ``heartbeat_frequency``: a lazy follower hears from its leader at least as often as
    #: any follower (heartbeats skip only followers sent entries in the last half interval),
    #: and shortening the heartbeat of a tab's configuration (``browser_config().replace(...)``)
    #: keeps it valid.
    lazy_interval: float = _CORE_DEFAULTS["lazy_interval"]
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        low, high = self.election_timeout
        if not 0 < low <= high:
            raise ValueError(f"election_timeout must be a (low, high) range with "
                             f"0 < low <= high, got {self.election_timeout!r}")
        for name in ("heartbeat_frequency", "heartbeat_timeout", "proposal_timeout",
                     "message_timeout"):
            _positive(name, getattr(self, name))
        if self.heartbeat_frequency >= self.heartbeat_timeout:
            raise ValueError("heartbeat_frequency must be shorter than heartbeat_timeout, or "
                             "followers campaign between two heartbeats")
        for name in ("max_command_bytes", "snapshot_entries", "snapshot_bytes", "max_voters",
                     "max_append_entries", "max_append_bytes", "max_inflight",
                     "max_inflight_bytes", "snapshot_chunk"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if type(self.snapshot_tail) is not int or self.snapshot_tail < 0:
            raise ValueError(f"snapshot_tail must be a non-negative integer, "
                             f"got {self.snapshot_tail!r}")
        if (not isinstance(self.lazy_interval, int | float) or isinstance(self.lazy_interval, bool)
                or not self.lazy_interval >= 0):
            raise ValueError(f"lazy_interval must be a number of seconds, at least 0, "
                             f"got {self.lazy_interval!r}")
        if self.member_grace < 0:
            raise ValueError(f"member_grace must not be negative, got {self.member_grace!r}")
        if not isinstance(self.rng, random.Random):
            raise ValueError("rng must be a random.Random")

    @property
    def cut_off_after(self) -> float:
        """Seconds without a known leader after which a node that knew one is cut off: a
        follower's wait before it campaigns and two election rounds (a split vote, then one
        that succeeds), which is longer than an election among connected members takes;
        at least :data:`MIN_CUT_OFF`."""
        return max(2 * self.election_timeout[1] + self.heartbeat_timeout, MIN_CUT_OFF)

    def replace(self, **changes: Any) -> NodeConfig:
        """A copy with ``changes``, validated like a new one (the rng is shared)."""
        return dataclasses.replace(self, **changes)

    def core_config(self, address: str, follower_timeout: Any, election_timeout: Any,
                    auto_promote: bool) -> CoreConfig:
        """The core's configuration for node ``address``; the runtime supplies the two random
        timeouts (they depend on state the core does not know, such as a hidden tab)."""
        return CoreConfig(
            id=address,
            follower_timeout=follower_timeout,
            election_timeout=election_timeout,
            heartbeat_interval=self.heartbeat_frequency,
            quorum_timeout=self.heartbeat_timeout,
            auto_promote=auto_promote,
            lease_reads=self.read_lease,
            max_append_entries=self.max_append_entries,
            max_append_bytes=self.max_append_bytes,
            max_inflight=self.max_inflight,
            max_inflight_bytes=self.max_inflight_bytes,
            snapshot_chunk=self.snapshot_chunk,
            lazy_interval=min(self.lazy_interval, self.heartbeat_frequency),
        )


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

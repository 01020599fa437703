"""Automatic membership: the transport's presence drives the configuration.

Owns the policy of :attr:`~webraft.runtime.config.NodeConfig.auto_membership` and what it
remembers (when each member was last seen leaving, its timer). Imports the core's cluster
configuration; it must not import the driver, the proposals or the applier, which it reaches
through the node.

While this node leads it makes at most one change per round, and only once the previous one
committed: remove a member unreachable for longer than ``member_grace``, else add a reachable
peer that is not a member (as a learner), else promote caught-up learners while there are
fewer than ``max_voters`` voters, keeping their number odd when it can (an even number
tolerates no more failures than one less).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..core.state import ClusterConfig

if TYPE_CHECKING:
    from .interface import RaftInterface

logger = logging.getLogger("webraft")


class MembershipPolicy:
    """Reconciles the configuration with who is reachable, every two heartbeats."""

    def __init__(self, node: RaftInterface) -> None:
        self.node = node
        self._gone: dict[str, float] = {}  # member -> loop time it was last seen leaving
        self._timer: asyncio.TimerHandle | None = None

    def joined(self, address: str) -> None:
        self._gone.pop(address, None)

    def left(self, address: str, now: float) -> None:
        self._gone[address] = now

    def start(self) -> None:
        self._reconcile()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _reconcile(self) -> None:
        node = self.node
        config = node.config
        loop = node.loop
        self._timer = loop.call_later(2 * config.heartbeat_frequency, self._reconcile)
        status = node.core.status()
        if (status.role != "leader" or status.config_index > status.commit_index
                or status.transferee is not None):
            return
        cluster, now = status.config, loop.time()
        new: ClusterConfig | None = None
        for member in cluster.members:
            if (member != node.address and member not in node.nodes
                    and now - self._gone.setdefault(member, now) >= config.member_grace):
                new = ClusterConfig(tuple(v for v in cluster.voters if v != member),
                                    tuple(a for a in cluster.learners if a != member))
                break
        if new is None:
            joined = sorted(a for a in node.nodes if a not in cluster.members)
            if joined:
                new = ClusterConfig(cluster.voters, (*cluster.learners, joined[0]))
        if new is None:
            progress = status.progress
            caught_up = [a for a in cluster.learners if a in node.nodes and a in progress
                         and progress[a].match >= status.commit_index]
            voters = len(cluster.voters)
            if caught_up and voters < config.max_voters and (voters % 2 == 0
                                                             or len(caught_up) >= 2):
                promoted = caught_up[0]
                new = ClusterConfig((*cluster.voters, promoted),
                                    tuple(a for a in cluster.learners if a != promoted))
        if new is not None:
            node.proposals.change_config(new).add_done_callback(self._done)

    def _done(self, fut: asyncio.Future[int]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            logger.info("%s: automatic membership change failed: %r", self.node.address,
                        fut.exception())

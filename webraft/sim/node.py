"""The simulated node: the real :class:`~webraft.runtime.RaftInterface`, configured and wired.

It owns the one place where the simulator meets the runtime's construction API: the
:class:`~webraft.runtime.NodeConfig` (with the seeded rng) and the transport. Most nodes hold
a :class:`SimTransport` (the port); some are built the seed's way, a subclass whose
``create_instance`` returns :class:`SimLink` peers, so that both paths run under faults.
Everything else the node does is the runtime's own code. It must not import the cluster or
the checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..runtime import NodeConfig, NodeInstance, RaftInterface, TransportHandler
from ..storage import Storage
from .network import Endpoint, Network


class SimTransport:
    """One incarnation's port to the simulated network."""

    max_command_bytes = None  # no frame limit

    def __init__(self, address: str, network: Network) -> None:
        self.address = address
        self.network = network
        self.endpoint: Endpoint | None = None

    def start(self, handler: TransportHandler) -> None:
        self.endpoint = self.network.attach(self.address, handler)

    def send(self, to: str, payload: dict[str, Any]) -> None:
        if self.endpoint is not None:
            self.network.send(self.endpoint, to, payload)

    async def close(self) -> None:
        """Nothing to flush: the network owns what is in flight."""


class SimLink(NodeInstance):
    """The seed's way: the node's handle on one peer writes into the simulated network."""

    raft: LegacyRaft

    def write(self, payload: dict[str, Any]) -> None:
        self.raft.link.send(self.address, payload)


class LegacyRaft(RaftInterface):
    """A node built the seed's way (no transport, a ``create_instance`` override); the
    simulation attaches it to the network itself once it has started."""

    def __init__(self, address: str, *, members: Iterable[str] | None, storage: Storage,
                 config: NodeConfig, network: Network) -> None:
        super().__init__(address, members=members, storage=storage, config=config)
        self.link = SimTransport(address, network)

    def create_instance(self, address: str) -> NodeInstance:
        return SimLink(address, self)


def build_node(address: str, *, members: Iterable[str] | None, storage: Storage,
               config: NodeConfig, network: Network, legacy: bool) -> RaftInterface:
    """A node on ``network``, not started yet (its handlers come first)."""
    if legacy:
        return LegacyRaft(address, members=members, storage=storage, config=config,
                          network=network)
    return RaftInterface(address, members=members, storage=storage,
                         transport=SimTransport(address, network), config=config)


def start_node(raft: RaftInterface) -> None:
    """Start ``raft`` (from inside the loop); it meets every reachable peer."""
    raft.start()
    if isinstance(raft, LegacyRaft):
        raft.link.start(raft)

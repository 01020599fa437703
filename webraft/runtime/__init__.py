"""The asyncio runtime (CPython and Pyodide): the seed's API around the sans-I/O core."""

from .events import EventEmitter
from .interface import NodeInstance, RaftInterface, Snapshot

__all__ = ["EventEmitter", "NodeInstance", "RaftInterface", "Snapshot"]

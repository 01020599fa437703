"""A deterministic simulator that runs the real runtime under seeded faults.

Owns the simulator's public names. The simulator sits on top of the runtime; it must not import
a real transport, a storage backend other than memory, or anything with I/O.

``webraft-sim --seeds 500`` runs a batch and prints a summary; a failing seed prints the
command that replays it (``webraft-sim --seed N``, ``-v`` for a trace).
"""

from .checker import SafetyChecker, SafetyViolation
from .cluster import LivenessFailure, Scenario, Simulation, Stats, run_seed

__all__ = ["LivenessFailure", "SafetyChecker", "SafetyViolation", "Scenario", "Simulation",
           "Stats", "run_seed"]

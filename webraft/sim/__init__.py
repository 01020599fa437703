"""A deterministic simulator for the core: virtual clock, seeded faults, safety checks.

``python -m webraft.sim --seeds 500`` runs a batch and prints a summary; a failing seed prints
the one-line command that replays it.
"""

from .checker import SafetyChecker, SafetyViolation
from .cluster import LivenessFailure, Scenario, Simulation, Stats, run_seed

__all__ = ["LivenessFailure", "SafetyChecker", "SafetyViolation", "Scenario", "Simulation",
           "Stats", "run_seed"]

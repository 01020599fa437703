"""Fault injection against real ``webraft-node`` processes (issue 14, point 6).

Owns the harness: a fault-injecting proxy on every direct link (:mod:`.proxy`), the member
processes (:mod:`.procs`), concurrent HTTP clients recording a history (:mod:`.client`,
checked by the simulator's linearizability checker, :mod:`webraft.sim.linearizability`) and
the scenarios (:mod:`.scenarios`). Imports of webraft only that checker; the rest runs its
processes. See ``docs/fault-testing.md``.
"""

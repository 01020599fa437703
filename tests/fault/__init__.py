"""Fault injection against real ``webraft-node`` processes (issue 14, point 6).

Owns the harness: a fault-injecting proxy on every direct link (:mod:`.proxy`), the member
processes (:mod:`.procs`), concurrent HTTP clients recording a history (:mod:`.client`), a
linearizability checker with compare-and-set (:mod:`.model`) and the scenarios
(:mod:`.scenarios`). Imports webraft only by running its processes. See
``docs/fault-testing.md``.
"""

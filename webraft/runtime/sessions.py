"""The client side of exactly-once proposals: a :class:`ClientSession` numbers a client's
commands and retries each under its number through a node. The replicated table that applies
each number once is the core's (:mod:`webraft.core.sessions`); nothing here is replicated.
Imports nothing of webraft: the node it proposes through is handed to it.
"""

from __future__ import annotations

from typing import Any


class ClientSession:
    """A client's session, from :meth:`RaftInterface.open_session`; every node also proposes
    its plain commands through one of its own, *implicit* one (whose :attr:`id` is a string).

    :meth:`propose` gives each command the next sequence number and retries it (same number)
    until its outcome is known, so it is applied exactly once. To survive a restart of the
    client itself, keep :attr:`id` and :attr:`next_seq` and resume with
    :meth:`RaftInterface.resume_session`.
    """

    def __init__(self, raft: Any, client_id: int | str, next_seq: int = 1,
                 resumed: bool = False) -> None:
        self.raft = raft
        self.id = client_id
        self.next_seq = next_seq
        #: Resumed (not opened by this object): its numbers may have been used before.
        self.resumed = resumed
        #: The numbers still waiting for their outcome (the node's implicit session: and
        #: the proposal of each, which the node's proposals keep here).
        self.waiting: dict[int, Any] = {}
        self._low = next_seq  # no number below this is waiting

    @property
    def ack(self) -> int:
        """The lowest sequence number still waiting for its outcome (O(1) amortized: each
        number is passed over once)."""
        low, waiting, end = self._low, self.waiting, self.next_seq
        while low < end and low not in waiting:
            low += 1
        self._low = low
        return low

    async def propose(self, command: Any, timeout: float | None = None) -> int:
        """Apply ``command`` exactly once; return the index where it was applied.

        Raises :class:`~webraft.errors.SessionExpired` if the cluster forgot this session
        (``may_have_committed`` if an earlier attempt of this number may have applied),
        :class:`~webraft.errors.ProposalTimeout` if no outcome came within ``timeout``
        seconds (default: 6 times ``proposal_timeout``; the command may still be applied, so
        proposing it again as a new command could apply it twice: to retry it exactly once,
        propose it through ``resume_session(id, exc.seq)``), and the errors of
        :meth:`RaftInterface.propose` that retrying cannot fix (an invalid command, a closed
        node).
        """
        seq = self.next_seq
        self.next_seq += 1
        self.waiting[seq] = None
        try:
            return await self.raft.proposals.propose_in_session(self, seq, command, timeout)
        finally:
            self.waiting.pop(seq, None)

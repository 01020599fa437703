"""One exception hierarchy that users can catch.

Owns every exception webraft raises. Imports nothing of webraft: every layer imports it.

Every error webraft raises is a :class:`WebraftError`. Proposal failures say, by their class,
whether the command *may still commit* (so a blind retry could apply it twice) or *certainly
did not* (a retry is safe):

=========================  =================  ==============================================
exception                  may still commit?  when
=========================  =================  ==============================================
``NoLeaderError``          no                 never sent: no leader became known within the
                                              timeout, or this node is *cut off* (below)
``NotLeaderError``         no                 this node does not lead and forwarding is off
``LeadershipLost``         no                 a new leader overwrote the entry's log slot
                                              (a session's opening or a membership change)
``InvalidCommand``         no                 the command is not JSON or is too large
``MembershipChangeError``  no                 the change was refused (one at a time, ...)
``SessionExpired``         only if retried    the client session was forgotten (§6.3)
``ProposalTimeout``        **yes**            sent, but no leader took it (appended it) for
                                              ``proposal_timeout``, or no leader holds it
                                              and this node is *cut off* (below)
``RaftClosed``             **yes** if sent    the node was closed before the outcome
=========================  =================  ==============================================

A node is *cut off* once it knew a leader (itself included) and has then known none for
``NodeConfig.cut_off_after`` (two election rounds and a follower's wait, at least a second):
longer than an election among connected members takes, so a leader elsewhere cannot reach
it. Rather than wait out ``proposal_timeout``, it fails at once the proposals that no leader
holds, new proposals and reads, until it knows a leader again; the caller retries through
another member (a sent one under the same request id or session number, so that it applies
once). A node that never knew a leader (starting, or waiting to be added) is never cut off:
its proposals wait for the first leader, up to ``proposal_timeout``.

Every proposal goes through a client session (Raft thesis §6.3): a plain
:meth:`~webraft.RaftInterface.propose` through its node's implicit one, so the node sends it
again to each new leader until it is applied, once. An explicit session
(:meth:`~webraft.RaftInterface.open_session`) does the same for a client that outlives a
node: its proposals are applied exactly once however often they are retried.
"""

from __future__ import annotations


class WebraftError(Exception):
    """Base class of every webraft error."""


class MessageError(WebraftError, ValueError):
    """A message from the network failed validation; it was dropped without a state change."""


class StorageError(WebraftError):
    """Storage returned data that is inconsistent or could not persist an update."""


class SnapshotNotLoaded(WebraftError):
    """A ``refresh`` handler asked to load a snapshot reported another state: the entries
    between the two are compacted away, so the node cannot go on from it. The handler is
    asked again; it must load the snapshot and call ``cb(snapshot.term, snapshot.index)``
    (or ``cb()``)."""


class ProposalError(WebraftError):
    """A proposal did not produce a known outcome (see the table in this module)."""

    #: True when the command may have been committed despite this error.
    may_have_committed: bool = False


class NoLeaderError(ProposalError):
    """The command was never sent: no leader was known for the whole proposal timeout, or
    this node is cut off from the leader (see the module's docstring). A read raises it too
    when no leader confirmed a read index."""


class NotLeaderError(ProposalError):
    """This node is not the leader and proposal forwarding is disabled.

    ``leader`` is the address of the leader this node knows of, if any.
    """

    def __init__(self, message: str = "not the leader", leader: str | None = None) -> None:
        super().__init__(message)
        self.leader = leader


class LeadershipLost(ProposalError):
    """The entry was appended by a leader that lost its term before the entry committed.

    Raised only once the log slot holds another entry, so the command certainly did not commit.
    """


class InvalidCommand(ProposalError, ValueError):
    """The command cannot be proposed: not JSON-serializable, or larger than allowed."""


class MembershipChangeError(ProposalError):
    """A membership change was refused before it reached the log (another change is still in
    progress, or it would add or remove more than one voter); retrying later is safe."""


class ProposalTimeout(ProposalError):
    """No leader took the proposal (appended it) within ``proposal_timeout``, counted from
    when none held it, or none holds it and this node is cut off from the leader (see the
    module's docstring): the command may still commit later. Leader changes do not cause it:
    the proposal is sent on to each new leader.

    From a client session, ``seq`` is the command's number: resuming the session at it
    retries the command exactly once.
    """

    def __init__(self, message: str, seq: int | None = None,
                 may_have_committed: bool = True) -> None:
        super().__init__(message)
        self.seq = seq
        self.may_have_committed = may_have_committed


class SessionExpired(ProposalError):
    """The client session is unknown to the cluster (it expired: too many newer sessions);
    open a new session.

    This attempt was not applied, but an earlier attempt of the same number may have been
    (its answer lost, then the session expired before the retry): ``may_have_committed`` is
    true unless this was the number's first attempt in a session opened by this client.
    """

    def __init__(self, message: str, may_have_committed: bool = False) -> None:
        super().__init__(message)
        self.may_have_committed = may_have_committed


class RaftClosed(ProposalError):
    """The node was closed while the proposal was pending."""

    def __init__(self, message: str = "node closed", may_have_committed: bool = True) -> None:
        super().__init__(message)
        self.may_have_committed = may_have_committed

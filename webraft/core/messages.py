"""Raft's messages as small immutable records, and the one codec to and from JSON-able dicts.

Owns every message type and :func:`encode` / :func:`decode`. Imports only :mod:`webraft.errors`;
never the runtime, a storage or a transport.

Why a codec of our own: every byte a node receives comes from the network (a relay, another
tab, a process we do not control), so :func:`decode` is the single gate where untrusted input
becomes typed data. It checks types, ranges and sizes and raises :class:`MessageError`; the
core never sees a malformed message. The sender's address is *not* part of a message: the
transport knows who sent it (the relay stamps it), so a payload cannot claim another identity.

Wire form: a dict with ``"type"`` and the fields below. Entries travel as ``[term, kind, data]``
lists (indexes are implicit: consecutive after ``prev_index``), which keeps large batches small.
A session entry that continues the one before it in the same message (the same client and
``ack``, the next ``seq``: a run of one node's plain proposals) travels as ``[term, command]``
alone, so that a batch does not repeat the client's id and numbers in every entry; the
receiver takes them from the entry before. Only these codecs (and the storages') pack and
unpack a session entry's ``[client, seq, ack, command]``: an :class:`Entry` holds them as
fields. Integers are limited to JavaScript's safe range so browsers round-trip them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import MessageError

#: Largest integer a JSON number carries exactly in a browser (2**53 - 1).
MAX_INT = 9007199254740991
#: Largest term accepted from a peer. Half the integer range: a single message carrying a term
#: near 2**53 would otherwise leave no room for the next election, stalling the cluster.
MAX_TERM = 1 << 52
#: Most entries accepted in one append or proposal batch.
MAX_BATCH = 65536
#: Longest node address accepted.
MAX_ADDRESS = 256
#: Longest id of an implicit session: a node's address, "/" and a nonce.
MAX_CLIENT = MAX_ADDRESS + 32
#: Largest command, in approximate bytes of JSON (proposals and forwarded commands alike).
MAX_COMMAND_BYTES = 1 << 20
#: Longest snapshot chunk accepted, in characters.
MAX_CHUNK = 1 << 20
#: Deepest nesting accepted in a command.
MAX_DEPTH = 64

# Entry kinds.
COMMAND = 0  #: an application command (the ``apply`` event sees these, and SESSION ones)
NOOP = 1  #: appended by every new leader to commit entries of earlier terms (Raft §5.4.2)
CONFIG = 2  #: a cluster configuration: ``{"voters": [...], "learners": [...]}``
#: a command of a client session (Raft thesis §6.3), stored and sent as the data
#: ``[client, seq, ack, command]``, where client 0 opens a session whose id is the entry's
#: index (see :mod:`webraft.core.sessions`)
SESSION = 3
#: The largest entry kind.
MAX_KIND = SESSION


class Entry:
    """One log entry. Immutable by convention: the same object lives in the log.

    ``command`` is the application's JSON value (``None`` for no-op entries); ``term`` and
    ``index`` place it in the log; ``kind`` is :data:`COMMAND`, :data:`NOOP`, :data:`CONFIG`
    or :data:`SESSION`. A session entry also has ``client``, ``seq`` and ``ack`` (None, 0
    and 0 for the others): held as fields rather than a ``[client, seq, ack, command]`` list,
    so that the log keeps no list per entry and the ``apply`` event gets this very entry,
    whose ``command`` is the application's. Only the codecs see that list (:attr:`data`).
    """

    __slots__ = ("_size", "_wire", "ack", "client", "command", "index", "kind", "seq", "term")

    def __init__(self, term: int, index: int, kind: int = COMMAND, command: Any = None,
                 size: int = 0, client: int | str | None = None, seq: int = 0,
                 ack: int = 0) -> None:
        self.term = term
        self.index = index
        self.kind = kind
        self.command = command
        self._size = size
        self.client = client
        self.seq = seq
        self.ack = ack
        self._wire: list[Any] | tuple[int, Any] | None = None

    @property
    def data(self) -> Any:
        """The entry's data as stored and sent: ``[client, seq, ack, command]`` for a session
        entry, the command for the others (built on each call: only codecs ask)."""
        if self.kind == SESSION:
            return [self.client, self.seq, self.ack, self.command]
        return self.command

    @property
    def size(self) -> int:
        """Approximate encoded size in bytes, used to bound message and in-flight sizes."""
        if not self._size:
            size = 16 + _json_size(self.command, 0)
            if self.kind == SESSION:  # what the rest of [client, seq, ack, command] adds
                client = self.client
                size += len(client) + 24 if isinstance(client, str) else 30
            self._size = size
        return self._size

    @property
    def wire(self) -> list[Any] | tuple[int, Any]:
        """This entry in an append that also carries the entry before it: ``[term, kind,
        data]``, or ``(term, command)`` when it continues that entry's session (see
        :func:`session_entries`). Built once: a leader sends an entry to every follower."""
        wire = self._wire
        if wire is None:
            wire = self._wire = [self.term, self.kind, self.data]
        return wire

    def __repr__(self) -> str:
        session = (f", client={self.client!r}, seq={self.seq}, ack={self.ack}"
                   if self.kind == SESSION else "")
        return (f"Entry(term={self.term}, index={self.index}, kind={self.kind}, "
                f"{self.command!r}{session})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.term, self.index, self.kind, self.command, self.client, self.seq,
                self.ack) == (other.term, other.index, other.kind, other.command, other.client,
                              other.seq, other.ack)

    __hash__ = None  # type: ignore[assignment]


def entry_of(term: int, index: int, kind: int, data: Any) -> Entry:
    """The entry whose stored or sent form is ``[term, kind, data]``, ``data`` already checked
    (see :func:`check_entry_data`): a session entry's list becomes its fields."""
    if kind == SESSION:
        client, seq, ack, command = data
        return Entry(term, index, SESSION, command, 0, client, seq, ack)
    return Entry(term, index, kind, data)


#: Commands of one session as a proposer hands them to the core: ``(client, seq, ack,
#: commands)``, the i-th command numbered ``seq + i`` (all with that ``ack``). A node's plain
#: proposals come in such runs, so the leader builds their entries without a
#: ``[client, seq, ack, command]`` list each.
SessionRun = tuple[int | str, int, int, list[Any]]


def session_runs(items: Sequence[list[Any]]) -> list[SessionRun]:
    """``[client, seq, ack, command]`` items (checked already), each a run of its own."""
    return [(client, seq, ack, [command]) for client, seq, ack, command in items]


def session_items(runs: Sequence[SessionRun]) -> list[list[Any]]:
    """The ``[client, seq, ack, command]`` item of every command of ``runs``, in order (what a
    forwarded proposal carries)."""
    return [[client, seq + i, ack, command] for client, seq, ack, commands in runs
            for i, command in enumerate(commands)]


def session_entries(term: int, first: int, runs: Sequence[SessionRun],
                    before: Entry | None) -> list[Entry]:
    """Session entries ``first``, ``first + 1``, ... of ``term`` holding the commands of
    ``runs``, after the entry ``before`` (None: none in the log).

    An entry that continues the session entry before it (same client and ``ack``, the next
    ``seq``) gets the short wire form ``[term, command]``, decided here once rather than for
    every follower and message it is sent in: every entry of a run after its first, and the
    first when it continues the entry before. A tuple, which JSON writes as a list: unlike a
    list, the garbage collector stops tracking it, and a leader keeps one per entry."""
    if before is not None and before.kind == SESSION:
        p_client, p_seq, p_ack = before.client, before.seq, before.ack
    else:
        p_client, p_seq, p_ack = None, -2, -1  # None: no client matches
    entries: list[Entry] = []
    append = entries.append
    index = first
    for client, seq, ack, commands in runs:
        short = seq == p_seq + 1 and ack == p_ack and client == p_client
        for command in commands:
            entry = Entry(term, index, SESSION, command, 0, client, seq, ack)
            if short:
                entry._wire = (term, command)
            short = True
            append(entry)
            index += 1
            seq += 1
        p_client, p_seq, p_ack = client, seq - 1, ack
    return entries


@dataclass(slots=True)
class Message:
    """Base of all messages; ``term`` is the sender's current term (0 where unused).

    Immutable by convention, like :class:`Entry`: not ``frozen``, whose ``__init__`` sets
    each field through ``object.__setattr__`` (three times slower to build, and every
    message is built twice, once by its sender and once by the decoder) and whose class
    takes twice as long to create, which a tab pays at start-up for each of these."""

    TYPE: ClassVar[str] = ""
    term: int


@dataclass(slots=True)
class VoteRequest(Message):
    """RequestVote (Raft §5.2), or a PreVote probe (thesis §9.6) when ``pre`` is true.

    A pre-vote carries the term the candidate *would* use, without the candidate adopting it.
    ``transfer`` marks a campaign started by a leadership transfer: it may bypass leader leases.
    """

    last_index: int
    last_term: int
    pre: bool = False
    transfer: bool = False


@dataclass(slots=True)
class VoteResponse(Message):
    """Answer to a :class:`VoteRequest`; ``pre`` mirrors the request's."""

    granted: bool
    pre: bool = False


@dataclass(slots=True)
class AppendRequest(Message):
    """AppendEntries (Raft §5.3): entries following ``prev_index``/``prev_term``."""

    prev_index: int
    prev_term: int
    commit: int
    entries: tuple[Entry, ...] = ()


@dataclass(slots=True)
class AppendResponse(Message):
    """Answer to an :class:`AppendRequest`.

    On success ``index`` is the last index the follower now matches. On rejection ``index`` is
    the rejected ``prev_index`` (so stale rejections can be recognized) and ``hint_index`` /
    ``hint_term`` let the leader skip a whole conflicting term at once (Raft §5.3, the
    optimization the paper sketches).
    """

    index: int
    success: bool
    hint_index: int = 0
    hint_term: int = 0


@dataclass(slots=True)
class Heartbeat(Message):
    """Leader liveness and commit propagation; ``commit`` never exceeds the follower's match.

    ``ctx`` is an opaque round number echoed back, used to confirm leadership for reads.
    """

    commit: int
    ctx: int = 0


@dataclass(slots=True)
class CommitNotice(Message):
    """The leader's commit index, sent as soon as it advances; needs no answer.

    Like a heartbeat's, ``commit`` never exceeds the follower's match. It saves the two
    messages per commit that an empty AppendEntries and its answer would cost.
    """

    commit: int


@dataclass(slots=True)
class HeartbeatResponse(Message):
    """Answer to a :class:`Heartbeat`, echoing its ``ctx``."""

    ctx: int = 0


@dataclass(slots=True)
class TimeoutNow(Message):
    """The leader hands over: the receiver campaigns at once (thesis §3.10)."""


@dataclass(slots=True)
class ProposeRequest(Message):
    """A follower forwarding commands to the leader (the seed's proposal forwarding).

    ``id`` is chosen by the follower; the leader answers with a :class:`ProposeResponse`.
    ``kind`` is :data:`COMMAND` or :data:`SESSION` (no one else may make the other kinds).
    """

    id: int
    commands: tuple[Any, ...]
    kind: int = COMMAND


@dataclass(slots=True)
class ProposeResponse(Message):
    """The leader's answer: the commands sit at ``index``, ``index + 1``, ... in ``term``.

    When the receiver could not append them, ``index`` is 0 and ``leader`` names the leader it
    knows of (or is empty).
    """

    id: int
    index: int
    leader: str = ""


@dataclass(slots=True)
class ReadIndexRequest(Message):
    """A follower asking the leader for a read index (Raft thesis §6.4)."""

    id: int


@dataclass(slots=True)
class ReadIndexResponse(Message):
    """The leader's read index for request ``id``, confirmed by a quorum; 0 if it could not."""

    id: int
    index: int


@dataclass(slots=True)
class SnapshotChunk(Message):
    """InstallSnapshot (Raft §7), one chunk at a time.

    ``data`` is ``text[offset:offset + len(data)]`` of the JSON text of the leader's snapshot at
    ``index`` (whose entry has term ``snap_term`` and configuration ``config``). ``size`` and
    ``crc`` (CRC-32 of the whole text as UTF-8) name one particular text, so a follower can tell
    the chunks of one transfer from another's, resume an interrupted one, and verify the
    assembled text before installing it.
    """

    index: int
    snap_term: int
    config: Any
    offset: int
    size: int
    crc: int
    data: str


@dataclass(slots=True)
class SnapshotResponse(Message):
    """Answer to a :class:`SnapshotChunk` that did not complete the transfer: send on from
    ``offset`` (0 restarts it). A completed transfer is answered with an AppendResponse."""

    index: int
    offset: int


@dataclass(slots=True)
class _FieldSpec:
    name: str
    kind: str  # "int", "bool", "str", "text", "config", "entries", "commands"
    required: bool = True
    default: Any = field(default=None)


def _int(name: str) -> _FieldSpec:
    return _FieldSpec(name, "int")


def _opt(name: str, kind: str, default: Any) -> _FieldSpec:
    return _FieldSpec(name, kind, False, default)


_SCHEMA: dict[str, tuple[type[Message], tuple[_FieldSpec, ...]]] = {
    "vote": (VoteRequest, (_int("term"), _int("last_index"), _int("last_term"),
                           _opt("pre", "bool", False), _opt("transfer", "bool", False))),
    "vote_resp": (VoteResponse, (_int("term"), _FieldSpec("granted", "bool"),
                                 _opt("pre", "bool", False))),
    "append": (AppendRequest, (_int("term"), _int("prev_index"), _int("prev_term"),
                               _int("commit"), _opt("entries", "entries", ()))),
    "append_resp": (AppendResponse, (_int("term"), _int("index"), _FieldSpec("success", "bool"),
                                     _opt("hint_index", "int", 0), _opt("hint_term", "int", 0))),
    "heartbeat": (Heartbeat, (_int("term"), _int("commit"), _opt("ctx", "int", 0))),
    "commit": (CommitNotice, (_int("term"), _int("commit"))),
    "heartbeat_resp": (HeartbeatResponse, (_int("term"), _opt("ctx", "int", 0))),
    "timeout_now": (TimeoutNow, (_int("term"),)),
    "propose": (ProposeRequest, (_int("term"), _int("id"), _FieldSpec("commands", "commands"),
                                 _opt("kind", "int", COMMAND))),
    "read": (ReadIndexRequest, (_int("term"), _int("id"))),
    "read_resp": (ReadIndexResponse, (_int("term"), _int("id"), _int("index"))),
    "snapshot": (SnapshotChunk, (_int("term"), _int("index"), _int("snap_term"),
                                 _FieldSpec("config", "config"), _int("offset"), _int("size"),
                                 _int("crc"), _FieldSpec("data", "text"))),
    "snapshot_resp": (SnapshotResponse, (_int("term"), _int("index"), _int("offset"))),
    "propose_resp": (ProposeResponse, (_int("term"), _int("id"), _int("index"),
                                       _opt("leader", "str", ""))),
}
_TYPE_OF: dict[type[Message], str] = {cls: name for name, (cls, _) in _SCHEMA.items()}
for _name, (_cls, _) in _SCHEMA.items():
    _cls.TYPE = _name


def encode(msg: Message) -> dict[str, Any]:
    """Turn a message into a JSON-able dict (the inverse of :func:`decode`)."""
    cls = type(msg)
    out: dict[str, Any] = {"type": _TYPE_OF[cls]}
    for spec in _SCHEMA[out["type"]][1]:
        value = getattr(msg, spec.name)
        if spec.kind == "entries":
            if value:  # the first needs its full form: the entry before it is not sent
                first = value[0]
                value = [[first.term, first.kind, first.data]] + [e.wire for e in value[1:]]
            else:
                value = []
        elif spec.kind == "commands":
            value = list(value)
        elif not spec.required and value == spec.default:
            continue
        out[spec.name] = value
    return out


def decode(payload: Any) -> Message:
    """Validate an untrusted payload and build its message; raise :class:`MessageError`."""
    if not isinstance(payload, dict):
        raise MessageError(f"message must be an object, not {type(payload).__name__}")
    kind = payload.get("type")
    if not isinstance(kind, str) or kind not in _SCHEMA:
        raise MessageError(f"unknown message type {kind!r:.40}")
    cls, specs = _SCHEMA[kind]
    values: dict[str, Any] = {}
    for spec in specs:
        name = spec.name
        if name not in payload:
            if spec.required:
                raise MessageError(f"{kind}: missing field {name!r}")
            values[name] = spec.default
            continue
        value = payload[name]
        if spec.kind == "int" and value.__class__ is int and 0 <= value <= MAX_INT:
            values[name] = value  # the common case, checked inline
        else:
            values[name] = _check(kind, spec, value)
    if values["term"] > MAX_TERM:
        raise MessageError(f"{kind}.term is beyond the largest term accepted (2**52)")
    if kind == "append":
        _number_entries(values)
    elif kind == "snapshot":
        _check_chunk(values)
    elif kind == "propose" and values["kind"] != COMMAND:
        if values["kind"] != SESSION:
            raise MessageError("propose.kind must be a command or a session command")
        for command in values["commands"]:
            check_session(command, "propose.commands")
    return cls(**values)


def _check(kind: str, spec: _FieldSpec, value: Any) -> Any:
    where = f"{kind}.{spec.name}"
    if spec.kind == "int":
        return check_int(value, where)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise MessageError(f"{where} must be a boolean")
        return value
    if spec.kind == "text":
        if not isinstance(value, str) or len(value) > MAX_CHUNK:
            raise MessageError(f"{where} must be a string of at most {MAX_CHUNK} characters")
        return value
    if spec.kind == "config":
        check_config(value, where)
        return value
    if spec.kind == "str":
        if not isinstance(value, str) or len(value) > MAX_ADDRESS:
            raise MessageError(f"{where} must be a string of at most {MAX_ADDRESS} characters")
        return value
    if not isinstance(value, list) or len(value) > MAX_BATCH:
        raise MessageError(f"{where} must be a list of at most {MAX_BATCH} items")
    if spec.kind == "commands":
        if not value:
            raise MessageError(f"{where} must not be empty")
        for command in value:
            check_command(command, where)
        return tuple(value)
    return value  # entries: checked and numbered by _number_entries


def check_int(value: Any, where: str) -> int:
    """Return ``value`` if it is an int in ``[0, MAX_INT]`` (bools are not ints here)."""
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise MessageError(f"{where} must be an integer in [0, 2**53)")
    return value


def _check_chunk(values: dict[str, Any]) -> None:
    if values["index"] == 0 or values["snap_term"] > values["term"]:
        raise MessageError("snapshot: index must be positive and snap_term at most term")
    if values["offset"] + len(values["data"]) > values["size"] or values["crc"] > 0xFFFFFFFF:
        raise MessageError("snapshot: chunk runs past the snapshot's size, or crc too large")


def _number_entries(values: dict[str, Any]) -> None:
    """Check an append's entries and give them their implicit indexes.

    Terms must not decrease, must not precede ``prev_term`` and must not exceed the message's
    term: a log built by a real leader always satisfies this, so anything else is corrupt.
    """
    raw = values["entries"]
    prev_index, prev_term, term = values["prev_index"], values["prev_term"], values["term"]
    if prev_term > term:
        raise MessageError("append.prev_term is newer than the message term")
    if prev_index + len(raw) > MAX_INT:
        raise MessageError("append.entries run past the largest index")
    entries: list[Entry] = []
    append = entries.append
    last_term = prev_term
    index = prev_index
    session: Entry | None = None  # the previous entry, if a session entry
    # Hot loop (every replicated entry passes here): checks are inlined.
    for item in raw:
        # A tuple is what encode() gives for a short item: a transport in the same process
        # (the simulator's) may hand its dict over as it is, without JSON.
        if item.__class__ is not list and item.__class__ is not tuple:
            raise MessageError("append.entries items must be [term, kind, data]")
        if len(item) == 2:  # [term, command]: the next command of the previous session
            if session is None:
                raise MessageError("append.entries: [term, command] must follow a session "
                                   "entry")
            e_term, command = item
            if command.__class__ not in _SCALARS:
                check_command(command, "append.entries session")
            seq = session.seq + 1
            if seq > MAX_INT:
                raise MessageError("append.entries: a session's seq runs past 2**53")
            entry = Entry(e_term, index + 1, SESSION, command, 0, session.client, seq,
                          session.ack)
        elif len(item) == 3:
            e_term, e_kind, data = item
            if e_kind.__class__ is not int or not COMMAND <= e_kind <= MAX_KIND:
                raise MessageError("append.entries.kind is unknown")
            if e_kind == SESSION:
                # A node's plain command: [its implicit session, seq, ack, a scalar], inline.
                if not (data.__class__ is list and len(data) == 4
                        and data[0].__class__ is str and 0 < len(data[0]) <= MAX_CLIENT
                        and data[1].__class__ is int and 0 <= data[1] <= MAX_INT
                        and data[2].__class__ is int and 0 <= data[2] <= MAX_INT
                        and data[3].__class__ in _SCALARS):
                    check_session(data, "append.entries session")
                client, seq, ack, command = data
                entry = Entry(e_term, index + 1, SESSION, command, 0, client, seq, ack)
            else:
                if e_kind == CONFIG:
                    check_config(data, "append.entries config")
                elif data.__class__ not in _SCALARS:
                    check_command(data, "append.entries data")
                entry = Entry(e_term, index + 1, e_kind, data)
        else:
            raise MessageError("append.entries items must be [term, kind, data]")
        if e_term.__class__ is not int or not last_term <= e_term <= term:
            raise MessageError("append.entries terms must be integers that do not decrease "
                               "or exceed the message term")
        index += 1
        last_term = e_term
        session = entry if entry.kind == SESSION else None
        append(entry)
    values["entries"] = tuple(entries)


_SCALARS = (str, int, bool, type(None))


def check_command(value: Any, where: str = "command") -> int:
    """Check that ``value`` is plain JSON (no NaN or infinities, string keys, bounded depth and
    size) and return its approximate size; raise :class:`MessageError` otherwise.

    Commands end up in every node's log and storage: one that cannot be written back as JSON
    would wedge every node that received it, so it is refused at the edge.
    """
    size = _json_size(value, 0)
    if size > MAX_COMMAND_BYTES:
        raise MessageError(f"{where}: command of about {size} bytes is over the limit")
    return size


def _json_size(value: Any, depth: int) -> int:
    cls = value.__class__
    if cls is str:
        return len(value) + 2
    if cls is int or cls is bool or value is None:
        return 8
    if cls is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise MessageError("command holds NaN or an infinity, which JSON cannot carry")
        return 8
    if depth >= MAX_DEPTH:
        raise MessageError(f"command nests deeper than {MAX_DEPTH} levels")
    # Strings, integers and null items are sized inline (no call each): every replicated
    # command passes here on every follower. The sizes are those of the calls they replace.
    if cls is list:
        total = 2
        for v in value:
            vc = v.__class__
            if vc is str:
                total += len(v) + 3
            elif vc is int or vc is bool or v is None:
                total += 9
            else:
                total += 1 + _json_size(v, depth + 1)
        return total
    if cls is dict:
        total = 2
        for k, v in value.items():
            if k.__class__ is not str:
                raise MessageError("command has a non-string object key")
            vc = v.__class__
            if vc is str:
                total += len(k) + len(v) + 6
            elif vc is int or vc is bool or v is None:
                total += len(k) + 12
            else:
                total += len(k) + 4 + _json_size(v, depth + 1)
        return total
    raise MessageError(f"command holds a {cls.__name__}, which is not JSON")


def check_entry_data(kind: Any, data: Any, where: str) -> None:
    """Check an entry's kind and the shape its kind requires (storage loads use this)."""
    if type(kind) is not int or not COMMAND <= kind <= MAX_KIND:
        raise MessageError(f"{where} has unknown kind {kind!r:.40}")
    if kind == CONFIG:
        check_config(data, f"{where} config")
    elif kind == SESSION:
        check_session(data, f"{where} session")


def check_session(data: Any, where: str) -> None:
    """Validate a session entry's payload ``[client, seq, ack, command]``: ``client`` is an
    explicit session's id (an int) or a node's implicit session (a short string).

    Every plain proposal is one, so the common case is checked inline."""
    if data.__class__ is not list or len(data) != 4:
        raise MessageError(f"{where} must be [client, seq, ack, command]")
    client, seq, ack, command = data
    if client.__class__ is str:
        if not 0 < len(client) <= MAX_CLIENT:
            raise MessageError(f"{where}: an implicit session's id must be 1 to "
                               f"{MAX_CLIENT} characters")
    else:
        check_int(client, where)
    if seq.__class__ is not int or ack.__class__ is not int or not (
            0 <= seq <= MAX_INT and 0 <= ack <= MAX_INT):
        check_int(seq, where)
        check_int(ack, where)
    if command.__class__ not in _SCALARS:
        check_command(command, where)


def check_config(data: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate a configuration value and return ``(voters, learners)``."""
    if not isinstance(data, dict):
        raise MessageError(f"{where} must be an object")
    voters, learners = data.get("voters"), data.get("learners", [])
    for name, group in (("voters", voters), ("learners", learners)):
        if not isinstance(group, list) or len(group) > 1024 or not all(
                isinstance(a, str) and 0 < len(a) <= MAX_ADDRESS for a in group):
            raise MessageError(f"{where}: {name} must be a list of addresses")
    if not voters or len(set(voters)) != len(voters) or set(voters) & set(learners):
        raise MessageError(f"{where}: voters must be non-empty, distinct and not learners")
    return tuple(voters), tuple(learners)

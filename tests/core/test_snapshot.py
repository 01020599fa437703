"""Snapshots, compaction and InstallSnapshot (Raft §7): chunked, resumable, verified."""

from __future__ import annotations

import json
import zlib

import pytest

from webraft.core.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    SnapshotChunk,
    SnapshotResponse,
    decode,
    encode,
)
from webraft.core.progress import REPLICATE, SNAPSHOT
from webraft.core.state import ClusterConfig, HardState, SnapshotMeta, StoredState
from webraft.errors import MessageError

from .helpers import HEARTBEAT, ack, entries, make_core, make_leader, msgs, persist

STATE = json.dumps({"k": "v" * 100})


def applied_leader(n: int = 20, **kw) -> object:
    """A leader of term 2 whose log 1..n+1 is committed everywhere and applied."""
    leader = make_leader(log=[1] * n, **kw)
    ack(leader, "b")
    ack(leader, "c")
    persist(leader)
    assert leader.log.handed == leader.log.last_index == n + 1
    return leader


def test_compaction_keeps_a_tail_and_tells_storage_what_to_drop() -> None:
    leader = applied_leader()
    leader.compact(15, STATE, keep=5)
    rd = persist(leader)
    assert (rd.snapshot.index, rd.snapshot.term) == (15, 1)
    assert rd.snapshot.config == ClusterConfig(("a", "b", "c"))
    assert rd.snapshot_data == STATE and rd.compact_to == 10 and not rd.install
    log = leader.log
    assert log.offset == 10 and log.entries[0].index == 11 and log.last_index == 21
    assert log.term_at(15) == 1 and log.term_at(10) is None and log.term_at(11) == 1
    # Nothing more to save after that.
    assert persist(leader).snapshot is None


def test_compaction_keeps_what_a_follower_past_the_current_snapshot_lacks() -> None:
    """A follower that has everything the current snapshot covers (one that just installed
    it, say) keeps getting entries: the next compaction leaves it the ones it lacks, so that
    compactions quicker than its installs cannot make it chase snapshots forever. One behind
    the current snapshot is not waited for."""
    leader = applied_leader(n=30)
    leader.compact(10, STATE)
    persist(leader)
    leader.progress["b"].match = 14  # past the snapshot at 10, behind the log's end (31)
    leader.progress["c"].match = 8  # behind the snapshot: it needs one anyway
    leader.compact(25, STATE)
    rd = persist(leader)
    assert rd.snapshot.index == 25 and rd.compact_to == 13
    assert leader.log.term_at(14) == 1  # b's next append has its previous entry
    leader.progress["b"].next = 15
    leader._dirty["b"] = None
    [append] = msgs(persist(leader), AppendRequest, to="b")
    assert append.prev_index == 14 and append.entries[0].index == 15
    # Once past the snapshot at 25, c is left the entries it lacks too; b, behind it, not.
    leader.progress["c"].match = 27
    leader.compact(30, STATE)
    assert persist(leader).compact_to == 26


def test_a_follower_with_nothing_holds_back_no_compaction() -> None:
    """Before the first snapshot every follower "has all it covers"; one that has
    acknowledged nothing yet (dead, or just after a leader change) keeps nothing back."""
    leader = applied_leader()
    leader.progress["c"].match = 0
    leader.compact(15, STATE)
    assert persist(leader).compact_to == 15


def test_compaction_refuses_entries_not_applied_or_already_compacted() -> None:
    leader = applied_leader()
    with pytest.raises(ValueError):
        leader.compact(22, STATE)
    leader.compact(10, STATE)
    with pytest.raises(ValueError):
        leader.compact(10, STATE)


def test_a_follower_behind_the_compaction_gets_the_snapshot_in_chunks() -> None:
    leader = applied_leader(snapshot_chunk=40)
    leader.compact(21, STATE)
    persist(leader)
    # "d" joins empty: its probe at the end of the log is refused down to index 0.
    leader.change_config(1, ClusterConfig(("a", "b", "c"), ("d",)))
    persist(leader)
    leader.step("d", AppendResponse(leader.term, 22, False, 0, 0))
    d = make_core("d", voters=("a", "b", "c"))
    received = []
    for _ in range(100):
        out = msgs(persist(leader), SnapshotChunk, to="d")
        if not out:
            break
        [chunk] = out  # one chunk at a time
        assert leader.progress["d"].state == SNAPSHOT
        received.append(chunk)
        d.step("a", decode(encode(chunk)))
        rd = persist(d)
        for reply in rd.messages:
            leader.step("d", reply[1])
    assert [c.offset for c in received] == list(range(0, len(STATE), 40))
    assert rd.install and rd.snapshot_data == STATE and rd.snapshot.index == 21
    assert d.log.commit == 21 and d.log.handed == 21 and d.log.last_index == 21
    assert leader.progress["d"].state == REPLICATE and leader.progress["d"].match == 21


def test_a_lost_chunk_is_resent_from_what_the_follower_has() -> None:
    leader = applied_leader(snapshot_chunk=40)
    leader.compact(21, STATE)
    persist(leader)
    leader.progress["b"].become_snapshot(leader._outgoing)
    leader._dirty["b"] = None
    first = msgs(persist(leader), SnapshotChunk, to="b")[0]
    leader.step("b", SnapshotResponse(leader.term, 21, 40))
    msgs(persist(leader), SnapshotChunk, to="b")  # the second chunk: lost
    assert not msgs(persist(leader), SnapshotChunk, to="b")  # waits for an answer
    start = leader.now
    for beat in range(1, 5):  # STALL_BEATS heartbeats without an answer, and one more
        leader.tick(start + beat * HEARTBEAT)
    again = msgs(persist(leader), SnapshotChunk, to="b")
    assert [c.offset for c in again] == [40] and first.offset == 0


def test_a_follower_names_the_offset_it_needs() -> None:
    b = make_core("b", log=[1, 1])
    crc = zlib.crc32(STATE.encode())
    config = ClusterConfig(("a", "b", "c")).to_json()

    def chunk(offset: int) -> SnapshotChunk:
        return SnapshotChunk(2, 9, 1, config, offset, len(STATE), crc,
                             STATE[offset:offset + 50])

    b.step("a", chunk(0))
    assert msgs(persist(b), SnapshotResponse) == [SnapshotResponse(2, 9, 50)]
    b.step("a", chunk(100))  # 50..99 went missing
    assert msgs(persist(b), SnapshotResponse) == [SnapshotResponse(2, 9, 50)]
    b.step("a", chunk(50))
    assert msgs(persist(b), SnapshotResponse) == [SnapshotResponse(2, 9, 100)]
    # A different text (another leader's) does not mix with this one.
    b.step("a", SnapshotChunk(2, 9, 1, config, 100, len(STATE) + 1, crc, "x"))
    assert msgs(persist(b), SnapshotResponse) == [SnapshotResponse(2, 9, 0)]


def test_a_corrupt_snapshot_is_never_installed() -> None:
    b = make_core("b", log=[1, 1])
    config = ClusterConfig(("a", "b", "c")).to_json()
    b.step("a", SnapshotChunk(2, 9, 1, config, 0, len(STATE), 12345, STATE))
    rd = persist(b)
    assert not rd.install and rd.snapshot is None and b.log.last_index == 2
    assert msgs(rd, SnapshotResponse) == [SnapshotResponse(2, 9, 0)]


def test_installing_keeps_the_entries_after_a_matching_snapshot_entry() -> None:
    b = make_core("b", log=[1, 1, 1, 2, 2], term=2)
    data = "[]"
    b.step("a", SnapshotChunk(2, 3, 1, ClusterConfig(("a", "b", "c")).to_json(), 0, 2,
                              zlib.crc32(data.encode()), data))
    rd = persist(b)
    assert rd.install and rd.compact_to == 3 and b.log.last_index == 5
    assert [e.index for e in b.log.entries] == [4, 5]
    assert msgs(rd, AppendResponse) == [AppendResponse(2, 3, True)]


def test_installing_over_a_conflicting_log_discards_it() -> None:
    b = make_core("b", log=[1, 1, 1, 1, 1], term=1)
    data = "[]"
    b.step("a", SnapshotChunk(3, 4, 3, ClusterConfig(("a", "b", "c", "d")).to_json(), 0, 2,
                              zlib.crc32(data.encode()), data))
    rd = persist(b)
    assert rd.install and rd.compact_to == 5 and b.log.last_index == 4 and not b.log.entries
    assert b.cluster == ClusterConfig(("a", "b", "c", "d"))
    # The next append continues right after the snapshot, and is persisted.
    b.step("a", AppendRequest(3, 4, 3, 4, tuple(entries([3], start=5))))
    rd = persist(b)
    assert [e.index for e in rd.entries] == [5]


def test_a_snapshot_of_entries_already_committed_is_acknowledged_not_installed() -> None:
    b = make_core("b", log=[1, 1, 1], commit=3)
    b.step("a", SnapshotChunk(1, 2, 1, ClusterConfig(("a", "b", "c")).to_json(), 0, 2, 0, "[]"))
    rd = persist(b)
    assert not rd.install and msgs(rd, AppendResponse) == [AppendResponse(1, 3, True)]


def test_a_restart_from_a_compacted_log_matches_the_leader() -> None:
    meta = SnapshotMeta(10, 1, ClusterConfig(("a", "b", "c")))
    state = StoredState(HardState(2, None, 10), meta, entries([1, 1, 2], start=9), STATE)
    state.check()
    b = make_core("b", state=state)
    assert b.log.handed == 10 and b.log.term_at(10) == 1 and b.log.last_index == 11
    b.step("a", Heartbeat(2, 11))
    assert b.log.commit == 11 and persist(b).committed[0].index == 11


@pytest.mark.parametrize("bad", [
    {"index": 0}, {"snap_term": 9}, {"offset": 3}, {"crc": 1 << 32}, {"data": 5},
    {"config": {"voters": []}}, {"size": -1},
])
def test_invalid_snapshot_messages_are_refused(bad: dict) -> None:
    good = {"type": "snapshot", "term": 2, "index": 5, "snap_term": 1,
            "config": {"voters": ["a"]}, "offset": 0, "size": 2, "crc": 0, "data": "[]"}
    decode(good)
    with pytest.raises(MessageError):
        decode({**good, **bad})


def test_stored_state_with_a_tail_is_checked() -> None:
    meta = SnapshotMeta(3, 1, ClusterConfig(("a",)))
    StoredState(HardState(1), meta, entries([1, 1, 1], start=2), "{}").check()
    with pytest.raises(Exception, match="snapshot"):
        StoredState(HardState(1), meta, [], None).check()  # no data
    with pytest.raises(Exception, match="reach"):
        StoredState(HardState(1), meta, entries([1], start=5), "{}").check()  # a gap
    with pytest.raises(Exception, match="contradicts"):
        StoredState(HardState(2), meta, entries([1, 2], start=2), "{}").check()

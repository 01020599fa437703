"""The founding rule of a room whose membership follows its tabs (docs/browser.md, "The founding
rule"): a tab with no stored state founds the cluster only if every peer present when it joined
answers the founding probe as a node that holds no state either. Here the bridge's probe
(``_Claim``, ``_may_found``) runs against a recording connection, and the probe itself is
stepped through real cores: what they answer is what the rule relies on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from core.helpers import make_core, make_leader, msgs, persist

from webraft.browser import bridge
from webraft.browser.bridge import FOUNDING_PROBE, _Claim, _may_found
from webraft.core.messages import VoteResponse, decode, encode
from webraft.core.raft import RaftCore


class Recorder:
    """The part of a ``BrowserConnection`` the probe uses: what it sent, and flushes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.flushes = 0

    def send(self, to: str, payload: Any) -> None:
        self.sent.append((to, payload))

    def flush(self) -> None:
        self.flushes += 1


def answer(core: RaftCore) -> list[Any]:
    """What ``core`` sends back to the probing tab ``x`` (encoded, as it would leave)."""
    core.step("x", decode(FOUNDING_PROBE))
    return [encode(m) for m in msgs(persist(core), to="x")]


async def probe(peers: tuple[str, ...], answers: dict[str, list[Any]],
                leaving: tuple[str, ...] = ()) -> tuple[bool, Recorder]:
    """Run ``_may_found`` for a tab welcomed with ``peers``; each peer's answer arrives
    as relay data (none: it stays silent), and ``leaving`` peers leave instead."""
    claim, connection = _Claim(), Recorder()
    claim.relay_welcome(peers)
    deciding = asyncio.ensure_future(_may_found(connection, claim))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    for peer, payloads in answers.items():
        claim.relay_data(peer, payloads)
    for peer in leaving:
        claim.relay_leave(peer)
    return await deciding, connection


@pytest.fixture(autouse=True)
def short_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge, "PROBE_TIMEOUT", 0.05)


def test_a_node_that_never_was_in_a_cluster_grants_the_probe_and_changes_nothing() -> None:
    waiting = make_core("w", voters=())
    (reply,) = answer(waiting)
    assert decode(reply) == VoteResponse(term=1, granted=True, pre=True)
    assert (waiting.term, waiting.vote, waiting.log.last_index) == (0, None, 0)


@pytest.mark.parametrize("core", [
    pytest.param(lambda: make_core("b", log=[1], term=1), id="a follower with a log"),
    pytest.param(lambda: make_leader("b", log=[1]), id="a leader"),
    pytest.param(lambda: make_core("b", voters=("b",), log=[1], term=1), id="a lone founder"),
])
def test_a_node_with_state_never_grants_the_probe(core: Any) -> None:
    replies = [decode(r) for r in answer(core())]
    assert not any(isinstance(r, VoteResponse) and r.granted for r in replies), replies


async def test_an_empty_room_is_founded_without_asking() -> None:
    founds, connection = await probe((), {})
    assert founds and connection.sent == []


async def test_a_tab_founds_when_every_present_peer_holds_no_state() -> None:
    fresh = {peer: answer(make_core(peer, voters=())) for peer in ("p", "q")}
    founds, connection = await probe(("p", "q"), fresh)
    assert founds
    assert sorted(to for to, _ in connection.sent) == ["p", "q"]
    assert {repr(payload) for _, payload in connection.sent} == {repr(FOUNDING_PROBE)}
    assert connection.flushes == 1


async def test_one_peer_with_state_makes_the_tab_wait_to_be_added() -> None:
    answers = {"p": answer(make_core("p", voters=())),
               "q": answer(make_core("q", log=[1], term=1))}
    founds, _ = await probe(("p", "q"), answers)
    assert not founds


async def test_a_silent_peer_counts_as_one_that_may_be_founding() -> None:
    founds, _ = await probe(("p", "q"), {"p": answer(make_core("p", voters=()))})
    assert not founds


async def test_a_peer_that_leaves_instead_of_answering_cannot_add_the_tab() -> None:
    founds, _ = await probe(("p", "q"), {"p": answer(make_core("p", voters=()))},
                            leaving=("q",))
    assert founds


@pytest.mark.parametrize("payloads", [
    pytest.param([encode(VoteResponse(term=3, granted=True, pre=True))], id="another term"),
    pytest.param([encode(VoteResponse(term=1, granted=True))], id="a real vote"),
    pytest.param([{"type": "vote_resp", "term": "1"}], id="malformed"),
])
async def test_only_a_granted_pre_vote_for_term_1_is_a_stateless_answer(
        payloads: list[Any]) -> None:
    """Anything else leaves the peer unanswered (malformed: dropped), so the tab waits."""
    founds, _ = await probe(("p",), {"p": payloads})
    assert not founds

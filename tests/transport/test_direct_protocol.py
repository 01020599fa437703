"""The direct links' handshake and framing without I/O: :class:`Acceptor` and :class:`Dialer`.

Everything the acceptor reads is untrusted, so most tests feed it what an attacker or a
confused peer would send and check the one outcome allowed: an event, or a ``LinkBroken``
with a code and an error line that the dialer turns into a ``LinkRejected`` with that code.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webraft.transport.direct import (
    DEFAULT_MAX_LINE_BYTES,
    Accepted,
    Acceptor,
    Data,
    Dialer,
    Established,
    LinkBroken,
    LinkRejected,
    Malformed,
    encode_line,
    proof,
)
from webraft.transport.relay import MessageTooLarge

ROOM, TOKEN = "room-1", "s3cret-token"
HANDSHAKE_LIMIT = 4096  # direct._MAX_HANDSHAKE_BYTES: lines before the welcome


def line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def hello_for(acceptor: Acceptor, *, sender: str = "a", to: str = "b", room: str = ROOM,
              token: str | None = TOKEN) -> bytes:
    """The hello a dialer knowing ``token`` would send to ``acceptor``'s challenge."""
    return line({"v": 1, "room": room, "from": sender, "to": to,
                 "proof": proof(token, room, sender, to, acceptor.challenge)})


def accepted(max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Acceptor:
    """An acceptor ``b`` past the handshake with ``a``."""
    acceptor = Acceptor(ROOM, "b", token=TOKEN, max_line_bytes=max_line_bytes)
    assert acceptor.receive(hello_for(acceptor)) == [Accepted("a")]
    acceptor.data_to_send()
    return acceptor


def challenged(dialer: Dialer, challenge: str = "0123456789abcdef0123456789abcdef") -> Dialer:
    """``dialer`` after it read a challenge (and its hello was taken out)."""
    assert dialer.receive(line({"v": 1, "challenge": challenge})) == []
    assert dialer.data_to_send()
    return dialer


def refusal(acceptor: Acceptor, data: bytes) -> tuple[str, dict[str, Any]]:
    """Feed ``data``, which must break the link; returns the code and the error line sent."""
    with pytest.raises(LinkBroken) as info:
        acceptor.receive(data)
    out = acceptor.data_to_send()
    assert out.endswith(b"\n") and out.count(b"\n") == 1, out
    answer = json.loads(out)
    assert answer["error"] == info.value.code and isinstance(answer["message"], str)
    return info.value.code, answer


def dialer_rejects(error_line: bytes, code: str, kind: type[LinkBroken] = LinkRejected
                   ) -> None:
    """A dialer that sent its hello turns the acceptor's error line into LinkRejected(code)
    (or ``kind``: what it raises for ``error_line``)."""
    dialer = challenged(Dialer(ROOM, "a", "b", token=TOKEN))
    with pytest.raises(kind) as info:
        dialer.receive(error_line)
    assert info.value.code == code
    assert not dialer.established


# ------------------------------------------------------------------------------ handshake


def test_a_full_handshake_then_messages_flow_from_dialer_to_acceptor():
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    challenge = acceptor.data_to_send()
    assert json.loads(challenge) == {"v": 1, "challenge": acceptor.challenge}
    assert len(acceptor.challenge) == 32
    assert acceptor.data_to_send() == b"", "each byte is handed out once"

    assert dialer.data_to_send() == b"", "the dialer speaks only once challenged"
    assert dialer.receive(challenge) == []
    hello = dialer.data_to_send()
    assert set(json.loads(hello)) == {"v", "room", "from", "to", "proof"}

    assert acceptor.receive(hello) == [Accepted("a")]
    assert acceptor.peer == "a"
    welcome = acceptor.data_to_send()
    assert json.loads(welcome) == {"welcome": True}

    assert not dialer.established
    assert dialer.receive(welcome) == [Established()]
    assert dialer.established

    payload = {"type": "append", "term": 3, "entries": [{"x": "é"}]}
    wire = dialer.encode(payload)
    assert wire.isascii() and wire.endswith(b"\n") and wire.count(b"\n") == 1
    assert acceptor.receive(wire) == [Data(payload)]
    assert acceptor.data_to_send() == b"", "the acceptor writes nothing after its welcome"


def test_the_proof_keeps_the_token_secret_and_depends_on_the_challenge():
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    dialer.receive(acceptor.data_to_send())
    hello = dialer.data_to_send()
    assert TOKEN.encode() not in hello
    assert json.loads(hello)["proof"] == proof(TOKEN, ROOM, "a", "b", acceptor.challenge)

    args = (ROOM, "a", "b")
    assert proof(TOKEN, *args, "00" * 16) != proof(TOKEN, *args, "11" * 16)
    assert proof(TOKEN, *args, "00" * 16) != proof("other", *args, "00" * 16)
    assert proof(TOKEN, ROOM, "a", "b", "00" * 16) != proof(TOKEN, ROOM, "b", "a", "00" * 16)
    assert proof(None, *args, "00" * 16) == proof("", *args, "00" * 16), "no token: empty key"


def test_a_recorded_hello_replayed_against_a_new_challenge_is_unauthorized():
    first = Acceptor(ROOM, "b", token=TOKEN)
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    dialer.receive(first.data_to_send())
    recorded = dialer.data_to_send()
    assert first.receive(recorded) == [Accepted("a")]

    second = Acceptor(ROOM, "b", token=TOKEN)
    assert second.challenge != first.challenge
    second.data_to_send()
    code, answer = refusal(second, recorded)
    assert code == "unauthorized"
    assert second.peer is None
    dialer_rejects(line(answer), "unauthorized")


@pytest.mark.parametrize(("dialer_args", "acceptor_token", "allow", "code"), [
    pytest.param((ROOM, "a", "b", "wrong"), TOKEN, None, "unauthorized", id="wrong-token"),
    pytest.param((ROOM, "a", "b", None), TOKEN, None, "unauthorized", id="no-token"),
    pytest.param((ROOM, "a", "b", TOKEN), None, None, "unauthorized", id="token-not-needed"),
    pytest.param(("other-room", "a", "b", TOKEN), TOKEN, None, "wrong_room", id="wrong-room"),
    pytest.param((ROOM, "a", "c", TOKEN), TOKEN, None, "wrong_address", id="wrong-to"),
    pytest.param((ROOM, "b", "b", TOKEN), TOKEN, None, "unknown_peer", id="from-itself"),
    pytest.param((ROOM, "a", "b", TOKEN), TOKEN, lambda peer: peer != "a", "unknown_peer",
                 id="allow-refuses"),
])
def test_a_refused_hello_breaks_the_link_and_the_dialer_learns_why(
        dialer_args: tuple[str, str, str, str | None], acceptor_token: str | None,
        allow: Any, code: str):
    room, sender, to, token = dialer_args
    acceptor = Acceptor(ROOM, "b", token=acceptor_token, allow=allow)
    dialer = Dialer(room, sender, to, token=token)
    assert dialer.receive(acceptor.data_to_send()) == []
    got, answer = refusal(acceptor, dialer.data_to_send())
    assert got == code
    assert acceptor.peer is None
    with pytest.raises(LinkRejected) as info:
        dialer.receive(line(answer))
    assert info.value.code == code
    assert not dialer.established


def test_allow_is_asked_only_about_proven_peers():
    asked: list[str] = []

    def allow(peer: str) -> bool:
        asked.append(peer)
        return True

    acceptor = Acceptor(ROOM, "b", token=TOKEN, allow=allow)
    acceptor.data_to_send()
    refusal(acceptor, hello_for(acceptor, token="wrong"))
    assert asked == []
    acceptor = Acceptor(ROOM, "b", token=TOKEN, allow=allow)
    assert acceptor.receive(hello_for(acceptor)) == [Accepted("a")]
    assert asked == ["a"]


def test_a_key_per_peer_admits_only_the_peer_holding_it():
    keys = {"a": "k" * 32}
    acceptor = Acceptor(ROOM, "b", token=keys.get)
    assert acceptor.receive(hello_for(acceptor, token=keys["a"])) == [Accepted("a")]

    acceptor = Acceptor(ROOM, "b", token=keys.get)
    acceptor.data_to_send()
    code, _ = refusal(acceptor, hello_for(acceptor, sender="c", token=keys["a"]))
    assert code == "unauthorized", "a's key does not let c in"


@pytest.mark.parametrize("token", [None, ""], ids=["none", "empty"])
def test_a_peer_without_a_key_is_not_let_in_with_the_empty_key(token: str | None):
    """None from the key function means "no key", never the empty key anyone can prove."""
    acceptor = Acceptor(ROOM, "b", token=lambda peer: None)
    acceptor.data_to_send()
    code, _ = refusal(acceptor, hello_for(acceptor, token=token))
    assert code == "unauthorized"


def _hello_with(acceptor: Acceptor, **fields: Any) -> bytes:
    hello: dict[str, Any] = {"v": 1, "room": ROOM, "from": "a", "to": "b",
                             "proof": proof(TOKEN, ROOM, "a", "b", acceptor.challenge)}
    hello.update(fields)
    return line({k: v for k, v in hello.items() if v is not ...})


@pytest.mark.parametrize(("make", "code"), [
    pytest.param(lambda a: b"hello there\n", "bad_hello", id="not-json"),
    pytest.param(lambda a: b"\xff\xfe{}\n", "bad_hello", id="not-utf8"),
    pytest.param(lambda a: b"[1,2]\n", "bad_hello", id="not-object"),
    pytest.param(lambda a: b'"hello"\n', "bad_hello", id="a-string"),
    pytest.param(lambda a: b"{}\n", "bad_hello", id="empty-object"),
    pytest.param(lambda a: b"\n", "bad_hello", id="empty-line"),
    pytest.param(lambda a: _hello_with(a, v=...), "bad_hello", id="no-version"),
    pytest.param(lambda a: _hello_with(a, v=2), "bad_hello", id="version-2"),
    pytest.param(lambda a: _hello_with(a, v=True), "bad_hello", id="version-true"),
    pytest.param(lambda a: _hello_with(a, v=1.0), "bad_hello", id="version-float"),
    pytest.param(lambda a: _hello_with(a, **{"from": ...}), "bad_hello", id="no-from"),
    pytest.param(lambda a: _hello_with(a, **{"from": 7}), "bad_hello", id="from-number"),
    pytest.param(lambda a: _hello_with(a, **{"from": "a b"}), "bad_hello", id="from-bad-name"),
    pytest.param(lambda a: _hello_with(a, **{"from": ""}), "bad_hello", id="from-empty"),
    pytest.param(lambda a: _hello_with(a, **{"from": "x" * 129}), "bad_hello",
                 id="from-too-long"),
    pytest.param(lambda a: _hello_with(a, proof=...), "bad_hello", id="no-proof"),
    pytest.param(lambda a: _hello_with(a, proof=None), "bad_hello", id="proof-null"),
    pytest.param(lambda a: _hello_with(a, room=...), "wrong_room", id="no-room"),
    pytest.param(lambda a: _hello_with(a, to=...), "wrong_address", id="no-to"),
    pytest.param(lambda a: _hello_with(a, proof=""), "unauthorized", id="proof-empty"),
    pytest.param(lambda a: _hello_with(a, proof="é" * 64), "unauthorized", id="proof-non-ascii"),
    pytest.param(lambda a: b'{"v":1,"room":"room-1","from":"a","to":"b","proof":"\\ud800"}\n',
                 "unauthorized", id="proof-lone-surrogate"),
    pytest.param(lambda a: b'{"v":NaN,"room":"room-1","from":"a","to":"b","proof":"x"}\n',
                 "bad_hello", id="nan"),
    pytest.param(lambda a: b'{"v":1e999,"room":"room-1","from":"a","to":"b","proof":"x"}\n',
                 "bad_hello", id="huge-number"),
    pytest.param(lambda a: b"[" * 3000 + b"\n", "bad_hello", id="deep-nesting"),
])
def test_a_malformed_hello_is_refused_with_a_code(make: Any, code: str):
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    acceptor.data_to_send()
    got, answer = refusal(acceptor, make(acceptor))
    assert got == code
    assert acceptor.peer is None
    dialer_rejects(line(answer), code)


def test_a_broken_acceptor_reads_nothing_more():
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    acceptor.data_to_send()
    code, _ = refusal(acceptor, b"nonsense\n")
    with pytest.raises(LinkBroken) as info:
        acceptor.receive(hello_for(acceptor))  # a good hello comes too late
    assert info.value.code == code
    assert acceptor.peer is None


# ------------------------------------------------------------------------------ framing


def _stream(acceptor: Acceptor) -> bytes:
    """A dialer's whole side of a conversation: hello, messages, a malformed line."""
    return (hello_for(acceptor) + line({"type": "vote", "term": 1}) + b"garbage\n"
            + line({"n": [1, 2, {"s": "\u2603"}]}) + line({}))


def _events(acceptor: Acceptor, chunks: list[bytes]) -> list[Any]:
    events: list[Any] = []
    for chunk in chunks:
        events.extend(acceptor.receive(chunk))
    # Malformed events carry an exception, which compares by identity: compare its code.
    return [e.error.code if isinstance(e, Malformed) else e for e in events]


def test_the_acceptor_gives_the_same_events_however_the_stream_is_split():
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    whole = _events(acceptor, [_stream(acceptor)])
    assert whole == [Accepted("a"), Data({"type": "vote", "term": 1}), "bad_json",
                     Data({"n": [1, 2, {"s": "\u2603"}]}), Data({})]
    size = len(_stream(acceptor))
    for cut in range(size + 1):
        acceptor = Acceptor(ROOM, "b", token=TOKEN)
        data = _stream(acceptor)
        assert _events(acceptor, [data[:cut], data[cut:]]) == whole, cut
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    data = _stream(acceptor)
    assert _events(acceptor, [data[i:i + 1] for i in range(len(data))]) == whole


def test_the_dialer_gives_the_same_events_however_the_stream_is_split():
    challenge = "00112233445566778899aabbccddeeff"
    data = line({"v": 1, "challenge": challenge}) + line({"welcome": True})
    expected_hello = line({"v": 1, "room": ROOM, "from": "a", "to": "b",
                           "proof": proof(TOKEN, ROOM, "a", "b", challenge)})
    chunkings = [[data[:cut], data[cut:]] for cut in range(len(data) + 1)]
    chunkings.append([data[i:i + 1] for i in range(len(data))])
    for chunks in chunkings:
        dialer = Dialer(ROOM, "a", "b", token=TOKEN)
        events: list[Any] = []
        sent = b""
        for chunk in chunks:
            events.extend(dialer.receive(chunk))
            sent += dialer.data_to_send()
        assert events == [Established()], chunks
        assert sent == expected_hello
        assert dialer.established


def test_the_hello_and_messages_may_arrive_in_one_read_even_beyond_the_handshake_limit():
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    big = {"blob": "x" * (3 * HANDSHAKE_LIMIT)}
    chunk = hello_for(acceptor) + line({"i": 1}) + line(big) + line({"i": 2})
    assert acceptor.receive(chunk) == [Accepted("a"), Data({"i": 1}), Data(big), Data({"i": 2})]


def test_a_malformed_message_is_dropped_and_the_next_one_still_arrives():
    acceptor = accepted()
    events = acceptor.receive(b"{not json\n" + line({"ok": 1}) + b"[1]\n" + line({"ok": 2})
                              + b"\xc3\x28\n" + line({"ok": 3}))
    kinds = [(type(e).__name__, e.error.code if isinstance(e, Malformed) else e.payload)
             for e in events]
    assert kinds == [("Malformed", "bad_json"), ("Data", {"ok": 1}), ("Malformed", "not_object"),
                     ("Data", {"ok": 2}), ("Malformed", "bad_json"), ("Data", {"ok": 3})]
    assert acceptor.data_to_send() == b"", "a malformed message does not break the link"


@pytest.mark.parametrize("text", [
    b'{"x":NaN}', b'{"x":Infinity}', b'{"x":-Infinity}', b'{"x":1e999}', b'{"x":-1e999}',
    b'{"x":[1,2,1E400]}', b'{"x":' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000,
])
def test_numbers_json_cannot_carry_and_absurd_nesting_are_malformed(text: bytes):
    acceptor = accepted()
    events = acceptor.receive(text + b"\n" + line({"after": True}))
    assert len(events) == 2
    assert isinstance(events[0], Malformed) and events[0].error.code == "bad_json"
    assert events[1] == Data({"after": True})


def test_big_finite_numbers_and_unicode_escapes_are_fine():
    acceptor = accepted()
    assert acceptor.receive(b'{"x":1e308,"y":-2.5e-300,"s":"\\ud83d\\ude00"}\n') == [
        Data({"x": 1e308, "y": -2.5e-300, "s": "\U0001F600"})]


def test_a_line_up_to_the_limit_is_read_and_one_byte_more_breaks_the_link():
    limit = 200
    acceptor = accepted(max_line_bytes=limit)
    fits = line({"s": "y" * (limit - 8)})
    assert len(fits) == limit + 1  # the newline is not counted
    assert acceptor.receive(fits) == [Data({"s": "y" * (limit - 8)})]
    code, _ = refusal(acceptor, line({"s": "y" * (limit - 7)}))
    assert code == "line_too_long"
    with pytest.raises(LinkBroken):
        acceptor.receive(line({"ok": 1}))


def test_an_over_long_line_breaks_the_link_before_its_newline_arrives():
    limit = 200
    acceptor = accepted(max_line_bytes=limit)
    assert acceptor.receive(b'{"s":"' + b"z" * 100) == []
    assert acceptor.receive(b"z" * (limit - 106)) == [], "exactly at the limit: still waiting"
    code, answer = refusal(acceptor, b"z")
    assert code == "line_too_long"
    dialer_rejects(line(answer), "line_too_long")


def test_messages_before_an_over_long_line_in_the_same_read_are_lost_with_the_link():
    """The link breaks as a whole: what follows cannot be trusted to be framed right."""
    acceptor = accepted(max_line_bytes=100)
    code, _ = refusal(acceptor, line({"ok": 1}) + b"x" * 101)
    assert code == "line_too_long"


@pytest.mark.parametrize("complete", [True, False], ids=["with-newline", "partial"])
def test_handshake_lines_have_a_small_limit_until_the_welcome(complete: bool):
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    acceptor.data_to_send()
    data = b'{"v":1,"pad":"' + b"p" * HANDSHAKE_LIMIT + b'"}' + (b"\n" if complete else b"")
    code, answer = refusal(acceptor, data)
    assert code == "line_too_long"
    assert acceptor.peer is None
    dialer_rejects(line(answer), "line_too_long")


@pytest.mark.parametrize("complete", [True, False], ids=["with-newline", "partial"])
def test_the_dialer_refuses_an_over_long_handshake_line(complete: bool):
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    with pytest.raises(LinkBroken) as info:
        dialer.receive(b"c" * (HANDSHAKE_LIMIT + 1) + (b"\n" if complete else b""))
    assert info.value.code == "line_too_long"
    assert not isinstance(info.value, LinkRejected)


# ------------------------------------------------------------------------------ dialer


@pytest.mark.parametrize(("data", "code"), [
    pytest.param(line({"welcome": True}), "unexpected_frame", id="welcome-before-challenge"),
    pytest.param(line({"v": 1}), "unexpected_frame", id="no-challenge"),
    pytest.param(line({"v": 2, "challenge": "ab" * 16}), "unexpected_frame", id="version-2"),
    pytest.param(line({"v": True, "challenge": "ab" * 16}), "unexpected_frame",
                 id="version-true"),
    pytest.param(line({"v": 1, "challenge": 12}), "unexpected_frame", id="challenge-number"),
    pytest.param(line({"v": 1, "challenge": "not hex at all!!"}), "bad_challenge",
                 id="challenge-not-hex"),
    pytest.param(line({"v": 1, "challenge": "ab"}), "bad_challenge", id="challenge-short"),
    pytest.param(line({"v": 1, "challenge": "ab" * 65}), "bad_challenge", id="challenge-long"),
    pytest.param(b'{"v":1,"challenge":"\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800'
                 b'\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800"}\n',
                 "bad_challenge", id="challenge-lone-surrogates"),
    pytest.param(b"hello\n", "bad_json", id="not-json"),
    pytest.param(b"[]\n", "not_object", id="not-object"),
    pytest.param(b'{"v":1,"challenge":NaN}\n', "bad_json", id="nan"),
])
def test_the_dialer_breaks_on_anything_but_a_challenge_first(data: bytes, code: str):
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    with pytest.raises(LinkBroken) as info:
        dialer.receive(data)
    assert info.value.code == code
    assert not isinstance(info.value, LinkRejected)
    assert dialer.data_to_send() == b"", "no hello for a bad challenge"
    with pytest.raises(LinkBroken):  # and it stays broken
        dialer.receive(line({"v": 1, "challenge": "ab" * 16}))


@pytest.mark.parametrize(("data", "code"), [
    pytest.param(line({"v": 1, "challenge": "cd" * 16}), "unexpected_frame", id="challenge-again"),
    pytest.param(line({"welcome": False}), "unexpected_frame", id="welcome-false"),
    pytest.param(line({"hi": 1}), "unexpected_frame", id="other-object"),
    pytest.param(line({"error": 5, "message": "x"}), "unexpected_frame", id="error-number"),
    pytest.param(line({"error": "x"}), "unexpected_frame", id="error-without-message"),
])
def test_the_dialer_breaks_on_anything_but_a_welcome_or_an_error_after_its_hello(
        data: bytes, code: str):
    dialer_rejects(data, code, LinkBroken)


def test_the_dialer_breaks_when_the_acceptor_writes_after_its_welcome():
    dialer = challenged(Dialer(ROOM, "a", "b", token=TOKEN))
    with pytest.raises(LinkBroken) as info:
        dialer.receive(line({"welcome": True}) + line({"type": "vote"}))
    assert info.value.code == "unexpected_frame"
    assert dialer.established


def test_an_error_line_after_the_welcome_says_why_the_acceptor_closes():
    dialer = challenged(Dialer(ROOM, "a", "b", token=TOKEN))
    assert dialer.receive(line({"welcome": True})) == [Established()]
    with pytest.raises(LinkRejected) as info:
        dialer.receive(line({"error": "line_too_long", "message": "a line is too long"}))
    assert info.value.code == "line_too_long"


def test_a_rejection_s_code_and_message_are_cut_to_a_sane_length():
    dialer = challenged(Dialer(ROOM, "a", "b", token=TOKEN))
    with pytest.raises(LinkRejected) as info:
        dialer.receive(line({"error": "c" * 1000, "message": "m" * 3000}))
    assert info.value.code == "c" * 64
    assert len(str(info.value)) < 400


def test_encode_refuses_what_would_exceed_the_line_limit():
    dialer = Dialer(ROOM, "a", "b", max_line_bytes=100)
    fits = {"s": "q" * 91}
    assert len(dialer.encode(fits)) == 100  # newline included
    with pytest.raises(MessageTooLarge):
        dialer.encode({"s": "q" * 92})
    assert issubclass(MessageTooLarge, ValueError)


@pytest.mark.parametrize("payload", [
    {"x": object()}, {"x": float("nan")}, {"x": float("inf")}, {1j: 1}, {"x": {1, 2}},
], ids=["object", "nan", "inf", "complex-key", "set"])
def test_encode_refuses_what_is_not_json(payload: Any):
    dialer = Dialer(ROOM, "a", "b")
    with pytest.raises(ValueError) as info:
        dialer.encode(payload)
    assert not isinstance(info.value, MessageTooLarge)


def test_encode_refuses_absurd_nesting_as_not_json():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError):
        encode_line(deep)


def test_encoded_lines_are_ascii_even_with_lone_surrogates():
    assert encode_line({"s": "\ud800é"}) == b'{"s":"\\ud800\\u00e9"}\n'


@pytest.mark.parametrize("name", ["", "a b", "x" * 129, "é", None])
def test_bad_names_fail_at_construction(name: Any):
    with pytest.raises(ValueError):
        Acceptor(ROOM, name)
    with pytest.raises(ValueError):
        Dialer(ROOM, "a", name)
    with pytest.raises(ValueError):
        Dialer(name, "a", "b")


# ------------------------------------------------------------------------------ fuzzing


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_arbitrary_bytes_never_raise_anything_but_link_broken(chunks: list[bytes]):
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    for side in (acceptor, dialer):
        try:
            for chunk in chunks:
                side.receive(chunk)
        except LinkBroken:
            pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "room", "from", "to", "proof", "challenge",
                                        "welcome", "error", "message"]),
                       _json | st.sampled_from([1, ROOM, "a", "b", TOKEN, True]), max_size=6))
def test_hello_shaped_objects_never_raise_anything_but_link_broken(obj: dict[str, Any]):
    data = encode_line(obj)
    acceptor = Acceptor(ROOM, "b", token=TOKEN)
    try:
        events = acceptor.receive(data)
    except LinkBroken:
        pass
    else:
        raise AssertionError(f"a hello without a valid proof was accepted: {events}")
    dialer = Dialer(ROOM, "a", "b", token=TOKEN)
    for feed in (data, data):  # as the challenge, then as the answer to the hello
        try:
            dialer.receive(feed)
        except LinkBroken:
            break

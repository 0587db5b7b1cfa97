"""The pass-through relay (nothing inspects the session): same bytes out, and the counts the I/O layer needs."""

from __future__ import annotations

from shared.pg.relay import DENIED_TOKEN, PassthroughRelay, Refusal, Relay, with_protections
from shared.pg.sql.engine import GuardrailEngine
from shared.pg.sql.rules import GuardrailsPolicy
from shared.pg.wire import messages as m
from shared.pg.wire.framing import Framer

GUARD = GuardrailsPolicy.model_validate(
    {
        "rules": [{"name": "no-drop", "match": {"kinds": ["drop"]}, "action": "deny", "reason": "ask a human"}],
    }
)


def feed(*messages: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
    return Framer(limit=1 << 20).feed(b"".join(messages))


def test_agent_chunk_is_forwarded_as_the_same_object_and_requests_are_counted() -> None:
    chunk, frames = feed(
        m.build_query("SELECT 1"),
        m.build_parse("", "SELECT $1"),
        m.frame(b"B", b"\0\0\0\0\0\0\0"),
        m.frame(b"E", b"\0\0\0\0\0"),
        m.frame(b"S", b""),
        m.frame(b"X", b""),
    )
    out = PassthroughRelay().from_agent(chunk, frames, 0)
    assert out.to_peer == [chunk] and out.to_peer[0] is chunk
    assert out.requests == 2  # the Query and the Sync each owe one ReadyForQuery
    assert out.terminate
    assert out.events == []


def test_backend_ready_for_query_is_counted_with_its_last_status() -> None:
    chunk, frames = feed(
        m.frame(b"C", b"BEGIN\0"),
        m.build_ready_for_query(b"T"),
        m.frame(b"C", b"SELECT 1\0"),
        m.build_ready_for_query(b"E"),
    )
    out = PassthroughRelay().from_backend(chunk, frames, 0)
    assert out.to_peer == [chunk] and out.to_peer[0] is chunk
    assert (out.ready, out.tx_status) == (2, b"E")


def test_an_empty_chunk_forwards_nothing() -> None:
    assert PassthroughRelay().from_agent(b"", [], 0).to_peer == []
    assert PassthroughRelay().from_backend(b"", [], 0).to_peer == []


def test_a_refused_chunk_still_never_reaches_the_backend() -> None:
    chunk, frames = feed(m.build_query("SELECT 1"))
    out = PassthroughRelay().from_agent(chunk, frames, 0, Refusal("58030", "not durable"))
    assert DENIED_TOKEN.encode() in b"".join(out.to_peer)
    assert b"SELECT 1" not in b"".join(out.to_peer)


def test_a_guard_set_at_renewal_turns_it_into_a_full_relay_that_blocks() -> None:
    relay: Relay = PassthroughRelay()
    assert with_protections(relay, None, None) is relay
    relay = with_protections(relay, GuardrailEngine(GUARD), None)
    assert not isinstance(relay, PassthroughRelay)
    chunk, frames = feed(m.build_query("DROP TABLE customers"))
    out = relay.from_agent(chunk, frames, 0)
    assert b"DROP TABLE" not in b"".join(out.to_peer)

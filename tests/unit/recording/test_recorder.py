"""SessionRecorder: sequence numbers, chunk cutting by size / time / force, the chain, seal, redaction."""

from __future__ import annotations

import hashlib
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from recording_helpers import T0, FakeClock, meta

from shared.pg.wire.messages import build_password_message, build_query, build_startup_message, frame
from shared.recording.format import (
    EVENT_HEADER,
    GENESIS_SHA256,
    Direction,
    EventKind,
    SessionStatus,
    decode_chunk,
)
from shared.recording.recorder import (
    REDACTED,
    RecorderClosed,
    SessionRecorder,
    redact_startup_and_auth,
)

A2P, P2A = Direction.AGENT_TO_PROXY, Direction.PROXY_TO_AGENT


def test_cuts_a_chunk_when_pending_reaches_chunk_size() -> None:
    rec = SessionRecorder(meta(), chunk_size=100, clock=FakeClock())
    assert rec.record_bytes(A2P, b"x" * 40) is None
    assert rec.pending_bytes == EVENT_HEADER.size + 40
    chunk = rec.record_bytes(P2A, b"y" * 40)
    assert chunk is not None and rec.pending_bytes == 0
    assert (chunk.index, chunk.first_seq, chunk.last_seq, chunk.prev_sha256) == (0, 0, 1, GENESIS_SHA256)
    assert chunk.key == "sessions/dt=2025-01-01/ses_01TEST/00000000.chunk"
    assert chunk.sha256 == hashlib.sha256(chunk.data).digest()
    assert [e.payload for e in decode_chunk(chunk.data).events] == [b"x" * 40, b"y" * 40]


def test_relayed_bytes_are_copied_in_not_kept() -> None:
    # A busy session records thousands of reads a second; holding each bytes object until its chunk
    # is cut cost the proxy more than encoding them did (memory that never returns to the allocator).
    rec = SessionRecorder(meta(), clock=FakeClock())
    reads = [bytes([65 + i]) * (100 + i) for i in range(3)]
    before = [sys.getrefcount(r) for r in reads]
    for read in reads:
        rec.record_wire(A2P, read)
    del read  # the loop's own reference
    assert [sys.getrefcount(r) for r in reads] == before
    chunk = rec.take_chunk_now()
    assert chunk is not None and type(chunk.data) is bytes
    assert [e.payload for e in decode_chunk(chunk.data).events] == reads


@given(
    st.lists(st.tuples(st.sampled_from([A2P, P2A]), st.binary(min_size=1, max_size=300)), max_size=40),
    st.integers(min_value=64, max_value=2000),
)
def test_record_wire_encodes_exactly_as_record_bytes(reads: list[tuple[Direction, bytes]], chunk_size: int) -> None:
    """The per-read path writes its events itself: same events, times, cuts and counts as the general one."""
    wire, general = (SessionRecorder(meta(), chunk_size=chunk_size, clock=FakeClock()) for _ in range(2))
    cut_wire = [rec.data for d, data in reads if (rec := wire.record_wire(d, data)) is not None]  # type: ignore[arg-type]
    cut_general = [rec.data for d, data in reads if (rec := general.record_bytes(d, data)) is not None]
    assert cut_wire == cut_general
    sealed_wire, sealed_general = wire.seal(SessionStatus.CLOSED), general.seal(SessionStatus.CLOSED)
    tails = [s.last_chunk.data if s.last_chunk else None for s in (sealed_wire, sealed_general)]
    assert tails[0] == tails[1]
    assert sealed_wire.manifest.counts == sealed_general.manifest.counts


def test_time_based_flush() -> None:
    rec = SessionRecorder(meta(), flush_interval_ns=1_000_000, clock=FakeClock())
    assert rec.poll(T0) is None  # nothing pending
    rec.record_bytes(A2P, b"Q", now_ns=T0)
    assert not rec.flush_due(T0 + 999_999)
    assert rec.poll(T0 + 999_999) is None
    chunk = rec.poll(T0 + 1_000_000)
    assert chunk is not None and chunk.last_seq == 0
    assert rec.poll(T0 + 5_000_000) is None


def test_take_chunk_now_and_chain() -> None:
    rec = SessionRecorder(meta(), clock=FakeClock())
    assert rec.take_chunk_now() is None
    rec.record_bytes(A2P, b"a")
    first = rec.take_chunk_now()
    rec.record_decision(EventKind.BLOCK, {"statement": "DROP TABLE t", "rule": "no-ddl"})
    second = rec.take_chunk_now()
    assert first is not None and second is not None
    assert second.prev_sha256 == first.sha256
    assert (second.index, second.first_seq) == (1, 1)
    event = decode_chunk(second.data).events[0]
    assert event.direction == Direction.DECISION and event.kind == EventKind.BLOCK
    assert event.decision() == {"rule": "no-ddl", "statement": "DROP TABLE t"}


def test_seal_returns_the_last_chunk_and_a_manifest_covering_every_chunk() -> None:
    rec = SessionRecorder(meta(), chunk_size=60, clock=FakeClock())
    chunks = [rec.record_bytes(A2P, build_query("SELECT 1"), statements=1), rec.record_bytes(P2A, b"r" * 50)]
    rec.record_bytes(P2A, b"")  # nothing recorded
    rec.record_decision(EventKind.TERMINATION, {"reason": "client closed"})
    sealed = rec.seal(SessionStatus.CLOSED, ended_at_ns=T0 + 10**9)
    all_chunks = [c for c in [*chunks, sealed.last_chunk] if c is not None]
    m = sealed.manifest
    assert [c.entry() for c in all_chunks] == list(m.chunks)
    assert m.chain_head == all_chunks[-1].sha256.hex()
    assert (m.counts.events, m.counts.statements, m.counts.decisions) == (3, 1, 1)
    assert m.counts.bytes_agent_to_proxy == len(build_query("SELECT 1"))
    assert m.counts.bytes_proxy_to_agent == 50
    assert m.ended_at == "2025-01-01T02:53:21.000000Z"
    assert m.signature is None
    with pytest.raises(RecorderClosed):
        rec.record_bytes(A2P, b"late")
    with pytest.raises(RecorderClosed):
        rec.seal(SessionStatus.CLOSED)


def test_empty_session_seals_with_genesis_head() -> None:
    sealed = SessionRecorder(meta(), clock=FakeClock()).seal(SessionStatus.REFUSED)
    assert sealed.last_chunk is None
    assert sealed.manifest.chain_head == GENESIS_SHA256.hex()
    assert sealed.manifest.chunks == ()


def test_kinds_and_directions_are_checked() -> None:
    rec = SessionRecorder(meta(), clock=FakeClock())
    with pytest.raises(ValueError):
        rec.record_bytes(Direction.DECISION, b"x")
    with pytest.raises(ValueError):
        rec.record_decision(EventKind.WIRE, {})
    with pytest.raises(ValueError, match="JSON"):
        rec.record_decision(EventKind.GRANT, {"when": object()})


@given(st.lists(st.tuples(st.sampled_from([A2P, P2A]), st.binary(max_size=90)), max_size=60), st.integers(1, 400))
def test_sequence_numbers_are_contiguous_across_chunks(reads: list[tuple[Direction, bytes]], size: int) -> None:
    rec = SessionRecorder(meta(), chunk_size=size, clock=FakeClock())
    chunks = [c for d, data in reads if (c := rec.record_bytes(d, data)) is not None]
    last = rec.seal(SessionStatus.CLOSED).last_chunk
    chunks += [last] if last else []
    events = [e for c in chunks for e in decode_chunk(c.data).events]
    assert [e.seq for e in events] == list(range(len(events)))
    assert [(e.direction, e.payload) for e in events] == [(d, b) for d, b in reads if b]


# ---------------------------------------------------------------- redaction

STARTUP = build_startup_message(196608, {"user": "ci-nightly", "database": "orders"})


def test_password_is_redacted_startup_kept() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.payload.sig"
    out = redact_startup_and_auth(STARTUP + build_password_message(token))
    assert out.startswith(STARTUP)
    assert token.encode() not in out
    assert out[len(STARTUP) :] == frame(b"p", REDACTED + b"\0")


def test_sasl_responses_and_other_messages() -> None:
    sasl = frame(b"p", b"SCRAM-SHA-256\0" + (4).to_bytes(4, "big") + b"n,,n")
    query = build_query("SELECT 1")
    assert redact_startup_and_auth(sasl + query) == frame(b"p", REDACTED + b"\0") + query


@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_an_unparseable_tail_is_redacted_not_kept(cut: int) -> None:
    msg = build_password_message("hunter2-secret")
    out = redact_startup_and_auth(STARTUP + msg[:cut])
    assert out == STARTUP + REDACTED
    assert b"hunter2" not in out


# A password is text a client can send: no NUL (it ends the field), no lone surrogates (not encodable).
_secret = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=20
).map(lambda s: "S3cr3t" + s)


@given(
    st.lists(st.tuples(st.sampled_from(b"pQSXdp"), st.binary(max_size=40)), max_size=8),
    _secret,
    st.binary(max_size=30),
)
def test_no_password_survives_whole_messages_or_a_garbage_tail(
    msgs: list[tuple[int, bytes]], secret: str, tail: bytes
) -> None:
    body = secret.encode() + b"\0"
    data = b"".join(frame(bytes([t]), body if t == ord("p") else b) for t, b in msgs)
    out = redact_startup_and_auth(STARTUP + data + tail)
    assert secret.encode() not in out or secret.encode() in b"".join(b for _, b in msgs) + tail


def test_record_auth_bytes_marks_redacted_events_and_counts_recorded_bytes() -> None:
    rec = SessionRecorder(meta(), clock=FakeClock())
    raw = STARTUP + build_password_message("a-very-long-secret-token-value")
    rec.record_auth_bytes(STARTUP)
    rec.record_auth_bytes(raw[len(STARTUP) :])
    sealed = rec.seal(SessionStatus.CLOSED)
    assert sealed.last_chunk is not None
    kinds = [e.kind for e in decode_chunk(sealed.last_chunk.data).events]
    assert kinds == [EventKind.WIRE, EventKind.WIRE_REDACTED]
    assert sealed.manifest.counts.bytes_agent_to_proxy == len(redact_startup_and_auth(raw))
    assert b"a-very-long-secret" not in sealed.last_chunk.data

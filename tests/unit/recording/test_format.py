"""Format v1: round trips (hypothesis), and decoders that fail clearly on truncated or corrupt input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from recording_helpers import T0, meta

from shared.recording.format import (
    GENESIS_SHA256,
    ChunkEntry,
    Counts,
    Event,
    Manifest,
    RecordingFormatError,
    SessionStatus,
    Signature,
    chunk_name,
    decode_chunk,
    decode_events,
    decode_manifest,
    encode_chunk,
    encode_event,
    encode_manifest,
    format_timestamp,
    parse_chunk_name,
    parse_timestamp,
    session_prefix,
)

events_st = st.builds(
    Event,
    seq=st.integers(0, 2**64 - 1),
    ts_ns=st.integers(-(2**63), 2**63 - 1),
    direction=st.integers(0, 2),
    kind=st.integers(0, 255),
    payload=st.binary(max_size=300),
)


def _sequential(events: list[Event], start: int) -> list[Event]:
    return [Event(start + i, e.ts_ns, e.direction, e.kind, e.payload) for i, e in enumerate(events)]


@given(st.lists(events_st, max_size=20))
def test_events_round_trip(events: list[Event]) -> None:
    assert decode_events(b"".join(encode_event(e) for e in events)) == events


@given(
    st.lists(events_st, min_size=1, max_size=20),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=32, max_size=32),
    st.text(min_size=1, max_size=40),
    st.integers(0, 2**40),
)
def test_chunk_round_trip(events: list[Event], index: int, prev: bytes, sid: str, start: int) -> None:
    evs = _sequential(events, start)
    decoded = decode_chunk(encode_chunk(sid, index, prev, evs))
    assert decoded.events == evs
    h = decoded.header
    assert (h.session_id, h.index, h.prev_sha256, h.first_seq, h.last_seq, h.event_count) == (
        sid,
        index,
        prev,
        evs[0].seq,
        evs[-1].seq,
        len(evs),
    )


@given(st.lists(events_st, min_size=1, max_size=5), st.data())
def test_truncated_chunk_is_a_format_error(events: list[Event], data: st.DataObject) -> None:
    raw = encode_chunk("s", 0, GENESIS_SHA256, _sequential(events, 0))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(RecordingFormatError):
        decode_chunk(raw[:cut])


@given(st.binary(max_size=400))
def test_garbage_never_crashes_the_decoders(raw: bytes) -> None:
    for decode in (decode_chunk, decode_events, decode_manifest):
        with contextlib.suppress(RecordingFormatError):
            decode(raw)


@given(st.binary(max_size=200))
def test_garbage_after_a_valid_header_is_a_format_error(tail: bytes) -> None:
    raw = encode_chunk("s", 0, GENESIS_SHA256, [Event(0, 0, 0, 0, b"x")]) + tail
    try:
        decode_chunk(raw)
    except RecordingFormatError:
        return
    assert not tail  # only a clean chunk decodes


def test_chunk_errors_name_the_problem() -> None:
    good = encode_chunk("s", 3, GENESIS_SHA256, [Event(5, 0, 0, 0, b"abc")])
    with pytest.raises(RecordingFormatError, match="bad magic"):
        decode_chunk(b"XXXX" + good[4:])
    with pytest.raises(RecordingFormatError, match="version"):
        decode_chunk(good[:4] + b"\x00\x02" + good[6:])
    with pytest.raises(RecordingFormatError, match="chunk 3: event 5 payload truncated"):
        decode_chunk(good[:-1])
    bad_dir = bytearray(good)
    bad_dir[-3 - 6] = 9  # the direction byte of the only event
    with pytest.raises(RecordingFormatError, match="invalid direction 9"):
        decode_chunk(bytes(bad_dir))
    with pytest.raises(ValueError, match="at least one event"):
        encode_chunk("s", 0, GENESIS_SHA256, [])


def _manifest(**kw: object) -> Manifest:
    m = Manifest(
        session=meta(),
        status=SessionStatus.CLOSED,
        ended_at=format_timestamp(T0 + 5),
        counts=Counts(3, 10, 20, 1, 1),
        chunks=(ChunkEntry(0, "sessions/dt=2025-01-01/ses_01TEST/00000000.chunk", "ab" * 32, 0, 2, 99),),
        chain_head="ab" * 32,
        signature=Signature("ECDSA_SHA_256", "k", "AAAA"),
        extra={"later": [1, 2]},
    )
    return m if not kw else Manifest(**{**{f: getattr(m, f) for f in m.__slots__}, **kw})  # type: ignore[arg-type]


def test_manifest_round_trip_is_byte_identical() -> None:
    m = _manifest()
    raw = encode_manifest(m)
    assert decode_manifest(raw) == m
    assert encode_manifest(decode_manifest(raw)) == raw
    assert b"signature" not in m.signing_bytes()
    assert decode_manifest(encode_manifest(_manifest(signature=None))).signature is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("chain_head"), r"manifest\.chain_head: missing"),
        (lambda d: d["counts"].update(events=-1), r"manifest\.counts\.events: not a non-negative"),
        (lambda d: d["counts"].update(events=True), r"manifest\.counts\.events"),
        (lambda d: d["session"].update(status="done"), "unknown status"),
        (lambda d: d["session"].update(started_at="yesterday"), "invalid timestamp"),
        (lambda d: d["chunks"][0].update(sha256="XY"), r"manifest\.chunks\[0\]\.sha256"),
        (lambda d: d.update(format_version=2), "unsupported format version 2"),
        (lambda d: d.update(chunks={}), r"manifest\.chunks: not a list"),
    ],
)
def test_manifest_errors_name_the_field(mutate: object, message: str) -> None:
    import json

    doc = json.loads(encode_manifest(_manifest()))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(RecordingFormatError, match=message):
        decode_manifest(json.dumps(doc).encode())


def test_layout() -> None:
    assert session_prefix("ses_1", "2025-01-31T23:59:59.999999Z") == "sessions/dt=2025-01-31/ses_1/"
    assert chunk_name(12) == "00000012.chunk"
    assert parse_chunk_name("00000012.chunk") == 12
    assert parse_chunk_name("manifest.json") is None
    with pytest.raises(ValueError):
        session_prefix("a/b", "2025-01-31T23:59:59.999999Z")


@given(st.integers(0, 2**62))
def test_timestamps_round_trip_to_the_microsecond(ts: int) -> None:
    assert parse_timestamp(format_timestamp(ts)).timestamp() == pytest.approx(ts // 1000 / 1e6, abs=1e-6)

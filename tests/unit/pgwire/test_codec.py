"""The sans-I/O codec: whole, byte by byte, with trailing data, and fuzzed."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pgwire_helpers import require_compiled

from shared.pg.wire import framing
from shared.pg.wire import messages as m
from shared.pg.wire.constants import (
    FRONTEND_SMALL,
    FRONTEND_TYPES,
    PROTOCOL_3_0,
    PROTOCOL_3_2,
    SMALL_MESSAGE_LIMIT,
)
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Framer, StartupFramer


@pytest.fixture(scope="module", params=["compiled", "python"], autouse=True)
def scan_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs against both twins of the framer's loop: the compiled one and pure Python."""
    if request.param == "compiled":
        require_compiled()
    saved = framing.scan
    framing.scan = framing.scan if request.param == "compiled" else framing.scan_py
    yield request.param
    framing.scan = saved

STREAM = [
    m.build_query("SELECT 1"),
    m.build_parse("s1", "SELECT $1::int", [23]),
    m.build_describe("S", "s1"),
    m.SYNC,
    m.frame(b"d", b"x" * 70_000),  # larger than a typical read
    m.TERMINATE,
]


def frontend_framer() -> Framer:
    return Framer(limit=1 << 20, allowed=FRONTEND_TYPES, small_types=FRONTEND_SMALL,
                  small_limit=SMALL_MESSAGE_LIMIT, peer="frontend")


def feed_all(framer: Framer, pieces: list[bytes]) -> list[tuple[int, bytes]]:
    out = []
    for piece in pieces:
        chunk, frames = framer.feed(piece)
        out += [(t, chunk[s:e]) for t, s, e in frames]
        # What is returned is exactly the complete messages, in order, with nothing in between.
        assert chunk == b"".join(chunk[s - 5 : e] for _, s, e in frames)
    return out


def expected() -> list[tuple[int, bytes]]:
    return [(msg[0], msg[5:]) for msg in STREAM]


def test_whole() -> None:
    assert feed_all(frontend_framer(), [b"".join(STREAM)]) == expected()


def test_byte_by_byte() -> None:
    data = b"".join(STREAM)
    assert feed_all(frontend_framer(), [data[i : i + 1] for i in range(len(data))]) == expected()


def test_trailing_partial_message_is_held_back() -> None:
    framer = frontend_framer()
    data = b"".join(STREAM)
    got = feed_all(framer, [data + m.build_query("SELECT 2")[:7]])
    assert got == expected() and framer.buffered == 7
    assert feed_all(framer, [m.build_query("SELECT 2")[7:]]) == [(ord("Q"), b"SELECT 2\0")]


def test_unchanged_input_is_returned_as_the_same_object() -> None:
    data = b"".join(STREAM)
    chunk, _ = frontend_framer().feed(data)
    assert chunk is data


@given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=40))
def test_any_split_gives_the_same_messages(cuts: list[int]) -> None:
    data = b"".join(STREAM)
    pieces, pos = [], 0
    for n in cuts:
        pieces.append(data[pos : pos + n])
        pos += n
    pieces.append(data[pos:])
    assert feed_all(frontend_framer(), pieces) == expected()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"Q" + struct.pack("!i", 3), "invalid message length"),
        (b"Q" + struct.pack("!i", (1 << 20) + 1), "invalid message length"),
        (b"S" + struct.pack("!i", SMALL_MESSAGE_LIMIT + 1), "invalid message length"),
        (b"\x00" + struct.pack("!i", 4), "invalid frontend message type"),
        (b"R" + struct.pack("!i", 8) + b"\0" * 4, "invalid frontend message type"),
    ],
)
def test_bad_headers_are_rejected_at_once(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolViolation, match=words):
        frontend_framer().feed(data)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_fuzzed_streams_never_crash_the_framer(data: bytes) -> None:
    framer = frontend_framer()
    with contextlib.suppress(ProtocolViolation):
        feed_all(framer, [data])


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzzed_bodies_never_crash_the_parsers(body: bytes) -> None:
    parsers = [m.parse_startup_packet, m.parse_query, m.parse_parse, m.parse_bind, m.parse_row_description,
               m.parse_data_row, m.parse_error_fields, m.parse_backend_key_data, m.parse_password_message,
               m.parse_describe_or_close, m.parse_execute, m.parse_copy_response, m.parse_authentication,
               m.parse_negotiate_protocol_version]
    for parse in parsers:
        with contextlib.suppress(ProtocolViolation):
            parse(body)


CHARS = st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))


@given(st.dictionaries(st.text(CHARS, min_size=1, max_size=20), st.text(CHARS, max_size=40), max_size=8),
       st.sampled_from([PROTOCOL_3_0, PROTOCOL_3_2]))
def test_startup_message_round_trip(params: dict[str, str], protocol: int) -> None:
    packet = m.build_startup_message(protocol, params)
    framer = StartupFramer()
    body = None
    for i in range(len(packet)):
        body = framer.feed(packet[i : i + 1]) or body
    assert body is not None
    parsed = m.parse_startup_packet(body)
    assert isinstance(parsed, m.StartupMessage) and parsed.protocol == protocol and dict(parsed.params) == params


@given(st.lists(st.one_of(st.none(), st.binary(max_size=50)), max_size=20))
def test_data_row_round_trip(values: list[bytes | None]) -> None:
    assert m.parse_data_row(m.build_data_row(values)[5:]) == values


def test_special_startup_packets() -> None:
    assert isinstance(m.parse_startup_packet(m.build_ssl_request()[4:]), m.SSLRequest)
    cancel = m.parse_startup_packet(m.build_cancel_request(1234, b"k" * 32)[4:])
    assert cancel == m.CancelRequest(1234, b"k" * 32)
    with pytest.raises(ProtocolViolation, match="unsupported frontend protocol"):
        m.parse_startup_packet(struct.pack("!i", 2 << 16) + b"\0")
    with pytest.raises(ProtocolViolation):
        StartupFramer().feed(struct.pack("!i", 1 << 30))

"""The framer's loop has two twins, compiled (``_framing.scan``) and pure Python (``scan_py``): they must
agree on everything, errors included; and ``Framer.count``, the pass-through relay's way of framing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pgwire_helpers import require_compiled

from shared.pg.wire import framing
from shared.pg.wire import messages as m
from shared.pg.wire.constants import FRONTEND_SMALL, FRONTEND_TYPES, SMALL_MESSAGE_LIMIT
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Framer, scan_py, type_table


@pytest.fixture
def compiled() -> None:
    require_compiled()


# Streams that are mostly well-formed: a type byte, a plausible length, a body; sometimes wrong.
message = st.builds(
    lambda t, body, delta: bytes([t]) + struct.pack("!i", len(body) + 4 + delta) + body,
    st.sampled_from(b"QPBDESXdcfCZTHpF\x00R"),
    st.binary(max_size=40),
    st.sampled_from([0, 0, 0, 0, 0, -5, 1, 1 << 20]),
)
tables = st.one_of(st.none(), st.sets(st.integers(0, 255), max_size=20).map(type_table))


@pytest.mark.usefixtures("compiled")
@settings(max_examples=500)
@given(
    st.lists(message, max_size=12).map(b"".join) | st.binary(max_size=200),
    st.integers(-2, 30),
    tables,
    st.sampled_from([3, 4, 20, 1 << 20, 1 << 30]),
    tables,
    st.integers(0, 64),
    st.booleans(),
    tables,
)
def test_the_twins_agree(
    data: bytes,
    pos: int,
    allowed: bytes | None,
    limit: int,
    small: bytes | None,
    small_limit: int,
    want_frames: bool,
    watch: bytes | None,
) -> None:
    frames_c: list[tuple[int, int, int]] | None = [] if want_frames else None
    frames_py: list[tuple[int, int, int]] | None = [] if want_frames else None
    got_c = framing.scan(data, pos, allowed, limit, small, small_limit, frames_c, watch)
    got_py = scan_py(data, pos, allowed, limit, small, small_limit, frames_py, watch)
    assert got_c == got_py
    assert frames_c == frames_py


@pytest.mark.usefixtures("compiled")
def test_the_compiled_twin_rejects_what_it_cannot_read() -> None:
    with pytest.raises(TypeError):
        framing.scan(bytearray(b"Q"), 0, None, 10, None, 0, None, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        framing.scan(b"Q", 0, b"short", 10, None, 0, None, None)
    with pytest.raises(TypeError):
        framing.scan(b"Q", 0, None, 10, None, 0, (), None)  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_count_sees_requests_and_terminate_across_any_split(impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if impl == "compiled":
        require_compiled()
    if impl == "python":
        monkeypatch.setattr(framing, "scan", scan_py)
    stream = b"".join(
        [m.build_query("SELECT 1"), m.build_parse("", "SELECT $1"), m.frame(b"B", b"\0" * 7), m.SYNC, m.TERMINATE]
    )
    for step in (len(stream), 1, 3, 7):
        framer = Framer(
            limit=1 << 20,
            allowed=FRONTEND_TYPES,
            small_types=FRONTEND_SMALL,
            small_limit=SMALL_MESSAGE_LIMIT,
            watch=frozenset(b"QSFX"),
        )
        total, forwarded, last_type = 0, b"", None
        for i in range(0, len(stream), step):
            chunk, watched, last = framer.count(stream[i : i + step])
            total += watched
            forwarded += chunk
            if watched:
                last_type = chunk[last - 5]
        assert forwarded == stream and framer.buffered == 0
        assert total == 3 and last_type == ord("X")  # Query, Sync, Terminate


def test_count_gives_the_last_ready_for_query_status() -> None:
    framer = Framer(limit=1 << 20, watch=frozenset(b"Z"))
    messages = [m.frame(b"C", b"BEGIN\0"), m.build_ready_for_query(b"T"), m.frame(b"C", b"COMMIT\0")]
    data = b"".join([*messages, m.build_ready_for_query(b"I")])
    chunk, ready, last = framer.count(data + b"Z\0\0")
    assert chunk == data and (ready, chunk[last : last + 1]) == (2, b"I")
    assert framer.count(b"\0\x05E") == (b"Z\0\0\0\x05E", 1, 5)


def test_count_rejects_bad_headers_like_feed() -> None:
    framer = Framer(limit=1 << 20, allowed=FRONTEND_TYPES, peer="frontend", watch=frozenset(b"Q"))
    with pytest.raises(ProtocolViolation, match="invalid frontend message type"):
        framer.count(m.build_query("SELECT 1") + b"R" + struct.pack("!i", 8) + b"\0" * 4)
    with pytest.raises(ProtocolViolation, match="invalid message length 3"):
        Framer(limit=1 << 20).count(b"Q" + struct.pack("!i", 3))

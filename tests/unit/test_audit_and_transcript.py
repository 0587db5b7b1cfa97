"""Audit line bounds, ``--since`` parsing, and the replay transcript fed whole and byte by byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from airlock.sessions_cli import Transcript, parse_since
from shared.pg.wire import messages as m
from shared.recording.audit import STATEMENT_LIMIT, AuditEvent, audit_key, bound_text
from shared.recording.format import Direction, Event, EventKind


def test_statement_text_is_bounded_on_a_character_boundary() -> None:
    text = "é" * STATEMENT_LIMIT  # 2 bytes each
    event = AuditEvent(time=datetime(2025, 1, 1, tzinfo=UTC), event="statement", session_id="s", statement=text)
    assert event.statement_truncated and len(event.statement.encode()) <= STATEMENT_LIMIT  # type: ignore[union-attr]
    doc = json.loads(event.line())
    assert doc["time"] == "2025-01-01T00:00:00.000000Z" and doc["statement_truncated"] is True
    assert bound_text("short", 10) == ("short", False)
    assert audit_key("2025-01-01", "p1", "abc", 7) == "audit/dt=2025-01-01/p1-abc-00000007.jsonl"


def test_parse_since() -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("2025-01-01", now) == datetime(2025, 1, 1, tzinfo=UTC)


def _events(split: int | None) -> list[Event]:
    agent = m.build_ssl_request() + m.build_startup_message(3 << 16, {"user": "u"}) + m.build_query("select 1")
    proxy = (
        b"S"
        + m.build_authentication(0)
        + m.build_row_description([m.Field("x", 0, 0, 23, 4, -1, 0)])
        + m.build_data_row([b"1"])
        + m.frame(b"C", b"SELECT 1\0")
    )
    out: list[Event] = []
    seq = 0
    for direction, data in (
        (Direction.AGENT_TO_PROXY, agent[:8]),
        (Direction.PROXY_TO_AGENT, proxy[:1]),
        (Direction.AGENT_TO_PROXY, agent[8:]),
        (Direction.PROXY_TO_AGENT, proxy[1:]),
    ):
        step = split or len(data)
        for i in range(0, len(data), step):
            out.append(Event(seq, seq * 1000, direction, EventKind.WIRE, data[i : i + step]))
            seq += 1
    return out


def test_transcript_whole_and_byte_by_byte() -> None:
    for split in (None, 1):
        t = Transcript()
        lines = [line.split("s ", 1)[1] for e in _events(split) for line in t.feed(e)]
        assert lines == [
            "→ SSLRequest",
            "← TLS accepted",
            "→ StartupMessage user=u",
            "→ Query: select 1",
            "← authenticated",
            "← SELECT 1: 1 row, columns (x)\n             | 1",
        ], split


def test_transcript_survives_garbage() -> None:
    t = Transcript()
    t.feed(Event(0, 0, Direction.AGENT_TO_PROXY, EventKind.WIRE, m.build_startup_message(3 << 16, {})))
    out = t.feed(Event(1, 1, Direction.AGENT_TO_PROXY, EventKind.WIRE, b"Q\xff\xff\xff\xff"))
    assert out and "undecodable" in out[0]
    assert t.feed(Event(2, 2, Direction.DECISION, EventKind.BLOCK, b'{"reason":"x"}')) == [
        '+    0.000s == BLOCK reason="x"'
    ]

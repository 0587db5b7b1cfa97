"""The per-statement audit path writes lines that are exactly what the AuditEvent schema says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.recording.audit import APPROVAL_FIELDS, STATEMENT_LIMIT, AuditEvent, StatementLines

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(
    statement=st.one_of(TEXT, st.text(min_size=STATEMENT_LIMIT // 4, max_size=STATEMENT_LIMIT + 50)),
    kind=st.one_of(st.none(), TEXT),
    decision=st.one_of(st.none(), st.sampled_from(["allow", "deny", "refuse"])),
    rows=st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    duration=st.one_of(st.none(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)),  # ns
    code=st.one_of(st.none(), st.sampled_from(["42501", "57014", "25P02"])),
    nanos=st.integers(min_value=0, max_value=10**9 - 1),
    identity=TEXT,
)
def test_statement_lines_equal_the_model(
    statement: str, kind: str | None, decision: str | None, rows: int | None, duration: int | None,
    code: str | None, nanos: int, identity: str,
) -> None:
    who = dict(session_id="ses_1", identity=identity, target="demo", database="d\u00e9mo", proxy_id="p1")
    lines = StatementLines(**who)
    second = int(datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC).timestamp())
    date, line = lines.line(second * 10**9 + nanos, statement, kind=kind, decision=decision, rows=rows,
                            duration_ns=duration, error_code=code)
    when = datetime(2026, 11, 24, 23, 59, 59, nanos // 1000, tzinfo=UTC)
    model = AuditEvent(time=when, event="statement", statement=statement, statement_kind=kind, decision=decision,
                       rows=rows, duration_ms=None if duration is None else duration / 1e6, error_code=code,
                       **who)
    assert date == model.date == "2026-11-24"
    assert AuditEvent.model_validate_json(line) == model
    assert json.loads(line) == json.loads(model.line())
    # The model's field order; the approval fields are written only on the decision lines that have them.
    assert list(json.loads(line)) == [f for f in AuditEvent.model_fields if f not in APPROVAL_FIELDS]


def test_statement_lines_follow_the_clock_across_midnight() -> None:
    lines = StatementLines(session_id="s", identity="i", target="t", database="d", proxy_id="p")
    midnight = int(datetime(2026, 11, 25, tzinfo=UTC).timestamp()) * 10**9
    before, _ = lines.line(midnight - 1, "SELECT 1", kind=None, decision=None, rows=None, duration_ns=None,
                           error_code=None)
    after, line = lines.line(midnight, "SELECT 1", kind=None, decision=None, rows=None, duration_ns=None,
                             error_code=None)
    assert (before, after) == ("2026-11-24", "2026-11-25")
    assert json.loads(line)["time"] == "2026-11-25T00:00:00.000000Z"


LINE = st.tuples(
    st.one_of(TEXT, st.text(min_size=STATEMENT_LIMIT // 4, max_size=STATEMENT_LIMIT + 50)),
    st.one_of(st.none(), st.sampled_from(["select", "delete", "ddl"])),
    st.one_of(st.none(), st.sampled_from(["allow", "deny"])),
    st.one_of(st.none(), st.sampled_from(["42501", "57014"])),
)


@given(st.lists(LINE, min_size=1, max_size=12))
def test_one_sessions_lines_each_equal_the_model(
    statements: list[tuple[str, str | None, str | None, str | None]],
) -> None:
    """The fragments a session remembers (kind, decision, truncation, error code) never leak into a line
    whose own values differ."""
    who = dict(session_id="ses_1", identity="ci", target="demo", database="demo", proxy_id="p1")
    lines = StatementLines(**who)
    start = int(datetime(2026, 11, 24, tzinfo=UTC).timestamp()) * 10**9
    for i, (statement, kind, decision, code) in enumerate(statements):
        _, line = lines.line(start + i * 1_000, statement, kind, decision, i, i * 7, code)
        model = AuditEvent(time=datetime(2026, 11, 24, 0, 0, 0, i, tzinfo=UTC), event="statement", statement=statement,
                           statement_kind=kind, decision=decision, rows=i, duration_ms=i * 7 / 1e6, error_code=code,
                           **who)
        assert AuditEvent.model_validate_json(line) == model

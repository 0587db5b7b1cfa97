"""The per-statement audit path writes lines that are exactly what the AuditEvent schema says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.recording.audit import STATEMENT_LIMIT, AuditEvent, StatementLines

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(
    statement=st.one_of(TEXT, st.text(min_size=STATEMENT_LIMIT // 4, max_size=STATEMENT_LIMIT + 50)),
    kind=st.one_of(st.none(), TEXT),
    decision=st.one_of(st.none(), st.sampled_from(["allow", "deny", "refuse"])),
    rows=st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    duration=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    code=st.one_of(st.none(), st.sampled_from(["42501", "57014", "25P02"])),
    nanos=st.integers(min_value=0, max_value=10**9 - 1),
    identity=TEXT,
)
def test_statement_lines_equal_the_model(
    statement: str, kind: str | None, decision: str | None, rows: int | None, duration: float | None,
    code: str | None, nanos: int, identity: str,
) -> None:
    who = dict(session_id="ses_1", identity=identity, target="demo", database="d\u00e9mo", proxy_id="p1")
    lines = StatementLines(**who)
    second = int(datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC).timestamp())
    date, line = lines.line(second * 10**9 + nanos, statement, kind=kind, decision=decision, rows=rows,
                            duration_ms=duration, error_code=code)
    when = datetime(2026, 11, 24, 23, 59, 59, nanos // 1000, tzinfo=UTC)
    model = AuditEvent(time=when, event="statement", statement=statement, statement_kind=kind, decision=decision,
                       rows=rows, duration_ms=duration, error_code=code, **who)
    assert date == model.date == "2026-11-24"
    assert AuditEvent.model_validate_json(line) == model
    assert json.loads(line) == json.loads(model.line())
    assert list(json.loads(line)) == list(AuditEvent.model_fields)  # the model's field order


def test_statement_lines_follow_the_clock_across_midnight() -> None:
    lines = StatementLines(session_id="s", identity="i", target="t", database="d", proxy_id="p")
    midnight = int(datetime(2026, 11, 25, tzinfo=UTC).timestamp()) * 10**9
    before, _ = lines.line(midnight - 1, "SELECT 1", kind=None, decision=None, rows=None, duration_ms=None,
                           error_code=None)
    after, line = lines.line(midnight, "SELECT 1", kind=None, decision=None, rows=None, duration_ms=None,
                             error_code=None)
    assert (before, after) == ("2026-11-24", "2026-11-25")
    assert json.loads(line)["time"] == "2026-11-25T00:00:00.000000Z"

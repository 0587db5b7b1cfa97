"""The per-statement audit path writes lines that are exactly what the AuditEvent schema says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.recording.audit import STATEMENT_LIMIT, AuditEvent, fast_line

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(
    statement=st.one_of(st.none(), TEXT, st.text(min_size=STATEMENT_LIMIT, max_size=STATEMENT_LIMIT + 50)),
    kind=st.one_of(st.none(), TEXT),
    rows=st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    duration=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    code=st.one_of(st.none(), st.sampled_from(["42501", "57014", "25P02"])),
    micros=st.integers(min_value=0, max_value=10**6 - 1),
)
def test_fast_line_equals_the_model(
    statement: str | None, kind: str | None, rows: int | None, duration: float | None, code: str | None, micros: int
) -> None:
    when = datetime(2026, 11, 24, 23, 59, 59, micros, tzinfo=UTC)
    fields = dict(event="statement", session_id="ses_1", identity="ci-nightly", target="demo", database="demo",
                  proxy_id="p1", statement=statement, statement_kind=kind, decision="allow", rows=rows,
                  duration_ms=duration, error_code=code)
    date, line = fast_line(when, **fields)
    model = AuditEvent(time=when, **fields)  # type: ignore[arg-type]
    assert date == model.date == "2026-11-24"
    assert AuditEvent.model_validate_json(line) == model
    assert json.loads(line) == json.loads(model.line())

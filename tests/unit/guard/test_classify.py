"""Corpus-driven classification tests: every entry of corpus.yaml is one test case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.pg.sql import PreparedStatements, StatementKind, classify
from shared.pg.sql.kinds import ClassifiedStatement

CORPUS: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "corpus.yaml").read_text())


def _tables(stmt: ClassifiedStatement) -> list[str]:
    return sorted(f"{t.qualified}:{t.access}" for t in stmt.tables)


@pytest.mark.parametrize("case", CORPUS, ids=[f"{i}:{c['sql'][:40]!r}" for i, c in enumerate(CORPUS)])
def test_corpus(case: dict[str, Any]) -> None:
    statements = classify(case["sql"])
    if "kinds" in case:
        assert [s.kind.value for s in statements] == case["kinds"]
        return
    if case["kind"] == "unknown" and len(statements) != 1:
        pytest.fail(f"expected one unknown statement, got {statements}")
    assert len(statements) == 1, statements
    stmt = statements[0]
    assert stmt.kind.value == case["kind"], (stmt.kind, stmt.error)
    assert stmt.kind in stmt.kinds
    for effect in case.get("effects", ()):
        assert StatementKind(effect) in stmt.kinds, sorted(stmt.kinds)
    for effect in case.get("not_effects", ()):
        assert StatementKind(effect) not in stmt.kinds, sorted(stmt.kinds)
    if "tables" in case:
        assert _tables(stmt) == sorted(case["tables"])
    for fn in case.get("functions", ()):
        assert fn in stmt.functions, stmt.functions


def test_corpus_is_large_and_covers_every_kind() -> None:
    assert len(CORPUS) >= 300
    seen = {c["kind"] for c in CORPUS if "kind" in c} | {k for c in CORPUS for k in c.get("kinds", ())}
    seen |= {e for c in CORPUS for e in c.get("effects", ())}
    assert seen >= {k.value for k in StatementKind}


def test_span_and_text_locate_each_statement() -> None:
    sql = "SELECT 1;  /* x */ DELETE FROM t WHERE id = 1;\nUPDATE t SET a = 2"
    first, second, third = classify(sql)
    assert sql[first.span[0] : first.span[1]].strip() == "SELECT 1" == first.text
    assert second.text == "DELETE FROM t WHERE id = 1"
    assert sql[second.span[0] : second.span[1]] == second.text
    assert third.text == "UPDATE t SET a = 2"


def test_span_counts_characters_not_bytes() -> None:
    sql = "SELECT 'héllo wörld'; DROP TABLE t"
    _, drop = classify(sql)
    assert sql[drop.span[0] : drop.span[1]] == "DROP TABLE t"


def test_labels_name_the_command() -> None:
    labels = [s.label for s in classify("DROP TABLE t; DROP VIEW v; SELECT 1 INTO x; DELETE FROM t; "
                                        "EXPLAIN ANALYZE SELECT 1; CREATE TABLE t (a int); DISCARD ALL")]
    assert labels == ["DROP TABLE", "DROP VIEW", "SELECT INTO", "DELETE", "EXPLAIN ANALYZE", "CREATE TABLE",
                      "DISCARD ALL"]


def test_copy_format_is_reported() -> None:
    fmts = [s.copy_format for s in classify("COPY t TO STDOUT; COPY t TO STDOUT (FORMAT csv); "
                                            "COPY t TO STDOUT WITH BINARY; COPY t TO STDOUT CSV; SELECT 1")]
    assert fmts == ["text", "csv", "binary", "csv", None]


def test_unknown_carries_the_parser_error() -> None:
    (stmt,) = classify("SELEC 1")
    assert stmt.kind is StatementKind.UNKNOWN and stmt.error and "syntax error" in stmt.error


# ---------------------------------------------------------------- prepared statements


def kinds_of(options: list[ClassifiedStatement]) -> list[frozenset[StatementKind]]:
    return [o.kinds for o in options]


def test_execute_gets_the_prepared_body_of_the_same_batch() -> None:
    session = PreparedStatements()
    prepare, execute = classify("PREPARE p AS DELETE FROM t; EXECUTE p")
    session.observe(prepare)
    (resolved,) = session.resolve_all(execute)  # same Query: if PREPARE failed, EXECUTE never runs
    assert resolved.kind is StatementKind.EXECUTE
    assert {StatementKind.DELETE, StatementKind.DELETE_NO_WHERE} <= resolved.kinds
    assert StatementKind.UNKNOWN not in resolved.kinds
    assert [t.qualified for t in resolved.tables] == ["t"]


def test_execute_of_an_unknown_name_is_unknown() -> None:
    (execute,) = classify("EXECUTE nope")
    (resolved,) = PreparedStatements().resolve_all(execute)
    assert StatementKind.UNKNOWN in resolved.kinds and resolved.error


def test_a_pending_change_of_an_earlier_batch_may_or_may_not_have_happened() -> None:
    session = PreparedStatements()
    session.confirm(session.observe(classify("PREPARE p AS DELETE FROM t WHERE id = 1")[0]))
    session.new_batch()
    attempt = session.observe(classify("PREPARE p AS SELECT 1")[0])  # the server refuses: p exists
    session.new_batch()
    (execute,) = classify("EXECUTE p")
    options = session.resolve_all(execute)
    assert len(options) == 2 and any(StatementKind.DELETE in k for k in kinds_of(options))
    session.drop(attempt)  # the refusal arrives
    (only,) = session.resolve_all(execute)
    assert StatementKind.DELETE in only.kinds


def test_deallocate_and_discard_forget_once_confirmed() -> None:
    session = PreparedStatements()
    for stmt in classify("PREPARE a AS SELECT 1; PREPARE b AS SELECT 2"):
        session.confirm(session.observe(stmt))
    assert set(session.confirmed) == {"a", "b"}
    change = session.observe(classify("DEALLOCATE a")[0])
    assert "a" in session.confirmed  # not before the server says so
    session.confirm(change)
    assert set(session.confirmed) == {"b"}
    session.confirm(session.observe(classify("DEALLOCATE ALL")[0]))
    assert not session.confirmed
    session.confirm(session.observe(classify("PREPARE c AS SELECT 1")[0]))
    session.confirm(session.observe(classify("DISCARD ALL")[0]))
    assert not session.confirmed


def test_explain_analyze_execute_resolves() -> None:
    session = PreparedStatements()
    session.confirm(session.observe(classify("PREPARE p AS UPDATE t SET a = 1 WHERE id = 2")[0]))
    (stmt,) = classify("EXPLAIN ANALYZE EXECUTE p")
    (resolved,) = session.resolve_all(stmt)
    assert StatementKind.UPDATE in resolved.kinds and StatementKind.UNKNOWN not in resolved.kinds
    (plain,) = classify("EXPLAIN EXECUTE p")
    assert StatementKind.UPDATE not in session.resolve_all(plain)[0].kinds


def test_protocol_parse_and_sql_execute_share_one_namespace() -> None:
    session = PreparedStatements()
    session.confirm(session.track_parse("s2", classify("DROP TABLE t")[0]))
    (resolved,) = session.resolve_all(classify("EXECUTE s2")[0])
    assert StatementKind.DROP in resolved.kinds

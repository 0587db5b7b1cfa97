"""The Athena side of ``airlock audit query`` and the named queries' contract.

Athena cannot run here (the local AWS endpoint's Athena speaks a protocol botocore no longer uses), so
the engine's start / poll / page logic is driven by botocore's Stubber: a stand-in for Athena's API,
named as such, answering with the documented response shapes. The SQL itself is tested on DuckDB against
real sessions (tests/integration/test_audit_query.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from airlock.audit.athena import AthenaEngine
from airlock.audit.local import duckdb_type
from airlock.audit.queries import NamedQuery, QueryError, from_template
from airlock.audit.results import QueryResult, render
from airlock.devstack.template import load_template
from shared.recording.audit import AuditEvent

ROOT = Path(__file__).resolve().parents[2]
QUERIES = from_template(ROOT / "template.yaml")
RESOURCES = load_template(ROOT / "template.yaml")["Resources"]


def _glue_columns(table: str) -> dict[str, str]:
    (resource,) = [r for r in RESOURCES.values() if r["Type"] == "AWS::Glue::Table"
                   and r["Properties"]["TableInput"]["Name"] == table]
    return {c["Name"]: c["Type"] for c in resource["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]}


def test_the_issue_names_seven_named_queries() -> None:
    assert sorted(QUERIES) == ["connections_after_revocation", "denied_and_held_statements", "incomplete_sessions",
                               "masked_values_by_detector", "recordings_failing_verification",
                               "sessions_touching_table", "statements_by_identity"]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_named_query_parameters_match_its_placeholders(name: str) -> None:
    query = QUERIES[name]
    assert query.parameters, f"{name}: its description must end with 'Parameters - ...'"
    assert query.sql.count("?") == len(query.parameters)
    # Every placeholder is cast: Athena substitutes execution parameters as literals, DuckDB binds values.
    assert query.sql.count("CAST(? AS VARCHAR)") == len(query.parameters)
    # Reserved words are quoted wherever they are columns.
    assert not re.search(r'(?<!["\w])(time|database|rows)(?!["\w])', re.sub(r"'[^']*'", "", query.sql)), name
    documented = (ROOT / "docs" / "audit-events.md").read_text()
    assert f"`{name}`" in documented


def test_binding_checks_names() -> None:
    query = QUERIES["statements_by_identity"]
    assert query.bind({"to_date": "b", "identity": "x", "from_date": "a"}) == ["x", "a", "b"]
    with pytest.raises(QueryError, match="missing"):
        query.bind({"identity": "x"})
    with pytest.raises(QueryError, match="unknown"):
        query.bind({"identity": "x", "from_date": "a", "to_date": "b", "extra": "y"})


def test_events_table_has_the_audit_lines_columns() -> None:
    assert list(_glue_columns("airlock_events")) == list(AuditEvent.model_fields)


def test_sessions_table_reads_the_manifest_fields() -> None:
    columns = _glue_columns("airlock_sessions")
    session = duckdb_type(columns["session"])
    for key in ("session_id", "identity", "target", "database", "started_at", "ended_at", "status", "proxy_id"):
        assert f'"{key}" VARCHAR' in session
    assert duckdb_type(columns["chunks"]).endswith("[]")
    assert duckdb_type("struct<a:string,b:array<struct<c:bigint>>>") == 'STRUCT("a" VARCHAR, "b" STRUCT("c" BIGINT)[])'


def _engine() -> tuple[AthenaEngine, Stubber]:
    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return AthenaEngine("wg", "airlock_audit", client, sleep=lambda _: None), Stubber(client)


def _page(rows: list[list[str | None]], columns: list[tuple[str, str]], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"ResultSet": {
        "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
        "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": t} for n, t in columns]},
    }}
    if token:
        page["NextToken"] = token
    return page


def test_athena_start_poll_page() -> None:
    engine, stub = _engine()
    columns = [("identity", "varchar"), ("n", "bigint"), ("ok", "boolean"), ("ms", "double")]
    stub.add_response("start_query_execution", {"QueryExecutionId": "q1"}, {
        "QueryString": "SELECT ...", "WorkGroup": "wg", "QueryExecutionContext": {"Database": "airlock_audit"},
        "ExecutionParameters": ["'ci-nightly'", "'it''s'"],
    })
    for state in ("QUEUED", "RUNNING", "SUCCEEDED"):
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": state}}},
                          {"QueryExecutionId": "q1"})
    stub.add_response("get_query_results",
                      _page([["identity", "n", "ok", "ms"], ["ci-nightly", "3", "true", "1.5"]], columns, "t2"),
                      {"QueryExecutionId": "q1"})
    stub.add_response("get_query_results", _page([["contractor", None, "false", None]], columns),
                      {"QueryExecutionId": "q1", "NextToken": "t2"})
    with stub:
        result = engine.run("SELECT ...", ["ci-nightly", "it's"])
    stub.assert_no_pending_responses()
    assert result == QueryResult(["identity", "n", "ok", "ms"], [["ci-nightly", 3, True, 1.5],
                                                                 ["contractor", None, False, None]])


def test_athena_failure_is_reported() -> None:
    engine, stub = _engine()
    stub.add_response("start_query_execution", {"QueryExecutionId": "q2"}, None)
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {
        "State": "FAILED", "StateChangeReason": "COLUMN_NOT_FOUND: line 1:8: Column 'nonsense' cannot be resolved"}}},
        {"QueryExecutionId": "q2"})
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q2"})
    with stub, pytest.raises(QueryError, match="nonsense"):
        engine.run("SELECT nonsense FROM airlock_events")


def test_athena_timeout_stops_the_query() -> None:
    engine, stub = _engine()
    engine.timeout = -1
    stub.add_response("start_query_execution", {"QueryExecutionId": "q3"}, None)
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "RUNNING"}}}, None)
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q3"})
    with stub, pytest.raises(QueryError, match="stopped"):
        engine.run("SELECT 1")
    stub.assert_no_pending_responses()


def test_athena_named_queries_come_from_the_workgroup() -> None:
    engine, stub = _engine()
    stub.add_response("list_named_queries", {"NamedQueryIds": ["id1"]}, {"WorkGroup": "wg"})
    stub.add_response("batch_get_named_query", {"NamedQueries": [{
        "Name": "statements_by_identity", "Description": "x. Parameters - identity, from_date, to_date.",
        "Database": "airlock_audit", "QueryString": "SELECT 1", "NamedQueryId": "id1"}],
        "UnprocessedNamedQueryIds": []}, {"NamedQueryIds": ["id1"]})
    with stub:
        found = engine.named_queries()
    assert found == {"statements_by_identity": NamedQuery("statements_by_identity",
                                                          "x. Parameters - identity, from_date, to_date.", "SELECT 1")}
    assert found["statements_by_identity"].parameters == ("identity", "from_date", "to_date")


def test_render_formats() -> None:
    result = QueryResult(["a", "b"], [[1, None], ["x,y", "z"]])
    assert render(result, "csv") == 'a,b\n1,\n"x,y",z\n'
    assert render(result, "json").startswith('[\n  {\n    "a": 1,\n    "b": null')
    assert render(result, "table").splitlines() == ["a   | b", "----+--", "1   |", "x,y | z", "(2 rows)"]

"""Queries on Athena: start in the audit workgroup, poll until done, page through the results.

The workgroup enforces its result location and encryption, so the request names only the workgroup and
the database. Parameters go as Athena execution parameters (positional, substituted as SQL literals:
every value is passed as a quoted string; the named queries cast them). A query still running at the
timeout, or interrupted, is stopped rather than left to run up a bill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .queries import NamedQuery, QueryError
from .results import QueryResult

_CONVERT: dict[str, Callable[[str], Any]] = {
    "tinyint": int, "smallint": int, "integer": int, "bigint": int, "double": float, "float": float,
    "real": float, "boolean": lambda v: v.lower() == "true",
}  # fmt: skip


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class AthenaEngine:
    workgroup: str
    database: str
    client: Any = None
    timeout: float = 600.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def athena_client(self) -> Any:
        if self.client is None:
            import boto3

            self.client = boto3.client("athena")
        return self.client

    def named_queries(self) -> dict[str, NamedQuery]:
        """The workgroup's named queries, by name."""
        client = self.athena_client()
        ids = [i for page in client.get_paginator("list_named_queries").paginate(WorkGroup=self.workgroup)
               for i in page.get("NamedQueryIds", [])]
        found = {}
        for start in range(0, len(ids), 50):  # BatchGetNamedQuery takes 50 ids at most
            for q in client.batch_get_named_query(NamedQueryIds=ids[start : start + 50])["NamedQueries"]:
                found[q["Name"]] = NamedQuery(q["Name"], q.get("Description", ""), q["QueryString"])
        return found

    def run(self, sql: str, parameters: list[str] | None = None) -> QueryResult:
        client = self.athena_client()
        request: dict[str, Any] = {
            "QueryString": sql,
            "WorkGroup": self.workgroup,
            "QueryExecutionContext": {"Database": self.database},
        }
        if parameters:
            request["ExecutionParameters"] = [sql_literal(p) for p in parameters]
        query_id = client.start_query_execution(**request)["QueryExecutionId"]
        try:
            self._wait(client, query_id)
        except BaseException:
            client.stop_query_execution(QueryExecutionId=query_id)
            raise
        return self._results(client, query_id)

    def _wait(self, client: Any, query_id: str) -> None:
        deadline, delay = time.monotonic() + self.timeout, 0.2
        while True:
            status = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state in ("FAILED", "CANCELLED"):
                raise QueryError(f"Athena query {query_id} {state.lower()}: {status.get('StateChangeReason', '')}")
            if time.monotonic() > deadline:
                raise QueryError(f"Athena query {query_id} still {state.lower()} after {self.timeout:g}s; stopped")
            self.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def _results(self, client: Any, query_id: str) -> QueryResult:
        columns: list[str] = []
        types: list[str] = []
        rows: list[list[Any]] = []
        for page in client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            result = page["ResultSet"]
            if not columns:
                info = result["ResultSetMetadata"]["ColumnInfo"]
                columns, types = [c["Name"] for c in info], [c["Type"].lower() for c in info]
            for row in result.get("Rows", []):
                values = [d.get("VarCharValue") for d in row["Data"]]
                if not rows and values == columns:
                    continue  # a SELECT's first row repeats the column names
                pairs = zip(values, types, strict=True)
                rows.append([None if v is None else _CONVERT.get(t, str)(v) for v, t in pairs])
        return QueryResult(columns, rows)


def query_athena(workgroup: str, database: str, sql: str | None, named: str | None,
                 params: dict[str, str]) -> QueryResult:
    """What ``airlock audit query`` does in AWS (and what the auditor role is granted for)."""
    engine = AthenaEngine(workgroup, database)
    if named is None:
        assert sql is not None
        return engine.run(sql, list(params.values()) or None)
    queries = engine.named_queries()
    if named not in queries:
        raise QueryError(f"no named query {named!r} in workgroup {workgroup}; there are {sorted(queries)}")
    query = queries[named]
    return engine.run(query.sql, query.bind(params))

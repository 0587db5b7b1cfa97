"""``airlock audit query "SQL"`` and ``airlock audit query --named NAME [--param k=v ...]``.

Where it runs: ``--engine athena`` (AWS: the stack's workgroup and Glue database), ``--engine duckdb``
(the local stack: DuckDB over the same S3 objects), or ``auto`` (the default): DuckDB when boto3 is
pointed at a local endpoint (``AWS_ENDPOINT_URL``, which a running local stack provides), else Athena.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .queries import QueryError, from_template, parse_params
from .results import QueryResult, render

DEFAULT_WORKGROUP = os.environ.get("AIRLOCK_AUDIT_WORKGROUP", "airlock-audit")
DEFAULT_DATABASE = os.environ.get("AIRLOCK_AUDIT_DATABASE", "airlock_audit")


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="audit lines and sessions, in SQL").add_subparsers(
        dest="audit_command", required=True
    )
    query = audit.add_parser("query", help='run SQL ("SELECT ...") or a named query on the audit tables')
    query.add_argument("sql", nargs="?", help="a query on airlock_events and airlock_sessions")
    query.add_argument("--named", metavar="NAME", help="a named query (--list shows them)")
    query.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a named query's parameter")
    query.add_argument("--list", action="store_true", help="list the named queries and their parameters")
    query.add_argument("--format", choices=["table", "json", "csv"], default="table")
    query.add_argument("--engine", choices=["auto", "athena", "duckdb"], default="auto")
    query.add_argument("--workgroup", default=DEFAULT_WORKGROUP, help="Athena workgroup (AuditWorkGroupName output)")
    query.add_argument("--database", default=DEFAULT_DATABASE, help="Glue database (AuditDatabaseName output)")
    query.set_defaults(func=audit_query)


def audit_query(args: argparse.Namespace) -> None:
    from ..environment import use_local_stack

    use_local_stack(args.state_dir)
    engine = args.engine
    if engine == "auto":
        engine = "duckdb" if os.environ.get("AWS_ENDPOINT_URL") else "athena"
    try:
        if args.list:
            print(_list_named(engine, args), end="")
            return
        if (args.sql is None) == (args.named is None):
            sys.exit('airlock audit query: give either SQL or --named NAME')
        params = parse_params(args.param)
        if args.named is None and params:
            sys.exit("airlock audit query: --param goes with --named")
        result = _run(engine, args, params)
    except QueryError as e:
        sys.exit(f"airlock audit query: {e}")
    print(render(result, args.format), end="")


def _run(engine: str, args: argparse.Namespace, params: dict[str, str]) -> QueryResult:
    if engine == "athena":
        from .athena import query_athena

        return query_athena(args.workgroup, args.database, args.sql, args.named, params)
    from airlock.devstack.stack import TEMPLATE

    from .local import DuckDbEngine

    local = DuckDbEngine(args.database)
    if args.named is None:
        return local.run(args.sql)
    queries = from_template(TEMPLATE)
    if args.named not in queries:
        raise QueryError(f"no named query {args.named!r}; there are {sorted(queries)}")
    query = queries[args.named]
    return local.run(query.sql, query.bind(params))


def _list_named(engine: str, args: argparse.Namespace) -> str:
    if engine == "athena":
        from .athena import AthenaEngine

        queries = AthenaEngine(args.workgroup, args.database).named_queries()
    else:
        from airlock.devstack.stack import TEMPLATE

        queries = from_template(TEMPLATE)
    rows = [[q.name, " ".join(f"--param {p}=..." for p in q.parameters), q.description] for q in queries.values()]
    return render(QueryResult(["name", "parameters", "description"], sorted(rows)), "table")

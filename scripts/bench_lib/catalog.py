"""The standard workloads and routes. A new variant to measure is one more entry here."""

from __future__ import annotations

from .model import Route, Workload
from .pgbouncer import PgBouncer
from .target import AirlockStack, TargetDatabase

ROWS_QUERY = "SELECT * FROM customers LIMIT 1000 OFFSET {offset}"

WORKLOADS: tuple[Workload, ...] = (
    Workload("select-simple", ("-S", "-M", "simple"),
             "pgbench built-in select-only: one primary-key lookup per transaction, simple query protocol"),
    Workload("select-extended", ("-S", "-M", "extended"),
             "the same lookup with the extended protocol (Parse/Bind/Describe/Execute/Sync, unnamed statement)"),
    Workload("tpcb", ("-b", "tpcb-like"), resets_tables=True,
             description="pgbench built-in TPC-B-like: BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction"),
    Workload("rows-1000", (), script="\\set off random(0, 9000)\n" + ROWS_QUERY.format(offset=":off") + ";\n",
             payload_queries=tuple(ROWS_QUERY.format(offset=o) for o in (0, 3000, 6000, 9000)),
             description="custom script: 1000 rows of customers (6 columns) per query; bulk result throughput"),
    Workload("connect-select", ("-S", "-C"),
             "select-only with a new connection per transaction (-C): connection setup and auth cost"),
)  # fmt: skip

# The same on every route, so no route pays for a round trip the others skip (no GSSAPI probe).
_COMMON = {"gssencmode": "disable", "application_name": "airlock-bench"}


def direct_route(target: TargetDatabase) -> Route:
    return Route(
        "direct",
        {**target.conninfo(), "sslmode": "disable", **_COMMON},
        {"PGPASSWORD": target.password},
        f"PostgreSQL itself, plain TCP, as {target.user}",
    )


def airlock_route(stack: AirlockStack, identity: str, token: str, name: str = "airlock") -> Route:
    conninfo = {"host": stack.proxy_host, "port": str(stack.proxy_port), "dbname": stack.database,
                "user": identity, "sslmode": "require", **_COMMON}  # fmt: skip
    return Route(name, conninfo, {"PGPASSWORD": token},
                 f"Airlock proxy, TLS, as {identity} (token as password)", stack.proxy_log)  # fmt: skip


def pgbouncer_route(bouncer: PgBouncer) -> Route:
    upstream = bouncer.upstream
    conninfo = {"host": "127.0.0.1", "port": str(bouncer.port), "dbname": upstream.database,
                "user": upstream.user, "sslmode": "require", **_COMMON}  # fmt: skip
    return Route("pgbouncer", conninfo, {"PGPASSWORD": upstream.password},
                 "pgbouncer, session pooling, client TLS required, SCRAM, plain TCP to PostgreSQL",
                 bouncer.log_file)  # fmt: skip

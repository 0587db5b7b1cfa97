"""The standard workloads and routes. A new variant to measure is one more entry here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .model import Route, Workload
from .pgbouncer import PgBouncer
from .target import AirlockStack, TargetDatabase

ROWS_QUERY = "SELECT * FROM customers LIMIT 1000 OFFSET {offset}"
CLEAN_ROWS_QUERY = "SELECT * FROM orders LIMIT 1000 OFFSET {offset}"
_OFFSETS = (0, 3000, 6000, 9000)

WORKLOADS: tuple[Workload, ...] = (
    Workload("select-simple", ("-S", "-M", "simple"),
             "pgbench built-in select-only: one primary-key lookup per transaction, simple query protocol"),
    Workload("select-extended", ("-S", "-M", "extended"),
             "the same lookup with the extended protocol (Parse/Bind/Describe/Execute/Sync, unnamed statement)"),
    Workload("tpcb", ("-b", "tpcb-like"), resets_tables=True,
             description="pgbench built-in TPC-B-like: BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction"),
    Workload("rows-1000", (), script="\\set off random(0, 9000)\n" + ROWS_QUERY.format(offset=":off") + ";\n",
             payload_queries=tuple(ROWS_QUERY.format(offset=o) for o in _OFFSETS),
             description="custom script: 1000 rows of customers (6 columns) per query; bulk result throughput; "
                         "every row holds a card number, an SSN and an e-mail (masked by the demo policy)"),
    Workload("rows-1000-clean", (),
             script="\\set off random(0, 9000)\n" + CLEAN_ROWS_QUERY.format(offset=":off") + ";\n",
             payload_queries=tuple(CLEAN_ROWS_QUERY.format(offset=o) for o in _OFFSETS),
             description="custom script: 1000 rows of orders (5 columns, no sensitive values) per query: "
                         "bulk result throughput where masking scans but finds nothing"),
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
        in_path=False,
    )


def airlock_route(
    stack: AirlockStack,
    identity: str,
    token: str,
    name: str = "airlock",
    *,
    port: int | None = None,
    log_file: Path | None = None,
    description: str | None = None,
) -> Route:
    """Through an Airlock proxy: the stack's own, or another one joined to it on ``port``."""
    conninfo = {"host": stack.proxy_host, "port": str(port or stack.proxy_port), "dbname": stack.database,
                "user": identity, "sslmode": "require", **_COMMON}  # fmt: skip
    about = f"Airlock proxy, TLS, as {identity} (token as password)" + (f": {description}" if description else "")
    return Route(name, conninfo, {"PGPASSWORD": token}, about, log_file or stack.proxy_log)


def pgbouncer_route(bouncer: PgBouncer) -> Route:
    upstream = bouncer.upstream
    conninfo = {"host": "127.0.0.1", "port": str(bouncer.port), "dbname": upstream.database,
                "user": upstream.user, "sslmode": "require", **_COMMON}  # fmt: skip
    return Route("pgbouncer", conninfo, {"PGPASSWORD": upstream.password},
                 "pgbouncer, session pooling, client TLS required, SCRAM, plain TCP to PostgreSQL",
                 bouncer.log_file)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AirlockVariant:
    """An Airlock route: which proxy (the stack's own, or an extra one with ``switches``) and who connects.

    ``identity`` None means the harness's ``--identity`` (ci-nightly, buffered recording);
    ``strict_identity`` means the one whose binding records strictly (``--strict-identity``).
    """

    name: str
    description: str
    switches: dict[str, str] = field(default_factory=dict)  # empty: the stack's own proxy
    strict_identity: bool = False

    @property
    def extra_proxy(self) -> bool:
        return bool(self.switches)


_OFF = "1"
AIRLOCK_VARIANTS: tuple[AirlockVariant, ...] = (
    AirlockVariant("airlock", "the stack's proxy as deployed: recording (buffered) + guardrails + masking"),
    AirlockVariant("airlock-norec", "extra proxy, recording disabled; guardrails + masking on",
                   {"AIRLOCK_PROXY_DISABLE_RECORDING": _OFF}),
    AirlockVariant("airlock-nomask", "extra proxy, masking disabled; recording (buffered) + guardrails on",
                   {"AIRLOCK_PROXY_DISABLE_MASKING": _OFF}),
    AirlockVariant("airlock-passthrough", "extra proxy, recording, guardrails and masking all disabled",
                   {"AIRLOCK_PROXY_DISABLE_RECORDING": _OFF, "AIRLOCK_PROXY_DISABLE_GUARDRAILS": _OFF,
                    "AIRLOCK_PROXY_DISABLE_MASKING": _OFF}),
    AirlockVariant("airlock-strict", "the stack's proxy as an identity with strict recording; guardrails + "
                   "masking on", strict_identity=True),
)  # fmt: skip
ROUTE_NAMES: tuple[str, ...] = ("direct", "pgbouncer", *(v.name for v in AIRLOCK_VARIANTS))

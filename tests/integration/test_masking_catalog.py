"""The masking catalog's side connection against the real target: what it reads, and failing closed."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

import psycopg
import pytest

from airlock.devstack.stack import free_port
from proxy.credentials import BackendCredential
from proxy.pg.catalog import TargetCatalog
from shared.controlplane import BackendRef, BackendTLS
from shared.masking.rules import MaskAction
from shared.pg.masking.lineage import LineageAnalyzer
from tests.integration.stack import AirlockStack


def target(stack: AirlockStack, port: int | None = None) -> tuple[BackendRef, BackendCredential]:
    dsn = urlparse(stack.target_dsn)
    ref = BackendRef(host="127.0.0.1", port=port or int(stack.info["target"]["port"]), database="demo",
                     credential_secret="unused", tls=BackendTLS.DISABLE)
    return ref, BackendCredential(dsn.username or "", dsn.password or "")


def catalog_for(stack: AirlockStack, port: int | None = None, ttl: float = 30) -> TargetCatalog:
    ref, credential = target(stack, port)

    async def get() -> BackendCredential:
        return credential

    return TargetCatalog(ref, get, ttl=ttl, timeout=5, max_message=1 << 26)


def test_the_catalog_holds_relations_columns_and_qualified_view_definitions(stack: AirlockStack) -> None:
    with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
        admin.execute("CREATE OR REPLACE VIEW catalog_probe AS SELECT id, ssn AS x FROM customers")
        admin.execute("CREATE OR REPLACE FUNCTION public.reverse(x int) RETURNS int LANGUAGE sql AS 'SELECT x'")

    async def run() -> None:
        catalog = catalog_for(stack)
        try:
            await catalog.refresh()
            snapshot = catalog.snapshot
            assert snapshot is not None and not catalog.stale()
            [customers] = snapshot.named(None, "customers")
            assert [a.name for a in customers.columns] == ["id", "name", "email", "ssn", "card_number", "created_at"]
            [probe] = snapshot.named("public", "catalog_probe")
            assert probe.kind == "v" and probe.definition is not None and "public.customers" in probe.definition
            assert snapshot.named(None, "pg_class")[0].system
            assert snapshot.shadows("reverse"), "a user function can shadow a built-in of the same name"
            analyzer = LineageAnalyzer(snapshot, lambda name: MaskAction.REDACT if name == "ssn" else None)
            outputs = analyzer.outputs("SELECT x FROM catalog_probe")
            assert outputs is not None and outputs[0].flow.sources == {"ssn"}
            generation = snapshot.generation
            catalog.invalidate()
            assert catalog.stale()
            await catalog.refresh()
            assert catalog.snapshot is not None and catalog.snapshot.generation == generation + 1
        finally:
            await catalog.close()

    try:
        asyncio.run(run())
    finally:
        with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
            admin.execute("DROP VIEW catalog_probe")
            admin.execute("DROP FUNCTION public.reverse(int)")


def test_an_unreadable_catalog_fails_closed_and_is_retried(stack: AirlockStack) -> None:
    async def run() -> None:
        catalog = catalog_for(stack, port=free_port())  # nothing listens there
        try:
            started = time.monotonic()
            await catalog.refresh()
            assert catalog.snapshot is None, "no catalog: lineage through relations is unknown"
            assert not catalog.stale(), "a failed read is not retried at once"
            await asyncio.sleep(1.1)
            assert catalog.stale() and time.monotonic() - started < 10
        finally:
            await catalog.close()

    asyncio.run(run())


@pytest.mark.parametrize("sql", ["SELECT ssn AS x FROM customers ORDER BY id LIMIT 3"])
def test_a_session_waits_for_a_stale_catalog_rather_than_guess(stack: AirlockStack, sql: str) -> None:
    """A relation made behind the proxy's back is found on its first use through the proxy."""
    with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS late_table AS SELECT id, ssn AS hidden FROM customers LIMIT 3")
        admin.execute("CREATE OR REPLACE VIEW late_view AS SELECT id, hidden AS ssn, hidden FROM late_table")
        admin.execute("GRANT ALL ON late_table, late_view TO airlock_app")
    try:
        with psycopg.connect(stack.conninfo()) as conn:
            rows = conn.execute("SELECT ssn AS a, hidden AS b FROM late_view ORDER BY id").fetchall()
        assert [r[0] for r in rows] == ["****"] * 3, "the view's ssn column is covered, whatever it is called"
    finally:
        with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
            admin.execute("DROP VIEW late_view")
            admin.execute("DROP TABLE late_table")

"""Guardrails on the real wire: PostgreSQL's grammar decides, the backend never sees a blocked statement."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
import psycopg
import pytest
from psycopg import pq

from tests.integration.stack import AirlockStack, eventually


def count(stack: AirlockStack, sql: str) -> int:
    with psycopg.connect(stack.target_dsn) as direct:
        row = direct.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def test_psql_cannot_drop_customers(stack: AirlockStack) -> None:
    out = subprocess.run(["psql", "-X", stack.conninfo(), "-c", "DROP TABLE customers"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert 'Airlock denied DROP TABLE: rule "no-destructive-ddl"' in out.stderr
    assert count(stack, "SELECT count(*) FROM customers") == 10000


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("DELETE FROM orders", "no-unbounded-writes"),
        ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone", "no-unbounded-writes"),
        ("SELECT pg_catalog.pg_terminate_backend(pg_backend_pid())", "no-server-side-effects"),
        ("select * from customers; drop table CUSTOMERS", "no-destructive-ddl"),
        ("/* harmless */ TRUNCATE orders", "no-destructive-ddl"),
        ("SET ROLE postgres", "no-server-side-effects"),
        ("SELECT set_config('role', 'postgres', false)", "no-server-side-effects"),
        ("COPY (SELECT 1) TO PROGRAM 'id'", "no-server-side-effects"),
        ("EXPLAIN ANALYZE DELETE FROM orders", "no-unbounded-writes"),
    ],
)
def test_denied_statements_simple_and_extended(stack: AirlockStack, sql: str, rule: str) -> None:
    several = ";" in sql.rstrip(";")
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        # Simple protocol, then extended (Parse/Bind/Execute; a Parse may hold only one statement).
        for prepare in (False,) if several else (False, True):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                conn.execute(sql, prepare=prepare) if prepare else conn.cursor().execute(sql.encode())
            assert f'rule "{rule}"' in str(info.value)
            assert conn.execute("SELECT 1").fetchone() == (1,)  # the session continues
    assert count(stack, "SELECT count(*) FROM orders") == 50000
    assert count(stack, "SELECT count(*) FROM customers") == 10000


def test_multi_statement_string_runs_nothing_when_one_part_is_denied(stack: AirlockStack) -> None:
    marker = "guardrail-multi"
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"UPDATE orders SET status = '{marker}' WHERE id = 1; DROP TABLE customers".encode())
    assert count(stack, f"SELECT count(*) FROM orders WHERE status = '{marker}'") == 0


def test_denial_inside_a_transaction_block_matches_a_server_error(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo()) as conn:
        conn.execute("UPDATE orders SET status = 'in-tx' WHERE id = 2")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE customers")
        assert conn.info.transaction_status == pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):  # 25P02 until ROLLBACK
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT status <> 'in-tx' FROM orders WHERE id = 2").fetchone() == (True,)


def test_psql_transaction_state_after_denial(stack: AirlockStack) -> None:
    script = "BEGIN;\nSELECT 1 AS one;\nDROP TABLE customers;\nSELECT 2 AS two;\nROLLBACK;\nSELECT 3 AS three;\n"
    out = subprocess.run(["psql", "-X", stack.conninfo()], input=script, capture_output=True, text=True, timeout=60)
    assert "Airlock denied DROP TABLE" in out.stderr
    assert "current transaction is aborted" in out.stderr
    assert "three" in out.stdout and "two" not in out.stdout


def test_pipeline_with_a_denied_statement(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            first = conn.execute("SELECT 10")
            conn.execute("TRUNCATE customers")
            conn.execute("SELECT 30")
        assert first.fetchone() == (10,)
        assert conn.execute("SELECT 40").fetchone() == (40,)
    assert count(stack, "SELECT count(*) FROM customers") == 10000


def test_asyncpg_prepare_of_a_denied_statement(stack: AirlockStack) -> None:
    async def run() -> str:
        conn = await asyncpg.connect(
            f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo", ssl="require")
        try:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as info:
                await conn.prepare("DELETE FROM customers")
            value = await conn.fetchval("SELECT count(*) FROM customers WHERE id < $1", 100)
            assert value == 99
            return str(info.value)
        finally:
            await conn.close()

    assert "no-unbounded-writes" in asyncio.run(run())


def test_sql_prepare_execute_is_judged_by_its_body(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.execute(b"PREPARE wipe AS DELETE FROM orders")  # preparing is harmless...
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(b"EXECUTE wipe")  # ...executing it is judged as the DELETE it is
    assert count(stack, "SELECT count(*) FROM orders") == 50000


def test_unparseable_statement_is_denied_as_unknown_with_the_servers_sqlstate(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as info:  # 42601, as the server would say
            conn.execute(b"SELEC * FORM customers")
        assert "could not establish" in str(info.value) and 'syntax error at or near "SELEC"' in str(info.value)
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):  # 26000, as the server would say
            conn.execute(b"EXECUTE never_prepared")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a policy refusal stays 42501
            conn.execute(b"DROP TABLE customers")


def _truncate_allowed(stack: AirlockStack) -> bool:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE scratch (x int)")
        conn.execute("INSERT INTO scratch VALUES (1)")
        try:
            conn.execute("TRUNCATE scratch")
        except psycopg.errors.InsufficientPrivilege:
            return False
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)
        return True


def test_dry_run_records_but_does_not_block(stack: AirlockStack, tmp_path: Path) -> None:
    policy = (stack.state_dir / "policy.yaml").read_text()
    dry = tmp_path / "dry.yaml"
    dry.write_text(policy.replace("  dry_run: false", "  dry_run: true"))
    stack.cli("policy", "push", str(dry))
    try:
        assert eventually(lambda: _truncate_allowed(stack))  # would be denied; dry run lets it through
        assert "statement deny (dry run) by rule no-destructive-ddl" in stack.proxy_log()
    finally:
        stack.cli("policy", "push", str(stack.state_dir / "policy.yaml"))
        assert eventually(lambda: not _truncate_allowed(stack))

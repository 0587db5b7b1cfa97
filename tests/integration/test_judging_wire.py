"""Every effect of a statement is judged, on the real wire: read-only and allow-lists hold against
statements that hide a write inside a read."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from tests.integration.stack import AirlockStack, eventually

HIDDEN_WRITES = [
    "WITH gone AS (DELETE FROM orders WHERE id = 7 RETURNING *) SELECT count(*) FROM gone",
    "SELECT pg_terminate_backend(1)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT count(*) FROM customers WHERE id IN "
    "(SELECT id FROM query_to_xml('DELETE FROM orders WHERE id = 8 RETURNING id', true, true, '') AS x(id))",
    "EXPLAIN ANALYZE UPDATE orders SET status = 'x' WHERE id = 9",
]


def direct_count(stack: AirlockStack, sql: str) -> int:
    with psycopg.connect(stack.target_dsn) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("sql", HIDDEN_WRITES)
def test_a_read_only_binding_refuses_writes_hidden_in_reads(stack: AirlockStack, sql: str) -> None:
    with psycopg.connect(stack.conninfo("analyst"), autocommit=True) as conn:
        for prepare in (False, True):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                conn.execute(sql.encode(), prepare=prepare) if not prepare else conn.execute(sql, prepare=True)
            message = str(info.value)
            assert message.startswith("Airlock denied"), message
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert direct_count(stack, "SELECT count(*) FROM orders WHERE id IN (7, 8)") == 2


def test_a_read_only_binding_reads_as_usual(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo("analyst")) as conn:  # psycopg opens transactions itself
        assert conn.execute("SELECT count(*) FROM orders WHERE id < %s", (11,)).fetchone() == (10,)
        with conn.cursor(name="server-side") as cursor:  # DECLARE ... CURSOR, FETCH, CLOSE
            cursor.execute("SELECT id FROM orders ORDER BY id LIMIT 3")
            assert [r[0] for r in cursor.fetchall()] == [1, 2, 3]
        conn.execute("SET statement_timeout = 5000")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE orders SET status = 'ro' WHERE id = 1")
        conn.rollback()


def test_an_allow_list_of_selects_means_what_it_says(stack: AirlockStack, tmp_path: Path) -> None:
    original = stack.state_dir / "policy.yaml"
    policy = yaml.safe_load(original.read_text())
    policy["guardrails"] = {
        "default": "deny",
        "unknown": "deny",
        "rules": [{"name": "reads", "match": {"kinds": ["select"]}, "action": "allow"}],  # as the issue wrote it
    }
    allow_list = tmp_path / "allow-list.yaml"
    allow_list.write_text(yaml.safe_dump(policy))

    def refused(sql: str) -> bool:
        with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
            try:
                conn.execute(sql.encode())
            except psycopg.errors.InsufficientPrivilege:
                return True
            return False

    stack.cli("policy", "push", str(allow_list))
    try:
        assert eventually(lambda: refused("LISTEN allow_list_probe"))  # the new version is in force
        for sql in HIDDEN_WRITES:
            assert refused(sql), sql
        assert not refused("SELECT count(*) FROM customers")
    finally:
        stack.cli("policy", "push", str(original))
        assert eventually(lambda: not refused("LISTEN allow_list_probe"))
    assert direct_count(stack, "SELECT count(*) FROM orders WHERE id IN (7, 8)") == 2

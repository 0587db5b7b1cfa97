"""Embedded PostgreSQL as a production-like target: TCP, SCRAM-SHA-256 passwords, the demo data."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from stdnum import luhn

from airlock.devstack.demo_data import APP_ROLE, CUSTOMERS, ORDERS, DemoDatabase, seed_demo
from airlock.devstack.postgres import EmbeddedPostgres
from tests.integration.devstack_fixtures import demo_database, embedded_pg  # noqa: F401

pytestmark = pytest.mark.stack


def test_superuser_connects_over_tcp_with_scram(embedded_pg: EmbeddedPostgres) -> None:  # noqa: F811
    with psycopg.connect(embedded_pg.dsn()) as conn:
        row = conn.execute("SELECT inet_server_addr()::text, current_setting('password_encryption')").fetchone()
        assert row == ("127.0.0.1/32", "scram-sha-256")
        # Stored verifiers are SCRAM, so the server really challenged with SCRAM, not md5.
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'").fetchone()
        assert verifier is not None and verifier[0].startswith("SCRAM-SHA-256$")


def test_wrong_password_is_refused(embedded_pg: EmbeddedPostgres) -> None:  # noqa: F811
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(embedded_pg.dsn(password="not-the-password"))


def test_created_role_logs_in_with_its_password(embedded_pg: EmbeddedPostgres) -> None:  # noqa: F811
    embedded_pg.create_role("agent_probe", "s3cret-probe")
    embedded_pg.create_role("agent_probe", "s3cret-probe-2")  # idempotent: resets the password
    with psycopg.connect(embedded_pg.dsn(user="agent_probe", password="s3cret-probe-2")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("agent_probe",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(embedded_pg.dsn(user="agent_probe", password="s3cret-probe"))


def test_bundled_psql_reaches_the_server(embedded_pg: EmbeddedPostgres) -> None:  # noqa: F811
    result = subprocess.run(
        [str(embedded_pg.bin_dir / "psql"), embedded_pg.dsn(), "-tAc", "SELECT 41 + 1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.strip() == "42"


def test_demo_seed(embedded_pg: EmbeddedPostgres, demo_database: DemoDatabase) -> None:  # noqa: F811
    assert demo_database.user == APP_ROLE
    with psycopg.connect(demo_database.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (CUSTOMERS,)
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (ORDERS,)
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
        assert owners == [(APP_ROLE,)]
        cards = [row[0] for row in conn.execute("SELECT card_number FROM customers")]
        assert all(luhn.is_valid(card) and len(card) == 16 for card in cards)
        sample = conn.execute("SELECT ssn, email FROM customers WHERE id = 1").fetchone()
        assert sample is not None
        ssn, email = sample
        assert len(ssn) == 11 and ssn[3] == ssn[6] == "-" and "@" in email
        orphans = conn.execute(
            "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL"
        ).fetchone()
        assert orphans == (0,)


def test_demo_seed_is_idempotent(embedded_pg: EmbeddedPostgres, demo_database: DemoDatabase) -> None:  # noqa: F811
    again = seed_demo(embedded_pg.dsn(), app_password=demo_database.password)
    with psycopg.connect(again.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (CUSTOMERS,)

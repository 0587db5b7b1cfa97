"""Connection set-up: the backend login starts while authorize decides, but only for a login that was
granted before with the same token and StartupMessage (proxy/pg/headstart.py). Timings are measured by
scripts/bench (the connect workload), never asserted here."""

from __future__ import annotations

import urllib.request

import psycopg
import pytest

from airlock.devstack.stack import free_port
from tests.integration.stack import AirlockStack, eventually


def head_starts(health_port: int) -> tuple[int, int]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5).read().decode()
    values = dict(line.split() for line in text.splitlines() if line and not line.startswith("#"))
    return int(values["airlock_backend_head_starts_total"]), int(values["airlock_backend_head_starts_adopted_total"])


def backends_named(stack: AirlockStack, application_name: str) -> int:
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        row = direct.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_only_a_granted_login_gets_a_head_start(stack: AirlockStack) -> None:
    health = free_port()
    with stack.extra_proxy(health_port=str(health)) as (port, _):
        token = stack.token("ci-nightly")

        def connect(token: str = token, name: str = "head-start") -> psycopg.Connection[tuple[object, ...]]:
            return psycopg.connect(stack.conninfo(port=port, token=token), application_name=name)

        connect().close()
        assert head_starts(health) == (0, 0)  # nothing granted before: nothing to start early
        with connect() as conn:
            assert head_starts(health) == (1, 1)
            # The session is the one asked for, with the settings its client sent.
            assert conn.execute("SELECT current_database(), current_setting('application_name')").fetchone() == (
                "demo", "head-start")  # fmt: skip
        connect(name="other").close()  # other settings: another login
        connect(stack.token("ci-nightly", ttl=901)).close()  # another token: another login
        assert head_starts(health) == (1, 1)
        header, payload, signature = token.split(".")
        with pytest.raises(psycopg.OperationalError, match="Airlock refused the connection"):
            connect(f"{header}.{payload}.{signature[::-1]}").close()  # a forgery never starts one
        assert head_starts(health) == (1, 1)

        # A revoked identity's old key starts the login it had, which is closed unused on refusal.
        key = stack.token("contractor")
        psycopg.connect(stack.conninfo("contractor", port=port, token=key), application_name="revoked").close()
        stack.cli("identity", "revoke", "contractor", "--reason", "head start test")
        try:
            with pytest.raises(psycopg.OperationalError, match="revoked"):
                psycopg.connect(stack.conninfo("contractor", port=port, token=key), application_name="revoked")
            assert head_starts(health) == (2, 1)
            assert eventually(lambda: backends_named(stack, "revoked") == 0, timeout=10)
        finally:
            stack.cli("identity", "reinstate", "contractor")

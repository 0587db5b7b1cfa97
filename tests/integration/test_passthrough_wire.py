"""The pass-through path: a session nothing inspects (recording, guardrails and masking all off on this
proxy, or a policy without guardrails and masking where recording is off) is framed, counted and
forwarded by a shorter path than the full relay. Everything PostgreSQL speaks must still arrive intact,
bad input must still end the one connection, and a policy that adds guardrails at renewal must bring
the full path back."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.rawpg import error_fields, login
from tests.integration.stack import AirlockStack, eventually

OFF = {
    "AIRLOCK_PROXY_DISABLE_RECORDING": "1",
    "AIRLOCK_PROXY_DISABLE_GUARDRAILS": "1",
    "AIRLOCK_PROXY_DISABLE_MASKING": "1",
}


@pytest.fixture(scope="module")
def passthrough(stack: AirlockStack) -> Iterator[int]:
    with stack.extra_proxy(env=OFF) as (port, _):
        yield port


def test_queries_pipelines_and_copy_arrive_intact(stack: AirlockStack, passthrough: int) -> None:
    with psycopg.connect(stack.conninfo(port=passthrough)) as conn:
        # Masking is off on this proxy: the stored values come back as they are.
        row = conn.execute("SELECT ssn FROM customers ORDER BY id LIMIT 1").fetchone()
        assert row is not None and re.fullmatch(r"\d{3}-\d{2}-\d{4}", str(row[0]))
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int * 2", (i,), binary=True) for i in range(50)]
        assert [c.fetchone() for c in cursors] == [(i * 2,) for i in range(50)]
        conn.execute("CREATE TEMP TABLE t (id int, note text)")
        with conn.cursor().copy("COPY t FROM STDIN") as copy:
            for i in range(5000):
                copy.write_row((i, f"row {i}"))
        out = bytearray()
        with conn.cursor().copy("COPY t TO STDOUT") as copy:
            for block in copy:
                out += block
        assert out.count(b"\n") == 5000 and out.startswith(b"0\trow 0\n")
        assert conn.info.transaction_status is psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
        # Guardrails are off on this proxy: PostgreSQL itself answers.
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("DROP TABLE no_such_table_here")


def test_a_malformed_message_ends_only_that_connection(stack: AirlockStack, passthrough: int) -> None:
    bystander = psycopg.connect(stack.conninfo(port=passthrough), autocommit=True)
    conn, said = login(passthrough, "ci-nightly", stack.token("ci-nightly"))
    assert said[-1][0] == ord("Z")
    conn.send(b"Q\xff\xff\xff\xf0")  # a 4 GB query
    fields = error_fields(conn.read_until("E", timeout=10))
    assert fields["C"] == "08P01" and "length" in fields["M"]
    assert bystander.execute("SELECT count(*) FROM customers").fetchone() == (10000,)
    bystander.close()


def test_a_terminate_ends_the_session_and_frees_the_backend(stack: AirlockStack, passthrough: int) -> None:
    with psycopg.connect(stack.target_dsn, autocommit=True) as admin:

        def backends() -> int:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'passthrough-terminate'"
            ).fetchone()
            return int(row[0]) if row else -1

        conn = psycopg.connect(stack.conninfo(port=passthrough), application_name="passthrough-terminate")
        assert backends() == 1
        conn.close()  # sends Terminate
        assert eventually(lambda: backends() == 0, timeout=10)


def test_sigterm_waits_for_a_live_statement(stack: AirlockStack) -> None:
    # Draining relies on the ReadyForQuery count the pass-through path keeps.
    with stack.extra_proxy(env=OFF, drain_seconds="10") as (port, process):
        busy = psycopg.connect(stack.conninfo(port=port), autocommit=True)
        result: list[object] = []
        worker = threading.Thread(target=lambda: result.append(busy.execute("SELECT pg_sleep(1.5), 'done'").fetchone()))
        worker.start()
        time.sleep(0.5)
        process.terminate()
        worker.join(10)
        assert result == [("", "done")]
        assert process.wait(15) == 0
        busy.close()


def test_guardrails_pushed_during_a_session_bring_the_full_path_back(stack: AirlockStack, tmp_path: Path) -> None:
    """Recording is off on this proxy; a policy without guardrails or masking makes the session a
    pass-through one. Pushing guardrails back must reach it at its next grant renewal."""
    original = stack.state_dir / "policy.yaml"
    text = original.read_text()
    bare = tmp_path / "bare.yaml"
    start, end = text.index("\nguardrails:"), text.index("\nmasking:")
    bare.write_text(text[:start] + text[end:].replace("  enabled: true", "  enabled: false", 1))
    assert "guardrails:" not in bare.read_text() and "enabled: false" in bare.read_text()
    with stack.extra_proxy(env={"AIRLOCK_PROXY_DISABLE_RECORDING": "1"}) as (port, _):
        stack.cli("policy", "push", str(bare))
        try:

            def fresh_is_passthrough() -> bool:
                with psycopg.connect(stack.conninfo(port=port), autocommit=True) as probe:
                    try:
                        probe.execute("DROP TABLE no_such_table_here")
                    except psycopg.errors.UndefinedTable:
                        return True
                    except psycopg.errors.InsufficientPrivilege:
                        return False
                return False

            assert eventually(fresh_is_passthrough), "the policy without guardrails never reached new sessions"
            with psycopg.connect(stack.conninfo(port=port), autocommit=True) as conn:
                with pytest.raises(psycopg.errors.UndefinedTable):
                    conn.execute("DROP TABLE no_such_table_here")
                stack.cli("policy", "push", str(original))

                def blocked() -> bool:
                    try:
                        conn.execute("DROP TABLE no_such_table_here")
                    except psycopg.errors.InsufficientPrivilege as e:
                        return "Airlock" in str(e)
                    except psycopg.errors.UndefinedTable:
                        return False
                    return False

                assert eventually(blocked), "the live pass-through session never picked up the guardrails"
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            stack.cli("policy", "push", str(original))

"""Prepared statements are judged by what the server holds when it runs them, through real clients and the
raw extended protocol."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import psycopg
import pytest

from airlock.devstack.demo_data import APP_ROLE
from shared.pg.wire import messages as m
from tests.integration.rawpg import RawConnection, login
from tests.integration.stack import AirlockStack

TABLE = "prepared_victim"


@pytest.fixture
def rows(stack: AirlockStack) -> Iterator[None]:
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f"DROP TABLE IF EXISTS {TABLE}")
        direct.execute(f"CREATE TABLE {TABLE} AS SELECT g AS id FROM generate_series(1, 3) g")
        direct.execute(f'ALTER TABLE {TABLE} OWNER TO "{APP_ROLE}"')
    yield
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f"DROP TABLE IF EXISTS {TABLE}")


def remaining(stack: AirlockStack) -> int:
    with psycopg.connect(stack.target_dsn) as direct:
        row = direct.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        assert row is not None
        return int(row[0])


def bind(portal: str, statement: str) -> bytes:
    return m.frame(b"B", portal.encode() + b"\0" + statement.encode() + b"\0" + struct.pack("!hhh", 0, 0, 0))


def execute(portal: str = "") -> bytes:
    return m.frame(b"E", portal.encode() + b"\0" + struct.pack("!i", 0))


def raw(stack: AirlockStack) -> RawConnection:
    conn, _ = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"))
    return conn


def test_protocol_bind_execute_of_a_sql_prepared_delete_is_refused(stack: AirlockStack, rows: None) -> None:
    conn = raw(stack)
    try:
        conn.send(m.build_query(f"PREPARE q AS DELETE FROM {TABLE}"))  # no WHERE: no-unbounded-writes
        assert not [t for t, _ in conn.read_until("Z") if t == ord("E")], "a PREPARE runs nothing"
        conn.send(bind("", "q") + execute() + m.SYNC)
        replies = conn.read_until("Z")
        errors = [m.parse_error_fields(b) for t, b in replies if t == ord("E")]
        assert errors and errors[0]["C"] == "42501" and "no-unbounded-writes" in errors[0]["M"]
        conn.send(m.build_query("EXECUTE q"))
        errors = [m.parse_error_fields(b) for t, b in conn.read_until("Z") if t == ord("E")]
        assert errors and errors[0]["C"] == "42501"
    finally:
        conn.close()
    assert remaining(stack) == 3


def test_a_redefinition_the_server_refused_does_not_whitewash_the_name(stack: AirlockStack, rows: None) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.execute(f"PREPARE p AS DELETE FROM {TABLE}".encode())
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            conn.execute(b"PREPARE p AS SELECT 1")  # the server refuses: p still means the DELETE
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(b"EXECUTE p")
    assert remaining(stack) == 3


def test_a_pipelined_redefinition_and_execute_are_judged_by_every_body_p_may_hold(
    stack: AirlockStack, rows: None
) -> None:
    conn = raw(stack)
    try:
        conn.send(m.build_query(f"PREPARE p AS DELETE FROM {TABLE}"))
        conn.read_until("Z")
        conn.send(m.build_query("PREPARE p AS SELECT 1") + m.build_query("EXECUTE p"))
        conn.read_until("Z")
        errors = [m.parse_error_fields(b) for t, b in conn.read_until("Z") if t == ord("E")]
        assert errors and errors[0]["C"] == "42501"
    finally:
        conn.close()
    assert remaining(stack) == 3


def test_psycopg_prepared_statements_still_work(stack: AirlockStack, rows: None) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True, prepare_threshold=0) as conn:
        for i in (1, 2, 3, 1):
            assert conn.execute(f"SELECT id FROM {TABLE} WHERE id = %s", (i,)).fetchone() == (i,)
        conn.execute(f"DELETE FROM {TABLE} WHERE id = %s", (3,))  # a DELETE with a WHERE is allowed
    assert remaining(stack) == 2

"""What the proxy judges is what the server runs: SQL is read in the session's client_encoding and under
its standard_conforming_strings, whichever way they were set (startup, SET, set_config, a role default)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from airlock.devstack.demo_data import APP_ROLE
from shared.pg.wire import messages as m
from tests.integration.rawpg import login
from tests.integration.stack import AirlockStack

VICTIM = "lexing_victim"
# UTF-8 bytes of 中 end in 0xAD; 0xAD 0x5C is one GBK character, so in GBK the backslash does not escape the
# quote and the string ends there: the server runs a SELECT and then the DROP; read as UTF-8, it is one SELECT.
GBK_ATTACK = f"SELECT E'中\\'; DROP TABLE {VICTIM}; -- '".encode()
SCS_ATTACK = f"SELECT 'a\\', '; DROP TABLE {VICTIM}; -- '".encode()


@pytest.fixture
def victim(stack: AirlockStack) -> Iterator[None]:
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f"DROP TABLE IF EXISTS {VICTIM}")
        direct.execute(f"CREATE TABLE {VICTIM} (x int)")
        direct.execute(f'ALTER TABLE {VICTIM} OWNER TO "{APP_ROLE}"')  # the proxy's backend role could drop it
    yield
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f"DROP TABLE IF EXISTS {VICTIM}")


def victim_exists(stack: AirlockStack) -> bool:
    with psycopg.connect(stack.target_dsn) as direct:
        row = direct.execute("SELECT to_regclass(%s) IS NOT NULL", (VICTIM,)).fetchone()
        return bool(row and row[0])


def test_the_attack_is_real_directly(stack: AirlockStack, victim: None) -> None:
    """Without Airlock, the server reads GBK_ATTACK as a SELECT and a DROP (so the tests below mean something)."""
    with psycopg.connect(stack.target_dsn, client_encoding="GBK", autocommit=True) as direct:
        direct.execute(GBK_ATTACK)
    assert not victim_exists(stack)


@pytest.mark.parametrize("how", ["startup", "set", "set_config"])
def test_gbk_cannot_smuggle_a_drop_past_the_guardrails(stack: AirlockStack, victim: None, how: str) -> None:
    extra = " client_encoding=GBK" if how == "startup" else ""
    with psycopg.connect(stack.conninfo() + extra, autocommit=True) as conn:
        if how == "set":
            conn.execute("SET client_encoding = 'GBK'")
        elif how == "set_config":
            conn.execute("SELECT set_config('client_encoding', 'GBK', false)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(GBK_ATTACK)
        assert 'rule "no-destructive-ddl"' in str(info.value)
    assert victim_exists(stack)


def test_gbk_from_a_role_default_is_read_too(stack: AirlockStack, victim: None) -> None:
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        direct.execute(f'ALTER ROLE "{APP_ROLE}" IN DATABASE demo SET client_encoding = \'GBK\'')
    try:
        # A raw client that names no client_encoding: the role's default applies, reported at login.
        conn, greeting = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"))
        try:
            assert ("client_encoding", "GBK") in [m.parse_parameter_status(b) for t, b in greeting if t == ord("S")]
            conn.send(m.frame(b"Q", GBK_ATTACK + b"\0"))
            errors = [m.parse_error_fields(b) for t, b in conn.read_until("Z") if t == ord("E")]
            assert errors and errors[0]["C"] == "42501" and "no-destructive-ddl" in errors[0]["M"]
        finally:
            conn.close()
    finally:
        with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
            direct.execute(f'ALTER ROLE "{APP_ROLE}" IN DATABASE demo RESET client_encoding')
    assert victim_exists(stack)


def test_backslashes_are_not_judged_while_standard_conforming_strings_is_off(stack: AirlockStack, victim: None) -> None:
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.execute("SET standard_conforming_strings = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(SCS_ATTACK)
        assert "standard_conforming_strings is off" in str(info.value)
        assert conn.execute("SELECT 'no backslash'").fetchone() == ("no backslash",)
        conn.execute("SET standard_conforming_strings = on")
        assert conn.execute(b"SELECT E'a\\\\b'").fetchone() == ("a\\b",)
    assert victim_exists(stack)


def test_a_pipelined_attack_behind_set_client_encoding_waits_and_is_judged(stack: AirlockStack, victim: None) -> None:
    conn, _ = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"))
    try:
        # Both Queries in one write: the proxy must not judge the second before the server answers the first.
        conn.send(m.build_query("SET client_encoding = 'GBK'") + m.frame(b"Q", GBK_ATTACK + b"\0"))
        first = conn.read_until("Z")
        assert any(t == ord("S") and m.parse_parameter_status(b)[1] == "GBK" for t, b in first)
        second = conn.read_until("Z")
        errors = [m.parse_error_fields(b) for t, b in second if t == ord("E")]
        assert errors and errors[0]["C"] == "42501" and "no-destructive-ddl" in errors[0]["M"]
    finally:
        conn.close()
    assert victim_exists(stack)


def test_a_latin1_client_works_and_reads_server_errors_intact(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo() + " client_encoding=LATIN1", autocommit=True) as conn:
        assert conn.info.encoding == "iso8859-1"
        assert conn.execute("SELECT 'café ñ ü'").fetchone() == ("café ñ ü",)
        with pytest.raises(psycopg.errors.UndefinedTable) as info:
            conn.execute('SELECT * FROM "tablé_manquée"')
        assert 'relation "tablé_manquée" does not exist' in str(info.value)


def test_an_sjis_client_whose_characters_hold_a_backslash_byte_works(stack: AirlockStack) -> None:
    # ソ is 0x83 0x5C in SJIS: a reader that ignores the encoding sees a backslash before the closing quote.
    with psycopg.connect(stack.conninfo() + " client_encoding=SJIS", autocommit=True) as conn:
        assert conn.execute("SELECT 'ソ表' AS s").fetchone() == ("ソ表",)
        assert conn.execute("SELECT %s::text", ("ソ",)).fetchone() == ("ソ",)

"""Startup options and parameters reach the session as the SETs they are, or the connection is refused
with a FATAL that names the setting: never dropped without a word (shared/pg/startup.py)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.integration.policies import pushed_policy
from tests.integration.rawpg import error_fields, login
from tests.integration.stack import AirlockStack


def psql(conninfo: str, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-X", "-A", "-t", conninfo, "-c", sql], capture_output=True, text=True, timeout=60)


def test_psql_options_are_set_as_directly(stack: AirlockStack) -> None:
    # libpq's own escaping: a backslash keeps the space inside the value.
    options = r"-c work_mem=1234kB -c statement_timeout=4321 -c airlock.note=my\ note"
    sql = "SHOW work_mem; SHOW statement_timeout; SHOW airlock.note"
    direct = psql(make_conninfo(stack.target_dsn, options=options), sql)
    proxied = psql(make_conninfo(stack.conninfo(), options=options), sql)
    assert proxied.returncode == 0, proxied.stderr
    assert proxied.stdout.split("\n")[:3] == ["1234kB", "4321ms", "my note"]
    assert proxied.stdout == direct.stdout


def test_psycopg_options_and_parameters_are_set(stack: AirlockStack) -> None:
    options = "-c search_path=audit,public --lock-timeout=1234 -c DateStyle=SQL,DMY"
    with psycopg.connect(stack.conninfo(), options=options, application_name="airlock-startup") as conn:
        shown = [conn.execute(f"SHOW {name}").fetchone() for name in ("search_path", "lock_timeout", "DateStyle")]
        assert shown == [("audit,public",), ("1234ms",), ("SQL, DMY",)]  # as given: a startup value is not SQL
        assert conn.info.parameter_status("application_name") == "airlock-startup"
        assert conn.info.parameter_status("DateStyle") == "SQL, DMY"


def test_asyncpg_server_settings_are_set(stack: AirlockStack) -> None:
    async def run() -> list[str]:
        conn = await asyncpg.connect(
            f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo",
            ssl="require",
            server_settings={"work_mem": "2345kB", "search_path": "audit, public", "jit": "off",
                             "application_name": "asyncpg-startup"},
        )  # fmt: skip
        try:
            return [await conn.fetchval(f"SHOW {name}") for name in ("work_mem", "search_path", "jit",
                                                                    "application_name")]  # fmt: skip
        finally:
            await conn.close()

    assert asyncio.run(run()) == ["2345kB", "audit, public", "off", "asyncpg-startup"]


@pytest.mark.parametrize(
    ("options", "sqlstate", "words"),
    [
        ("-c role=postgres", "42501", '"role" (in options) is not allowed: it changes the role the session runs as'),
        ("-c session_authorization=postgres", "42501", '"session_authorization" (in options) is not allowed'),
        ("-c standard_conforming_strings=off", "42501", "reads SQL text"),
        ("--backslash-quote=on", "42501", '"backslash_quote" (in options) is not allowed'),
        ("-B 100", "0A000", "relays only settings in options"),
        ("-c work_mem", "42601", "requires a value"),
    ],
)
def test_settings_that_are_never_allowed_are_refused_by_name(
    stack: AirlockStack, options: str, sqlstate: str, words: str
) -> None:
    _, said = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"), params={"options": options})
    fields = error_fields(said)
    assert (fields["S"], fields["C"]) == ("FATAL", sqlstate) and words in fields["M"], fields
    with pytest.raises(psycopg.OperationalError, match="Airlock refused the connection"):
        psycopg.connect(stack.conninfo(), options=options)


def test_asyncpg_server_setting_refused_by_name(stack: AirlockStack) -> None:
    async def run() -> None:
        await asyncpg.connect(
            f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo",
            ssl="require",
            server_settings={"standard_conforming_strings": "off"},
        )

    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match='"standard_conforming_strings"'):
        asyncio.run(run())


@pytest.fixture(scope="module")
def fixed_settings(stack: AirlockStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A policy under which the contractor may not change settings (a SET rule, nothing startup-specific)."""

    def edit(policy: dict[str, Any]) -> None:
        rule = {"name": "contractor-fixed-settings", "match": {"identities": ["contractor"], "kinds": ["set"]},
                "action": "deny", "reason": "the contractor's settings are fixed"}  # fmt: skip
        policy["guardrails"]["rules"].insert(0, rule)

    def ready() -> bool:
        try:
            psycopg.connect(stack.conninfo("contractor"), options="-c work_mem=1MB").close()
        except psycopg.OperationalError as e:
            return "contractor-fixed-settings" in str(e)
        return False

    with pushed_policy(stack, edit, tmp_path_factory.mktemp("fixed-settings"), ready):
        yield


def test_startup_settings_are_judged_by_the_grant_like_any_set(stack: AirlockStack, fixed_settings: None) -> None:
    token = stack.token("contractor")
    fields = error_fields(login(stack.proxy_port, "contractor", token, params={"options": "-c statement_timeout=1"})[1])
    assert fields["C"] == "42501" and '"statement_timeout" (in options) is not allowed' in fields["M"]
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(stack.conninfo("contractor"), options="-c statement_timeout=1000")
    message = str(info.value)
    assert 'rule "contractor-fixed-settings": the contractor\'s settings are fixed' in message
    with pytest.raises(psycopg.OperationalError, match='"application_name" is not allowed'):
        psycopg.connect(stack.conninfo("contractor"), application_name="mine")
    # The same SET in the session is refused the same way; without settings the contractor connects.
    with psycopg.connect(stack.conninfo("contractor"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="contractor-fixed-settings"):
            conn.execute("SET statement_timeout = 1000")
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # Other identities are not concerned.
    with psycopg.connect(stack.conninfo(), options="-c statement_timeout=1000") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1s",)

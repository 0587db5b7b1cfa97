"""The database name the client sent is the database name it sees: a plain name reaches the one target
that serves it to the identity, aliases name the rest, an ambiguous name is refused with the choices, and
``target/database`` still works."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from airlock.oidc_issuer import IssuerKeys
from tests.integration.policies import pushed_policy
from tests.integration.stack import AirlockStack

IDENTITY = "compat-suite"
SUBJECT = "repo:acme/compat:ref:refs/heads/main"


def token(stack: AirlockStack) -> str:
    return IssuerKeys(stack.state_dir / "issuer").mint(stack.info["oidc_issuer"], SUBJECT, "airlock", 900, None)


def conninfo(stack: AirlockStack, dbname: str) -> str:
    return stack.conninfo(IDENTITY, dbname=dbname, token=token(stack))


@pytest.fixture(scope="module")
def routes(stack: AirlockStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Two targets on the same server: demo serves demo and shared_db; peer serves peer_db, shared_db and
    postgres. The identity is bound to all of them; reports is an alias of peer/peer_db."""
    with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
        for db in ("peer_db", "shared_db"):
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                admin.execute(f"CREATE DATABASE {db}")

    def edit(policy: dict[str, Any]) -> None:
        ci = policy["identities"]["ci-nightly"]["oidc"]
        policy["identities"][IDENTITY] = {"oidc": {"issuer": ci["issuer"], "audience": "airlock", "subject": SUBJECT}}
        demo = policy["targets"]["demo"]
        demo["databases"] = ["demo", "shared_db"]
        policy["targets"]["peer"] = {**demo, "databases": ["peer_db", "shared_db", "postgres"]}
        policy["bindings"] += [
            {"identity": IDENTITY, "target": "demo", "databases": ["demo", "shared_db"]},
            {"identity": IDENTITY, "target": "peer", "databases": ["peer_db", "shared_db", "postgres"]},
        ]
        policy["aliases"] = {"reports": {"target": "peer", "database": "peer_db"}}

    def ready() -> bool:
        try:
            psycopg.connect(conninfo(stack, "reports")).close()
        except psycopg.OperationalError:
            return False
        return True

    with pushed_policy(stack, edit, tmp_path_factory.mktemp("routes"), ready):
        yield


def test_a_plain_name_reaches_the_one_target_that_serves_it(stack: AirlockStack, routes: None) -> None:
    conn = psycopg.connect(conninfo(stack, "peer_db"))
    assert conn.info.dbname == "peer_db"
    assert conn.execute("SELECT current_database()").fetchone() == ("peer_db",)
    conn.rollback()
    # Two-phase commit: a recovering client compares its own database with the server's.
    xid = conn.xid(1, f"airlock-{uuid.uuid4().hex[:8]}", "routing")
    conn.tpc_begin(xid)
    conn.execute("SELECT 1")
    conn.tpc_prepare()
    conn.close()
    with psycopg.connect(conninfo(stack, "peer_db"), autocommit=True) as other:
        prepared = [x for x in other.tpc_recover() if x.gtrid == xid.gtrid]
        assert [x.database for x in prepared] == [other.info.dbname]
        other.tpc_rollback(prepared[0])
        assert other.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'airlock-%'").fetchone() == (0,)


def test_an_ambiguous_name_is_refused_with_the_choices(stack: AirlockStack, routes: None) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(conninfo(stack, "shared_db"))
    message = str(info.value)
    assert "is served to 'compat-suite' by several targets (demo, peer)" in message
    assert "dbname=demo/shared_db or dbname=peer/shared_db" in message
    # target/database still chooses (the client then keeps "peer/shared_db" as its name).
    with psycopg.connect(conninfo(stack, "peer/shared_db")) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("shared_db",)
        assert conn.info.dbname == "peer/shared_db"


def test_an_alias_names_a_target_and_a_database(stack: AirlockStack, routes: None) -> None:
    with psycopg.connect(conninfo(stack, "reports")) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("peer_db",)


def test_an_unknown_name_lists_what_the_identity_may_use(stack: AirlockStack, routes: None) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(conninfo(stack, "payroll"))
    assert "no binding for a database 'payroll'; it may connect to demo, peer_db, postgres, " in str(info.value)
    assert "demo/shared_db or peer/shared_db, reports" in str(info.value)


def test_asyncpg_default_and_postgres_databases(stack: AirlockStack, routes: None) -> None:
    async def run(database: str | None) -> str:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=stack.proxy_port, user=IDENTITY, password=token(stack), database=database,
            ssl="require",
        )  # fmt: skip
        try:
            return str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()

    # asyncpg's test suites connect to database='postgres': served to this identity by peer alone.
    assert asyncio.run(run("postgres")) == "postgres"
    # Without a database asyncpg asks for one named like the user: there is none, and the FATAL says so.
    with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError, match="no binding for a database"):
        asyncio.run(run(None))

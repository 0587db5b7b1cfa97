"""A cancel request through Airlock keeps PostgreSQL's contract: once the client's cancel connection has
closed, the cancel has landed, so it can never hit the statement the client sends next."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg

from tests.integration.stack import AirlockStack

CYCLES = 100
# Long enough that a cancel still in flight when the client moves on lands inside it.
NEXT = "SELECT pg_sleep(0.02)"


def psycopg_spurious_cancels(conninfo: str) -> int:
    """Cancel (libpq's PQcancel, which waits for the server to close), then run the next statement."""
    spurious = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for _ in range(CYCLES):
            conn.execute("SELECT 1")
            conn.cancel()
            try:
                conn.execute(NEXT)
            except psycopg.errors.QueryCanceled:
                spurious += 1
    return spurious


async def asyncpg_spurious_cancels(dsn: str, ssl: str | None) -> tuple[int, int]:
    """A statement that outlives its timeout is cancelled by asyncpg, which waits for the cancel
    connection to close before its next statement. Returns (spurious cancels, timeouts)."""
    spurious = timeouts = 0
    conn = await asyncpg.connect(dsn, ssl=ssl)
    try:
        for _ in range(CYCLES):
            try:
                await conn.fetchval("SELECT pg_sleep(0.01)", timeout=0.01)
            except (TimeoutError, asyncpg.QueryCanceledError):
                timeouts += 1
            try:
                await conn.fetchval(NEXT)
            except asyncpg.QueryCanceledError:
                spurious += 1
    finally:
        await conn.close()
    return spurious, timeouts


def test_psycopg_cancel_never_hits_the_next_statement(stack: AirlockStack) -> None:
    direct = psycopg_spurious_cancels(stack.target_dsn)
    proxied = psycopg_spurious_cancels(stack.conninfo())
    assert (proxied, direct) == (0, 0), f"'canceling statement due to user request' on {proxied} of {CYCLES}"


def test_asyncpg_timeouts_never_cancel_the_next_statement(stack: AirlockStack) -> None:
    proxied_dsn = f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo"
    direct, _ = asyncio.run(asyncpg_spurious_cancels(stack.target_dsn, None))
    proxied, timeouts = asyncio.run(asyncpg_spurious_cancels(proxied_dsn, "require"))
    assert timeouts > 0  # cancels were sent at all
    assert (proxied, direct) == (0, 0), f"'canceling statement due to user request' on {proxied} of {CYCLES}"

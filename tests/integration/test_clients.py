"""The same workloads directly against PostgreSQL and through Airlock give the same answers."""

from __future__ import annotations

import asyncio
import decimal
import subprocess
import threading
import time

import asyncpg
import pg8000.native
import psycopg
import pytest
from psycopg import pq

from tests.integration.stack import AirlockStack

WORKLOAD = """
SELECT id, name, created_at FROM customers ORDER BY id LIMIT 50;
SELECT status, count(*), sum(amount) FROM orders GROUP BY status ORDER BY status;
SELECT '{1,2,NULL}'::int[] AS a, '{"k": [1, "x"]}'::jsonb AS j, 'a\\tb'::text AS t, NULL::text AS n;
BEGIN;
CREATE TEMP TABLE t_psql (x int);
INSERT INTO t_psql SELECT generate_series(1, 5);
SELECT sum(x) FROM t_psql;
ROLLBACK;
SELECT 1/0;
SELECT 'after error' AS still_alive;
"""


def psql(conninfo: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-X", "-A", "-F", "|", conninfo], input=script, capture_output=True, text=True, timeout=60
    )


def test_psql_same_output_direct_and_through_proxy(stack: AirlockStack) -> None:
    direct = psql(stack.target_dsn, WORKLOAD)
    proxied = psql(stack.conninfo("ci-nightly"), WORKLOAD)
    assert "division by zero" in proxied.stderr
    assert proxied.stdout == direct.stdout
    assert "still_alive" in proxied.stdout and proxied.stdout.count("\n") > 60


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_psycopg_results_match(stack: AirlockStack, binary: bool) -> None:
    # Columns that hold nothing sensitive: masking must leave them byte-identical.
    query = "SELECT id, name, created_at, id::numeric / 7 AS ratio FROM customers WHERE id <= %s ORDER BY id"
    with psycopg.connect(stack.target_dsn) as direct, psycopg.connect(stack.conninfo()) as proxied:
        expected = direct.cursor(binary=binary).execute(query, (500,)).fetchall()
        got = proxied.cursor(binary=binary).execute(query, (500,)).fetchall()
        assert got == expected and len(got) == 500
        # Transaction state travels: a failed statement leaves the transaction aborted, as on a server.
        with pytest.raises(psycopg.errors.DivisionByZero):
            proxied.execute("SELECT 1/0")
        assert proxied.info.transaction_status == pq.TransactionStatus.INERROR
        proxied.rollback()
        assert proxied.execute("SELECT pg_backend_pid()").fetchone() == (proxied.info.backend_pid,)


def test_psycopg_pipeline_mode(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo()) as conn, conn.pipeline():
        cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(200)]
    assert [c.fetchone()[0] for c in cursors] == [i * 2 for i in range(200)]  # type: ignore[index]


def test_asyncpg_extended_binary(stack: AirlockStack) -> None:
    async def run(dsn: str, ssl: str | None) -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(dsn, ssl=ssl)
        try:
            stmt = await conn.prepare(
                "SELECT id, amount, status, created_at, ARRAY[id, customer_id] FROM orders WHERE id <= $1 ORDER BY id"
            )
            rows = [tuple(r) for r in await stmt.fetch(300)]
            rows += [
                tuple(r) for r in await conn.fetch("SELECT $1::numeric * 2, $2::text", decimal.Decimal("1.5"), "é")
            ]
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE t_async (x int)")
                await conn.executemany("INSERT INTO t_async VALUES ($1)", [(i,) for i in range(100)])
                rows.append((await conn.fetchval("SELECT sum(x) FROM t_async"),))
            return rows
        finally:
            await conn.close()

    proxied_dsn = f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo"
    expected = asyncio.run(run(stack.target_dsn, None))
    got = asyncio.run(run(proxied_dsn, "require"))
    assert got == expected and len(got) == 302


def test_pg8000(stack: AirlockStack) -> None:
    import ssl

    context = ssl.create_default_context(cafile=stack.info["tls_ca"])
    conn = pg8000.native.Connection(
        "ci-nightly",
        host="127.0.0.1",
        port=stack.proxy_port,
        database="demo",
        password=stack.token("ci-nightly"),
        ssl_context=context,
    )
    try:
        rows = conn.run("SELECT id, email FROM customers WHERE id = ANY(:ids) ORDER BY id", ids=[1, 2, 3])
        assert [r[0] for r in rows] == [1, 2, 3]
        assert conn.run("SELECT current_database()") == [["demo"]]
    finally:
        conn.close()


def test_pgbench_through_proxy(stack: AirlockStack, tmp_path: object) -> None:
    from pathlib import Path

    script = Path(str(tmp_path)) / "lookup.sql"
    script.write_text("\\set id random(1, 10000)\nSELECT * FROM customers WHERE id = :id;\n")
    for mode in ("simple", "extended", "prepared"):
        result = subprocess.run(
            ["pgbench", "-n", "-c", "4", "-j", "2", "-t", "100", "-M", mode, "-f", str(script), stack.conninfo()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "number of transactions actually processed: 400/400" in result.stdout
        assert "number of failed transactions: 0" in result.stdout


def test_cancel_from_psycopg(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo()) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - started < 10
        conn.rollback()
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_cancel_from_psql(stack: AirlockStack) -> None:
    import signal

    process = subprocess.Popen(
        ["psql", "-X", stack.conninfo(), "-c", "SELECT pg_sleep(20)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert "canceling statement due to user request" in err


def test_copy_both_ways(stack: AirlockStack) -> None:
    with psycopg.connect(stack.conninfo()) as conn:
        conn.execute("CREATE TEMP TABLE t_copy (id int, note text)")
        rows = [(i, f"note {i}\twith tab") for i in range(5000)]
        with conn.cursor().copy("COPY t_copy FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        assert conn.execute("SELECT count(*), sum(id) FROM t_copy").fetchone() == (5000, sum(range(5000)))
        out = bytearray()
        with conn.cursor().copy("COPY (SELECT * FROM t_copy ORDER BY id) TO STDOUT (FORMAT csv)") as copy:
            for block in copy:
                out += block
        lines = bytes(out).decode().splitlines()
        assert len(lines) == 5000 and lines[1] == "1,note 1\twith tab"
        with pytest.raises(psycopg.errors.QueryCanceled), conn.cursor().copy("COPY t_copy FROM STDIN") as copy:
            copy.write_row((1, "x"))
            raise psycopg.errors.QueryCanceled("client aborts the copy")  # sends CopyFail
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_listen_notify_keeps_backend_pid(stack: AirlockStack) -> None:
    with (
        psycopg.connect(stack.conninfo(), autocommit=True) as listener,
        psycopg.connect(stack.conninfo(), autocommit=True) as sender,
    ):
        listener.execute("LISTEN airlock_test")
        sender.execute("NOTIFY airlock_test, 'hello'")
        notifications = listener.notifies(timeout=5, stop_after=1)
        received = list(notifications)
        assert [(n.channel, n.payload) for n in received] == [("airlock_test", "hello")]
        # The sender's pid as the agent sees it is the backend's real pid.
        assert received[0].pid == sender.info.backend_pid


def test_notices_and_parameter_status(stack: AirlockStack) -> None:
    notices: list[str] = []
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS t_notice (x int)")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS t_notice (x int)")  # NOTICE: already exists
        conn.execute("SET application_name = 'airlock-test'")
        assert conn.info.parameter_status("application_name") == "airlock-test"
        assert conn.info.parameter_status("server_version")
    assert notices == ['relation "t_notice" already exists, skipping']


def test_concurrent_sessions(stack: AirlockStack) -> None:
    token = stack.token("ci-nightly")
    dsn = f"postgresql://ci-nightly:{token}@127.0.0.1:{stack.proxy_port}/demo"

    async def one(i: int) -> int:
        conn = await asyncpg.connect(dsn, ssl="require")
        try:
            total = 0
            for _ in range(20):
                total += await conn.fetchval("SELECT count(*) FROM orders WHERE customer_id = $1", i + 1)
            return int(total)
        finally:
            await conn.close()

    async def run() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(25)))

    results = asyncio.run(run())
    with psycopg.connect(stack.target_dsn) as direct:
        expected = [
            20 * direct.execute("SELECT count(*) FROM orders WHERE customer_id = %s", (i + 1,)).fetchone()[0]
            for i in range(25)
        ]  # type: ignore[index]
    assert results == expected

"""Client writes go at the backend's pace through Airlock, in every relay path.

asyncpg's executemany writes its batch in rounds and stops when the server fails mid-batch; a server
that stops reading (a lock wait) stops the client through TCP. Through Airlock the proxy must not read
on while the backend has stopped: it stops reading the agent once its buffer toward the backend (and the
kernel's unsent queue under it) is full, in the full relay, with strict recording and in pass-through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from proxy.pg.link import UNSENT_LOW_WATER
from tests.integration.stack import AirlockStack
from tests.integration.test_passthrough_wire import OFF

ROW = "a" * 32768


@dataclass(frozen=True)
class Path:
    name: str
    identity: str
    port: int


@pytest.fixture(scope="module", params=["relay", "strict", "pass-through"])
def path(request: pytest.FixtureRequest, stack: AirlockStack) -> Iterator[Path]:
    if request.param == "pass-through":
        with stack.extra_proxy(env=OFF) as (port, _):
            yield Path("pass-through", "ci-nightly", port)
    else:  # the demo policy records the contractor strictly, the nightly job buffered
        yield Path(request.param, "contractor" if request.param == "strict" else "ci-nightly", stack.proxy_port)


async def connect(stack: AirlockStack, path: Path | None) -> asyncpg.Connection:
    if path is None:
        return await asyncpg.connect(stack.target_dsn)
    dsn = f"postgresql://{path.identity}:{stack.token(path.identity)}@127.0.0.1:{path.port}/demo"
    return await asyncpg.connect(dsn, ssl="require")


async def failing_batch(stack: AirlockStack, path: Path | None) -> tuple[str, int, int]:
    """asyncpg's own test: a unique violation at the 2nd of 128 rows of 32 kB. Returns (the error's
    SQLSTATE, rows the batch consumed, rows left in the table)."""
    conn = await connect(stack, path)
    try:
        await conn.execute("CREATE TEMP TABLE exmany (a text, b int PRIMARY KEY)")
        consumed = 0

        def rows() -> Iterator[tuple[str, int]]:
            nonlocal consumed
            while consumed < 128:
                consumed += 1
                yield (ROW, consumed) if consumed > 2 else ("a", 0)

        with pytest.raises(asyncpg.UniqueViolationError) as error:
            await asyncio.wait_for(conn.executemany("INSERT INTO exmany VALUES ($1, $2)", rows()), 60)
        left = await conn.fetchval("SELECT count(*) FROM exmany")
        return error.value.sqlstate, consumed, left
    finally:
        await conn.close()


def test_executemany_failing_mid_batch_fails_as_directly(stack: AirlockStack, path: Path) -> None:
    direct = asyncio.run(failing_batch(stack, None))
    proxied = asyncio.run(failing_batch(stack, path))
    assert (proxied[0], proxied[2]) == (direct[0], direct[2]) == ("23505", 0), (direct, proxied)


def send_queue(local_port: int, remote_port: int) -> int:
    """The kernel's send queue of the IPv4 TCP socket 127.0.0.1:local_port -> :remote_port."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)) == (local_port, remote_port):
                return int(fields[4].split(":")[0], 16)
    raise AssertionError(f"no socket 127.0.0.1:{local_port} -> :{remote_port}")


async def stopped_backend(stack: AirlockStack, path: Path | None) -> tuple[str, int, int | None]:
    """The batch's first row waits for another transaction's uncommitted duplicate (the backend stops
    reading); once the batch stops too, that transaction commits and the batch fails with 23505.
    Returns (SQLSTATE, rows consumed while stopped, bytes queued by the proxy's kernel toward the backend)."""
    owner = await asyncpg.connect(stack.target_dsn)
    conn = await connect(stack, path)
    try:
        await owner.execute(
            "DROP TABLE IF EXISTS exmany_locked; CREATE TABLE exmany_locked (a text, b int PRIMARY KEY);"
            "GRANT ALL ON exmany_locked TO airlock_app"
        )
        blocker = owner.transaction()
        await blocker.start()
        await owner.execute("INSERT INTO exmany_locked VALUES ('first', 1)")
        consumed = 0

        def rows() -> Iterator[tuple[str, int]]:
            nonlocal consumed
            while consumed < 800:  # 25 MB, far more than any buffer on the way
                consumed += 1
                yield ROW, consumed

        batch = asyncio.create_task(conn.executemany("INSERT INTO exmany_locked VALUES ($1, $2)", rows()))
        seen = -1
        while consumed != seen:  # until the client is stopped
            seen = consumed
            await asyncio.sleep(0.5)
        stopped_at = consumed
        queued = None
        if path is not None:
            client_port = await owner.fetchval(
                "SELECT client_port FROM pg_stat_activity WHERE pid = $1", conn.get_server_pid()
            )
            queued = send_queue(client_port, int(stack.info["target"]["port"]))
        await blocker.commit()
        with pytest.raises(asyncpg.UniqueViolationError) as error:
            await asyncio.wait_for(batch, 60)
        assert await conn.fetchval("SELECT count(*) FROM exmany_locked") == 1
        return error.value.sqlstate, stopped_at, queued
    finally:
        await conn.close()
        await owner.execute("DROP TABLE IF EXISTS exmany_locked")
        await owner.close()


def test_a_backend_that_stops_reading_stops_the_agent(stack: AirlockStack, path: Path) -> None:
    direct_state, direct_rows, _ = asyncio.run(stopped_backend(stack, None))
    state, rows, queued = asyncio.run(stopped_backend(stack, path))
    assert state == direct_state == "23505"
    assert rows < 800, "the agent was never stopped"
    # What Airlock took from the agent but the backend has not: the kernel's queue toward the backend
    # (megabytes before: the proxy read on until its own 1 MB buffer filled behind it) ...
    assert queued is not None and queued <= UNSENT_LOW_WATER + 64 * 1024, (queued, rows, direct_rows)

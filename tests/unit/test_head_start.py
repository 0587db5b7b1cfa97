"""The memory of granted logins and a head start's adopt/discard rules (proxy/pg/headstart.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from proxy.pg.headstart import HeadStart, HeadStarts, login_fingerprint
from shared.controlplane import BackendRef
from shared.pg.wire import messages as m
from shared.pg.wire.constants import PROTOCOL_3_0

REF = BackendRef(host="db", database="orders", credential_secret="s")


def startup(**params: str) -> m.StartupMessage:
    return m.StartupMessage(PROTOCOL_3_0, {"user": "ci", "database": "orders", **params})


def test_fingerprints_cover_the_token_and_the_whole_startup() -> None:
    one = login_fingerprint("t1", startup())
    assert one == login_fingerprint("t1", startup())
    assert one != login_fingerprint("t2", startup())
    assert one != login_fingerprint("t1", startup(application_name="x"))
    assert one != login_fingerprint("t1", m.StartupMessage(3 << 16 | 2, startup().params))


def test_remembered_until_the_grant_expires_and_bounded() -> None:
    now = [1000.0]
    memory = HeadStarts(limit=2, clock=lambda: now[0])
    expires = datetime.fromtimestamp(1010, UTC)
    memory.remember(b"a", REF, {"application_name": "x"}, expires)
    assert memory.recall(b"a") is not None
    now[0] = 1010.0
    assert memory.recall(b"a") is None
    later = expires + timedelta(seconds=60)
    for key in (b"b", b"c", b"d"):
        memory.remember(key, REF, {}, later)
    assert memory.recall(b"b") is None and memory.recall(b"d") is not None
    memory.forget(b"d")
    assert memory.recall(b"d") is None


class Writer:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


class Conn:
    def __init__(self) -> None:
        self.writer = Writer()


def test_adopted_only_for_the_same_backend_and_parameters() -> None:
    async def run() -> None:
        memory = HeadStarts()
        memory.remember(b"k", REF, {"application_name": "x"}, datetime.now(UTC) + timedelta(minutes=5))
        remembered = memory.recall(b"k")
        assert remembered is not None

        async def login(conn: Any) -> Any:
            return conn

        same = Conn()
        start = HeadStart(remembered, login(same))
        assert await start.adopt(REF, {"application_name": "x"}) is same
        start.discard()
        assert not same.writer.closed  # adopted: the session owns it
        other = Conn()
        start = HeadStart(remembered, login(other))
        await asyncio.sleep(0)
        assert await start.adopt(REF, {"application_name": "y"}) is None  # the new verdict forwards otherwise
        assert other.writer.closed and other.writer.written == [m.TERMINATE]
        moved = Conn()
        start = HeadStart(remembered, login(moved))
        await asyncio.sleep(0)
        assert await start.adopt(REF.model_copy(update={"host": "elsewhere"}), {"application_name": "x"}) is None
        assert moved.writer.closed

    asyncio.run(run())

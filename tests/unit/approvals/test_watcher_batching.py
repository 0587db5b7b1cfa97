"""How many reads the proxy's one watcher makes per tick: ceil(waiting / 100), whatever the sessions.
(The watcher against DynamoDB and the real Lambda: tests/integration/test_approvals_watcher.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from proxy.approvals import ApprovalsClient, watcher_calls_per_minute
from proxy.invoke import LambdaInvoker
from shared.approvals.model import ApprovalState, ApprovalStatus


class CountingStates:
    """Stands in for the approvals table: records each read's size, decides one approval on request."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self.approved: set[str] = set()
        self.four_reads = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop

    def states(self, approval_ids: Iterable[str]) -> Mapping[str, ApprovalState]:
        ids = list(approval_ids)
        self.reads.append(len(ids))
        if len(self.reads) == 4:  # called in a worker thread: hand the wake-up to the loop
            self.loop.call_soon_threadsafe(self.four_reads.set)
        later = datetime.now(UTC) + timedelta(minutes=5)
        return {i: ApprovalState(i, ApprovalStatus.APPROVED, later) for i in ids if i in self.approved}


def test_reads_are_batched_by_one_hundred_and_stop_when_nothing_waits() -> None:
    table = CountingStates()
    client = ApprovalsClient(LambdaInvoker("unused", 1.0, "approvals"), table, None,  # type: ignore[arg-type]
                             interval=0.01)  # fmt: skip

    async def scenario() -> None:
        table.loop = asyncio.get_running_loop()
        later = datetime.now(UTC) + timedelta(minutes=5)
        ids = [f"apr_{i:026d}" for i in range(150)]
        waits = [asyncio.create_task(client.wait(i, later)) for i in ids]
        await table.four_reads.wait()
        assert table.reads[:4] == [100, 50, 100, 50]
        table.approved.update(ids)
        results = await asyncio.gather(*waits)
        assert {r.status for r in results} == {ApprovalStatus.APPROVED}
        reads = len(table.reads)
        await asyncio.sleep(0.1)
        assert len(table.reads) == reads and client.waiting == 0

    asyncio.run(scenario())
    assert client.stats.state_reads == len(table.reads) and client.stats.lambda_calls == 0


def test_a_cancelled_waiter_stops_being_watched() -> None:
    table = CountingStates()
    client = ApprovalsClient(LambdaInvoker("unused", 1.0, "approvals"), table, None,  # type: ignore[arg-type]
                             interval=0.01)  # fmt: skip

    async def scenario() -> Any:
        waiting = asyncio.create_task(client.wait("apr_" + "a" * 26, datetime.now(UTC) + timedelta(minutes=5)))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0.05)
        return client.waiting

    assert asyncio.run(scenario()) == 0


def test_calls_per_minute() -> None:
    assert watcher_calls_per_minute(0) == 0
    assert watcher_calls_per_minute(1) == watcher_calls_per_minute(100) == 240
    assert watcher_calls_per_minute(101) == 480

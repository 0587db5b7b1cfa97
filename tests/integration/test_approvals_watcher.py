"""The proxy's approvals client: requests through ``lambda.invoke`` to the real handler behind the local
Lambda endpoint, decisions learned by the one watcher from DynamoDB on a moto server, over HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airlock.devstack.lambda_endpoint import LambdaEndpoint, start_lambda_endpoint
from airlock.devstack.provision import StackResources
from proxy.approvals import ApprovalRefused, ApprovalsClient, ApprovalsUnavailable
from proxy.invoke import LambdaInvoker
from shared.approvals.dynamo import DynamoAllowanceStore, DynamoAllowanceUses, DynamoApprovalStates
from shared.approvals.model import ApprovalRequest, ApprovalStatus, Approver, DecisionChannel, Verdict
from shared.approvals.settings import ApprovalsSettings
from tests.integration.approvals_world import World, slack_standin, sns_inbox, world  # noqa: F401 - fixtures
from tests.integration.devstack_fixtures import moto_endpoint, provisioned_stack  # noqa: F401 - fixtures

pytestmark = pytest.mark.stack
DANA = Approver(name="dana", slack_user_id="U0DANA")


@pytest.fixture(scope="module")
def lambda_endpoint(provisioned_stack: StackResources) -> Iterator[LambdaEndpoint]:  # noqa: F811
    # The environment is the test's (the world fixture), not the template's.
    running = start_lambda_endpoint(provisioned_stack, apply_environment=False)
    yield running
    running.stop()


@pytest.fixture
def client(world: World, lambda_endpoint: LambdaEndpoint, monkeypatch: pytest.MonkeyPatch) -> ApprovalsClient:  # noqa: F811
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lambda_endpoint.url)
    settings = ApprovalsSettings(approvals_function=world.resources.physical_ids["ApprovalsFunction"])
    made = ApprovalsClient.from_settings(settings, timeout=10.0)
    made.interval = 0.05
    made.allowance_cache_seconds = 0.0
    return made


def request(session: str = "ses_watch", **changes: Any) -> ApprovalRequest:
    fields: dict[str, Any] = {
        "session_id": session, "proxy_id": "proxy-test", "identity": "ci", "target": "demo", "database": "demo",
        "kinds": ["delete"], "tables": ["customers"], "rule": "customer-deletes", "approvers": "dba",
        "timeout_seconds": 300, "idempotency_key": f"{session}-{datetime.now(UTC).timestamp()}-{id(changes)}",
    }  # fmt: skip
    fields.update(changes)
    return ApprovalRequest.for_statement("DELETE FROM customers WHERE id = 7", protocol="postgres", **fields)


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def test_one_watcher_learns_every_decision_and_stops_when_nothing_waits(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    service = world.service()
    batches: list[int] = []
    states = client.approvals.states

    def counting(ids: Any) -> Any:
        batches.append(len(list(ids)))
        return states(ids)

    client.approvals.states = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        held = [await client.request(request(f"ses_w{i}"), "Slack #db-approvals") for i in range(12)]
        assert all(h.notice.startswith(f"Airlock is holding this statement for approval {h.approval.approval_id}")
                   for h in held)  # fmt: skip
        waits = [asyncio.create_task(client.wait(h.approval.approval_id, h.approval.expires_at)) for h in held]
        await asyncio.sleep(0.2)
        watchers = [t for t in asyncio.all_tasks() if t.get_name() == "approvals-watcher"]
        assert len(watchers) == 1 and client.waiting == 12  # one watcher for all, never one per waiter
        for i, h in enumerate(held):
            verdict = Verdict.APPROVE if i % 2 == 0 else Verdict.DENY
            await in_thread(service.decide, h.approval.approval_id, DANA, verdict, DecisionChannel.CLI,
                            reason="" if i % 2 == 0 else "not today")  # fmt: skip
        results = await asyncio.wait_for(asyncio.gather(*waits), 10)
        assert [r.status for r in results] == [ApprovalStatus.APPROVED, ApprovalStatus.DENIED] * 6
        assert results[1].outcome() == f"approval {held[1].approval.approval_id} was denied by dana (cli): not today"
        reads = len(batches)
        await asyncio.sleep(0.3)
        assert client._watcher is None and len(batches) == reads  # idle: no AWS calls at all
        assert client.stats.lambda_calls == 12

    asyncio.run(scenario())
    # Every read asked for all that still waited, in one call (12 < 100), and the batch only shrank.
    assert batches[0] == 12 and batches == sorted(batches, reverse=True)


def test_a_deadline_reached_asks_the_lambda_which_expires_the_approval(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    async def scenario() -> None:
        held = await client.request(request(timeout_seconds=5), "Slack #db-approvals")
        result = await asyncio.wait_for(client.wait(held.approval.approval_id, held.approval.expires_at), 15)
        assert result.status is ApprovalStatus.EXPIRED and result.outcome().endswith("nobody decided in time")
        stored = world.approval(held.approval.approval_id)
        assert stored.status is ApprovalStatus.EXPIRED and "*Expired*" in str(world.message(stored)["blocks"])

    asyncio.run(scenario())


def test_an_earlier_deadline_withdraws(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    async def scenario() -> None:
        held = await client.request(request(), "Slack #db-approvals")
        soon = datetime.now(UTC) + timedelta(milliseconds=200)
        result = await asyncio.wait_for(client.wait(held.approval.approval_id, soon), 10)
        assert result.status is ApprovalStatus.WITHDRAWN and result.decision_reason == "the agent stopped waiting"

    asyncio.run(scenario())


def test_withdraw_resolves_the_waiter_and_the_slack_message_says_so(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    async def scenario() -> None:
        held = await client.request(request(), "Slack #db-approvals")
        waiting = asyncio.create_task(client.wait(held.approval.approval_id, held.approval.expires_at))
        await asyncio.sleep(0.1)
        state = await client.withdraw(held.approval.approval_id, "the agent cancelled the statement")
        assert state.status is ApprovalStatus.WITHDRAWN
        assert (await waiting).status is ApprovalStatus.WITHDRAWN
        message = world.message(world.approval(held.approval.approval_id))
        assert "*Withdrawn*" in str(message["blocks"]) and "the agent cancelled the statement" in str(message["blocks"])

    asyncio.run(scenario())


def test_close_withdraws_everything_still_waiting(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    async def scenario() -> None:
        held = [await client.request(request(f"ses_c{i}"), "Slack #db-approvals") for i in range(3)]
        waits = [asyncio.create_task(client.wait(h.approval.approval_id, h.approval.expires_at)) for h in held]
        await asyncio.sleep(0.1)
        await client.close("the proxy is shutting down")
        assert {r.status for r in await asyncio.gather(*waits)} == {ApprovalStatus.WITHDRAWN}
        assert client._watcher is None
        for h in held:
            assert world.approval(h.approval.approval_id).status is ApprovalStatus.WITHDRAWN

    asyncio.run(scenario())


def test_failing_reads_never_approve_and_the_deadline_learns_the_truth(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    client.approvals = DynamoApprovalStates(ApprovalsSettings(approvals_table="no-such-table"))
    service = world.service()

    async def scenario() -> None:
        held = await client.request(request(), "Slack #db-approvals")
        await in_thread(service.decide, held.approval.approval_id, DANA, Verdict.APPROVE, DecisionChannel.CLI)
        soon = datetime.now(UTC) + timedelta(milliseconds=300)
        result = await asyncio.wait_for(client.wait(held.approval.approval_id, soon), 10)
        assert client.stats.read_errors > 0
        assert result.status is ApprovalStatus.APPROVED  # from the Lambda's status call at the deadline

    asyncio.run(scenario())


# ---------------------------------------------------------------------- fail closed


def test_an_unknown_function_is_a_refusal(client: ApprovalsClient) -> None:
    client.invoker = LambdaInvoker("no-such-function", 2.0, "approvals")
    with pytest.raises(ApprovalsUnavailable, match="approvals call failed"):
        asyncio.run(client.request(request(), "Slack"))


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP server that accepts and never answers: a Lambda that does not return in time."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for s in [*accepted, server]:
        s.close()


def test_a_lambda_that_times_out_is_a_refusal(client: ApprovalsClient, black_hole: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", black_hole)
    client.invoker = LambdaInvoker(client.invoker.function, 0.3, "approvals")
    with pytest.raises(ApprovalsUnavailable, match="approvals are unavailable"):
        asyncio.run(client.request(request(), "Slack"))


def test_storage_failure_behind_the_lambda_is_a_refusal(
    client: ApprovalsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.approvals import app as approvals_app
    from shared.approvals.settings import approvals_settings

    monkeypatch.setenv("AIRLOCK_APPROVALS_TABLE", "no-such-table")
    approvals_settings.cache_clear()
    approvals_app.service.cache_clear()
    with pytest.raises(ApprovalsUnavailable, match="storing approval failed"):
        asyncio.run(client.request(request(), "Slack"))


def test_control_plane_refusals_are_refusals(client: ApprovalsClient) -> None:
    with pytest.raises(ApprovalRefused) as info:
        asyncio.run(client.request(request(approvers="ops"), "Slack"))
    assert info.value.code == "invalid" and "unknown approver group 'ops'" in str(info.value)


# ---------------------------------------------------------------------- allowances


def test_allowances_are_found_reused_counted_and_revoked(world: World, client: ApprovalsClient) -> None:  # noqa: F811
    service = world.service()
    scope = {"protocol": "postgres", "identity": "ci", "target": "demo", "database": "demo"}

    async def scenario() -> None:
        assert await client.allowance_for(**scope, kinds=["delete"], tables=["customers"]) is None
        held = await client.request(request(), "Slack #db-approvals")
        decided = await in_thread(service.decide, held.approval.approval_id, DANA, Verdict.APPROVE,
                                  DecisionChannel.SLACK, allowance_minutes=15)  # fmt: skip
        found = await client.allowance_for(**scope, kinds=["delete"], tables=["customers"])
        assert found is not None and found.allowance_id == decided.allowance.allowance_id
        assert await client.allowance_for(**scope, kinds=["delete"], tables=["customers", "orders"]) is None
        other = {**scope, "identity": "bot"}
        assert await client.allowance_for(**other, kinds=["delete"], tables=["customers"]) is None
        await client.record_use(found, "ses_reuse")
        assert DynamoAllowanceStore(world.settings).get(found.allowance_id).uses == 1
        await in_thread(service.revoke_allowance, found.allowance_id, DANA)
        assert await client.allowance_for(**scope, kinds=["delete"], tables=["customers"]) is None

    asyncio.run(scenario())


def test_allowance_lookup_errors_mean_no_allowance(client: ApprovalsClient) -> None:
    client.allowances = DynamoAllowanceUses(ApprovalsSettings(allowances_table="no-such-table"))
    found = asyncio.run(client.allowance_for(protocol="postgres", identity="ci", target="demo", database="demo",
                                             kinds=["delete"], tables=["customers"]))  # fmt: skip
    assert found is None

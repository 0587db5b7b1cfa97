"""The approvals Lambdas end to end: real handlers, API Gateway HTTP API 2.0 events, Slack interaction
payloads signed as Slack signs them, DynamoDB/SNS/SQS/Secrets Manager on a moto server over HTTP, the
Slack stand-in over HTTP."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import pytest

from airlock.devstack.http_api import api_gateway_event
from functions.approvals import app as approvals_app
from functions.slack_interactions import app as slack_app
from shared.approvals.model import ApprovalStatus, Verdict
from tests.integration.approvals_world import (  # noqa: F401 - fixtures
    FakeContext,
    World,
    in_the_past,
    slack_standin,
    sns_inbox,
    world,
)
from tests.integration.devstack_fixtures import moto_endpoint, provisioned_stack  # noqa: F401 - fixtures

pytestmark = pytest.mark.stack


def outcome_text(world: World, approval_id: str) -> str:  # noqa: F811
    (message,) = [m for m in world.messages() if approval_id in str(m["blocks"])]
    return str(message["blocks"])


# ---------------------------------------------------------------------- request


def test_request_is_stored_announced_on_slack_and_sns_and_idempotent(world: World) -> None:  # noqa: F811
    event = world.request_event(statement="DELETE FROM customers WHERE id = 42")
    first = world.invoke(event)
    again = world.invoke(event)  # a retried lambda.invoke
    assert first["ok"] and again["ok"]
    assert first["approval"]["approval_id"] == again["approval"]["approval_id"]
    approval = world.approval(first["approval"]["approval_id"])
    assert approval.status is ApprovalStatus.PENDING and approval.slack_ts and approval.sns_message_id
    assert approval.expires_at - approval.requested_at == timedelta(seconds=300)
    posted = [m for m in world.messages() if approval.approval_id in str(m["blocks"])]
    assert len(posted) == 1  # the retry did not announce twice
    assert "DELETE FROM customers WHERE id = 42" in str(posted[0]["blocks"])
    (sns,) = world.sns_messages()
    assert sns["Subject"] == "Airlock approval needed: delete by ci on demo"
    lines = [line.strip() for line in sns["Message"].splitlines()]
    links = [line.split(":", 1)[1].strip() for line in lines if line.startswith(("Approve:", "Deny:"))]
    # One approve and one deny link per member who may approve: U0OSCAR owns "ci" and gets none.
    assert len(links) == 4 and "U0OSCAR" not in sns["Message"] and "carol@example.com:" in sns["Message"]
    base = "https://abc123.execute-api.us-east-1.amazonaws.com/approvals/link?t="
    assert all(link.startswith(base) for link in links)


def test_retry_with_a_reused_key_for_another_statement_is_refused(world: World) -> None:  # noqa: F811
    event = world.request_event()
    assert world.invoke(event)["ok"]
    event["request"]["statement"] = "DELETE FROM customers WHERE id = 43"
    answer = world.invoke(event)
    assert answer == {"ok": False, "approval": None, "error": "invalid", "message": answer["message"]}
    assert "idempotency key reused" in answer["message"]


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"action": "approve", "approval_id": "apr_" + "a" * 26}, "action"),  # no "decide" for gateways
        ({"action": "status", "approval_id": "nope"}, "approval_id"),
        (["not", "an", "object"], "malformed approvals call"),
    ],
)
def test_malformed_calls_are_refused(world: World, event: Any, fragment: str) -> None:  # noqa: F811
    answer = world.invoke(event)
    assert answer["ok"] is False and answer["error"] == "invalid" and fragment in answer["message"]


def test_unknown_group_and_unknown_approval(world: World) -> None:  # noqa: F811
    answer = world.invoke(world.request_event(approvers="ops"))
    assert answer["error"] == "invalid" and "unknown approver group 'ops'" in answer["message"]
    answer = world.invoke({"action": "status", "approval_id": "apr_" + "a" * 26})
    assert answer["error"] == "not_found"


def test_nobody_reachable_is_refused_and_withdrawn(world: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("AIRLOCK_SLACK_API_URL", "http://127.0.0.1:9/api/")  # nothing listens there
    monkeypatch.setenv("AIRLOCK_APPROVALS_PUBLIC_URL", "")  # no links without a public URL
    approvals_app.service.cache_clear()
    from shared.approvals.settings import approvals_settings

    approvals_settings.cache_clear()
    event = world.request_event()
    answer = world.invoke(event)
    assert answer["ok"] is False and answer["error"] == "unreachable"
    assert "Slack chat_postMessage failed" in answer["message"] and "no public URL" in answer["message"]
    stored = world.invoke({"action": "status", "approval_id": _id_of(event)})
    assert stored["approval"]["status"] == "withdrawn"


def _id_of(event: dict[str, Any]) -> str:
    from shared.approvals.model import ApprovalRequest

    return ApprovalRequest.model_validate(event["request"]).derive_approval_id()


# ---------------------------------------------------------------------- Slack clicks


def test_approve_once_updates_the_message_in_place(world: World) -> None:  # noqa: F811
    approval = world.request()
    response = world.click(approval.approval_id, "approve_once", "dana")
    assert response["statusCode"] == 200 and response["body"] == ""
    decided = world.approval(approval.approval_id)
    assert decided.status is ApprovalStatus.APPROVED
    assert (decided.decided_by, decided.decided_by_name, decided.decided_via) == ("U0DANA", "dana", "slack")
    assert decided.allowance_id is None
    message = world.message(approval)
    assert message["updates"] == 1 and "actions" not in str([b["type"] for b in message["blocks"]])
    assert "*Approved once* by <@U0DANA> via slack at <!date^" in str(message["blocks"])


def test_deny_records_who_and_why(world: World) -> None:  # noqa: F811
    approval = world.request()
    assert world.click(approval.approval_id, "deny", "dana")["statusCode"] == 200
    denied = world.approval(approval.approval_id)
    assert denied.status is ApprovalStatus.DENIED and denied.decision_reason == "denied by dana"
    assert denied.outcome() == f"approval {approval.approval_id} was denied by dana (slack): denied by dana"
    assert "*Denied* by <@U0DANA>" in outcome_text(world, approval.approval_id)


def test_a_member_listed_by_email_is_recognised_through_users_info(world: World) -> None:  # noqa: F811
    approval = world.request()
    world.click(approval.approval_id, "approve_once", "carol")
    decided = world.approval(approval.approval_id)
    assert decided.status is ApprovalStatus.APPROVED and decided.decided_by == "carol@example.com"


def test_approve_for_n_minutes_creates_an_allowance_that_later_statements_honour(world: World) -> None:  # noqa: F811
    approval = world.request()
    before = datetime.now(UTC)
    world.click(approval.approval_id, "approve_for", "dana")
    decided = world.approval(approval.approval_id)
    assert decided.status is ApprovalStatus.APPROVED and decided.allowance_minutes == 15
    allowance = world.allowances().get(decided.allowance_id or "")
    assert (allowance.identity, allowance.target, allowance.database) == ("ci", "demo", "demo")
    assert (allowance.kinds, allowance.tables, allowance.granted_by) == (["delete"], ["customers"], "U0DANA")
    assert timedelta(minutes=14) < allowance.expires_at - before <= timedelta(minutes=15, seconds=5)
    live = world.allowances().active_in_scope(allowance.scope, datetime.now(UTC))
    assert [a.allowance_id for a in live] == [allowance.allowance_id]
    # Its expiry: the same lookup after the end finds nothing (DynamoDB's key condition on expires_at).
    assert world.allowances().active_in_scope(allowance.scope, allowance.expires_at) == []
    # Uses are counted.
    world.allowances().record_use(allowance.allowance_id, "ses_later", datetime.now(UTC))
    world.allowances().record_use(allowance.allowance_id, "ses_later2", datetime.now(UTC))
    used = world.allowances().get(allowance.allowance_id)
    assert used.uses == 2 and used.last_session_id == "ses_later2"
    # The message offers revoking it; a non-member cannot, a member can.
    assert "revoke_allowance" in outcome_text(world, approval.approval_id)
    world.click(allowance.allowance_id, "revoke_allowance", "gus")
    assert world.allowances().get(allowance.allowance_id).revoked_at is None
    assert "may not revoke" in world.ephemeral("gus")[-1]
    world.click(allowance.allowance_id, "revoke_allowance", "carol")
    revoked = world.allowances().get(allowance.allowance_id)
    assert revoked.revoked_by == "carol@example.com"
    assert world.allowances().active_in_scope(allowance.scope, datetime.now(UTC)) == []
    assert "*revoked* by carol@example.com" in outcome_text(world, approval.approval_id)


def test_concurrent_clicks_exactly_one_wins(world: World) -> None:  # noqa: F811
    approval = world.request()
    clicks = [("approve_once", "dana"), ("deny", "carol")] * 4
    events = [world.click_event(approval.approval_id, action, user) for action, user in clicks]
    start = threading.Barrier(len(events))
    responses: list[dict[str, Any]] = []

    def click(event: dict[str, Any]) -> None:
        start.wait()
        responses.append(slack_app.handler(event, FakeContext()))

    threads = [threading.Thread(target=click, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["statusCode"] for r in responses] == [200] * len(events)
    decided = world.approval(approval.approval_id)
    assert decided.status in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED)
    refused = world.ephemeral("dana") + world.ephemeral("carol")
    assert len(refused) == len(events) - 1  # everyone else was told the decision was already made
    winner = "dana" if decided.status is ApprovalStatus.APPROVED else "carol"
    assert all(f"was {decided.status.value} by {winner}" in text for text in refused)
    assert world.message(approval)["updates"] == 1


def test_replayed_request_outside_the_five_minute_window_is_refused(world: World) -> None:  # noqa: F811
    approval = world.request()
    response = world.click(approval.approval_id, "approve_once", "dana", age=301)
    assert response["statusCode"] == 401
    assert world.approval(approval.approval_id).status is ApprovalStatus.PENDING
    assert world.click(approval.approval_id, "approve_once", "dana", age=240)["statusCode"] == 200


@pytest.mark.parametrize("forgery", ["wrong secret", "altered body", "no signature"])
def test_bad_signatures_are_refused_and_nothing_is_decided(world: World, forgery: str) -> None:  # noqa: F811
    approval = world.request()
    if forgery == "wrong secret":
        event = world.click_event(approval.approval_id, "approve_once", "dana", secret="not-the-secret")
    elif forgery == "altered body":  # signed as dana, then the user swapped for gus
        event = world.click_event(approval.approval_id, "approve_once", "dana",
                                  body_change=lambda b: b.replace("U0DANA", "U0GUS"))  # fmt: skip
    else:
        event = world.click_event(approval.approval_id, "approve_once", "dana")
        del event["headers"]["x-slack-signature"]
    assert slack_app.handler(event, FakeContext())["statusCode"] == 401
    assert world.approval(approval.approval_id).status is ApprovalStatus.PENDING


def test_the_event_body_arrives_base64_encoded_as_api_gateway_sends_forms(world: World) -> None:  # noqa: F811
    approval = world.request()
    event = world.click_event(approval.approval_id, "approve_once", "dana")
    assert event["isBase64Encoded"] is True
    assert unquote_plus(base64.b64decode(event["body"]).decode()).startswith('payload={"type": "block_actions"')


def test_self_approval_is_refused_with_an_ephemeral_message(world: World) -> None:  # noqa: F811
    approval = world.request()
    assert world.click(approval.approval_id, "approve_once", "oscar")["statusCode"] == 200
    assert world.approval(approval.approval_id).status is ApprovalStatus.PENDING
    (said,) = world.ephemeral("oscar")[-1:]
    assert "oscar owns identity 'ci'" in said and "someone else in 'dba' must" in said
    assert world.message(approval)["updates"] == 0


def test_non_member_is_refused_with_an_ephemeral_message(world: World) -> None:  # noqa: F811
    approval = world.request()
    world.click(approval.approval_id, "deny", "gus")
    assert world.approval(approval.approval_id).status is ApprovalStatus.PENDING
    assert "gus is not in approver group 'dba'" in world.ephemeral("gus")[-1]


def test_an_expired_approval_cannot_be_approved(world: World) -> None:  # noqa: F811
    approval = world.request()
    slack_app.deps()[0].clock = lambda: in_the_past(approval)
    world.click(approval.approval_id, "approve_once", "dana")
    expired = world.approval(approval.approval_id)
    assert expired.status is ApprovalStatus.EXPIRED
    assert "expired at" in world.ephemeral("dana")[-1]
    assert "*Expired*" in outcome_text(world, approval.approval_id)


# ---------------------------------------------------------------------- withdraw, status, expiry sweep


def test_withdraw_updates_the_message_and_is_idempotent(world: World) -> None:  # noqa: F811
    approval = world.request()
    withdraw = {"action": "withdraw", "approval_id": approval.approval_id, "reason": "the agent disconnected"}
    answer = world.invoke(withdraw)
    assert answer["ok"] and answer["approval"]["status"] == "withdrawn"
    assert world.invoke(withdraw)["approval"]["status"] == "withdrawn"
    message = world.message(approval)
    assert message["updates"] == 1 and "*Withdrawn* at" in str(message["blocks"])
    assert "the agent disconnected" in str(message["blocks"])
    assert "actions" not in [b["type"] for b in message["blocks"]]  # no buttons left to click


def test_withdraw_after_a_decision_returns_the_decision(world: World) -> None:  # noqa: F811
    approval = world.request()
    world.click(approval.approval_id, "approve_once", "dana")
    answer = world.invoke({"action": "withdraw", "approval_id": approval.approval_id, "reason": "cancelled"})
    assert answer["approval"]["status"] == "approved" and answer["approval"]["decided_by"] == "U0DANA"


def test_status_and_the_scheduled_sweep_expire_what_nobody_decided(world: World) -> None:  # noqa: F811
    first, second = world.request(), world.request()
    service = approvals_app.service()
    service.clock = lambda: in_the_past(second)
    answer = world.invoke({"action": "status", "approval_id": first.approval_id})
    assert answer["approval"]["status"] == "expired"
    swept = world.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    assert second.approval_id in swept["expired"]
    assert world.approval(second.approval_id).status is ApprovalStatus.EXPIRED
    assert "*Expired*" in outcome_text(world, second.approval_id)


# ---------------------------------------------------------------------- SNS links


def test_link_get_shows_a_page_and_decides_nothing_post_decides(world: World) -> None:  # noqa: F811
    approval = world.request()
    token = world.link_token(approval, Verdict.APPROVE, "carol@example.com")
    page = world.get_link(token)
    assert page["statusCode"] == 200 and page["headers"]["Content-Type"].startswith("text/html")
    assert page["headers"]["Cache-Control"] == "no-store" and page["headers"]["Referrer-Policy"] == "no-referrer"
    assert "Approve as carol@example.com" in page["body"] and "method='post'" in page["body"]
    assert "DELETE FROM customers WHERE id = 42" in page["body"]
    for _ in range(3):  # mail scanners and previews may fetch it many times
        world.get_link(token)
    assert world.approval(approval.approval_id).status is ApprovalStatus.PENDING
    done = world.post_link(token)
    assert done["statusCode"] == 200 and "was approved by carol@example.com (sns)" in done["body"]
    decided = world.approval(approval.approval_id)
    assert (decided.status, decided.decided_by, decided.decided_via) == (ApprovalStatus.APPROVED, "carol@example.com",
                                                                        "sns")  # fmt: skip
    assert "*Approved once* by carol@example.com via sns" in outcome_text(world, approval.approval_id)
    again = world.post_link(world.link_token(approval, Verdict.DENY, "U0DANA"))
    assert again["statusCode"] == 409 and "was approved by carol@example.com" in again["body"]


def test_deny_link_records_the_reason(world: World) -> None:  # noqa: F811
    approval = world.request()
    done = world.post_link(world.link_token(approval, Verdict.DENY, "U0DANA"), reason="use the archive job")
    assert done["statusCode"] == 200
    denied = world.approval(approval.approval_id)
    assert denied.status is ApprovalStatus.DENIED and denied.decision_reason == "use the archive job"


def test_expired_forged_and_owner_links(world: World) -> None:  # noqa: F811
    approval = world.request()
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = world.link_token(approval, Verdict.APPROVE, "U0DANA", expires=past)
    assert world.get_link(expired)["statusCode"] == 410
    assert world.post_link(expired)["statusCode"] == 410
    token = world.link_token(approval, Verdict.APPROVE, "U0DANA")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert world.post_link(forged)["statusCode"] == 403
    # A link made out to an owner (Airlock never issues one) is still refused at decision time.
    owner = world.post_link(world.link_token(approval, Verdict.APPROVE, "U0OSCAR"))
    assert owner["statusCode"] == 409 and "owns identity" in owner["body"]
    assert world.approval(approval.approval_id).status is ApprovalStatus.PENDING


def test_api_gateway_event_shape() -> None:
    event = api_gateway_event("POST", "/slack/interactions", query="a=1&a=2", body=b"payload=%7B%7D",
                              headers=[("Content-Type", "application/x-www-form-urlencoded"), ("X-A", "1"),
                                       ("x-a", "2")])  # fmt: skip
    assert event["version"] == "2.0" and event["routeKey"] == "POST /slack/interactions"
    assert event["headers"]["x-a"] == "1,2" and event["queryStringParameters"] == {"a": "1,2"}
    assert event["requestContext"]["http"]["method"] == "POST" and event["requestContext"]["stage"] == "$default"
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == b"payload=%7B%7D"

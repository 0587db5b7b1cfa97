"""One approvals world per test: the real handlers, tables from template.yaml on a moto server over HTTP,
the Slack stand-in over HTTP, an SQS queue on the approvals topic, and a fresh policy.

Events are what API Gateway's HTTP API sends (payload 2.0, form bodies base64-encoded); Slack clicks are
what Slack posts (``payload=`` JSON, signed v0). Import the fixtures into a test module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from airlock import admin
from airlock.devstack.http_api import api_gateway_event
from airlock.devstack.provision import StackResources
from airlock.devstack.slack_standin import (
    RunningSlack,
    SlackUser,
    block_actions_payload,
    find_button,
    signed_form,
    start_slack_standin,
)
from functions.approval_links import app as links_app
from functions.approvals import app as approvals_app
from functions.slack_interactions import app as slack_app
from shared.approvals.dynamo import DynamoAllowanceStore, DynamoApprovalStore
from shared.approvals.links import LinkClaims, LinkSigner
from shared.approvals.model import Approval, Verdict
from shared.approvals.settings import ApprovalsSettings, approvals_settings
from shared.approvals.wiring import build_service, slack_web, sns_announcer
from shared.config import ControlPlaneSettings, control_plane_settings

CHANNEL = "#db-approvals"
BOT_TOKEN = "xoxb-test-" + uuid.uuid4().hex
SIGNING_SECRET = uuid.uuid4().hex
USERS = {
    "dana": SlackUser("U0DANA", "dana", "dana@example.com"),  # approver (by Slack id)
    "carol": SlackUser("U0CAROL", "carol", "carol@example.com"),  # approver (by e-mail only)
    "oscar": SlackUser("U0OSCAR", "oscar", "oscar@example.com"),  # approver, but owns "ci"
    "gus": SlackUser("U0GUS", "gus", "gus@example.com"),  # no approver
}
POLICY = """
version: 1
identities:
  ci: {{keys: true, owners: [U0OSCAR]}}
targets:
  demo: {{host: 127.0.0.1, credential_secret: s, databases: [demo]}}
bindings:
  - {{identity: ci, target: demo, databases: [demo]}}
guardrails:
  rules:
    - {{name: customer-deletes, match: {{kinds: [delete], tables: [customers]}}, action: hold, approvers: dba}}
approvals:
  slack_channel: "{channel}"
  sns_topic_arn: "{topic}"
  timeout_seconds: 300
  approver_groups:
    dba: [U0DANA, U0OSCAR, carol@example.com]
  allowances: {{enabled: true, minutes: 15, max_minutes: 60}}
"""


@dataclass
class FakeContext:
    function_name: str = "airlock-test-approvals"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:airlock-test-approvals"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass
class World:
    slack: RunningSlack
    resources: StackResources
    inbox_url: str
    settings: ApprovalsSettings

    # -------------------------------------------------------------- the approvals Lambda

    def invoke(self, event: Any) -> dict[str, Any]:
        # The proxy sends JSON over lambda.invoke: round-trip so the event is plain JSON.
        answer: dict[str, Any] = approvals_app.handler(json.loads(json.dumps(event)), FakeContext())
        return json.loads(json.dumps(answer))  # type: ignore[no-any-return]

    def request_event(self, **changes: Any) -> dict[str, Any]:
        request = {
            "session_id": f"ses_{uuid.uuid4().hex[:12]}", "proxy_id": "proxy-test", "identity": "ci",
            "protocol": "postgres", "target": "demo", "database": "demo",
            "statement": "DELETE FROM customers WHERE id = 42", "digest": "ab" * 32, "kinds": ["delete"],
            "tables": ["customers"], "rule": "customer-deletes", "reason": "deleting customers needs a DBA",
            "approvers": "dba", "timeout_seconds": 300, "idempotency_key": uuid.uuid4().hex,
        }  # fmt: skip
        request.update(changes)
        return {"action": "request", "request": request}

    def request(self, **changes: Any) -> Approval:
        answer = self.invoke(self.request_event(**changes))
        assert answer["ok"], answer
        return Approval.model_validate(answer["approval"])

    # -------------------------------------------------------------- Slack

    def messages(self) -> list[dict[str, Any]]:
        return self.slack.standin.messages()

    def message(self, approval: Approval) -> dict[str, Any]:
        (found,) = [m for m in self.messages() if m["ts"] == approval.slack_ts]
        return found

    def ephemeral(self, user: str) -> list[str]:
        return [e["text"] for e in self.slack.standin.ephemeral() if e["user"] == USERS[user].id]

    def click_event(self, value: str, action: str, user: str, *, age: int = 0, secret: str = SIGNING_SECRET,
                    body_change: Any = None) -> dict[str, Any]:  # fmt: skip
        message, button = find_button(self.messages(), value, action)
        payload = block_actions_payload(message, button, USERS[user], CHANNEL)
        timestamp = int(datetime.now(UTC).timestamp()) - age
        body, headers = signed_form(payload, secret, timestamp)
        if body_change:
            body = body_change(body)
        return api_gateway_event("POST", "/slack/interactions", headers=headers.items(), body=body.encode(),
                                 host="abc123.execute-api.us-east-1.amazonaws.com")  # fmt: skip

    def click(self, value: str, action: str, user: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = slack_app.handler(self.click_event(value, action, user, **kwargs), FakeContext())
        return response

    # -------------------------------------------------------------- SNS links

    def signer(self) -> LinkSigner:
        secret = boto3.client("secretsmanager").get_secret_value(SecretId=self.settings.approval_link_key_secret)
        return LinkSigner(secret["SecretString"].encode())

    def link_token(self, approval: Approval, verdict: Verdict, member: str, expires: datetime | None = None) -> str:
        return self.signer().sign(LinkClaims(approval.approval_id, verdict, member, expires or approval.expires_at))

    def get_link(self, token: str) -> dict[str, Any]:
        event = api_gateway_event("GET", "/approvals/link", query=f"t={token}",
                                  headers=[("user-agent", "Mozilla/5.0 (mail scanner)")])  # fmt: skip
        response: dict[str, Any] = links_app.handler(event, FakeContext())
        return response

    def post_link(self, token: str, reason: str = "") -> dict[str, Any]:
        from urllib.parse import urlencode

        event = api_gateway_event(
            "POST", "/approvals/link", headers=[("content-type", "application/x-www-form-urlencoded")],
            body=urlencode({"t": token, "reason": reason}).encode(),
        )  # fmt: skip
        response: dict[str, Any] = links_app.handler(event, FakeContext())
        return response

    def sns_messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        found = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        out = []
        for m in found.get("Messages", []):
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=m["ReceiptHandle"])
        return out

    # -------------------------------------------------------------- state

    def approval(self, approval_id: str) -> Approval:
        return DynamoApprovalStore(self.settings).get(approval_id)

    def allowances(self) -> DynamoAllowanceStore:
        return DynamoAllowanceStore(self.settings)

    def service(self) -> Any:
        settings = self.settings
        return build_service(settings, ControlPlaneSettings(), slack_web(settings), sns_announcer(settings))


def _clear_caches() -> None:
    approvals_settings.cache_clear()
    control_plane_settings.cache_clear()
    approvals_app.service.cache_clear()
    slack_app.deps.cache_clear()
    links_app.service.cache_clear()


@pytest.fixture(scope="session")
def slack_standin() -> Iterator[RunningSlack]:
    running = start_slack_standin(BOT_TOKEN, list(USERS.values()))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def sns_inbox(provisioned_stack: StackResources) -> str:
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url: str = sqs.create_queue(QueueName=f"approvals-inbox-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=provisioned_stack.physical_ids["ApprovalsTopic"], Protocol="sqs", Endpoint=arn)
    return url


@pytest.fixture
def world(
    provisioned_stack: StackResources,
    slack_standin: RunningSlack,
    sns_inbox: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[World]:
    for key, value in provisioned_stack.function_environment("ApprovalsFunction").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRLOCK_POLICY_NAME", f"approvals-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("AIRLOCK_SLACK_API_URL", slack_standin.api_url)
    monkeypatch.setenv("AIRLOCK_APPROVALS_PUBLIC_URL", "https://abc123.execute-api.us-east-1.amazonaws.com")
    monkeypatch.setenv("AIRLOCK_SECRET_CACHE_SECONDS", "0")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Airlock")
    boto3.client("secretsmanager").put_secret_value(
        SecretId=provisioned_stack.physical_ids["SlackAppSecret"],
        SecretString=json.dumps({"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET}),
    )
    _clear_caches()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(channel=CHANNEL, topic=provisioned_stack.physical_ids["ApprovalsTopic"]))
    admin.push_policy(policy)
    world = World(slack_standin, provisioned_stack, sns_inbox, ApprovalsSettings())
    world.sns_messages()  # drain what earlier tests published
    yield world
    _clear_caches()


def in_the_past(approval: Approval) -> datetime:
    """A moment after the approval expired."""
    return approval.expires_at + timedelta(seconds=1)


__all__ = ["USERS", "World", "in_the_past", "slack_standin", "sns_inbox", "world"]

"""Slack requests: signature and window (slack_sdk's verifier), payload parsing, the app's credentials."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from airlock.devstack.slack_standin import signed_form
from shared.approvals.slack import BadInteraction, SlackCredentials, parse_interaction, verify

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PAYLOAD = {"type": "block_actions", "user": {"id": "U0DANA", "username": "dana"},
           "actions": [{"action_id": "approve_once", "value": "apr_x"}],
           "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C1"}}  # fmt: skip


def test_a_signed_request_verifies_within_five_minutes_only() -> None:
    now = int(time.time())
    for age, valid in ((0, True), (299, True), (-299, True), (301, False), (-301, False)):
        body, headers = signed_form(PAYLOAD, SECRET, now - age)
        assert verify(SECRET, body, headers, lambda: float(now)) is valid, age


def test_tampering_and_missing_headers_fail() -> None:
    body, headers = signed_form(PAYLOAD, SECRET)
    assert verify(SECRET, body, headers)
    assert not verify("another-secret-of-enough-length", body, headers)
    assert not verify(SECRET, body.replace("U0DANA", "U0GUS"), headers)
    assert not verify(SECRET, body, {**headers, "X-Slack-Request-Timestamp": "soon"})
    assert not verify(SECRET, body, {k: v for k, v in headers.items() if k != "X-Slack-Signature"})


def test_payload_parsing() -> None:
    body, _ = signed_form(PAYLOAD, SECRET)
    parsed = parse_interaction(body)
    assert (parsed.user.id, parsed.actions[0].action_id, parsed.channel_id) == ("U0DANA", "approve_once", "C1")
    for bad in ("", "payload=", "payload=%7B%7D", "payload=" + json.dumps({"type": "block_actions"}), "a=b&&"):
        with pytest.raises(BadInteraction):
            parse_interaction(bad)


def test_placeholder_credentials_are_refused() -> None:
    SlackCredentials(bot_token="xoxb-123-456", signing_secret=SECRET)
    for bad in ({"bot_token": "unset", "signing_secret": SECRET}, {"bot_token": "xoxb-1", "signing_secret": "x"}):
        with pytest.raises(ValidationError):
            SlackCredentials.model_validate(bad)

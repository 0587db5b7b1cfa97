"""The approvals section of the policy: every hold must reach someone who may approve it."""

from __future__ import annotations

import pytest

from shared.approvals.policy import ApprovalsGrant
from shared.policy import PolicyError, parse_policy

BASE = """
version: 1
identities:
  ci:
    keys: true
    owners: [U0OWNER, Owner@Example.com]
  bot:
    keys: true
targets:
  demo: {host: 127.0.0.1, credential_secret: s, databases: [demo]}
bindings:
  - {identity: ci, target: demo, databases: [demo]}
guardrails:
  rules:
    - {name: deletes, match: {kinds: [delete]}, action: hold, approvers: dba}
"""
APPROVALS = """
approvals:
  slack_channel: "#db-approvals"
  timeout_seconds: 120
  approver_groups:
    dba: [U0DANA, dana@example.com]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return info.value.problems


def test_a_reachable_hold_parses_and_its_grant_snapshot_has_no_members() -> None:
    policy = parse_policy(BASE + APPROVALS)
    assert policy.approvals is not None
    assert policy.identities["ci"].owners == ["U0OWNER", "owner@example.com"]  # e-mails compare lower case
    grant = policy.approvals.grant()
    assert grant == ApprovalsGrant(slack_channel="#db-approvals", sns=False, timeout_seconds=120)
    assert "U0DANA" not in grant.model_dump_json() and grant.where() == "Slack #db-approvals"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.replace(APPROVALS, ""), "action hold needs an 'approvals' section"),
        (lambda t: t.replace(", approvers: dba", ""), "names no approver group"),
        (lambda t: t.replace("approvers: dba", "approvers: ops"), "unknown approver group 'ops'"),
        (lambda t: t.replace("dba: [U0DANA, dana@example.com]", "dba: []"), "approver group 'dba' has no members"),
        (lambda t: t.replace('  slack_channel: "#db-approvals"\n', ""), "neither slack_channel nor sns_topic_arn"),
        (lambda t: t.replace("dba: [U0DANA, dana@example.com]", "dba: [U0OWNER]"),
         "every member of approver group 'dba' owns identity 'ci'"),
        (lambda t: t.replace("action: hold, approvers: dba", "action: deny, approvers: dba"),
         "approvers only apply to hold rules"),
    ],
)
def test_a_hold_nobody_can_approve_is_refused(change: object, expected: str) -> None:
    text = change(BASE + APPROVALS)  # type: ignore[operator]
    found = problems(text)
    assert any(expected in p for p in found), found


def test_default_and_unknown_holds_use_default_approvers() -> None:
    text = BASE + APPROVALS + "  default_approvers: dba\n"
    text = text.replace("  rules:\n", "  default: hold\n  unknown: hold\n  rules:\n")
    text = text.replace(", approvers: dba", "")
    policy = parse_policy(text)
    assert policy.approvals is not None and policy.approvals.grant().default_approvers == "dba"
    found = problems(text.replace("  default_approvers: dba\n", ""))
    assert any(p.startswith("guardrails.default:") for p in found)
    assert any(p.startswith("guardrails.unknown:") for p in found)


def test_members_and_channels_are_validated() -> None:
    assert any("approver_groups" in p for p in problems(BASE + APPROVALS.replace("U0DANA", "not a member")))
    assert any("slack_channel" in p for p in problems(BASE + APPROVALS.replace("#db-approvals", "db approvals")))
    assert any("sns_topic_arn" in p for p in problems(BASE + APPROVALS + "  sns_topic_arn: arn:aws:s3:::bucket\n"))
    too_long = BASE + APPROVALS + "  allowances: {minutes: 300, max_minutes: 60}\n"
    assert any("exceeds allowances.max_minutes" in p for p in problems(too_long))

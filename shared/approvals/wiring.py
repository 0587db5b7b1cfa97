"""The approvals service built from configuration: stores, the cached policy, Slack, SNS and secrets.

Used by the three approvals Lambdas and by the CLI, so all of them decide through the same code.
Secrets (Slack app credentials, the link key) are read from Secrets Manager when first needed and
cached ``secret_cache_seconds`` (aws-lambda-powertools parameters); a secret that cannot be read makes
the one channel that needs it fail, never the others.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters

from shared.approvals.dynamo import DynamoAllowanceStore, DynamoApprovalStore
from shared.approvals.links import LinkSigner
from shared.approvals.service import ApprovalService
from shared.approvals.settings import ApprovalsSettings
from shared.approvals.slack import SlackCredentials, SlackError, SlackWeb
from shared.approvals.sns import SnsAnnouncer, SnsError
from shared.config import ControlPlaneSettings
from shared.store.cache import CachedPolicyStore
from shared.store.dynamo import DynamoPolicyStore


def _secret(name: str, max_age: int) -> str:
    value = parameters.get_secret(name, max_age=max_age)
    return value.decode() if isinstance(value, bytes) else str(value)


def slack_credentials(settings: ApprovalsSettings) -> SlackCredentials:
    try:
        return SlackCredentials.model_validate_json(_secret(settings.slack_secret, settings.secret_cache_seconds))
    except Exception as e:  # powertools wraps every failure differently; all mean "no credentials"
        raise SlackError(f"cannot read the Slack app secret {settings.slack_secret!r}: {type(e).__name__}") from e


def link_signer(settings: ApprovalsSettings) -> LinkSigner:
    try:
        return LinkSigner(_secret(settings.approval_link_key_secret, settings.secret_cache_seconds).encode())
    except Exception as e:
        raise SnsError(f"cannot read the link key {settings.approval_link_key_secret!r}: {type(e).__name__}") from e


def slack_web(settings: ApprovalsSettings) -> SlackWeb:
    return SlackWeb(lambda: slack_credentials(settings), settings.slack_api_url, settings.slack_timeout_seconds)


def sns_announcer(settings: ApprovalsSettings) -> SnsAnnouncer:
    """SNS messages with signed approve/deny links (the SNS client is made on the first publish)."""
    sns_client: list[Any] = []

    def sns() -> Any:
        if not sns_client:
            sns_client.append(boto3.session.Session().client("sns", region_name=settings.region))
        return sns_client[0]

    return SnsAnnouncer(sns, lambda: link_signer(settings), settings.approvals_public_url)


def build_service(
    settings: ApprovalsSettings,
    control: ControlPlaneSettings,
    slack: SlackWeb | None = None,
    sns: SnsAnnouncer | None = None,
) -> ApprovalService:
    """The service with the channels its caller uses: requests are announced on ``slack`` and ``sns``,
    decisions rewrite the ``slack`` message. A Lambda passes only what it needs, so its role grants
    only what those channels read (the Slack secret, the link key, SNS)."""
    return ApprovalService(
        approvals=DynamoApprovalStore(settings),
        allowances=DynamoAllowanceStore(settings),
        policies=CachedPolicyStore(DynamoPolicyStore(control), control.policy_cache_seconds),
        policy_name=control.policy_name,
        slack=slack,
        sns=sns,
    )

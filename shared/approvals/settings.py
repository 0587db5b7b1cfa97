"""Approvals configuration, parsed once from the environment (``AIRLOCK_*``, as ``shared.config``).

The same names reach the approvals, Slack-interactions and link Lambdas (template.yaml), the CLI and the
proxy. Locally the devstack points ``slack_api_url`` at its Slack stand-in and ``approvals_public_url``
at its HTTP API endpoint; nothing else differs.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApprovalsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRLOCK_", extra="ignore")

    region: str = "us-east-1"
    approvals_table: str = "airlock-approvals"
    allowances_table: str = "airlock-allowances"
    # The approvals Lambda the proxy invokes (name or ARN).
    approvals_function: str = "airlock-approvals"
    # Secrets Manager ids: Slack app credentials {"bot_token", "signing_secret"} and the link HMAC key.
    slack_secret: str = "airlock/approvals/slack"
    approval_link_key_secret: str = "airlock/approvals/link-key"
    # Base URL of the HTTP API that serves /slack/interactions and /approvals/link (SNS links point here).
    approvals_public_url: str = ""
    # Slack's Web API (locally: the stand-in); calls are kept short so an interaction answers within 3 s.
    slack_api_url: str = "https://slack.com/api/"
    slack_timeout_seconds: int = Field(default=2, ge=1, le=10)
    # Decided approvals and spent allowances stay this long after they expire (DynamoDB TTL purges them).
    approvals_retention_days: int = Field(default=90, ge=1, le=3650)
    # How long secrets read from Secrets Manager are cached by a warm Lambda.
    secret_cache_seconds: int = 300
    # Gateways: how often the one watcher reads the state of waiting approvals, and how long an
    # allowance lookup is reused (a revocation reaches running sessions within this).
    approvals_watch_interval: float = Field(default=0.25, gt=0, le=10)
    allowance_cache_seconds: float = Field(default=2.0, ge=0, le=60)


@lru_cache(maxsize=1)
def approvals_settings() -> ApprovalsSettings:
    return ApprovalsSettings()

"""Runtime configuration, parsed once from the environment.

The same code runs in AWS and locally: only endpoints and credentials differ. boto3 itself reads
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` and the usual credential variables, so nothing in
Airlock branches on "local" versus "cloud"; the local stack simply sets those variables.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ControlPlaneSettings(BaseSettings):
    """Names of the control plane's resources (CloudFormation outputs / Lambda environment)."""

    model_config = SettingsConfigDict(env_prefix="AIRLOCK_", extra="ignore")

    region: str = "us-east-1"
    identities_table: str = "airlock-identities"
    api_keys_table: str = "airlock-api-keys"
    policies_table: str = "airlock-policies"
    sessions_table: str = "airlock-sessions"
    approvals_table: str = "airlock-approvals"
    sessions_bucket: str = "airlock-sessions"
    signing_key_id: str = "alias/airlock-recording"
    approvals_topic_arn: str = ""
    policy_name: str = "default"
    # How long authorize caches the policy document and the OIDC discovery / JWKS documents.
    policy_cache_seconds: float = 5.0
    jwks_cache_seconds: float = 300.0
    # Allowed clock skew when verifying tokens.
    clock_skew_seconds: int = 30


@lru_cache(maxsize=1)
def control_plane_settings() -> ControlPlaneSettings:
    return ControlPlaneSettings()

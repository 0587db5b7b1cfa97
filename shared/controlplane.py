"""The control-plane API between proxy and Lambdas: pydantic models at the boundary.

``authorize`` is invoked by the proxy through ``lambda.invoke`` (RequestResponse) with an
``AuthorizeRequest`` as JSON and answers an ``AuthorizeResponse``. A ``Grant`` carries everything the
proxy needs for one session: the backend it may reach, the credential reference, the recording mode and
the guardrail/masking/approval rules of the policy snapshot, and an expiry in minutes. The proxy
re-authorizes (``action="reauthorize"``) before ``expires_at``; a refusal then terminates the session.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, SecretStr, Tag

from shared.approvals.policy import ApprovalsGrant
from shared.k8s.policy import KubernetesAccess, KubernetesGuardrails
from shared.masking.rules import MaskingPolicy
from shared.pg.sql.rules import GuardrailsPolicy
from shared.ssh.policy import SshAccess, SshGuardrails

# The protocols a gateway speaks; a target's ``engine`` names one.
Protocol = Literal["postgres", "ssh", "kubernetes"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecordingMode(StrEnum):
    BUFFERED = "buffered"
    STRICT = "strict"


class BackendTLS(StrEnum):
    """TLS toward the target, named after libpq's sslmode values."""

    DISABLE = "disable"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


class BackendRef(_Model):
    """A PostgreSQL target."""

    engine: Literal["postgres"] = "postgres"
    host: str
    port: int = 5432
    database: str
    # Secrets Manager id (name or ARN) of a JSON secret {"username": ..., "password": ...}.
    credential_secret: str
    tls: BackendTLS = BackendTLS.PREFER
    # PEM bundle used to verify the backend certificate (verify-ca / verify-full); None = system store.
    tls_ca_pem: str | None = None
    # TargetSpec.allow_insecure_password: md5/cleartext password authentication without verified TLS.
    allow_insecure_password: bool = False


class SshBackendRef(_Model):
    engine: Literal["ssh"] = "ssh"
    host: str
    port: int = 22
    user: str
    # Secrets Manager id of a JSON secret {"private_key": ...}.
    credential_secret: str
    host_keys: list[str]


class KubernetesBackendRef(_Model):
    engine: Literal["kubernetes"] = "kubernetes"
    server: str
    ca_pem: str | None = None
    credential_secret: str


def engine_of(value: Any) -> str:
    """The protocol a target or backend speaks (its ``engine``); absent means postgres: policies and
    grants from before SSH and Kubernetes name none."""
    engine = value.get("engine", "postgres") if isinstance(value, dict) else getattr(value, "engine", "postgres")
    return str(engine)


AnyBackend = Annotated[
    Annotated[BackendRef, Tag("postgres")] | Annotated[SshBackendRef, Tag("ssh")]
    | Annotated[KubernetesBackendRef, Tag("kubernetes")],
    Discriminator(engine_of),
]


class AuthorizeRequest(_Model):
    action: Literal["connect", "reauthorize"] = "connect"
    protocol: Protocol = "postgres"
    identity: str = Field(min_length=1, max_length=128, description="the user name the agent presented")
    token: SecretStr | None = Field(default=None, description="the agent's password: OIDC JWT or Airlock key")
    # None: the database name alone chooses (a policy alias, or the one target that serves it to this
    # identity); authorize resolves it, after authentication.
    target: str | None = Field(default=None, min_length=1, max_length=128)
    # PostgreSQL: the database; SSH and Kubernetes: empty.
    database: str = Field(default="", max_length=128)
    client_addr: str = ""
    proxy_id: str = ""
    session_id: str = ""
    grant_id: str | None = Field(default=None, description="the grant being renewed (reauthorize)")
    key_id: str | None = Field(
        default=None, max_length=64, description="reauthorize: Grant.key_id of a key-authenticated session"
    )


class Grant(_Model):
    grant_id: str
    session_id: str
    identity: str
    # How the identity proved itself: "oidc" or "key".
    auth_method: Literal["oidc", "key"]
    target: str
    database: str
    policy_version: int
    issued_at: datetime
    expires_at: datetime
    backend: AnyBackend
    recording: RecordingMode = RecordingMode.BUFFERED
    retention_days: int = 365
    # The policy snapshot the proxy enforces for this session (None: not configured).
    guardrails: GuardrailsPolicy | None = None
    masking: MaskingPolicy | None = None
    # SSH and Kubernetes sessions: what the binding allows and the protocol's rules.
    ssh_access: SshAccess | None = None
    ssh: SshGuardrails | None = None
    kubernetes_access: KubernetesAccess | None = None
    kubernetes: KubernetesGuardrails | None = None
    # How held statements are asked for (channel, timeout, allowances); None: no approvals section.
    approvals: ApprovalsGrant | None = None
    # The Airlock key the session authenticated with (auth_method "key"): reauthorize re-checks it.
    key_id: str | None = None


class Refusal(_Model):
    # 28P01 invalid_password (bad/expired/revoked token), 28000 invalid_authorization_specification
    # (no binding for this identity/target/database).
    sqlstate: Literal["28000", "28P01"]
    reason: str


class AuthorizeResponse(_Model):
    decision: Literal["grant", "refuse"]
    grant: Grant | None = None
    refusal: Refusal | None = None

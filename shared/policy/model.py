"""The policy file (schema ``version: 1``): who may reach which target, and under which rules.

A policy names *identities* (how an agent proves who it is), *targets* (the databases Airlock fronts)
and *bindings* (identity x target x databases, with the session's recording mode and grant lifetime).
Every model forbids unknown fields, so a typo is an error, not a silently ignored rule. The
``guardrails``, ``masking`` and ``approvals`` sections are typed placeholders that later work extends;
adding optional fields there keeps existing files valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.controlplane import BackendTLS, RecordingMode
from shared.masking.rules import MaskingPolicy
from shared.pg.sql.rules import GuardrailsPolicy

SCHEMA_VERSION = 1

# PostgreSQL user names are the identity names agents present; keep them to a portable, log-safe set.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
ClaimValue = str | int | bool


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OidcMatch(_Strict):
    """Which verified OIDC tokens prove this identity."""

    issuer: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
    audience: str = Field(min_length=1)
    # One exact subject or a list of accepted subjects (no wildcards: a pattern is too easy to widen).
    subject: str | list[str] = Field(min_length=1)
    # Extra claims that must be equal, e.g. {"repository_owner": "acme"}.
    claims: dict[str, ClaimValue] = Field(default_factory=dict)

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.subject,) if isinstance(self.subject, str) else tuple(self.subject)

    def matches(self, claims: Mapping[str, object]) -> bool:
        """True if verified ``claims`` (issuer and audience already checked) satisfy this block."""
        if str(claims.get("iss", "")).rstrip("/") != self.issuer.rstrip("/"):
            return False
        aud = claims.get("aud")
        if self.audience != aud and not (isinstance(aud, list) and self.audience in aud):
            return False
        if claims.get("sub") not in self.subjects:
            return False
        return all(claims.get(name) == value for name, value in self.claims.items())


class IdentitySpec(_Strict):
    description: str = ""
    oidc: OidcMatch | None = None
    # True: the identity may authenticate with Airlock-issued keys (``airlock keys issue``).
    keys: bool = False

    @model_validator(mode="after")
    def _has_a_way_in(self) -> IdentitySpec:
        if self.oidc is None and not self.keys:
            raise ValueError("an identity needs an 'oidc' block or 'keys: true'")
        return self


class TargetSpec(_Strict):
    engine: Literal["postgres"] = "postgres"
    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    # Secrets Manager id of a JSON secret {"username": ..., "password": ...}.
    credential_secret: str = Field(min_length=1)
    tls: BackendTLS = BackendTLS.PREFER
    tls_ca_pem: str | None = None
    # With tls disable/prefer the server is not authenticated, so the proxy refuses to answer its request
    # for a cleartext or md5 password (whoever answers would get it, or a replayable hash) unless this
    # says yes. SCRAM needs no such opt-in: it proves the server, and Airlock checks that proof.
    allow_insecure_password: bool = False
    databases: list[Name] = Field(min_length=1)


class DatabaseAlias(_Strict):
    """A database name agents may use for ``target``/``database`` (as pgbouncer's ``[databases]``)."""

    target: Name
    database: Name


class ApprovalsSection(_Strict):
    """Where held statements are routed for approval. Later work adds approvers and timeouts."""

    slack_channel: str | None = None
    sns_topic_arn: str | None = None


class Binding(_Strict):
    identity: Name
    target: Name
    databases: list[Name] = Field(min_length=1)
    recording: RecordingMode = RecordingMode.BUFFERED
    retention_days: int = Field(default=365, ge=1, le=3650)
    # Grants live minutes, not hours: the proxy re-authorizes before expiry, so revocation bites fast.
    # (Seconds are allowed for tests and for identities that must be cut off almost at once.)
    grant_ttl_seconds: int = Field(default=300, ge=5, le=3600)


class Policy(_Strict):
    version: Literal[1]
    identities: dict[Name, IdentitySpec] = Field(default_factory=dict)
    targets: dict[Name, TargetSpec] = Field(default_factory=dict)
    bindings: list[Binding] = Field(default_factory=list)
    # Statement guardrails (docs/policy.md); absent: statements are not judged.
    guardrails: GuardrailsPolicy | None = None
    # Result masking (docs/policy.md); absent: results are not masked.
    masking: MaskingPolicy | None = None
    approvals: ApprovalsSection | None = None
    # dbname -> the target and database it names; an alias wins over a database of the same name.
    aliases: dict[Name, DatabaseAlias] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        problems: list[str] = []
        for name, alias in self.aliases.items():
            aliased = self.targets.get(alias.target)
            if aliased is None:
                problems.append(f"aliases.{name}.target: unknown target {alias.target!r}")
            elif alias.database not in aliased.databases:
                problems.append(f"aliases.{name}.database: target {alias.target!r} does not serve {alias.database!r}")
        seen: dict[tuple[str, str, str], int] = {}
        for i, b in enumerate(self.bindings):
            where = f"bindings[{i}]"
            if b.identity not in self.identities:
                problems.append(f"{where}.identity: unknown identity {b.identity!r}")
            target = self.targets.get(b.target)
            if target is None:
                problems.append(f"{where}.target: unknown target {b.target!r}")
                continue
            for db in b.databases:
                if db not in target.databases:
                    problems.append(f"{where}.databases: target {b.target!r} does not serve database {db!r}")
                key = (b.identity, b.target, db)
                if key in seen:
                    # Two bindings for one triple would make the grant depend on list order.
                    dup = f"{b.identity}/{b.target}/{db}"
                    problems.append(f"{where}: duplicates bindings[{seen[key]}] for {dup}")
                seen.setdefault(key, i)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def binding_for(self, identity: str, target: str, database: str) -> Binding | None:
        """The binding that lets ``identity`` reach ``target``/``database``, if any."""
        for b in self.bindings:
            if b.identity == identity and b.target == target and database in b.databases:
                return b
        return None

    def oidc_identities(self, claims: Mapping[str, object]) -> list[str]:
        """Names of identities whose ``oidc`` block accepts these verified claims."""
        return [name for name, spec in self.identities.items() if spec.oidc and spec.oidc.matches(claims)]

    def oidc_audiences(self, issuer: str) -> list[str]:
        """Audiences the policy accepts from ``issuer`` (empty: the issuer is not trusted)."""
        norm = issuer.rstrip("/")
        blocks = [s.oidc for s in self.identities.values() if s.oidc]
        return sorted({b.audience for b in blocks if b.issuer.rstrip("/") == norm})

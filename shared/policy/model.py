"""The policy file (schema ``version: 1``): who may reach which target, and under which rules.

A policy names *identities* (how an agent proves who it is), *targets* (the databases Airlock fronts)
and *bindings* (identity x target x databases, with the session's recording mode and grant lifetime).
Every model forbids unknown fields, so a typo is an error, not a silently ignored rule. The
``guardrails``, ``masking`` and ``approvals`` sections are typed placeholders that later work extends;
adding optional fields there keeps existing files valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from shared.approvals.policy import ApprovalsPolicy, Member
from shared.controlplane import BackendRef, BackendTLS, RecordingMode, engine_of
from shared.guard.scope import RuleScope
from shared.guard.verdict import Action
from shared.k8s.policy import KubernetesAccess, KubernetesGuardrails, KubernetesTargetSpec
from shared.k8s.rules import KubernetesRule
from shared.masking.rules import MaskingPolicy
from shared.pg.sql.rules import GuardrailsPolicy, GuardRule, RuleMatch
from shared.ssh.policy import SshAccess, SshGuardrails, SshTargetSpec

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
    # The humans answerable for this identity (Slack user ids / e-mails): none of them may approve its
    # held statements.
    owners: list[Member] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_a_way_in(self) -> IdentitySpec:
        if self.oidc is None and not self.keys:
            raise ValueError("an identity needs an 'oidc' block or 'keys: true'")
        return self


class TargetSpec(_Strict):
    """A PostgreSQL target (``engine: postgres``, the default)."""

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

    def backend_ref(self, database: str) -> BackendRef:
        """What a grant tells the proxy about this target: where, how, and which secret to log in with."""
        return BackendRef(
            host=self.host,
            port=self.port,
            database=database,
            credential_secret=self.credential_secret,
            tls=self.tls,
            tls_ca_pem=self.tls_ca_pem,
            allow_insecure_password=self.allow_insecure_password,
        )


class DatabaseAlias(_Strict):
    """A database name agents may use for ``target``/``database`` (as pgbouncer's ``[databases]``)."""

    target: Name
    database: Name


# A target of any protocol, told apart by ``engine`` (absent: postgres).
Target = Annotated[
    Annotated[TargetSpec, Tag("postgres")] | Annotated[SshTargetSpec, Tag("ssh")]
    | Annotated[KubernetesTargetSpec, Tag("kubernetes")],
    Discriminator(engine_of),
]


class Binding(_Strict):
    identity: Name
    target: Name
    # PostgreSQL targets: the databases this binding reaches (required); others: none.
    databases: list[Name] = Field(default_factory=list)
    # SSH targets: what may be done; Kubernetes targets: namespaces and whom to impersonate.
    ssh: SshAccess | None = None
    kubernetes: KubernetesAccess | None = None
    recording: RecordingMode = RecordingMode.BUFFERED
    retention_days: int = Field(default=365, ge=1, le=3650)
    # Grants live minutes, not hours: the proxy re-authorizes before expiry, so revocation bites fast.
    # (Seconds are allowed for tests and for identities that must be cut off almost at once.)
    grant_ttl_seconds: int = Field(default=300, ge=5, le=3600)
    # This identity x target's own guardrails settings, over the policy-wide ones (None: as the policy says).
    # ``access: read_only`` admits only effects that change nothing, whatever the rules allow.
    access: Literal["read_only", "read_write"] | None = None
    default: Action | None = None
    unknown: Action | None = None
    # This binding's masking, instead of the policy-wide section: a whole masking section, or ``off``.
    masking: MaskingPolicy | Literal["off"] | None = None

    @field_validator("masking", mode="before")
    @classmethod
    def _masking_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare ``off`` as false.
        return "off" if value is False else value

    def guardrails_overrides(self) -> dict[str, Any]:
        return {k: v for k, v in (("access", self.access), ("default", self.default), ("unknown", self.unknown))
                if v is not None}


def _engine_problems(where: str, b: Binding, target: TargetSpec | SshTargetSpec | KubernetesTargetSpec) -> list[str]:
    """A binding's fields must fit its target's protocol."""
    out = []
    if isinstance(target, TargetSpec):
        if not b.databases:
            out.append(f"{where}.databases: a PostgreSQL binding names the databases it reaches")
    elif b.databases:
        out.append(f"{where}.databases: target {b.target!r} is {target.engine}, which has no databases")
    if b.ssh is not None and not isinstance(target, SshTargetSpec):
        out.append(f"{where}.ssh: target {b.target!r} is not an SSH target")
    if b.kubernetes is not None and not isinstance(target, KubernetesTargetSpec):
        out.append(f"{where}.kubernetes: target {b.target!r} is not a Kubernetes target")
    return out


class Policy(_Strict):
    version: Literal[1]
    identities: dict[Name, IdentitySpec] = Field(default_factory=dict)
    targets: dict[Name, Target] = Field(default_factory=dict)
    bindings: list[Binding] = Field(default_factory=list)
    # Statement guardrails (docs/policy.md); absent: statements are not judged.
    guardrails: GuardrailsPolicy | None = None
    # Result masking (docs/policy.md); absent: results are not masked.
    masking: MaskingPolicy | None = None
    # Where held statements are announced and who decides them (docs/policy.md); needed by any hold.
    approvals: ApprovalsPolicy | None = None
    # Rules for SSH commands and Kubernetes API requests (absent: not judged).
    ssh: SshGuardrails | None = None
    kubernetes: KubernetesGuardrails | None = None
    # dbname -> the target and database it names; an alias wins over a database of the same name.
    aliases: dict[Name, DatabaseAlias] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        problems: list[str] = []
        for name, alias in self.aliases.items():
            aliased = self.targets.get(alias.target)
            if aliased is None:
                problems.append(f"aliases.{name}.target: unknown target {alias.target!r}")
            elif not isinstance(aliased, TargetSpec):
                problems.append(f"aliases.{name}.target: target {alias.target!r} is not PostgreSQL")
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
            problems.extend(_engine_problems(where, b, target))
            if not isinstance(target, TargetSpec):
                key = (b.identity, b.target, "")
                if key in seen:
                    problems.append(f"{where}: duplicates bindings[{seen[key]}] for {b.identity}/{b.target}")
                seen.setdefault(key, i)
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
        problems.extend(self._hold_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _hold_problems(self) -> list[str]:
        """Every hold must reach someone who may approve it: a group that exists, has members who are
        not all owners of an identity the hold applies to, and a channel (Slack or SNS) to reach them."""
        holds: list[tuple[str, str | None, RuleMatch | RuleScope | None]] = []
        problems: list[str] = []
        # --- Kubernetes (issue 17): its rules hold through the same approvals as SQL statements.
        sections: list[tuple[str, Sequence[GuardRule | KubernetesRule], GuardrailsPolicy | KubernetesGuardrails]] = []
        if self.guardrails is not None:
            sections.append(("guardrails", self.guardrails.rules, self.guardrails))
        if self.kubernetes is not None:
            sections.append(("kubernetes", self.kubernetes.rules, self.kubernetes))
        for section, rules, section_policy in sections:
            holds += [(f"{section}.rules[{i}] ({rule.name!r})", rule.approvers, rule.match)
                      for i, rule in enumerate(rules) if rule.action is Action.HOLD]  # fmt: skip
            holds += [(f"{section}.{field}", None, None) for field in ("default", "unknown")
                      if getattr(section_policy, field) is Action.HOLD]  # fmt: skip
            problems += [
                f"{section}.rules[{i}] ({rule.name!r}): approvers only apply to hold rules (action is {rule.action})"
                for i, rule in enumerate(rules)
                if rule.approvers is not None and rule.action is not Action.HOLD
            ]
        approvals = self.approvals
        for where, named, match in holds:
            if approvals is None:
                problems.append(f"{where}: action hold needs an 'approvals' section (approver groups, a channel)")
                continue
            group = named or approvals.default_approvers
            if group is None:
                problems.append(f"{where}: holds for approval but names no approver group "
                                "(set 'approvers' on the rule or approvals.default_approvers)")  # fmt: skip
            elif group not in approvals.approver_groups:
                problems.append(f"{where}: unknown approver group {group!r}")
            elif not approvals.approver_groups[group]:
                problems.append(f"{where}: approver group {group!r} has no members")
            elif not approvals.reachable:
                problems.append(f"{where}: approvals has neither slack_channel nor sns_topic_arn, "
                                f"so approver group {group!r} cannot be asked")  # fmt: skip
            else:
                members = approvals.members(group)
                for name, spec in self.identities.items():
                    if (match is None or match.in_scope(name, None, None)) and members <= set(spec.owners):
                        problems.append(f"{where}: every member of approver group {group!r} owns identity "
                                        f"{name!r}, so its held statements could never be approved")  # fmt: skip
        return problems

    def guardrails_for(self, binding: Binding) -> GuardrailsPolicy | None:
        """The guardrails a session under ``binding`` runs with: the policy's, with the binding's overrides."""
        overrides = binding.guardrails_overrides()
        if not overrides:
            return self.guardrails
        return (self.guardrails or GuardrailsPolicy()).model_copy(update=overrides)

    def kubernetes_for(self, binding: Binding) -> KubernetesGuardrails | None:
        """The Kubernetes rules a session under ``binding`` runs with: the policy's, with the binding's
        access/default/unknown overrides (as ``guardrails_for`` does for SQL)."""
        overrides = binding.guardrails_overrides()
        if not overrides:
            return self.kubernetes
        return (self.kubernetes or KubernetesGuardrails()).model_copy(update=overrides)

    def masking_for(self, binding: Binding) -> MaskingPolicy | None:
        """The masking a session under ``binding`` runs with (None: not masked)."""
        if binding.masking == "off":
            return None
        return binding.masking if isinstance(binding.masking, MaskingPolicy) else self.masking

    def warnings(self) -> list[str]:
        """Valid, but probably not what was meant (``airlock policy push`` prints these)."""
        out = self.guardrails.warnings() if self.guardrails is not None else []
        out += self.kubernetes.warnings() if self.kubernetes is not None else []
        for i, b in enumerate(self.bindings):
            if b.unknown is Action.ALLOW:
                out.append(f"bindings[{i}] ({b.identity}/{b.target}): unknown: allow lets statements Airlock "
                           "cannot judge run unjudged")
        if self.guardrails is not None and self.guardrails.unknown is Action.ALLOW:
            out.append("guardrails.unknown: allow lets statements Airlock cannot judge run unjudged")
        return out

    def binding_for(self, identity: str, target: str, database: str = "") -> Binding | None:
        """The binding that lets ``identity`` reach ``target`` (and, on PostgreSQL, ``database``), if any."""
        spec = self.targets.get(target)
        for b in self.bindings:
            if b.identity == identity and b.target == target and (
                database in b.databases or (spec is not None and not isinstance(spec, TargetSpec))
            ):
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

"""Authorize: turn an agent's presented identity and token into a session grant, or a refusal.

Order matters. Authentication comes first (token or key verified, identity not revoked: 28P01), then
authorization (target, database and binding in the latest policy: 28000), so an unauthenticated
caller learns nothing about targets. Reauthorize has no token: it re-checks what may have changed since
connect (identity and key revocation, key expiry, the binding) and renews the grant. Any storage error
fails closed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared.config import ControlPlaneSettings
from shared.controlplane import (
    AuthorizeRequest,
    AuthorizeResponse,
    BackendRef,
    Grant,
    KubernetesBackendRef,
    Refusal,
    SshBackendRef,
)
from shared.identity.keys import KeyFormatError, looks_like_key, parse_key, secret_matches
from shared.identity.oidc import IssuerUnavailable, TokenError, verify_token
from shared.k8s.policy import KubernetesAccess, KubernetesTargetSpec
from shared.observability import logger
from shared.policy import Policy, TargetSpec
from shared.ssh.policy import SshAccess, SshTargetSpec
from shared.store import ApiKeyRecord, ApiKeyStore, IdentityStore, NotFound, PolicyStore, StoreError

AUTH_FAILED: Literal["28P01"] = "28P01"  # invalid_password
NOT_AUTHORIZED: Literal["28000"] = "28000"  # invalid_authorization_specification


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuthorizeDeps:
    identities: IdentityStore
    api_keys: ApiKeyStore
    policies: PolicyStore
    settings: ControlPlaneSettings
    clock: Callable[[], datetime] = field(default=_utc_now)


class Refused(Exception):
    """Raised inside authorize to refuse; ``reason`` is shown to the agent, so never include a secret."""

    def __init__(self, sqlstate: Literal["28000", "28P01"], reason: str) -> None:
        super().__init__(reason)
        self.sqlstate = sqlstate
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Proof:
    """What authentication established."""

    method: Literal["oidc", "key"]
    key: ApiKeyRecord | None = None


def authorize(request: AuthorizeRequest, deps: AuthorizeDeps) -> AuthorizeResponse:
    """Grant or refuse one connect/reauthorize request. Never raises for storage or token problems."""
    try:
        grant = _decide(request, deps)
    except Refused as r:
        logger.info("refused", extra={**_log_context(request), "sqlstate": r.sqlstate, "reason": r.reason})
        return AuthorizeResponse(decision="refuse", refusal=Refusal(sqlstate=r.sqlstate, reason=r.reason))
    except StoreError as e:
        logger.exception("storage error; failing closed", extra=_log_context(request))
        reason = f"authorization is temporarily unavailable ({e}); refusing to fail open"
        return AuthorizeResponse(decision="refuse", refusal=Refusal(sqlstate=NOT_AUTHORIZED, reason=reason))
    logger.info(
        "granted",
        extra={**_log_context(request), "auth_method": grant.auth_method, "key_id": grant.key_id,
               "grant_id": grant.grant_id, "policy_version": grant.policy_version,
               "expires_at": grant.expires_at.isoformat()},
    )  # fmt: skip
    return AuthorizeResponse(decision="grant", grant=grant)


def _log_context(request: AuthorizeRequest) -> dict[str, str]:
    """Who asked for what, from where: never the token."""
    return {
        "action": request.action, "identity": request.identity, "target": request.target or "",
        "database": request.database, "client_addr": request.client_addr, "proxy_id": request.proxy_id,
        "session_id": request.session_id,
    }  # fmt: skip


def _decide(request: AuthorizeRequest, deps: AuthorizeDeps) -> Grant:
    now = deps.clock()
    try:
        latest = deps.policies.latest(deps.settings.policy_name)
    except NotFound as e:
        raise Refused(NOT_AUTHORIZED, f"no policy {deps.settings.policy_name!r} has been pushed yet") from e
    policy = latest.policy
    if request.action == "connect":
        proof = _authenticate(request, policy, deps, now)
    else:
        proof = _recheck(request, policy, deps, now)
    record = deps.identities.get(request.identity)
    if record.revoked:
        when = f" at {record.revoked_at.isoformat()}" if record.revoked_at else ""
        why = f": {record.reason}" if record.reason else ""
        raise Refused(AUTH_FAILED, f"identity {request.identity!r} has been revoked{when}{why}")
    return _grant(request, policy, latest.version, proof, now)


def _authenticate(request: AuthorizeRequest, policy: Policy, deps: AuthorizeDeps, now: datetime) -> _Proof:
    token = request.token.get_secret_value() if request.token else ""
    if not token:
        raise Refused(AUTH_FAILED, "no password: present an OIDC token or an Airlock key (ak_...)")
    if looks_like_key(token):
        try:
            presented = parse_key(token)
        except KeyFormatError as e:
            raise Refused(AUTH_FAILED, str(e)) from e
        try:
            key = deps.api_keys.get(presented.key_id)
        except NotFound:
            key = None
        # One message for unknown id and wrong secret: no oracle for which key ids exist.
        if key is None or not secret_matches(presented, key.secret_hash):
            raise Refused(AUTH_FAILED, "invalid Airlock key")
        _check_key(key, request.identity, policy, now)
        return _Proof(method="key", key=key)
    _verify_oidc(token, request.identity, policy, deps)
    return _Proof(method="oidc")


def _verify_oidc(token: str, identity: str, policy: Policy, deps: AuthorizeDeps) -> None:
    try:
        claims = verify_token(
            token,
            policy.oidc_audiences,
            leeway_seconds=deps.settings.clock_skew_seconds,
            cache_seconds=deps.settings.jwks_cache_seconds,
        )
    except IssuerUnavailable as e:
        logger.warning("OIDC issuer unavailable", extra={"identity": identity, "error": str(e)})
        raise Refused(AUTH_FAILED, f"cannot verify the OIDC token now: {e}") from e
    except TokenError as e:
        raise Refused(AUTH_FAILED, f"OIDC {e}") from e
    matched = policy.oidc_identities(claims)
    if identity in matched:
        return
    subject = claims.get("sub")
    if matched:
        # The token is good, but for someone else: the user name must be the identity it proves.
        raise Refused(AUTH_FAILED, f"the OIDC token proves identity {matched[0]!r}, not {identity!r}")
    if identity not in policy.identities:
        raise Refused(AUTH_FAILED, f"identity {identity!r} is not defined in the policy")
    raise Refused(AUTH_FAILED, f"OIDC token (subject {subject!r}) is not accepted for identity {identity!r}")


def _check_key(key: ApiKeyRecord, identity: str, policy: Policy, now: datetime) -> None:
    if key.identity != identity:
        raise Refused(AUTH_FAILED, f"this Airlock key was not issued to {identity!r}")
    if key.revoked:
        raise Refused(AUTH_FAILED, f"Airlock key {key.key_id} has been revoked")
    if key.expires_at <= now:
        raise Refused(AUTH_FAILED, f"Airlock key {key.key_id} expired at {key.expires_at.isoformat()}")
    spec = policy.identities.get(identity)
    if spec is None:
        raise Refused(AUTH_FAILED, f"identity {identity!r} is not defined in the policy")
    if not spec.keys:
        raise Refused(AUTH_FAILED, f"identity {identity!r} may not use Airlock keys (policy: keys is not true)")


def _recheck(request: AuthorizeRequest, policy: Policy, deps: AuthorizeDeps, now: datetime) -> _Proof:
    """Reauthorize: re-establish what connect proved, from state only (the token is not kept)."""
    if request.key_id:
        try:
            key = deps.api_keys.get(request.key_id)
        except NotFound as e:
            raise Refused(AUTH_FAILED, f"Airlock key {request.key_id} no longer exists") from e
        _check_key(key, request.identity, policy, now)
        return _Proof(method="key", key=key)
    spec = policy.identities.get(request.identity)
    if spec is None:
        raise Refused(AUTH_FAILED, f"identity {request.identity!r} is no longer defined in the policy")
    if spec.oidc is None:
        # Without key_id this looks like an OIDC session, which a keys-only identity cannot have.
        raise Refused(
            AUTH_FAILED,
            f"identity {request.identity!r} authenticates only with Airlock keys: reauthorize must carry "
            "the session's key_id (Grant.key_id)",
        )
    return _Proof(method="oidc")


def _route(request: AuthorizeRequest, policy: Policy) -> tuple[str, str]:
    """The target and database the agent's dbname names: ``target/database`` names both; otherwise a
    policy alias, or else the database name alone when exactly one target serves it to this identity."""
    if request.target is not None:
        return request.target, request.database
    if request.protocol != "postgres":
        raise Refused(NOT_AUTHORIZED, f"a {request.protocol} session names its target")
    if not request.database:
        raise Refused(NOT_AUTHORIZED, "a PostgreSQL session names its database")
    alias = policy.aliases.get(request.database)
    if alias is not None:
        return alias.target, alias.database
    serving = _serving(policy, request.identity).get(request.database, [])
    if len(serving) == 1:
        return serving[0], request.database
    if serving:
        choices = " or ".join(f"dbname={t}/{request.database}" for t in serving)
        raise Refused(
            NOT_AUTHORIZED,
            f"database {request.database!r} is served to {request.identity!r} by several targets "
            f"({', '.join(serving)}): connect with {choices}, or ask for an alias",
        )
    reachable = _reachable(policy, request.identity)
    hint = f"; it may connect to {reachable}" if reachable else ""
    who, what = request.identity, request.database
    raise Refused(NOT_AUTHORIZED, f"identity {who!r} has no binding for a database {what!r}{hint}")


def _serving(policy: Policy, identity: str) -> dict[str, list[str]]:
    """database -> the targets whose bindings serve it to ``identity`` (sorted)."""
    serving: dict[str, set[str]] = {}
    for b in policy.bindings:
        if b.identity == identity:
            for db in b.databases:
                serving.setdefault(db, set()).add(b.target)
    return {db: sorted(targets) for db, targets in serving.items()}


def _reachable(policy: Policy, identity: str, limit: int = 12) -> str:
    """What ``identity`` may put in dbname, for a refusal's hint (its own bindings only)."""
    serving = sorted(_serving(policy, identity).items())
    names = [db if len(ts) == 1 else " or ".join(f"{t}/{db}" for t in ts) for db, ts in serving]
    names += [name for name, a in sorted(policy.aliases.items()) if policy.binding_for(identity, a.target, a.database)]
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _grant(request: AuthorizeRequest, policy: Policy, version: int, proof: _Proof, now: datetime) -> Grant:
    target_name, database = _route(request, policy)
    target = policy.targets.get(target_name)
    if target is None:
        raise Refused(NOT_AUTHORIZED, f"unknown target {target_name!r}")
    if target.engine != request.protocol:
        raise Refused(NOT_AUTHORIZED, f"target {target_name!r} is a {target.engine} target, not {request.protocol}")
    if isinstance(target, TargetSpec) and database not in target.databases:
        raise Refused(NOT_AUTHORIZED, f"target {target_name!r} has no database {database!r}")
    binding = policy.binding_for(request.identity, target_name, database)
    if binding is None:
        where = f"target {target_name!r}" + (f" database {database!r}" if database else "")
        raise Refused(NOT_AUTHORIZED, f"identity {request.identity!r} has no binding for {where}")
    expires_at = now + timedelta(seconds=binding.grant_ttl_seconds)
    if proof.key is not None:
        # A grant never outlives the key that earned it.
        expires_at = min(expires_at, proof.key.expires_at)
    renewing = request.grant_id if request.action == "reauthorize" else None
    common = {
        "grant_id": renewing or f"gr_{secrets.token_hex(12)}",
        "session_id": request.session_id or f"ses_{secrets.token_hex(12)}",
        "identity": request.identity,
        "auth_method": proof.method,
        "key_id": proof.key.key_id if proof.key else None,
        "target": target_name,
        "database": database,
        "policy_version": version,
        "issued_at": now,
        "expires_at": expires_at,
        "recording": binding.recording,
        "retention_days": binding.retention_days,
        "masking": policy.masking_for(binding),
        "approvals": policy.approvals.grant() if policy.approvals else None,
    }
    if isinstance(target, SshTargetSpec):
        backend: BackendRef | SshBackendRef | KubernetesBackendRef = SshBackendRef(
            host=target.host, port=target.port, user=target.user, credential_secret=target.credential_secret,
            host_keys=target.host_keys,
        )
        return Grant(backend=backend, ssh_access=binding.ssh or SshAccess(), ssh=policy.ssh, **common)
    if isinstance(target, KubernetesTargetSpec):
        backend = KubernetesBackendRef(server=target.server, ca_pem=target.ca_pem,
                                       credential_secret=target.credential_secret)
        return Grant(backend=backend, kubernetes_access=binding.kubernetes or KubernetesAccess(),
                     kubernetes=policy.kubernetes_for(binding), **common)
    backend = target.backend_ref(database)
    return Grant(backend=backend, guardrails=policy.guardrails_for(binding), **common)

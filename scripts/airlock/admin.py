"""Administrative operations behind ``airlock`` CLI commands: policies, identities, keys, targets' secrets.

Everything talks to the control plane's tables through the same stores the Lambdas use, configured by
``ControlPlaneSettings`` (``AIRLOCK_*``) and the usual AWS environment (``AWS_ENDPOINT_URL`` locally).
Errors the operator can fix are ``AdminError``s with a plain message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from shared.config import ControlPlaneSettings
from shared.identity.keys import generate_key
from shared.policy import Policy, PolicyError, parse_policy
from shared.store import ApiKeyRecord, NotFound, StoreError
from shared.store.dynamo import DynamoApiKeyStore, DynamoIdentityStore, DynamoPolicyStore

MAX_KEY_TTL_DAYS = 365


class AdminError(Exception):
    """An operation failed for a reason the operator can act on."""


@dataclass(frozen=True, slots=True)
class IdentityStatus:
    name: str
    in_policy: bool
    auth_methods: tuple[str, ...]  # "oidc", "keys"
    revoked: bool
    revoked_at: datetime | None
    reason: str


def _settings() -> ControlPlaneSettings:
    # Read fresh each call: a CLI or the local stack may point the environment elsewhere between calls.
    return ControlPlaneSettings()


def push_policy(path: Path, warn: Callable[[str], None] | None = None) -> int:
    """Validate the policy file and store it as the next version; returns the version number. With
    ``warn``, each target whose credential secret does not exist (yet) is reported to it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise AdminError(f"cannot read {path}: {e.strerror}") from e
    try:
        policy = parse_policy(text)
    except PolicyError as e:
        raise AdminError(f"{path}: {e}") from e
    settings = _settings()
    try:
        version = DynamoPolicyStore(settings).push(settings.policy_name, text, policy)
    except StoreError as e:
        raise AdminError(f"pushing policy {settings.policy_name!r}: {e}") from e
    if warn is not None:
        for problem in missing_target_secrets(policy):
            warn(problem)
    return version


def missing_target_secrets(policy: Policy) -> list[str]:
    """A line per target whose credential secret does not exist in Secrets Manager: sessions to it are
    refused until it does. Asks whether each secret exists (DescribeSecret), never for its value."""
    client = boto3.client("secretsmanager")
    problems = []
    for name, target in sorted(policy.targets.items()):
        try:
            client.describe_secret(SecretId=target.credential_secret)
        except client.exceptions.ResourceNotFoundException:
            problems.append(
                f"target {name!r}: its credential secret {target.credential_secret!r} does not exist; sessions "
                f"to it are refused until it does (store it with `airlock targets add {name} ...`)"
            )
        except Exception as e:  # e.g. no permission to describe: say so, the push itself stands
            problems.append(f"target {name!r}: cannot check secret {target.credential_secret!r}: {e}")
    return problems


def latest_policy() -> Policy | None:
    """The policy version sessions use now (None if none was pushed)."""
    settings = _settings()
    try:
        return DynamoPolicyStore(settings).latest(settings.policy_name).policy
    except NotFound:
        return None
    except StoreError as e:
        raise AdminError(f"reading policy: {e}") from e


def policy_warnings(path: Path) -> list[str]:
    """What is valid in the policy file but probably not what was meant."""
    try:
        return parse_policy(Path(path).read_text(encoding="utf-8")).warnings()
    except (OSError, PolicyError) as e:
        raise AdminError(f"{path}: {e}") from e


def revoke_identity(name: str, reason: str) -> None:
    """Revoke ``name`` (OIDC or key identity): new sessions are refused, live ones end at reauthorize."""
    if not name or not reason.strip():
        raise AdminError("revoking needs an identity name and a reason")
    try:
        DynamoIdentityStore(_settings()).revoke(name, reason.strip())
    except StoreError as e:
        raise AdminError(f"revoking {name!r}: {e}") from e


def reinstate_identity(name: str) -> None:
    """Lift a revocation (keys revoked individually stay revoked)."""
    try:
        DynamoIdentityStore(_settings()).reinstate(name)
    except StoreError as e:
        raise AdminError(f"reinstating {name!r}: {e}") from e


def revoke_keys(identity: str) -> int:
    """Revoke every Airlock key issued to ``identity``; returns how many were revoked."""
    try:
        return DynamoApiKeyStore(_settings()).revoke_all_for(identity)
    except StoreError as e:
        raise AdminError(f"revoking keys of {identity!r}: {e}") from e


def issue_key(identity: str, ttl_days: int) -> str:
    """Issue a key for ``identity`` (which the latest policy must allow keys for); returns it once."""
    if not 1 <= ttl_days <= MAX_KEY_TTL_DAYS:
        raise AdminError(f"key lifetime must be 1..{MAX_KEY_TTL_DAYS} days, not {ttl_days}")
    settings = _settings()
    try:
        policy = DynamoPolicyStore(settings).latest(settings.policy_name).policy
    except NotFound as e:
        raise AdminError(f"no policy {settings.policy_name!r} has been pushed; push one first") from e
    except StoreError as e:
        raise AdminError(f"reading policy: {e}") from e
    spec = policy.identities.get(identity)
    if spec is None:
        raise AdminError(f"identity {identity!r} is not defined in the policy")
    if not spec.keys:
        raise AdminError(f"identity {identity!r} does not allow Airlock keys (set 'keys: true' in the policy)")
    new = generate_key()
    now = datetime.now(UTC)
    record = ApiKeyRecord(
        key_id=new.key_id,
        identity=identity,
        secret_hash=new.secret_hash,
        created_at=now,
        expires_at=now + timedelta(days=ttl_days),
    )
    try:
        DynamoApiKeyStore(settings).put(record)
    except StoreError as e:
        raise AdminError(f"storing key for {identity!r}: {e}") from e
    return new.token.get_secret_value()


def list_identities() -> list[IdentityStatus]:
    """Identities of the latest policy plus any revoked ones, with their revocation status."""
    settings = _settings()
    try:
        records = {r.name: r for r in DynamoIdentityStore(settings).list_all()}
        try:
            identities = dict(DynamoPolicyStore(settings).latest(settings.policy_name).policy.identities)
        except NotFound:
            identities = {}
    except StoreError as e:
        raise AdminError(f"listing identities: {e}") from e
    out = []
    for name in sorted(set(records) | set(identities)):
        spec = identities.get(name)
        methods = tuple(m for m, on in (("oidc", spec and spec.oidc), ("keys", spec and spec.keys)) if on)
        rec = records.get(name)
        out.append(
            IdentityStatus(
                name=name,
                in_policy=spec is not None,
                auth_methods=methods,
                revoked=bool(rec and rec.revoked),
                revoked_at=rec.revoked_at if rec else None,
                reason=rec.reason if rec else "",
            )
        )
    return out

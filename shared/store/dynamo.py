"""DynamoDB implementations of the stores (pynamodb models live here and nowhere else).

Table names come from ``ControlPlaneSettings`` at runtime, so each model is declared once with its
attributes and *bound* to a concrete table by subclassing with a fresh ``Meta``. Endpoints: pynamodb
creates its client with botocore's ``Session.create_client(endpoint_url=None)``, and botocore itself
resolves ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` in that case, so the local stack needs no
special code here (``tests/integration/test_authorize.py`` exercises exactly that path).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar, cast

from botocore.exceptions import BotoCoreError
from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, PynamoDBException
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from shared.config import ControlPlaneSettings
from shared.policy import Policy, PolicyError, parse_policy
from shared.store.base import (
    ApiKeyRecord,
    IdentityRecord,
    NotFound,
    PolicyVersion,
    StoreError,
    VersionConflict,
)

_PUSH_ATTEMPTS = 20


class _IdentityItem(Model):
    class Meta:
        table_name = "unbound"

    identity = UnicodeAttribute(hash_key=True)
    revoked = BooleanAttribute(default=False)
    revoked_at = UTCDateTimeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)


class _ByIdentityIndex(GlobalSecondaryIndex["_ApiKeyItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-identity"
        projection = AllProjection()

    identity = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _ApiKeyItem(Model):
    class Meta:
        table_name = "unbound"

    key_id = UnicodeAttribute(hash_key=True)
    identity = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    revoked = BooleanAttribute(default=False)
    revoked_at = UTCDateTimeAttribute(null=True)
    by_identity = _ByIdentityIndex()


class _PolicyItem(Model):
    class Meta:
        table_name = "unbound"

    policy = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)
    yaml_text = UnicodeAttribute()
    sha256 = UnicodeAttribute()
    pushed_at = UTCDateTimeAttribute()


M = TypeVar("M", bound=Model)
_bound_models: dict[tuple[type[Model], str, str], type[Model]] = {}
_bound_lock = threading.Lock()


def _bind(model: type[M], table_name: str, region: str) -> type[M]:
    """``model`` bound to a concrete table (cached: pynamodb keeps one connection per class)."""
    key = (model, table_name, region)
    with _bound_lock:
        if key not in _bound_models:
            meta = type("Meta", (), {"table_name": table_name, "region": region})
            _bound_models[key] = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
        return cast(type[M], _bound_models[key])


@contextmanager
def _storage(what: str) -> Iterator[None]:
    """Turn pynamodb/botocore errors into ``StoreError`` naming the operation (never the data)."""
    try:
        yield
    except (PynamoDBException, BotoCoreError) as e:
        cause = getattr(e, "cause_response_code", None) or e.__class__.__name__
        raise StoreError(f"{what} failed ({cause})") from e


def _now() -> datetime:
    return datetime.now(UTC)


class DynamoIdentityStore:
    def __init__(self, settings: ControlPlaneSettings) -> None:
        self._m = _bind(_IdentityItem, settings.identities_table, settings.region)

    @staticmethod
    def _record(item: _IdentityItem) -> IdentityRecord:
        revoked = bool(item.revoked)
        return IdentityRecord(
            name=item.identity, revoked=revoked, revoked_at=item.revoked_at, reason=item.reason or ""
        )

    def get(self, name: str) -> IdentityRecord:
        with _storage("reading identity"):
            try:
                return self._record(self._m.get(name, consistent_read=True))
            except self._m.DoesNotExist:
                return IdentityRecord(name=name)

    def revoke(self, name: str, reason: str) -> IdentityRecord:
        now = _now()
        item = self._m(name)
        m = self._m
        with _storage("revoking identity"):
            # UpdateItem creates the item if absent: OIDC identities have no item until first revoked.
            item.update(
                actions=[
                    m.revoked.set(True),
                    m.revoked_at.set(now),
                    m.reason.set(reason),
                    m.updated_at.set(now),
                ]
            )
        return self._record(item)

    def reinstate(self, name: str) -> IdentityRecord:
        item = self._m(name)
        m = self._m
        with _storage("reinstating identity"):
            now = _now()
            item.update(
                actions=[
                    m.revoked.set(False),
                    m.revoked_at.remove(),
                    m.reason.remove(),
                    m.updated_at.set(now),
                ]
            )
        return self._record(item)

    def list_all(self) -> list[IdentityRecord]:
        with _storage("listing identities"):
            return sorted((self._record(i) for i in self._m.scan()), key=lambda r: r.name)


class DynamoApiKeyStore:
    def __init__(self, settings: ControlPlaneSettings) -> None:
        self._m = _bind(_ApiKeyItem, settings.api_keys_table, settings.region)

    def put(self, record: ApiKeyRecord) -> None:
        item = self._m(
            record.key_id,
            identity=record.identity,
            secret_hash=record.secret_hash,
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked=record.revoked,
        )
        with _storage("storing key"):
            # Never overwrite: a key id collision must not replace someone else's key.
            item.save(condition=self._m.key_id.does_not_exist())

    def get(self, key_id: str) -> ApiKeyRecord:
        with _storage("reading key"):
            try:
                item = self._m.get(key_id, consistent_read=True)
            except self._m.DoesNotExist as e:
                raise NotFound(f"no key {key_id}") from e
        return ApiKeyRecord(
            key_id=item.key_id,
            identity=item.identity,
            secret_hash=item.secret_hash,
            created_at=item.created_at,
            expires_at=item.expires_at,
            revoked=bool(item.revoked),
        )

    def revoke_all_for(self, identity: str) -> int:
        m = self._m
        count = 0
        with _storage("revoking keys"):
            for found in m.by_identity.query(identity):
                if found.revoked:
                    continue
                # Only the key is taken from the index; the update goes to the table item itself.
                m(found.key_id).update(
                    actions=[m.revoked.set(True), m.revoked_at.set(_now())],
                    condition=m.key_id.exists(),
                )
                count += 1
        return count


class DynamoPolicyStore:
    def __init__(self, settings: ControlPlaneSettings) -> None:
        self._m = _bind(_PolicyItem, settings.policies_table, settings.region)

    def _newest(self, policy_name: str) -> _PolicyItem | None:
        with _storage("reading policy"):
            for item in self._m.query(policy_name, scan_index_forward=False, limit=1, consistent_read=True):
                return item
        return None

    def push(self, policy_name: str, yaml_text: str, policy: Policy) -> int:
        # ``policy`` is taken to prove the text was validated; the text is stored as the source of truth.
        del policy
        digest = hashlib.sha256(yaml_text.encode()).hexdigest()
        for _ in range(_PUSH_ATTEMPTS):
            newest = self._newest(policy_name)
            version = int(newest.version) + 1 if newest else 1
            item = self._m(policy_name, version, yaml_text=yaml_text, sha256=digest, pushed_at=_now())
            try:
                # The conditional put is the arbiter: of two racing pushes, one loses and retries.
                item.save(condition=self._m.version.does_not_exist())
                return version
            except PutError as e:
                if e.cause_response_code != "ConditionalCheckFailedException":
                    raise StoreError(f"storing policy failed ({e.cause_response_code})") from e
            except BotoCoreError as e:
                raise StoreError(f"storing policy failed ({e.__class__.__name__})") from e
        raise VersionConflict(f"could not allocate a version for policy {policy_name!r}: too much contention")

    def latest(self, policy_name: str) -> PolicyVersion:
        item = self._newest(policy_name)
        if item is None:
            raise NotFound(f"no policy {policy_name!r} has been pushed")
        try:
            policy = parse_policy(item.yaml_text)
        except PolicyError as e:
            raise StoreError(f"stored policy {policy_name!r} v{int(item.version)} is invalid: {e}") from e
        return PolicyVersion(version=int(item.version), policy=policy, pushed_at=item.pushed_at)

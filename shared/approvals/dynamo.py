"""DynamoDB implementations of the approval and allowance stores (pynamodb models live here only).

Two tables (template.yaml): ``ApprovalsTable`` (key ``approval_id``; GSIs ``by-session`` and
``by-status``, both ranged on ``requested_at``) and ``AllowancesTable`` (key ``allowance_id``; GSI
``by-scope`` on ``scope`` / ``expires_at``, so "is there a live allowance for this identity, target and
database" is one Query). Both purge through TTL (``purge_at``) ``approvals_retention_days`` after expiry:
the record of who approved what outlives the approval, the session recording outlives both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from shared.approvals.model import Allowance, Approval, ApprovalState, ApprovalStatus, DecisionChannel, allowance_scope
from shared.approvals.settings import ApprovalsSettings
from shared.approvals.store import Conflict, Outcome
from shared.store.base import NotFound
from shared.store.dynamo import _bind, _storage

_CONDITION_FAILED = "ConditionalCheckFailedException"
# What a gateway's watcher may read (its IAM policy allows these attributes and no others).
WATCHED_ATTRIBUTES = tuple(f.name for f in fields(ApprovalState))
MAX_BATCH = 100  # BatchGetItem's limit per request


class _BySessionIndex(GlobalSecondaryIndex["_ApprovalItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-session"
        projection = AllProjection()

    session_id = UnicodeAttribute(hash_key=True)
    requested_at = UTCDateTimeAttribute(range_key=True)


class _ByStatusIndex(GlobalSecondaryIndex["_ApprovalItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    requested_at = UTCDateTimeAttribute(range_key=True)


class _ApprovalItem(Model):
    class Meta:
        table_name = "unbound"

    approval_id = UnicodeAttribute(hash_key=True)
    idempotency_key = UnicodeAttribute()
    session_id = UnicodeAttribute()
    proxy_id = UnicodeAttribute()
    identity = UnicodeAttribute()
    protocol = UnicodeAttribute()
    target = UnicodeAttribute()
    database = UnicodeAttribute(null=True)
    statement = UnicodeAttribute(null=True)
    statement_truncated = BooleanAttribute(null=True)
    digest = UnicodeAttribute()
    kinds = ListAttribute(of=UnicodeAttribute, null=True)
    tables = ListAttribute(of=UnicodeAttribute, null=True)
    rule = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    approvers = UnicodeAttribute()
    timeout_seconds = NumberAttribute()
    status = UnicodeAttribute()
    requested_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    decided_by = UnicodeAttribute(null=True)
    decided_by_name = UnicodeAttribute(null=True)
    decided_via = UnicodeAttribute(null=True)
    decided_by_principal = UnicodeAttribute(null=True)
    decided_at = UTCDateTimeAttribute(null=True)
    decision_reason = UnicodeAttribute(null=True)
    allowance_id = UnicodeAttribute(null=True)
    allowance_minutes = NumberAttribute(null=True)
    slack_channel = UnicodeAttribute(null=True)
    slack_ts = UnicodeAttribute(null=True)
    sns_message_id = UnicodeAttribute(null=True)
    purge_at = TTLAttribute(null=True)
    by_session = _BySessionIndex()
    by_status = _ByStatusIndex()


class _ByScopeIndex(GlobalSecondaryIndex["_AllowanceItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "by-scope"
        projection = AllProjection()

    scope = UnicodeAttribute(hash_key=True)
    expires_at = UTCDateTimeAttribute(range_key=True)


class _AllowanceItem(Model):
    class Meta:
        table_name = "unbound"

    allowance_id = UnicodeAttribute(hash_key=True)
    approval_id = UnicodeAttribute()
    scope = UnicodeAttribute()
    identity = UnicodeAttribute()
    protocol = UnicodeAttribute()
    target = UnicodeAttribute()
    database = UnicodeAttribute(null=True)
    kinds = ListAttribute(of=UnicodeAttribute, null=True)
    tables = ListAttribute(of=UnicodeAttribute, null=True)
    granted_by = UnicodeAttribute()
    granted_by_name = UnicodeAttribute()
    granted_via = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)
    revoked_by = UnicodeAttribute(null=True)
    uses = NumberAttribute(null=True)
    last_used_at = UTCDateTimeAttribute(null=True)
    last_session_id = UnicodeAttribute(null=True)
    purge_at = TTLAttribute(null=True)
    by_scope = _ByScopeIndex()


R = TypeVar("R", bound=BaseModel)


def _attributes(record: BaseModel) -> dict[str, Any]:
    # Empty strings are stored as absent attributes; the model's defaults bring them back.
    return {k: v for k, v in record.model_dump().items() if v not in ("", None)}


def _record(cls: type[R], item: Model) -> R:
    values = {name: getattr(item, name, None) for name in cls.model_fields}
    return cls.model_validate({k: (int(v) if isinstance(v, float) else v) for k, v in values.items() if v is not None})


def _state(item: _ApprovalItem) -> ApprovalState:
    via = item.decided_via
    return ApprovalState(
        approval_id=item.approval_id, status=ApprovalStatus(item.status), expires_at=item.expires_at,
        decided_by=item.decided_by, decided_by_name=item.decided_by_name,
        decided_via=DecisionChannel(via) if via else None, decided_at=item.decided_at,
        decision_reason=item.decision_reason or "", allowance_id=item.allowance_id,
        allowance_minutes=int(item.allowance_minutes) if item.allowance_minutes is not None else None,
    )  # fmt: skip


class DynamoApprovalStates:
    """A gateway's view of the approvals table: ``BatchGetItem`` of the watched attributes, nothing else."""

    def __init__(self, settings: ApprovalsSettings) -> None:
        self._m = _bind(_ApprovalItem, settings.approvals_table, settings.region)
        self._retention = timedelta(days=settings.approvals_retention_days)

    def states(self, approval_ids: Iterable[str]) -> Mapping[str, ApprovalState]:
        ids = list(approval_ids)
        if len(ids) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} approvals per read, not {len(ids)}")
        with _storage("reading approval states"):
            items = list(self._m.batch_get(ids, consistent_read=True, attributes_to_get=list(WATCHED_ATTRIBUTES)))
        return {i.approval_id: _state(i) for i in items}


class DynamoApprovalStore(DynamoApprovalStates):
    """The approvals service's: everything ``ApprovalStore`` says."""

    def create(self, approval: Approval) -> Approval:
        item = self._m(**_attributes(approval), purge_at=approval.expires_at + self._retention)
        with _storage("storing approval"):
            try:
                item.save(condition=self._m.approval_id.does_not_exist())
            except PutError as e:
                if e.cause_response_code != _CONDITION_FAILED:
                    raise
                return self.get(approval.approval_id)
        return approval

    def get(self, approval_id: str) -> Approval:
        with _storage("reading approval"):
            try:
                item = self._m.get(approval_id, consistent_read=True)
            except self._m.DoesNotExist as e:
                raise NotFound(f"no approval {approval_id}") from e
        return _record(Approval, item)

    def finish(self, approval_id: str, outcome: Outcome, *, not_after: datetime | None = None) -> Approval:
        m = self._m
        condition = m.status == ApprovalStatus.PENDING.value
        if outcome.status is ApprovalStatus.EXPIRED:
            condition &= m.expires_at <= outcome.at
        elif not_after is not None:
            condition &= m.expires_at > not_after
        values = {
            "status": outcome.status.value, "decided_at": outcome.at, "decided_by": outcome.by,
            "decided_by_name": outcome.by_name, "decided_via": outcome.via.value if outcome.via else None,
            "decided_by_principal": outcome.principal, "decision_reason": outcome.reason or None,
            "allowance_id": outcome.allowance_id, "allowance_minutes": outcome.allowance_minutes,
        }  # fmt: skip
        actions = [getattr(m, k).set(v) for k, v in values.items() if v is not None]
        item = m(approval_id)
        with _storage("deciding approval"):
            try:
                item.update(actions=actions, condition=condition)
            except UpdateError as e:
                if e.cause_response_code != _CONDITION_FAILED:
                    raise
                lost = e
            else:
                return _record(Approval, item)
        current = self.get(approval_id)  # NotFound if it never existed
        raise Conflict(f"approval {approval_id} is {current.status}, not pending", current) from lost

    def announced(self, approval_id: str, *, slack_channel: str | None, slack_ts: str | None,
                  sns_message_id: str | None) -> None:  # fmt: skip
        m = self._m
        values = {"slack_channel": slack_channel, "slack_ts": slack_ts, "sns_message_id": sns_message_id}
        actions = [getattr(m, k).set(v) for k, v in values.items() if v]
        if actions:
            with _storage("recording announcement"):
                m(approval_id).update(actions=actions, condition=m.approval_id.exists())

    def by_status(self, status: ApprovalStatus, limit: int = 100) -> list[Approval]:
        with _storage("listing approvals"):
            items = self._m.by_status.query(status.value, scan_index_forward=False, limit=limit)
            return [_record(Approval, i) for i in items]

    def by_session(self, session_id: str, limit: int = 100) -> list[Approval]:
        with _storage("listing approvals"):
            items = self._m.by_session.query(session_id, scan_index_forward=False, limit=limit)
            return [_record(Approval, i) for i in items]


class DynamoAllowanceUses:
    """A gateway's view of the allowances table: one index Query to find, one UpdateItem to count a use."""

    def __init__(self, settings: ApprovalsSettings) -> None:
        self._m = _bind(_AllowanceItem, settings.allowances_table, settings.region)
        self._retention = timedelta(days=settings.approvals_retention_days)

    def active_in_scope(self, scope: str, now: datetime) -> list[Allowance]:
        m = self._m
        with _storage("looking up allowances"):
            items = m.by_scope.query(scope, m.expires_at > now, filter_condition=m.revoked_at.does_not_exist())
            return [_record(Allowance, i) for i in items]

    def record_use(self, allowance_id: str, session_id: str, at: datetime) -> None:
        m = self._m
        with _storage("recording allowance use"):
            m(allowance_id).update(
                actions=[m.uses.add(1), m.last_used_at.set(at), m.last_session_id.set(session_id)],
                condition=m.allowance_id.exists(),
            )


class DynamoAllowanceStore(DynamoAllowanceUses):
    """The approvals service's: everything ``AllowanceStore`` says."""

    def grant(self, allowance: Allowance) -> Allowance:
        item = self._m(**_attributes(allowance), scope=allowance.scope,
                       purge_at=allowance.expires_at + self._retention)  # fmt: skip
        with _storage("storing allowance"):
            try:
                item.save(condition=self._m.allowance_id.does_not_exist())
            except PutError as e:
                if e.cause_response_code != _CONDITION_FAILED:
                    raise
                return self.get(allowance.allowance_id)
        return allowance

    def get(self, allowance_id: str) -> Allowance:
        with _storage("reading allowance"):
            try:
                item = self._m.get(allowance_id, consistent_read=True)
            except self._m.DoesNotExist as e:
                raise NotFound(f"no allowance {allowance_id}") from e
        return _record(Allowance, item)

    def revoke(self, allowance_id: str, by: str, at: datetime) -> Allowance:
        m = self._m
        item = m(allowance_id)
        with _storage("revoking allowance"):
            try:
                item.update(actions=[m.revoked_at.set(at), m.revoked_by.set(by)],
                            condition=m.allowance_id.exists() & m.revoked_at.does_not_exist())  # fmt: skip
            except UpdateError as e:
                if e.cause_response_code != _CONDITION_FAILED:
                    raise
                lost = e
            else:
                return _record(Allowance, item)
        self.get(allowance_id)  # NotFound if it never existed
        raise Conflict(f"allowance {allowance_id} was already revoked") from lost

    def all_active(self, now: datetime, limit: int = 200) -> list[Allowance]:
        m = self._m
        with _storage("listing allowances"):
            items = m.scan(filter_condition=(m.expires_at > now) & m.revoked_at.does_not_exist(), limit=limit)
            return sorted((_record(Allowance, i) for i in items), key=lambda a: a.created_at, reverse=True)


__all__ = [
    "DynamoAllowanceStore", "DynamoAllowanceUses", "DynamoApprovalStates", "DynamoApprovalStore", "allowance_scope"
]

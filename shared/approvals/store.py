"""Data access for approvals and allowances: the interfaces the service and the proxy's watcher use.

A gateway gets the narrow ones (``ApprovalStates``, ``AllowanceUses``): its IAM role grants exactly
those reads and writes, and no more (tests/unit/test_least_privilege.py).

Every transition is conditional, so the store is the arbiter of races: of two clicks, one write lands
and the other gets ``Conflict`` carrying the approval as it now stands. Storage failures are
``StoreError`` (from ``shared.store``): callers fail closed. The DynamoDB implementation is
``shared.approvals.dynamo``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.approvals.model import Allowance, Approval, ApprovalState, ApprovalStatus, DecisionChannel
from shared.store.base import StoreError


class Conflict(StoreError):
    """A conditional write lost: the approval was no longer pending (or the allowance no longer active)."""

    def __init__(self, message: str, current: Approval | None = None) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision to write: ``status`` and who/how/why (``decided_*`` fields of ``Approval``)."""

    status: ApprovalStatus
    at: datetime
    by: str | None = None
    by_name: str | None = None
    via: DecisionChannel | None = None
    principal: str | None = None
    reason: str = ""
    allowance_id: str | None = None
    allowance_minutes: int | None = None


class ApprovalStates(Protocol):
    """What a gateway's watcher reads: where approvals stand, never what they hold."""

    def states(self, approval_ids: Iterable[str]) -> Mapping[str, ApprovalState]:
        """Strongly consistent state of up to 100 approvals in one read (ids not found are left out)."""
        ...


class ApprovalStore(ApprovalStates, Protocol):
    def create(self, approval: Approval) -> Approval:
        """Store a new pending approval and return ``approval`` itself; if one with this id exists
        already (a retried request), return the stored one instead."""
        ...

    def get(self, approval_id: str) -> Approval:
        """Strongly consistent read; ``NotFound`` if there is none."""
        ...

    def finish(self, approval_id: str, outcome: Outcome, *, not_after: datetime | None = None) -> Approval:
        """Move a pending approval to ``outcome.status``. With ``not_after`` the write also requires
        ``expires_at > not_after`` (an approval or denial must land before expiry); for ``expired`` it
        requires ``expires_at <= outcome.at``. ``Conflict`` (with the current item) otherwise."""
        ...

    def announced(self, approval_id: str, *, slack_channel: str | None, slack_ts: str | None,
                  sns_message_id: str | None) -> None:  # fmt: skip
        """Remember where the approval was announced (to update the Slack message later)."""
        ...

    def by_status(self, status: ApprovalStatus, limit: int = 100) -> list[Approval]:
        """Approvals in ``status``, newest first."""
        ...

    def by_session(self, session_id: str, limit: int = 100) -> list[Approval]: ...


class AllowanceUses(Protocol):
    """What a gateway does with allowances: find the live ones that may cover a statement, count uses."""

    def active_in_scope(self, scope: str, now: datetime) -> list[Allowance]:
        """Unrevoked allowances of one (protocol, identity, target, database) that have not expired."""
        ...

    def record_use(self, allowance_id: str, session_id: str, at: datetime) -> None:
        """Count one use (``uses`` + 1, ``last_used_at``, ``last_session_id``)."""
        ...


class AllowanceStore(AllowanceUses, Protocol):
    def grant(self, allowance: Allowance) -> Allowance:
        """Store it; if one with this id exists (a retried decision), return that one."""
        ...

    def get(self, allowance_id: str) -> Allowance: ...

    def revoke(self, allowance_id: str, by: str, at: datetime) -> Allowance:
        """Revoke an active allowance; ``Conflict`` if it was already revoked."""
        ...

    def all_active(self, now: datetime, limit: int = 200) -> list[Allowance]:
        """Every allowance not revoked nor expired (operators' listing)."""
        ...

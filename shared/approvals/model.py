"""Approvals at the boundary: what a gateway asks for, the approval record, allowances, the Lambda API.

The life of an approval is a one-way street, every step a conditional write (``shared.approvals.dynamo``)::

    pending --decide--> approved | denied      (Slack button, SNS link or CLI; the first decision wins)
    pending --withdraw--> withdrawn            (the agent disconnected or cancelled; the proxy stopped)
    pending --expire--> expired                (its expires_at passed; nobody can approve it any more)

Protocol-neutral: a PostgreSQL statement, an SSH command and a Kubernetes API request are all a
``statement`` (text, masked), its ``kinds`` and the ``tables`` (resources, paths) it touches.
"""

from __future__ import annotations

import hashlib
import secrets
from base64 import b32encode
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.approvals.statement import masked_statement

Protocol = Literal["postgres", "ssh", "kubernetes"]
MAX_STATEMENT = 16_384  # characters of masked text kept with an approval (the digest covers all of it)
APPROVAL_PREFIX = "apr_"
ALLOWANCE_PREFIX = "alw_"
ApprovalId = Annotated[str, StringConstraints(pattern=r"^apr_[a-z2-7]{26}$")]
AllowanceId = Annotated[str, StringConstraints(pattern=r"^alw_[a-z2-7]{26}$")]
_Short = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"

    @property
    def final(self) -> bool:
        return self is not ApprovalStatus.PENDING


class DecisionChannel(StrEnum):
    """How a human decided."""

    SLACK = "slack"
    SNS = "sns"
    CLI = "cli"


class Verdict(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


def _id(prefix: str, seed: bytes | None = None) -> str:
    raw = hashlib.sha256(seed).digest()[:16] if seed is not None else secrets.token_bytes(16)
    return prefix + b32encode(raw).decode().rstrip("=").lower()


def statement_digest(text: str) -> str:
    """sha256 of the exact statement text (UTF-8), before any masking."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ApprovalRequest(_Model):
    """A gateway's request to hold one statement for a human (the ``request`` action's payload)."""

    session_id: _Short
    proxy_id: _Short
    identity: _Short
    protocol: Protocol
    target: _Short
    # PostgreSQL: the database; Kubernetes: the namespace or cluster scope; SSH: the login account.
    database: Annotated[str, StringConstraints(max_length=256)] = ""
    # The statement / command / request line with sensitive literals masked, at most MAX_STATEMENT characters.
    statement: Annotated[str, StringConstraints(max_length=MAX_STATEMENT)]
    statement_truncated: bool = False
    digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    kinds: list[_Short] = Field(default_factory=list, max_length=64)
    # Tables (PostgreSQL), resources (Kubernetes) or paths (SSH), lower case.
    tables: list[_Short] = Field(default_factory=list, max_length=256)
    rule: _Short
    reason: Annotated[str, StringConstraints(max_length=1024)] = ""
    approvers: _Short
    timeout_seconds: int = Field(ge=5, le=86400)
    # The same key always yields the same approval: a retried invoke never asks twice.
    idempotency_key: Annotated[str, StringConstraints(min_length=8, max_length=256)]

    @classmethod
    def for_statement(
        cls,
        text: str,
        *,
        protocol: Protocol,
        session_id: str,
        proxy_id: str,
        identity: str,
        target: str,
        database: str = "",
        kinds: Iterable[str] = (),
        tables: Iterable[str] = (),
        rule: str,
        reason: str = "",
        approvers: str,
        timeout_seconds: int,
        idempotency_key: str,
    ) -> ApprovalRequest:
        """A request for the exact ``text``: masked for people, digested as it is (``ValidationError``
        if a field is out of bounds)."""
        masked = masked_statement(text, protocol)
        return cls(
            session_id=session_id, proxy_id=proxy_id, identity=identity, protocol=protocol, target=target,
            database=database, statement=masked[:MAX_STATEMENT], statement_truncated=len(masked) > MAX_STATEMENT,
            digest=statement_digest(text), kinds=sorted(set(kinds)), tables=sorted({t.lower() for t in tables}),
            rule=rule, reason=reason[:1024], approvers=approvers, timeout_seconds=timeout_seconds,
            idempotency_key=idempotency_key,
        )  # fmt: skip

    def derive_approval_id(self) -> str:
        """The approval's id, derived from the idempotency key, so a retry lands on the same item."""
        return _id(APPROVAL_PREFIX, f"{self.session_id}\0{self.idempotency_key}".encode())


class Approval(ApprovalRequest):
    """The approval record: the request, where it was announced, and how it ended."""

    approval_id: ApprovalId
    status: ApprovalStatus = ApprovalStatus.PENDING
    requested_at: datetime
    expires_at: datetime
    # Who decided (the approver-group member that matched: Slack id or e-mail), as shown, and how.
    decided_by: str | None = None
    decided_by_name: str | None = None
    decided_via: DecisionChannel | None = None
    # The AWS principal that ran ``airlock approvals approve/deny`` (CLI decisions).
    decided_by_principal: str | None = None
    decided_at: datetime | None = None
    # Why it was denied, withdrawn or expired.
    decision_reason: str = ""
    allowance_id: str | None = None
    allowance_minutes: int | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    sns_message_id: str | None = None

    @classmethod
    def pending(cls, request: ApprovalRequest, now: datetime) -> Approval:
        return cls(
            **request.model_dump(),
            approval_id=request.derive_approval_id(),
            requested_at=now,
            expires_at=now + timedelta(seconds=request.timeout_seconds),
        )

    def effective_status(self, now: datetime) -> ApprovalStatus:
        """``expired`` for a pending approval whose time is up, even before anyone wrote it down."""
        if self.status is ApprovalStatus.PENDING and now >= self.expires_at:
            return ApprovalStatus.EXPIRED
        return self.status

    def state(self) -> ApprovalState:
        return ApprovalState(
            approval_id=self.approval_id, status=self.status, expires_at=self.expires_at,
            decided_by=self.decided_by, decided_by_name=self.decided_by_name, decided_via=self.decided_via,
            decided_at=self.decided_at, decision_reason=self.decision_reason, allowance_id=self.allowance_id,
            allowance_minutes=self.allowance_minutes,
        )  # fmt: skip

    def same_request(self, request: ApprovalRequest) -> bool:
        """Whether a retried request asks for exactly what this approval holds."""
        return self.model_dump(include=set(ApprovalRequest.model_fields)) == request.model_dump()

    def notice(self, where: str) -> str:
        """What the agent reads while it waits (a PostgreSQL NoticeResponse, an SSH banner line, ...)."""
        until = self.expires_at.astimezone(UTC).strftime("%H:%M:%S UTC")
        return (
            f"Airlock is holding this statement for approval {self.approval_id} (rule \"{self.rule}\", "
            f"approvers: {self.approvers}) in {where}; it waits until {until} "
            f"({self.timeout_seconds} s) and then expires"
        )

    def outcome(self) -> str:
        return self.state().outcome()


@dataclass(frozen=True, slots=True)
class ApprovalState:
    """Where an approval stands: what a gateway's watcher reads (no statement, no request details)."""

    approval_id: str
    status: ApprovalStatus
    expires_at: datetime
    decided_by: str | None = None
    decided_by_name: str | None = None
    decided_via: DecisionChannel | None = None
    decided_at: datetime | None = None
    decision_reason: str = ""
    allowance_id: str | None = None
    allowance_minutes: int | None = None

    @property
    def approved(self) -> bool:
        return self.status is ApprovalStatus.APPROVED

    def outcome(self) -> str:
        """What the agent reads once it is decided (approved: who let it through; otherwise why not)."""
        who = self.decided_by_name or self.decided_by or "an approver"
        how = f" ({self.decided_via})" if self.decided_via else ""
        why = f": {self.decision_reason}" if self.decision_reason else ""
        if self.status is ApprovalStatus.APPROVED:
            span = f" for {self.allowance_minutes} minutes ({self.allowance_id})" if self.allowance_minutes else ""
            return f"approval {self.approval_id} was approved by {who}{how}{span}"
        if self.status is ApprovalStatus.DENIED:
            return f"approval {self.approval_id} was denied by {who}{how}{why}"
        if self.status is ApprovalStatus.EXPIRED:
            at = self.expires_at.astimezone(UTC).strftime("%H:%M:%S UTC")
            return f"approval {self.approval_id} expired at {at}: nobody decided in time"
        if self.status is ApprovalStatus.WITHDRAWN:
            return f"approval {self.approval_id} was withdrawn{why}"
        return f"approval {self.approval_id} is still pending"


class Allowance(_Model):
    """"Approve for N minutes": statements of this identity, on this target and database, whose kinds
    and tables are within these sets, run without asking until ``expires_at`` (or a revocation)."""

    allowance_id: AllowanceId
    approval_id: ApprovalId
    identity: str
    protocol: Protocol
    target: str
    database: str
    kinds: list[str]
    tables: list[str]
    granted_by: str
    granted_by_name: str
    granted_via: DecisionChannel
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    uses: int = 0
    last_used_at: datetime | None = None
    last_session_id: str | None = None

    @classmethod
    def from_approval(cls, approval: Approval, granted_by: str, granted_by_name: str, via: DecisionChannel,
                      minutes: int, now: datetime) -> Allowance:  # fmt: skip
        return cls(
            allowance_id=_id(ALLOWANCE_PREFIX, approval.approval_id.encode()),
            approval_id=approval.approval_id,
            identity=approval.identity,
            protocol=approval.protocol,
            target=approval.target,
            database=approval.database,
            kinds=sorted(set(approval.kinds)),
            tables=sorted(set(approval.tables)),
            granted_by=granted_by,
            granted_by_name=granted_by_name,
            granted_via=via,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )

    @property
    def scope(self) -> str:
        return allowance_scope(self.protocol, self.identity, self.target, self.database)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def covers(self, kinds: frozenset[str] | set[str], tables: frozenset[str] | set[str], now: datetime) -> bool:
        """Whether a statement with these kinds and tables may run under this allowance now."""
        return (
            self.active(now)
            and bool(kinds)
            and set(kinds) <= set(self.kinds)
            and {t.lower() for t in tables} <= set(self.tables)
        )


def allowance_scope(protocol: str, identity: str, target: str, database: str) -> str:
    """The key allowances are found by: who, where (all four must be equal)."""
    return "\x1f".join((protocol, identity, target, database))


@dataclass(frozen=True, slots=True)
class Approver:
    """Someone who clicked, followed a link or ran the CLI.

    ``slack_user_id`` and ``email`` are what group membership and ownership are checked against;
    ``name`` is only shown. ``principal`` is the AWS identity behind a CLI decision."""

    name: str
    slack_user_id: str | None = None
    email: str | None = None
    principal: str | None = None

    @property
    def aliases(self) -> frozenset[str]:
        return frozenset(a for a in (self.slack_user_id, self.email.lower() if self.email else None) if a)



# ---------------------------------------------------------------------- the approvals Lambda's API


class RequestCall(_Model):
    action: Literal["request"] = "request"
    request: ApprovalRequest


class WithdrawCall(_Model):
    action: Literal["withdraw"] = "withdraw"
    approval_id: ApprovalId
    reason: Annotated[str, StringConstraints(max_length=512)] = "withdrawn"


class StatusCall(_Model):
    """The approval as it stands; a pending one whose time is up is expired on the way."""

    action: Literal["status"] = "status"
    approval_id: ApprovalId


ApprovalsCall = Annotated[RequestCall | WithdrawCall | StatusCall, Field(discriminator="action")]

ErrorCode = Literal["invalid", "not_found", "conflict", "unreachable", "unavailable"]


class ApprovalsResult(_Model):
    """The approvals Lambda's answer: the approval, or why there is none (callers fail closed)."""

    ok: bool
    approval: Approval | None = None
    error: ErrorCode | None = None
    message: str = ""

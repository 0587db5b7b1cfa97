"""Why an approval could not be requested or decided, in words the person on the other end can act on."""

from __future__ import annotations

from shared.approvals.model import Approval, ErrorCode


class ApprovalError(Exception):
    """Base: ``code`` is what the approvals Lambda answers (``ApprovalsResult.error``)."""

    code: ErrorCode = "invalid"


class InvalidRequest(ApprovalError):
    """The request cannot be served as asked (unknown group, no approvals section, reused key, ...)."""


class Unreachable(ApprovalError):
    """No approver could be told (Slack and SNS both failed or are not configured): the hold is refused."""

    code: ErrorCode = "unreachable"


class DecisionRefused(ApprovalError):
    """A decision that must not be recorded; the message is shown to whoever tried (ephemeral in Slack)."""

    code: ErrorCode = "conflict"


class NotAnApprover(DecisionRefused):
    pass


class SelfApproval(DecisionRefused):
    pass


class AllowanceRefused(DecisionRefused):
    """"Approve for N minutes" is off in the policy, or N is out of bounds."""


class AlreadyDecided(DecisionRefused):
    def __init__(self, approval: Approval) -> None:
        super().__init__(f"{approval.outcome()}; nothing changed")
        self.approval = approval


class Expired(DecisionRefused):
    def __init__(self, approval: Approval) -> None:
        until = approval.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(f"approval {approval.approval_id} expired at {until}; it can no longer be decided")
        self.approval = approval

"""The approvals service: one decision logic for Slack buttons, SNS links and the CLI.

request   store a pending approval (idempotent: the id derives from the request's idempotency key),
          then announce it on Slack and/or SNS. Nobody reachable: it is withdrawn and ``Unreachable``.
decide    approve (once or for N minutes) or deny. Checks, in order: still pending (``AlreadyDecided``),
          not past its expiry (``Expired``), the decider is in the approver group (``NotAnApprover``)
          and owns not the identity (``SelfApproval``). The conditional write is the arbiter: of two
          concurrent clicks exactly one lands, the other gets ``AlreadyDecided`` with the winner's name.
withdraw  the agent disconnected or cancelled, or its proxy stopped.
status    the approval as it stands; a pending one past its expiry is expired on the way.
Allowances ("Approve for N minutes") are created after the approval's write succeeded, so a losing
click never leaves one behind; they expire by themselves and can be revoked by any approver of the
group. Group membership and ownership are read from the *current* policy at decision time: removing
someone from a group takes effect on the next click. The Slack message is rewritten after every
change; a Slack failure is logged and never undoes a decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.approvals.errors import (
    AllowanceRefused,
    AlreadyDecided,
    Expired,
    InvalidRequest,
    NotAnApprover,
    SelfApproval,
    Unreachable,
)
from shared.approvals.model import (
    Allowance,
    Approval,
    ApprovalRequest,
    ApprovalStatus,
    Approver,
    DecisionChannel,
    Verdict,
)
from shared.approvals.policy import ApprovalsPolicy
from shared.approvals.slack import SlackError, SlackWeb
from shared.approvals.slack_blocks import final_blocks, pending_blocks, summary
from shared.approvals.sns import SnsAnnouncer, SnsError
from shared.approvals.store import AllowanceStore, ApprovalStore, Conflict, Outcome
from shared.policy import Policy
from shared.store.base import NotFound, PolicyStore

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Decided:
    approval: Approval
    allowance: Allowance | None = None


@dataclass
class ApprovalService:
    approvals: ApprovalStore
    allowances: AllowanceStore
    policies: PolicyStore
    policy_name: str
    slack: SlackWeb | None = None
    sns: SnsAnnouncer | None = None
    clock: Callable[[], datetime] = field(default=_utc_now)

    # ------------------------------------------------------------------ policy

    def _policy(self) -> Policy:
        try:
            return self.policies.latest(self.policy_name).policy
        except NotFound as e:
            raise InvalidRequest(f"no policy {self.policy_name!r} has been pushed") from e

    @staticmethod
    def _section(policy: Policy) -> ApprovalsPolicy:
        if policy.approvals is None:
            raise InvalidRequest("the policy has no approvals section: nobody can approve held statements")
        return policy.approvals

    @staticmethod
    def _owners(policy: Policy, identity: str) -> frozenset[str]:
        spec = policy.identities.get(identity)
        return frozenset(spec.owners) if spec else frozenset()

    def _eligible(self, policy: Policy, approval: ApprovalRequest) -> frozenset[str]:
        section = self._section(policy)
        if approval.approvers not in section.approver_groups:
            raise InvalidRequest(f"unknown approver group {approval.approvers!r}")
        return section.members(approval.approvers) - self._owners(policy, approval.identity)

    # ------------------------------------------------------------------ request

    def request(self, request: ApprovalRequest) -> Approval:
        """Store and announce; a retry with the same idempotency key returns the same approval."""
        policy = self._policy()
        section = self._section(policy)
        eligible = self._eligible(policy, request)
        if not eligible:
            raise InvalidRequest(f"every member of {request.approvers!r} owns {request.identity!r}: nobody may approve")
        fresh = Approval.pending(request, self.clock())
        stored = self.approvals.create(fresh)
        if stored is not fresh:
            if not stored.same_request(request):
                raise InvalidRequest(f"idempotency key reused for a different request ({stored.approval_id})")
            if stored.slack_ts or stored.sns_message_id or stored.status.final:
                return stored  # a retry: announced already
        return self._announce(stored, section, eligible)

    def _announce(self, approval: Approval, section: ApprovalsPolicy, eligible: frozenset[str]) -> Approval:
        channel = ts = message_id = None
        failures: list[str] = []
        if section.slack_channel and self.slack is not None:
            minutes = section.allowances.minutes if section.allowances.enabled else None
            try:
                blocks = pending_blocks(approval, minutes)
                channel, ts = self.slack.post(section.slack_channel, summary(approval), blocks)
            except SlackError as e:
                failures.append(str(e))
        if section.sns_topic_arn and self.sns is not None:
            try:
                message_id = self.sns.publish(approval, section.sns_topic_arn, eligible)
            except SnsError as e:
                failures.append(str(e))
        if channel is None and message_id is None:
            why = "; ".join(failures) or "neither Slack nor SNS is configured for this deployment"
            unreached = Outcome(ApprovalStatus.WITHDRAWN, self.clock(), reason=f"no approver reached: {why}")
            self._finish(approval, unreached)
            raise Unreachable(f"no approver could be asked: {why}")
        for failure in failures:
            log.warning("approval %s: one channel failed: %s", approval.approval_id, failure)
        self.approvals.announced(approval.approval_id, slack_channel=channel, slack_ts=ts, sns_message_id=message_id)
        return approval.model_copy(update={"slack_channel": channel, "slack_ts": ts, "sns_message_id": message_id})

    # ------------------------------------------------------------------ decide

    def decide(
        self,
        approval_id: str,
        approver: Approver,
        verdict: Verdict,
        via: DecisionChannel,
        *,
        reason: str = "",
        allowance_minutes: int | None = None,
    ) -> Decided:
        """Record ``approver``'s decision if they may make it (see the module docstring)."""
        approval = self.approvals.get(approval_id)
        now = self.clock()
        if approval.status.final:
            raise AlreadyDecided(approval)
        if now >= approval.expires_at:
            raise Expired(self._expire(approval))
        policy = self._policy()
        section = self._section(policy)
        matched = self._member(approver, section.members(approval.approvers))
        if matched is None:
            raise NotAnApprover(
                f"{approver.name} is not in approver group {approval.approvers!r}, so cannot decide {approval_id}"
            )
        self._check_not_owner(approver, self._owners(policy, approval.identity), approval)
        if allowance_minutes is not None:
            self._check_allowance(section, verdict, allowance_minutes)
        allowance = (
            Allowance.from_approval(approval, matched, approver.name, via, allowance_minutes, now)
            if allowance_minutes
            else None
        )
        outcome = Outcome(
            ApprovalStatus.APPROVED if verdict is Verdict.APPROVE else ApprovalStatus.DENIED,
            now, by=matched, by_name=approver.name, via=via, principal=approver.principal,
            reason=reason or ("" if verdict is Verdict.APPROVE else f"denied by {approver.name}"),
            allowance_id=allowance.allowance_id if allowance else None, allowance_minutes=allowance_minutes,
        )  # fmt: skip
        try:
            decided = self.approvals.finish(approval_id, outcome, not_after=now)
        except Conflict as e:
            current = e.current or self.approvals.get(approval_id)
            if current.effective_status(self.clock()) is ApprovalStatus.EXPIRED:
                raise Expired(self._expire(current)) from e
            raise AlreadyDecided(current) from e
        if allowance is not None:
            allowance = self.allowances.grant(allowance)
        self._rewrite(decided, allowance)
        return Decided(decided, allowance)

    @staticmethod
    def _member(approver: Approver, members: frozenset[str]) -> str | None:
        """The alias under which ``approver`` is a member (their Slack id first), or None."""
        for alias in (approver.slack_user_id, approver.email.lower() if approver.email else None):
            if alias and alias in members:
                return alias
        return None

    @staticmethod
    def _check_not_owner(approver: Approver, owners: frozenset[str], approval: Approval) -> None:
        if approver.aliases & owners:
            raise SelfApproval(
                f"{approver.name} owns identity {approval.identity!r}, so cannot decide its approval "
                f"{approval.approval_id}: someone else in {approval.approvers!r} must"
            )
        if approver.email is None and any("@" in owner for owner in owners):
            # Owners named by e-mail, and we could not learn this person's: they might be one.
            raise SelfApproval(
                f"cannot tell whether {approver.name} owns {approval.identity!r} (owners are listed by e-mail "
                "and yours is unknown), so the decision is refused"
            )

    @staticmethod
    def _check_allowance(section: ApprovalsPolicy, verdict: Verdict, minutes: int) -> None:
        if verdict is not Verdict.APPROVE:
            raise AllowanceRefused("an allowance comes with an approval, not a denial")
        if not section.allowances.enabled:
            raise AllowanceRefused("allowances are off in the policy (approvals.allowances.enabled)")
        if not 1 <= minutes <= section.allowances.max_minutes:
            raise AllowanceRefused(f"an allowance lasts 1..{section.allowances.max_minutes} minutes, not {minutes}")

    # ------------------------------------------------------------------ withdraw / expire / status

    def withdraw(self, approval_id: str, reason: str) -> Approval:
        """Withdraw a pending approval; one that ended already is returned as it ended (idempotent)."""
        return self._finish(self.approvals.get(approval_id),
                            Outcome(ApprovalStatus.WITHDRAWN, self.clock(), reason=reason))  # fmt: skip

    def status(self, approval_id: str) -> Approval:
        approval = self.approvals.get(approval_id)
        if approval.effective_status(self.clock()) is ApprovalStatus.EXPIRED:
            return self._expire(approval)
        return approval

    def expire_due(self, limit: int = 200) -> list[Approval]:
        """Expire pending approvals whose time is up (the scheduled sweep: nobody may be watching)."""
        now = self.clock()
        due = [a for a in self.approvals.by_status(ApprovalStatus.PENDING, limit) if now >= a.expires_at]
        return [self._expire(a) for a in due]

    def _expire(self, approval: Approval) -> Approval:
        return self._finish(approval, Outcome(ApprovalStatus.EXPIRED, self.clock()))

    def _finish(self, approval: Approval, outcome: Outcome) -> Approval:
        if approval.status.final:
            return approval
        try:
            ended = self.approvals.finish(approval.approval_id, outcome)
        except Conflict as e:
            return e.current or self.approvals.get(approval.approval_id)
        self._rewrite(ended, None)
        return ended

    # ------------------------------------------------------------------ allowances

    def revoke_allowance(self, allowance_id: str, approver: Approver) -> Allowance:
        """Revoke an allowance; any member of the approving group (or its granter) may."""
        allowance = self.allowances.get(allowance_id)
        try:
            approval: Approval | None = self.approvals.get(allowance.approval_id)
        except NotFound:
            approval = None  # purged: only its granter may still revoke
        members = self._section(self._policy()).members(approval.approvers) if approval else frozenset()
        matched = self._member(approver, members | {allowance.granted_by})
        if matched is None:
            raise NotAnApprover(f"{approver.name} may not revoke allowance {allowance_id}")
        revoked = self.allowances.revoke(allowance_id, matched, self.clock())
        if approval is not None:
            self._rewrite(approval, revoked)
        return revoked

    def recent(self, status: ApprovalStatus | None = None, limit: int = 100) -> list[Approval]:
        """Approvals newest first; a pending one past its expiry is listed as expired."""
        now = self.clock()
        statuses = [status] if status else list(ApprovalStatus)
        query = [ApprovalStatus.PENDING] if status is ApprovalStatus.EXPIRED else []
        found = [a for s in dict.fromkeys(statuses + query) for a in self.approvals.by_status(s, limit)]
        shown = [a for a in found if status is None or a.effective_status(now) is status]
        return sorted(shown, key=lambda a: a.requested_at, reverse=True)[:limit]

    # ------------------------------------------------------------------ Slack message

    def _rewrite(self, approval: Approval, allowance: Allowance | None) -> None:
        if self.slack is None or not approval.slack_channel or not approval.slack_ts:
            return
        if allowance is None and approval.allowance_id:
            try:
                allowance = self.allowances.get(approval.allowance_id)
            except NotFound:
                allowance = None
        try:
            self.slack.update(approval.slack_channel, approval.slack_ts, summary(approval),
                              final_blocks(approval, allowance, self.clock()))  # fmt: skip
        except SlackError as e:
            log.warning("approval %s is %s, but its Slack message was not updated: %s",
                        approval.approval_id, approval.status, e)  # fmt: skip

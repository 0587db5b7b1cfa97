"""A request held for approval: asked for, waited on with the HTTP request open, then forwarded or refused.

The agent's request simply stays unanswered while a human decides (kubectl and client-go set no request
timeout unless told to: ``--request-timeout``); the gateway waits at most ``k8s_hold_seconds`` (the
approval is asked with that timeout, so approvers see when it lapses). A live "Approve for N minutes"
allowance for the same identity, cluster, namespace, verbs and resources lets the request through at once.
If the agent goes away while waiting (Ctrl-C), the approval is withdrawn. Approvals fail closed: no
approvals section, no approver group, the approvals service unreachable: the request is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.approvals.model import ApprovalRequest
from shared.k8s.judge import Verdict
from shared.recording.format import EventKind

from ..approvals import ApprovalRefused, ApprovalsUnavailable
from .sessions import K8sSession

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    approved: bool
    message: str  # the outcome, for the Status (refused) or the Warning header (approved)
    approval_id: str | None = None


async def hold(session: K8sSession, exchange: int, verdict: Verdict, text: str) -> HoldOutcome:
    """Wait for a decision on a held request (see the module docstring). Each step is an APPROVAL event
    (``step``: requested, approved, denied, expired, withdrawn, allowance_used, unavailable), as for SQL."""
    grant, approvals, judge = session.grant, session.ctx.approvals, session.judge
    assert grant is not None and judge is not None
    namespace = verdict.effect.namespace

    def step(name: str, **fields: object) -> None:
        session.decision(EventKind.APPROVAL, {
            "step": name, "exchange": exchange, "statement": text.split("\n", 1)[0], "protocol": "kubernetes",
            "statement_kind": verdict.effect.verb, "rule": verdict.rule,
            **{k: v for k, v in fields.items() if v is not None}})  # fmt: skip

    if grant.approvals is None or approvals is None:
        return HoldOutcome(False, f"{verdict.message()}; approvals are not configured, so it is refused")
    allowance = await approvals.allowance_for(protocol="kubernetes", identity=grant.identity, target=grant.target,
                                              database=namespace, kinds=verdict.kinds, tables=verdict.resources)
    if allowance is not None:
        try:
            await approvals.record_use(allowance, session.session_id)
        except ApprovalsUnavailable as e:
            log.warning("allowance %s: use not recorded (%s); holding as usual", allowance.allowance_id, e)
        else:
            step("allowance_used", approval_id=allowance.approval_id, allowance_id=allowance.allowance_id,
                 decided_by=allowance.granted_by_name or allowance.granted_by,
                 reason=f"allowance {allowance.allowance_id}")  # fmt: skip
            until = allowance.expires_at.strftime("%H:%M:%S UTC")
            return HoldOutcome(True, f"allowed by {allowance.allowance_id} from {allowance.granted_by_name} "
                                     f"(until {until})", allowance.approval_id)  # fmt: skip
    rule = next((r for r in judge.rules if r.name == verdict.rule), None)
    approvers = (rule.approvers if rule is not None else None) or grant.approvals.default_approvers
    if approvers is None:
        return HoldOutcome(False, f"{verdict.message()}; no approver group is named, so it is refused")
    timeout = max(5, min(grant.approvals.timeout_seconds, session.settings.k8s_hold_seconds))
    try:
        request = ApprovalRequest.for_statement(
            text, protocol="kubernetes", session_id=session.session_id, proxy_id=session.settings.proxy_id,
            identity=grant.identity, target=grant.target, database=namespace, kinds=verdict.kinds,
            tables=verdict.resources, rule=verdict.rule, reason=verdict.reason, approvers=approvers,
            timeout_seconds=timeout, idempotency_key=f"{session.session_id}:{exchange}",
        )  # fmt: skip
        held = await approvals.request(request, grant.approvals.where())
    except (ApprovalsUnavailable, ApprovalRefused, ValueError) as e:
        step("unavailable", reason=str(e))
        return HoldOutcome(False, f"{verdict.message()}; it could not be held for approval ({e}), so it is refused")
    approval = held.approval
    log.info("%s", held.notice, extra={"session_id": session.session_id, "identity": grant.identity})
    step("requested", approval_id=approval.approval_id, reason=held.notice, slack_channel=approval.slack_channel,
         slack_ts=approval.slack_ts, sns_message_id=approval.sns_message_id)  # fmt: skip
    try:
        state = await approvals.wait(approval.approval_id, approval.expires_at)
    except asyncio.CancelledError:
        # The agent went away (aiohttp cancels its handler): nobody should decide on it any more.
        session.spawn(_withdraw(session, approval.approval_id, step))
        raise
    step(state.status.value, approval_id=approval.approval_id, decided_by=state.decided_by_name or state.decided_by,
         decided_via=state.decided_via, reason=state.outcome())  # fmt: skip
    if state.approved and state.allowance_id:  # "Approve for N minutes": the next request of this shape uses it
        approvals.forget_allowances(protocol="kubernetes", identity=grant.identity, target=grant.target,
                                    database=namespace)  # fmt: skip
    outcome = state.outcome()
    return HoldOutcome(state.approved, outcome if state.approved else f"{verdict.message()}; {outcome}",
                       approval.approval_id)  # fmt: skip


async def _withdraw(session: K8sSession, approval_id: str, step: Callable[..., None]) -> None:
    """Withdraw (the agent left) and record how it ended (a click may have beaten the withdrawal)."""
    approvals = session.ctx.approvals
    assert approvals is not None
    try:
        state = await approvals.withdraw(approval_id, "the agent disconnected while waiting")
    except (ApprovalsUnavailable, ApprovalRefused) as e:
        log.error("withdrawing %s failed: %s", approval_id, e)
        return
    step(state.status.value, approval_id=approval_id, reason=state.outcome())

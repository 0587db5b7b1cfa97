"""What the approvals HTTP API's routes do, independent of API Gateway: request in, ``HttpReply`` out.

``POST /slack/interactions``  a Slack button click (``block_actions``): signature and 5-minute window
                              checked first (401 otherwise, nothing parsed); the decision is recorded
                              and the message rewritten within the request; a refused clicker gets an
                              ephemeral message saying why. Slack sees 200 unless the request was not
                              Slack's, so it never retries a click that was handled.
``GET /approvals/link``       a signed SNS link: shows the request and a confirmation form; decides nothing.
``POST /approvals/link``      the confirmation form: decides as the member the link was issued to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from shared.approvals.errors import DecisionRefused
from shared.approvals.links import PAGE_HEADERS, LinkError, LinkSigner, confirmation_page, result_page
from shared.approvals.model import Approver, DecisionChannel, Verdict
from shared.approvals.service import ApprovalService, Decided
from shared.approvals.slack import BadInteraction, SlackError, SlackWeb, clicker, parse_interaction, verify
from shared.approvals.slack_blocks import APPROVE_FOR, APPROVE_ONCE, DENY, REVOKE_ALLOWANCE
from shared.observability import logger
from shared.store.base import NotFound, StoreError


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def api_gateway(self) -> dict[str, Any]:
        """The payload-2.0 response a Lambda behind an HTTP API returns."""
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.headers}
        return {"statusCode": self.status, "headers": headers, "body": self.body, "isBase64Encoded": False}


# ---------------------------------------------------------------------- Slack


def slack_interaction(
    service: ApprovalService,
    slack: SlackWeb,
    signing_secret: str,
    body: str,
    headers: Mapping[str, str],
    clock: Callable[[], float],
) -> HttpReply:
    if not verify(signing_secret, body, headers, clock):
        logger.warning("slack interaction refused: bad signature or timestamp outside the window")
        return HttpReply(401, "invalid signature")
    try:
        interaction = parse_interaction(body)
    except BadInteraction as e:
        return HttpReply(400, str(e))
    if interaction.type != "block_actions" or not interaction.actions:
        return HttpReply(200)
    action = interaction.actions[0]
    approver = clicker(interaction, slack.email_of)
    try:
        done = _click(service, approver, action.action_id, action.value)
    except (DecisionRefused, NotFound) as e:
        message = f"Airlock did not record that: {e}"
    except StoreError:
        logger.exception("slack interaction: storage failed", extra={"action": action.action_id})
        message = "Airlock could not record your decision (storage unavailable); nothing changed, try again"
    else:
        logger.info("slack decision", extra={"action": action.action_id, "user": approver.slack_user_id, "done": done})
        return HttpReply(200)
    channel = interaction.channel_id
    if channel:
        try:
            slack.ephemeral(channel, interaction.user.id, message)
        except SlackError as e:
            logger.warning("could not tell a refused clicker why", extra={"error": str(e)})
    logger.info("slack decision refused", extra={"action": action.action_id, "user": approver.slack_user_id,
                                                 "reason": message})  # fmt: skip
    return HttpReply(200)


def _click(service: ApprovalService, approver: Approver, action_id: str, value: str) -> str:
    if action_id == REVOKE_ALLOWANCE:
        return service.revoke_allowance(value, approver).allowance_id
    minutes: int | None = None
    approval_id = value
    if action_id == APPROVE_FOR:
        approval_id, _, n = value.partition(":")
        minutes = int(n) if n.isdigit() else 0
    elif action_id not in (APPROVE_ONCE, DENY):
        raise NotFound(f"unknown action {action_id!r}")
    verdict = Verdict.DENY if action_id == DENY else Verdict.APPROVE
    decided: Decided = service.decide(approval_id, approver, verdict, DecisionChannel.SLACK, allowance_minutes=minutes)
    return f"{decided.approval.approval_id} {decided.approval.status}"


# ---------------------------------------------------------------------- SNS links


def _page(status: int, html: str) -> HttpReply:
    return HttpReply(status, html, PAGE_HEADERS)


def show_link(service: ApprovalService, signer: LinkSigner, token: str, now: datetime) -> HttpReply:
    """GET: the confirmation page. Changes nothing."""
    try:
        claims = signer.verify(token, now)
        approval = service.status(claims.approval_id)
    except LinkError as e:
        return _page(410 if e.expired else 403, result_page("Link not usable", str(e)))
    except NotFound:
        return _page(404, result_page("Unknown approval", "This approval no longer exists."))
    return _page(200, confirmation_page(approval, claims, token))


def follow_link(service: ApprovalService, signer: LinkSigner, form: str, now: datetime) -> HttpReply:
    """POST: decide as the member the link names."""
    fields = parse_qs(form)
    token = fields.get("t", [""])[0]
    reason = fields.get("reason", [""])[0].strip()[:500]
    try:
        claims = signer.verify(token, now)
    except LinkError as e:
        return _page(410 if e.expired else 403, result_page("Link not usable", str(e)))
    member = claims.member
    approver = Approver(name=member, email=member if "@" in member else None,
                        slack_user_id=None if "@" in member else member)  # fmt: skip
    try:
        decided = service.decide(claims.approval_id, approver, claims.verdict, DecisionChannel.SNS, reason=reason)
    except DecisionRefused as e:
        return _page(409, result_page("Not recorded", str(e)))
    except NotFound:
        return _page(404, result_page("Unknown approval", "This approval no longer exists."))
    title = "Approved" if claims.verdict is Verdict.APPROVE else "Denied"
    return _page(200, result_page(title, decided.approval.outcome(), decided.approval))

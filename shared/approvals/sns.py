"""Announce an approval on SNS: a plain-text message with signed approve/deny links per approver."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.approvals.links import LinkClaims, LinkSigner, link_url
from shared.approvals.model import Approval, Verdict


class SnsError(Exception):
    """Publishing failed."""


def message(approval: Approval, links: Iterable[tuple[str, str, str]]) -> tuple[str, str]:
    """(subject, body); ``links`` are (member, approve url, deny url)."""
    what = ", ".join(approval.kinds) or "statement"
    # SNS subjects: ASCII, no line breaks, under 100 characters.
    subject = f"Airlock approval needed: {what} by {approval.identity} on {approval.target}"
    subject = subject.encode("ascii", "replace").decode()[:99]
    where = f"{approval.protocol} {approval.target} / {approval.database or '-'}"
    lines = [
        f"{approval.identity} wants to run {what} on {where}",
        f"Rule: {approval.rule} (approvers: {approval.approvers})",
        f"Why: {approval.reason or '-'}",
        f"Session: {approval.session_id}",
        f"Approval: {approval.approval_id}, waits until {approval.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        "",
        approval.statement + (" [truncated]" if approval.statement_truncated else ""),
        "",
        "Each link below is personal: it acts as the approver it names. Opening it shows a confirmation page.",
    ]
    for member, approve, deny in links:
        lines += ["", f"{member}:", f"  Approve: {approve}", f"  Deny:    {deny}"]
    return subject, "\n".join(lines)


class SnsAnnouncer:
    def __init__(self, client: Callable[[], Any], signer: Callable[[], LinkSigner], public_url: str) -> None:
        self._client = client
        self._signer = signer
        self._public_url = public_url

    def publish(self, approval: Approval, topic_arn: str, members: Iterable[str]) -> str:
        """Publish to ``topic_arn`` with links for ``members``; returns the SNS message id."""
        if not self._public_url:
            raise SnsError("no public URL for approval links (AIRLOCK_APPROVALS_PUBLIC_URL)")
        signer = self._signer()
        expires = approval.expires_at
        links = []
        for member in sorted(members):
            approve, deny = (
                link_url(self._public_url, signer.sign(LinkClaims(approval.approval_id, v, member, expires)))
                for v in (Verdict.APPROVE, Verdict.DENY)
            )
            links.append((member, approve, deny))
        subject, body = message(approval, links)
        try:
            response = self._client().publish(TopicArn=topic_arn, Subject=subject, Message=body)
        except (BotoCoreError, ClientError) as e:
            raise SnsError(f"SNS publish failed: {type(e).__name__}") from e
        return str(response["MessageId"])

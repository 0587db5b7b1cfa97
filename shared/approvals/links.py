"""Signed, expiring approve/deny links for SNS subscribers, and the pages behind them.

A link is ``<public url>/approvals/link?t=<token>``; the token is ``<claims>.<mac>``: base64url JSON
claims (approval id, verdict, the approver-group member it was issued to, expiry as epoch seconds) and
base64url HMAC-SHA256 of the claims under a key from Secrets Manager. A link is a bearer capability for
one member and one verdict on one approval: whoever holds it acts as that member, so the SNS topic's
subscriptions deserve the same care as the approver group. Links are issued only to members who may
approve (owners of the identity are left out) and expire with the approval.

GET shows a confirmation page and changes nothing (mail scanners and link previews follow links);
only the page's POST decides. Pages are plain HTML, escaped, ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from shared.approvals.model import Approval, Verdict

LINK_PATH = "/approvals/link"
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


class LinkError(ValueError):
    """The link is malformed, forged or expired; ``expired`` tells the last apart."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class LinkClaims:
    approval_id: str
    verdict: Verdict
    member: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the approval link key must hold at least 32 bytes")
        self._key = key

    def _mac(self, claims: str) -> str:
        return _b64(hmac.new(self._key, claims.encode(), hashlib.sha256).digest())

    def sign(self, claims: LinkClaims) -> str:
        body = {"a": claims.approval_id, "v": claims.verdict.value, "m": claims.member,
                "e": int(claims.expires_at.timestamp())}  # fmt: skip
        encoded = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{encoded}.{self._mac(encoded)}"

    def verify(self, token: str, now: datetime) -> LinkClaims:
        encoded, _, mac = token.partition(".")
        if not encoded or not mac or not hmac.compare_digest(mac, self._mac(encoded)):
            raise LinkError("this link is not valid (it was altered, or it was not issued by Airlock)")
        try:
            body = json.loads(_unb64(encoded))
            claims = LinkClaims(
                approval_id=str(body["a"]), verdict=Verdict(body["v"]), member=str(body["m"]),
                expires_at=datetime.fromtimestamp(int(body["e"]), UTC),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as e:
            raise LinkError("this link is not valid") from e
        if now >= claims.expires_at:
            raise LinkError(f"this link expired at {claims.expires_at:%Y-%m-%d %H:%M:%S} UTC", expired=True)
        return claims


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{LINK_PATH}?t={quote(token)}"


# ---------------------------------------------------------------------- pages

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
    "pre{background:#f4f4f4;padding:.75rem;white-space:pre-wrap}th{text-align:left;padding-right:1rem}"
)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta name='robots' content='noindex'>"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"{body}</body></html>")  # fmt: skip


def _table(approval: Approval) -> str:
    rows = [
        ("Approval", approval.approval_id), ("Who", approval.identity),
        ("Where", f"{approval.protocol} {approval.target} / {approval.database or '-'}"),
        ("What", f"{', '.join(approval.kinds) or '-'} on {', '.join(approval.tables) or '-'}"),
        ("Rule", f"{approval.rule} (approvers: {approval.approvers})"), ("Why", approval.reason or "-"),
        ("Expires", f"{approval.expires_at:%Y-%m-%d %H:%M:%S} UTC"),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table><pre>{escape(approval.statement)}</pre>"


def confirmation_page(approval: Approval, claims: LinkClaims, token: str) -> str:
    """What GET shows: the request and one button; deciding takes the POST."""
    verb = "Approve" if claims.verdict is Verdict.APPROVE else "Deny"
    reason = ""
    if claims.verdict is Verdict.DENY:
        reason = "<p><label>Reason (shown to the agent)<br><input name='reason' size='60' maxlength='500'></label></p>"
    form = (f"<form method='post' action='{LINK_PATH}'><input type='hidden' name='t' value='{escape(token)}'>"
            f"{reason}<p><button type='submit'>{verb} as {escape(claims.member)}</button></p></form>")  # fmt: skip
    status = approval.status.value
    note = "" if status == "pending" else f"<p><strong>This approval is already {escape(status)}.</strong></p>"
    return _page(f"{verb} statement?", f"{note}{_table(approval)}{form}")


def result_page(title: str, message: str, approval: Approval | None = None) -> str:
    return _page(title, f"<p>{escape(message)}</p>" + (_table(approval) if approval else ""))

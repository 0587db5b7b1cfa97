"""The Slack message of an approval, as Block Kit: pure functions from records to blocks.

While pending it says who (identity), where (target / database, session), what (the masked statement,
its kinds and tables), which rule and why, and how long it waits, with three buttons: **Approve once**,
**Approve for N minutes** and **Deny**. Once decided (or withdrawn, or expired) the same message is
rewritten in place: the buttons go and a line says who decided, how and when. An allowance adds a
**Revoke allowance** button until it is revoked.

Every button carries the approval (or allowance) id as its ``value``; ``action_id`` says what it does.
Text from the request is escaped for Slack's mrkdwn (``&``, ``<``, ``>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.approvals.model import Allowance, Approval, ApprovalStatus

APPROVE_ONCE = "approve_once"
APPROVE_FOR = "approve_for"
DENY = "deny"
REVOKE_ALLOWANCE = "revoke_allowance"
ACTIONS = (APPROVE_ONCE, APPROVE_FOR, DENY, REVOKE_ALLOWANCE)
_STATEMENT_CHARS = 2_600  # a section's text may hold 3,000 characters
Block = dict[str, Any]


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(at: datetime) -> str:
    """A Slack date token (shown in the reader's time zone) with a UTC fallback."""
    fallback = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def _person(member: str | None, name: str | None) -> str:
    if member and not member.count("@"):
        return f"<@{member}>"
    return escape(name or member or "someone")


def summary(approval: Approval) -> str:
    """One line: the notification text and the fallback for clients without blocks."""
    what = ", ".join(approval.kinds) or "statement"
    return (
        f"Approval {approval.approval_id}: {approval.identity} wants to run {what} on "
        f"{approval.target}/{approval.database} (rule {approval.rule})"
    )


def _statement(approval: Approval) -> str:
    text = approval.statement
    cut = len(text) > _STATEMENT_CHARS or approval.statement_truncated
    text = escape(text[:_STATEMENT_CHARS]).replace("```", "`\u200b``")
    return f"```{text}```" + ("\n_(truncated)_" if cut else "")


def _details(approval: Approval) -> list[Block]:
    kinds = ", ".join(approval.kinds) or "-"
    tables = ", ".join(approval.tables) or "-"
    fields = [
        f"*Who*\n`{escape(approval.identity)}`",
        f"*Where*\n{escape(approval.protocol)} `{escape(approval.target)}` / `{escape(approval.database or '-')}`",
        f"*What*\n{escape(kinds)} on {escape(tables)}",
        f"*Rule*\n`{escape(approval.rule)}` (approvers: {escape(approval.approvers)})",
        f"*Session*\n`{escape(approval.session_id)}`",
        f"*Waits until*\n{_when(approval.expires_at)} ({approval.timeout_seconds} s)",
    ]
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Approval needed: {kinds}"[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": _statement(approval)}},
    ]
    if approval.reason:
        blocks.append(_context(f"Why: {escape(approval.reason)}"))
    proxy = escape(approval.proxy_id)
    blocks.append(_context(f"`{approval.approval_id}` · sha256 `{approval.digest[:16]}…` · proxy `{proxy}`"))
    return blocks


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id,
                     "value": value}  # fmt: skip
    if style:
        button["style"] = style
    return button


def pending_blocks(approval: Approval, allowance_minutes: int | None) -> list[Block]:
    """The message while the approval waits; ``allowance_minutes`` None hides "Approve for N minutes"."""
    buttons = [_button("Approve once", APPROVE_ONCE, approval.approval_id, "primary")]
    if allowance_minutes:
        buttons.append(_button(f"Approve for {allowance_minutes} minutes", APPROVE_FOR,
                               f"{approval.approval_id}:{allowance_minutes}"))  # fmt: skip
    deny = _button("Deny", DENY, approval.approval_id, "danger")
    deny["confirm"] = {
        "title": {"type": "plain_text", "text": "Deny this statement?"},
        "text": {"type": "mrkdwn", "text": "The agent gets an error naming you."},
        "confirm": {"type": "plain_text", "text": "Deny"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    buttons.append(deny)
    actions = {"type": "actions", "block_id": f"approval:{approval.approval_id}", "elements": buttons}
    return [*_details(approval), actions]


def outcome_line(approval: Approval) -> str:
    who = _person(approval.decided_by, approval.decided_by_name)
    at = _when(approval.decided_at) if approval.decided_at else ""
    via = f" via {approval.decided_via}" if approval.decided_via else ""
    why = f": {escape(approval.decision_reason)}" if approval.decision_reason else ""
    if approval.status is ApprovalStatus.APPROVED:
        span = f" for {approval.allowance_minutes} minutes" if approval.allowance_minutes else " once"
        return f":white_check_mark: *Approved{span}* by {who}{via} at {at}"
    if approval.status is ApprovalStatus.DENIED:
        return f":no_entry: *Denied* by {who}{via} at {at}{why}"
    if approval.status is ApprovalStatus.EXPIRED:
        return f":hourglass: *Expired* at {at}: nobody decided in time"
    if approval.status is ApprovalStatus.WITHDRAWN:
        return f":leftwards_arrow_with_hook: *Withdrawn* at {at}{why}"
    return ":hourglass_flowing_sand: *Waiting for a decision*"


def allowance_line(allowance: Allowance, now: datetime) -> str:
    scope = f"{', '.join(allowance.kinds)} on {', '.join(allowance.tables) or '-'}"
    if allowance.revoked_at is not None:
        who = _person(allowance.revoked_by, None)
        at = _when(allowance.revoked_at)
        return f":lock: Allowance `{allowance.allowance_id}` ({escape(scope)}) *revoked* by {who} at {at}"
    state = "until" if allowance.active(now) else "expired at"
    return (f":stopwatch: Allowance `{allowance.allowance_id}`: {escape(scope)} runs without asking "
            f"{state} {_when(allowance.expires_at)}")  # fmt: skip


def final_blocks(approval: Approval, allowance: Allowance | None, now: datetime) -> list[Block]:
    """The message once the approval is no longer pending."""
    blocks = [*_details(approval), {"type": "section", "text": {"type": "mrkdwn", "text": outcome_line(approval)}}]
    if allowance is not None:
        section: Block = {"type": "section", "text": {"type": "mrkdwn", "text": allowance_line(allowance, now)}}
        if allowance.active(now):
            section["accessory"] = _button("Revoke allowance", REVOKE_ALLOWANCE, allowance.allowance_id, "danger")
        blocks.append(section)
    return blocks

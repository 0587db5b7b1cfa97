"""``airlock approvals ...`` (operators) and ``airlock dev approvals ...`` (the local Slack loop).

Operators decide through the same service as Slack and SNS links (``shared.approvals.service``): the
same checks (member of the approver group, not an owner of the identity, still pending, not expired)
and the same conditional write, so a CLI decision racing a Slack click still has exactly one winner.
Who decides is ``--as`` (a Slack user id or e-mail listed in the approver group), else
``AIRLOCK_OPERATOR``, else the OS user; the AWS principal running the command (STS caller identity) is
recorded beside it. The real authority is the AWS credential: only principals allowed to update the
approvals table can decide from the CLI, and every decision names both.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from .sessions_cli import align

STATUSES = ["pending", "approved", "denied", "expired", "withdrawn"]


def register(commands: Any, dev: Any) -> None:
    """Add ``approvals`` to the ``airlock`` parser and ``approvals`` to ``airlock dev``."""
    approvals = commands.add_parser("approvals", help="held statements waiting for (or decided by) a human")
    sub = approvals.add_subparsers(dest="approvals_command", required=True)
    ls = sub.add_parser("list", help="approvals, newest first")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=approvals_list)
    approve = sub.add_parser("approve", help="approve once, or for a while (--for 15m)")
    approve.add_argument("approval_id")
    approve.add_argument("--for", dest="duration", metavar="DURATION", help="create an allowance: 15m, 1h")
    approve.add_argument("--as", dest="operator", help="who approves: a Slack user id or e-mail of the group")
    approve.set_defaults(func=approvals_approve)
    deny = sub.add_parser("deny", help="deny (the agent reads your reason)")
    deny.add_argument("approval_id")
    deny.add_argument("--reason", required=True)
    deny.add_argument("--as", dest="operator")
    deny.set_defaults(func=approvals_deny)
    allowances = sub.add_parser("allowances", help="allowances in force (from 'Approve for N minutes')")
    allowances.add_argument("--json", action="store_true")
    allowances.set_defaults(func=allowances_list)
    revoke = sub.add_parser("revoke", help="revoke an allowance now")
    revoke.add_argument("allowance_id")
    revoke.add_argument("--as", dest="operator")
    revoke.set_defaults(func=allowance_revoke)

    shown = dev.add_parser("approvals", help="pending approvals as a Slack user sees them (the local stand-in)")
    shown.add_argument("--all", action="store_true", help="decided ones too")
    shown.add_argument("--sns", action="store_true", help="also the SNS messages (the local inbox queue)")
    shown.set_defaults(func=dev_approvals)
    clicks = shown.add_subparsers(dest="dev_approvals_command")
    click = clicks.add_parser("click", help="click a button as Slack would (signed interaction payload)")
    click.add_argument("approval_id", help="apr_... (or alw_... with 'revoke')")
    click.add_argument("action", choices=["approve", "deny", "revoke"])
    click.add_argument("--as", dest="user", default="dana", help="Slack user: id, name or e-mail (default dana)")
    click.add_argument("--allowance", action="store_true", help="click 'Approve for N minutes' instead of once")
    click.set_defaults(func=dev_click)


# ---------------------------------------------------------------------- operators


def _service(args: argparse.Namespace) -> Any:
    from shared.approvals.settings import ApprovalsSettings
    from shared.approvals.wiring import build_service, slack_web
    from shared.config import ControlPlaneSettings

    from .environment import use_local_stack

    use_local_stack(args.state_dir)
    settings = ApprovalsSettings()
    return build_service(settings, ControlPlaneSettings(), slack_web(settings))  # decisions rewrite Slack messages


def _operator(args: argparse.Namespace) -> Any:
    import boto3

    from shared.approvals.model import Approver

    who = args.operator or os.environ.get("AIRLOCK_OPERATOR") or getpass.getuser()
    try:
        principal = str(boto3.client("sts").get_caller_identity()["Arn"])
    except Exception:  # recording the principal is best effort; the decision's checks are not
        principal = None
    email = who.lower() if "@" in who else None
    return Approver(name=who, slack_user_id=None if email else who, email=email, principal=principal)


def _fail(e: Exception) -> None:
    sys.exit(f"airlock: {e}")


def parse_minutes(value: str) -> int:
    """``15m`` / ``2h`` / ``90`` (minutes) as minutes."""
    match = re.fullmatch(r"\s*(\d+)\s*([mh]?)\s*", value)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"--for: {value!r} is not a duration like 15m or 2h")
    return int(match.group(1)) * (60 if match.group(2) == "h" else 1)


def _stamp(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def approvals_list(args: argparse.Namespace) -> None:
    from shared.approvals.model import ApprovalStatus
    from shared.store.base import StoreError

    service = _service(args)
    try:
        rows = service.recent(ApprovalStatus(args.status) if args.status else None, args.limit)
    except StoreError as e:
        return _fail(e)
    now = datetime.now(UTC)
    if args.json:
        for a in rows:
            print(json.dumps({**a.model_dump(mode="json"), "status": a.effective_status(now).value}))
        return
    table = [("REQUESTED (UTC)", "APPROVAL", "STATUS", "IDENTITY", "TARGET/DB", "WHAT", "RULE", "DECIDED BY")]
    for a in rows:
        what = f"{','.join(a.kinds)} {','.join(a.tables)}".strip()
        who = f"{a.decided_by_name or a.decided_by} ({a.decided_via})" if a.decided_by else "-"
        table.append((_stamp(a.requested_at), a.approval_id, a.effective_status(now).value, a.identity,
                      f"{a.target}/{a.database}", what[:40], a.rule, who))  # fmt: skip
    print(align(table) if len(table) > 1 else "no approvals")


def _decide(args: argparse.Namespace, verdict: str, reason: str = "", minutes: int | None = None) -> None:
    from shared.approvals.errors import ApprovalError
    from shared.approvals.model import DecisionChannel, Verdict
    from shared.store.base import StoreError

    service = _service(args)
    try:
        decided = service.decide(args.approval_id, _operator(args), Verdict(verdict), DecisionChannel.CLI,
                                 reason=reason, allowance_minutes=minutes)  # fmt: skip
    except (ApprovalError, StoreError) as e:
        return _fail(e)
    print(decided.approval.outcome())
    if decided.allowance:
        a = decided.allowance
        print(f"allowance {a.allowance_id}: {', '.join(a.kinds)} on {', '.join(a.tables) or '-'} "
              f"for {a.identity} on {a.target}/{a.database} until {_stamp(a.expires_at)} UTC")  # fmt: skip


def approvals_approve(args: argparse.Namespace) -> None:
    try:
        minutes = parse_minutes(args.duration) if args.duration else None
    except argparse.ArgumentTypeError as e:
        return _fail(e)
    _decide(args, "approve", minutes=minutes)


def approvals_deny(args: argparse.Namespace) -> None:
    if not args.reason.strip():
        return _fail(ValueError("deny needs a --reason (the agent reads it)"))
    _decide(args, "deny", reason=args.reason.strip())


def allowances_list(args: argparse.Namespace) -> None:
    from shared.store.base import StoreError

    service = _service(args)
    try:
        rows = service.allowances.all_active(datetime.now(UTC))
    except StoreError as e:
        return _fail(e)
    if args.json:
        for a in rows:
            print(json.dumps(a.model_dump(mode="json")))
        return
    table = [("ALLOWANCE", "IDENTITY", "TARGET/DB", "KINDS", "TABLES", "UNTIL (UTC)", "USES", "GRANTED BY")]
    for a in rows:
        table.append((a.allowance_id, a.identity, f"{a.target}/{a.database}", ",".join(a.kinds), ",".join(a.tables),
                      _stamp(a.expires_at), str(a.uses), f"{a.granted_by_name} ({a.granted_via})"))  # fmt: skip
    print(align(table) if len(table) > 1 else "no allowances in force")


def allowance_revoke(args: argparse.Namespace) -> None:
    from shared.approvals.errors import ApprovalError
    from shared.store.base import StoreError

    service = _service(args)
    try:
        revoked = service.revoke_allowance(args.allowance_id, _operator(args))
    except (ApprovalError, StoreError) as e:
        return _fail(e)
    print(f"allowance {revoked.allowance_id} revoked (running sessions stop using it within seconds)")


# ---------------------------------------------------------------------- the local Slack loop


def _stack(args: argparse.Namespace) -> dict[str, Any]:
    from .environment import load_stack

    return load_stack(args.state_dir)


def _get_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def dev_approvals(args: argparse.Namespace) -> None:
    from .devstack.slack_text import render

    info = _stack(args)
    users = {u["id"]: u["name"] for u in info["slack"]["users"]}
    messages = _get_json(f"{info['slack']['url']}/_standin/messages")
    shown = [m for m in messages if args.all or any(b.get("type") == "actions" for b in m["blocks"])]
    if not shown:
        print(f"no {'' if args.all else 'pending '}approval messages in Slack {info['slack']['channel']}")
    for m in shown:
        print(f"--- Slack {info['slack']['channel']} ({m['channel']}) message {m['ts']}"
              + (f", updated {m['updates']}x" if m["updates"] else "") + " ---")  # fmt: skip
        print(render(m["blocks"], users))
        print()
    if shown and not args.all:
        print("click:  airlock dev approvals click <apr_...> approve|deny [--as dana|oscar|gus] [--allowance]")
    if args.sns:
        _show_sns(info)


def _show_sns(info: dict[str, Any]) -> None:
    import boto3

    os.environ.update({k: v for k, v in info["env"].items() if k.startswith("AWS_")})
    sqs = boto3.client("sqs")
    url = info["approvals"]["sns_inbox_queue_url"]
    # Peek (visibility timeout 0): the inbox keeps its messages for the next look.
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    for message in found:
        envelope = json.loads(message["Body"])
        print(f"--- SNS {envelope.get('Subject', '')} ---\n{envelope.get('Message', '')}\n")
    if not found:
        print("no SNS messages in the local inbox")


def dev_click(args: argparse.Namespace) -> None:
    import urllib.error
    import urllib.request

    import boto3

    from .devstack.slack_standin import SlackUser, block_actions_payload, find_button, signed_form

    info = _stack(args)
    users = [SlackUser(**u) for u in info["slack"]["users"]]
    user = next((u for u in users if args.user in (u.id, u.name, u.email)), None)
    if user is None:
        known = ", ".join(u.name for u in users)
        return _fail(ValueError(f"no Slack user {args.user!r} in the stand-in (known: {known})"))
    action = {"approve": "approve_for" if args.allowance else "approve_once", "deny": "deny",
              "revoke": "revoke_allowance"}[args.action]  # fmt: skip
    try:
        messages = _get_json(f"{info['slack']['url']}/_standin/messages")
        message, button = find_button(messages, args.approval_id, action)
    except LookupError as e:
        return _fail(e)
    os.environ.update({k: v for k, v in info["env"].items() if k.startswith("AWS_")})
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=info["approvals"]["slack_secret"])
    signing_secret = json.loads(secret["SecretString"])["signing_secret"]
    payload = block_actions_payload(message, button, user, info["slack"]["channel"])
    body, headers = signed_form(payload, signing_secret)
    request = urllib.request.Request(f"{info['http_api']}/slack/interactions", body.encode(), headers, method="POST")
    ephemeral = f"{info['slack']['url']}/_standin/ephemeral"
    before = len(_get_json(ephemeral))
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    print(f"{user.name} clicked {button['text']['text']!r} on {args.approval_id}: HTTP {status}")
    for said in _get_json(ephemeral)[before:]:
        if said["user"] == user.id:
            print(f"Slack (only visible to {user.name}): {said['text']}")

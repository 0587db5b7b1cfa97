"""The Slack message of an approval (Block Kit), as Slack users and `airlock dev approvals` see it, and
the texts agents read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airlock.devstack.slack_text import render
from shared.approvals.model import Allowance, Approval, ApprovalRequest, ApprovalStatus, DecisionChannel
from shared.approvals.slack_blocks import final_blocks, pending_blocks

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
USERS = {"U0DANA": "dana"}


def approval(**changes: object) -> Approval:
    request = ApprovalRequest.for_statement(
        "DELETE FROM customers WHERE name = '<b>&co'", protocol="postgres", session_id="ses_1", proxy_id="proxy-1",
        identity="ci-nightly", target="demo", database="demo", kinds=["delete"], tables=["customers"],
        rule="customer-deletes", reason="needs a DBA", approvers="dba", timeout_seconds=300, idempotency_key="k" * 8,
    )  # fmt: skip
    return Approval.pending(request, NOW).model_copy(update=changes)


def buttons(blocks: list[dict[str, object]]) -> list[tuple[object, object]]:
    found = []
    for block in blocks:
        for element in [*block.get("elements", []), block.get("accessory")]:  # type: ignore[list-item]
            if isinstance(element, dict) and element.get("type") == "button":
                found.append((element["action_id"], element["value"]))
    return found


def test_pending_message_has_the_three_buttons_and_escapes_the_statement() -> None:
    a = approval()
    blocks = pending_blocks(a, 15)
    assert buttons(blocks) == [("approve_once", a.approval_id), ("approve_for", f"{a.approval_id}:15"),
                               ("deny", a.approval_id)]  # fmt: skip
    text = render(blocks, USERS)
    assert "DELETE FROM customers WHERE name = '<b>&co'" in text  # escaped for Slack, shown as written
    assert "&lt;b&gt;&amp;co" in str(blocks)
    assert "Who: `ci-nightly`" in text and "Rule: `customer-deletes` (approvers: dba)" in text
    assert "[ Approve once ] [ Approve for 15 minutes ] [ Deny ]" in text
    assert "2030-01-01 12:05:00 UTC (300 s)" in text
    # Allowances off: no "Approve for N minutes".
    assert [b[0] for b in buttons(pending_blocks(a, None))] == ["approve_once", "deny"]


def test_decided_message_says_who_how_and_when_and_offers_revoking_an_allowance() -> None:
    a = approval(status=ApprovalStatus.APPROVED, decided_by="U0DANA", decided_by_name="dana",
                 decided_via=DecisionChannel.SLACK, decided_at=NOW + timedelta(seconds=30),
                 allowance_id="alw_" + "b" * 26, allowance_minutes=15)  # fmt: skip
    allowance = Allowance.from_approval(a, "U0DANA", "dana", DecisionChannel.SLACK, 15, NOW)
    blocks = final_blocks(a, allowance, NOW)
    assert buttons(blocks) == [("revoke_allowance", allowance.allowance_id)]
    text = render(blocks, USERS)
    assert "[approved] *Approved for 15 minutes* by @dana via slack at 2030-01-01 12:00:30 UTC" in text
    assert f"Allowance `{allowance.allowance_id}`: delete on customers runs without asking until" in text
    revoked = allowance.model_copy(update={"revoked_at": NOW, "revoked_by": "U0DANA"})
    assert buttons(final_blocks(a, revoked, NOW)) == []
    assert "*revoked* by @dana" in render(final_blocks(a, revoked, NOW), USERS)


def test_withdrawn_and_expired_messages() -> None:
    withdrawn = approval(status=ApprovalStatus.WITHDRAWN, decided_at=NOW, decision_reason="the agent disconnected")
    assert "[withdrawn] *Withdrawn* at 2030-01-01 12:00:00 UTC: the agent disconnected" in render(
        final_blocks(withdrawn, None, NOW), USERS
    )
    expired = approval(status=ApprovalStatus.EXPIRED, decided_at=NOW + timedelta(minutes=5))
    assert "*Expired*" in render(final_blocks(expired, None, NOW), USERS)
    assert buttons(final_blocks(expired, None, NOW)) == []


def test_what_the_agent_reads() -> None:
    a = approval()
    assert a.notice("Slack #db-approvals") == (
        f'Airlock is holding this statement for approval {a.approval_id} (rule "customer-deletes", approvers: '
        "dba) in Slack #db-approvals; it waits until 12:05:00 UTC (300 s) and then expires"
    )
    denied = a.model_copy(update={"status": ApprovalStatus.DENIED, "decided_by": "U0DANA", "decided_by_name": "dana",
                                  "decided_via": DecisionChannel.CLI, "decision_reason": "use the archive job"})
    assert denied.outcome() == f"approval {a.approval_id} was denied by dana (cli): use the archive job"
    assert a.model_copy(update={"status": ApprovalStatus.EXPIRED}).outcome().endswith("nobody decided in time")


def test_an_allowance_covers_subsets_of_its_kinds_and_tables_until_it_ends() -> None:
    a = approval(status=ApprovalStatus.APPROVED)
    allowance = Allowance.from_approval(a, "U0DANA", "dana", DecisionChannel.SLACK, 15, NOW)
    assert allowance.covers({"delete"}, {"customers"}, NOW)
    assert allowance.covers({"delete"}, {"Customers"}, NOW + timedelta(minutes=14))
    assert not allowance.covers({"delete"}, {"customers", "orders"}, NOW)
    assert not allowance.covers({"update"}, {"customers"}, NOW)
    assert not allowance.covers(set(), {"customers"}, NOW)
    assert not allowance.covers({"delete"}, {"customers"}, NOW + timedelta(minutes=15))
    assert not allowance.model_copy(update={"revoked_at": NOW}).covers({"delete"}, {"customers"}, NOW)

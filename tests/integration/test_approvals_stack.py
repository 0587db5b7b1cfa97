"""The approval loop through the local stack, as a new user meets it: a gateway holds a statement via
the approvals Lambda on the local invoke endpoint, the Slack stand-in gets the message, `airlock dev
approvals click` posts a signed interaction to the local HTTP API, the gateway's watcher sees the
decision. Operators decide with `airlock approvals ...` through the same checks."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from airlock.devstack.stack import ROOT
from tests.integration.stack import AirlockStack

pytestmark = pytest.mark.stack


@contextmanager
def gateway(stack: AirlockStack, statement: str, identity: str = "ci-nightly") -> Iterator[subprocess.Popen[str]]:
    env = {**stack.env(), **stack.info["proxy_env"]}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.approvals_gateway", identity, statement],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def next_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        assert process.stderr is not None
        raise AssertionError(f"gateway exited: {process.wait()} {process.stderr.read()[-3000:]}")
    return json.loads(line)  # type: ignore[no-any-return]


def standin(stack: AirlockStack, what: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{stack.info['slack']['url']}/_standin/{what}", timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_hold_click_and_the_watcher_sees_it(stack: AirlockStack) -> None:
    with gateway(stack, "DELETE FROM customers WHERE email = 'someone@example.com'") as process:
        held = next_line(process)
        approval_id = held["approval_id"]
        assert held["notice"].startswith(f"Airlock is holding this statement for approval {approval_id}")
        assert "in Slack #db-approvals" in held["notice"]
        (message,) = [m for m in standin(stack, "messages") if approval_id in json.dumps(m["blocks"])]
        assert "someone@example.com" not in json.dumps(message["blocks"])  # masked before it left the gateway

        shown = stack.cli("dev", "approvals").stdout
        assert approval_id in shown and "[ Approve once ] [ Approve for 15 minutes ] [ Deny ]" in shown
        assert "DELETE FROM customers WHERE email = '[masked:email]'" in shown
        sns = stack.cli("dev", "approvals", "--sns").stdout
        assert "--- SNS Airlock approval needed: delete by ci-nightly on demo ---" in sns
        assert "/approvals/link?t=" in sns

        refused = stack.cli("dev", "approvals", "click", approval_id, "approve", "--as", "oscar").stdout
        assert "HTTP 200" in refused and "oscar owns identity 'ci-nightly'" in refused
        refused = stack.cli("dev", "approvals", "click", approval_id, "approve", "--as", "gus").stdout
        assert "gus is not in approver group 'dba'" in refused
        clicked = stack.cli("dev", "approvals", "click", approval_id, "approve").stdout
        assert f"dana clicked 'Approve once' on {approval_id}: HTTP 200" in clicked

        decided = next_line(process)
        assert decided["status"] == "approved"
        assert decided["outcome"] == f"approval {approval_id} was approved by dana (slack)"
        assert decided["lambda_calls"] == 1  # the request; the decision came from the watcher's reads
    after = stack.cli("dev", "approvals", "--all").stdout
    assert "*Approved once* by @dana via slack" in after
    listed = [json.loads(line) for line in stack.cli("approvals", "list", "--json").stdout.splitlines()]
    (mine,) = [a for a in listed if a["approval_id"] == approval_id]
    assert (mine["status"], mine["decided_by"], mine["decided_via"]) == ("approved", "U0DEMODANA", "slack")


def test_operators_decide_from_the_cli_with_the_same_checks(stack: AirlockStack) -> None:
    with gateway(stack, "DELETE FROM customers WHERE id = 1") as process:
        approval_id = next_line(process)["approval_id"]
        pending = stack.cli("approvals", "list", "--status", "pending").stdout
        assert approval_id in pending and "ci-nightly" in pending
        own = stack.cli("approvals", "approve", approval_id, "--as", "U0DEMOOSCAR", check=False)
        assert own.returncode != 0 and "owns identity 'ci-nightly'" in own.stderr
        stranger = stack.cli("approvals", "approve", approval_id, "--as", "someone@example.com", check=False)
        assert stranger.returncode != 0 and "is not in approver group 'dba'" in stranger.stderr
        denied = stack.cli("approvals", "deny", approval_id, "--reason", "use the archive job", "--as", "U0DEMODANA")
        assert denied.stdout.strip() == f"approval {approval_id} was denied by U0DEMODANA (cli): use the archive job"
        assert next_line(process)["status"] == "denied"
    again = stack.cli("approvals", "approve", approval_id, "--as", "U0DEMODANA", check=False)
    assert again.returncode != 0 and "was denied by U0DEMODANA" in again.stderr

    with gateway(stack, "DELETE FROM customers WHERE id = 2") as process:
        approval_id = next_line(process)["approval_id"]
        approved = stack.cli("approvals", "approve", approval_id, "--for", "15m", "--as", "U0DEMODANA")
        assert f"approval {approval_id} was approved by" in approved.stdout and "allowance alw_" in approved.stdout
        assert next_line(process)["status"] == "approved"
    (allowance,) = [json.loads(line) for line in stack.cli("approvals", "allowances", "--json").stdout.splitlines()
                    if json.loads(line)["approval_id"] == approval_id]  # fmt: skip
    assert (allowance["kinds"], allowance["tables"], allowance["identity"]) == (["delete"], ["customers"], "ci-nightly")
    listed = stack.cli("approvals", "list", "--json").stdout.splitlines()
    record = json.loads(next(line for line in listed if approval_id in line))
    assert record["decided_via"] == "cli" and record["decided_by_principal"].startswith("arn:aws:")
    revoked = stack.cli("approvals", "revoke", allowance["allowance_id"], "--as", "U0DEMODANA")
    assert "revoked" in revoked.stdout
    assert allowance["allowance_id"] not in stack.cli("approvals", "allowances").stdout

"""A minimal gateway for the local-stack approval tests, run as its own process like the proxy:
holds one statement through the proxy's approvals client and prints what happens, as JSON lines.

``python -m tests.integration.approvals_gateway IDENTITY STATEMENT [TIMEOUT]`` with the stack's
environment (``AirlockStack.env()`` and its ``proxy_env``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from proxy.approvals import ApprovalsClient
from shared.approvals.model import ApprovalRequest
from shared.approvals.settings import ApprovalsSettings


async def main(identity: str, statement: str, timeout: int) -> None:
    client = ApprovalsClient.from_settings(ApprovalsSettings())
    request = ApprovalRequest.for_statement(
        statement, protocol="postgres", session_id=f"ses_{uuid.uuid4().hex[:12]}", proxy_id="gateway-test",
        identity=identity, target="demo", database="demo", kinds=["delete"], tables=["customers"],
        rule="customer-deletes-need-approval", reason="deleting customers needs a DBA's approval", approvers="dba",
        timeout_seconds=timeout, idempotency_key=uuid.uuid4().hex,
    )  # fmt: skip
    held = await client.request(request, "Slack #db-approvals")
    print(json.dumps({"event": "held", "approval_id": held.approval.approval_id, "notice": held.notice}), flush=True)
    state = await client.wait(held.approval.approval_id, held.approval.expires_at)
    print(json.dumps({"event": "decided", "status": state.status.value, "outcome": state.outcome(),
                      "state_reads": client.stats.state_reads, "lambda_calls": client.stats.lambda_calls}),
          flush=True)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 120))

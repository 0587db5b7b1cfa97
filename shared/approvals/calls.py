"""The approvals Lambda's API: one ``ApprovalsCall`` in, one ``ApprovalsResult`` out, never an exception.

Gateways invoke it (``lambda.invoke``, RequestResponse) to ``request`` an approval, ``withdraw`` one,
or read its ``status``. Every action is idempotent: a retried request returns the same approval, a
second withdraw returns the approval as it ended. There is deliberately no "decide" action: the
gateway's role may invoke this function, and a gateway must never be able to approve its own holds.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.approvals.errors import ApprovalError
from shared.approvals.model import ApprovalsCall, ApprovalsResult, RequestCall, StatusCall, WithdrawCall
from shared.approvals.service import ApprovalService
from shared.observability import logger
from shared.store.base import NotFound, StoreError

_CALL: TypeAdapter[RequestCall | WithdrawCall | StatusCall] = TypeAdapter(ApprovalsCall)


def parse_call(event: Any) -> RequestCall | WithdrawCall | StatusCall | ApprovalsResult:
    """The call, or an ``invalid`` result naming each problem (never echoing the input)."""
    try:
        return _CALL.validate_python(event)
    except ValidationError as e:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
                    for err in e.errors(include_url=False, include_input=False)]  # fmt: skip
        return ApprovalsResult(ok=False, error="invalid", message="malformed approvals call: " + "; ".join(problems))


def answer(call: RequestCall | WithdrawCall | StatusCall, service: ApprovalService) -> ApprovalsResult:
    try:
        if isinstance(call, RequestCall):
            approval = service.request(call.request)
        elif isinstance(call, WithdrawCall):
            approval = service.withdraw(call.approval_id, call.reason)
        else:
            approval = service.status(call.approval_id)
    except ApprovalError as e:
        logger.info("approvals call refused", extra={"action": call.action, "code": e.code, "reason": str(e)})
        return ApprovalsResult(ok=False, error=e.code, message=str(e))
    except NotFound as e:
        return ApprovalsResult(ok=False, error="not_found", message=str(e))
    except StoreError as e:
        logger.exception("approvals storage failed; failing closed", extra={"action": call.action})
        return ApprovalsResult(ok=False, error="unavailable", message=f"approvals are unavailable ({e})")
    logger.info("approvals call", extra={"action": call.action, "approval_id": approval.approval_id,
                                         "status": approval.status.value})  # fmt: skip
    return ApprovalsResult(ok=True, approval=approval)

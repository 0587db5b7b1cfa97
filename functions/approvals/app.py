"""The approvals Lambda: gateways invoke it to request, withdraw or read an approval; a schedule expires
the pending approvals nobody is watching any more (their proxy died) and rewrites their Slack messages."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.approvals.calls import answer, parse_call
from shared.approvals.model import ApprovalsResult
from shared.approvals.service import ApprovalService
from shared.approvals.settings import approvals_settings
from shared.approvals.wiring import build_service, slack_web, sns_announcer
from shared.config import control_plane_settings
from shared.observability import MetricUnit, logger, metrics, tracer


@lru_cache(maxsize=1)
def service() -> ApprovalService:
    settings = approvals_settings()
    return build_service(settings, control_plane_settings(), slack_web(settings), sns_announcer(settings))


# The event holds a (masked) statement: log decisions, not events.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("source") == "aws.events":
        expired = service().expire_due()
        metrics.add_metric(name="ApprovalsExpired", unit=MetricUnit.Count, value=len(expired))
        return {"expired": [a.approval_id for a in expired]}
    call = parse_call(event)
    result = call if isinstance(call, ApprovalsResult) else answer(call, service())
    metrics.add_metric(name="ApprovalCalls" if result.ok else "ApprovalCallsRefused", unit=MetricUnit.Count, value=1)
    return result.model_dump(mode="json")

"""The signed approve/deny links of SNS messages (HTTP API, payload 2.0): GET confirms, POST decides."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.approvals.endpoints import HttpReply, follow_link, show_link
from shared.approvals.links import PAGE_HEADERS, result_page
from shared.approvals.service import ApprovalService
from shared.approvals.settings import approvals_settings
from shared.approvals.sns import SnsError
from shared.approvals.wiring import build_service, link_signer, slack_web
from shared.config import control_plane_settings
from shared.observability import MetricUnit, logger, metrics, tracer


@lru_cache(maxsize=1)
def service() -> ApprovalService:
    # A decision rewrites the Slack message, if the approval was announced there too.
    return build_service(approvals_settings(), control_plane_settings(), slack_web(approvals_settings()))


def link(request: APIGatewayProxyEventV2) -> HttpReply:
    method = request.request_context.http.method
    if method not in ("GET", "POST"):
        return HttpReply(405, "GET or POST only")
    try:
        signer = link_signer(approvals_settings())
    except SnsError:
        logger.exception("approval links are unavailable: no link key")
        return HttpReply(503, result_page("Unavailable", "Approval links are unavailable; nothing changed."),
                         PAGE_HEADERS)  # fmt: skip
    now = datetime.now(UTC)
    if method == "GET":
        return show_link(service(), signer, request.get_query_string_value("t", "") or "", now)
    return follow_link(service(), signer, request.decoded_body or "", now)


# The query string holds a bearer token: never log events.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reply = link(APIGatewayProxyEventV2(event))
    metrics.add_metric(name=f"ApprovalLinks{reply.status}", unit=MetricUnit.Count, value=1)
    return reply.api_gateway()

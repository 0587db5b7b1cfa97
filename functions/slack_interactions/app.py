"""Slack's interactivity endpoint (HTTP API, payload 2.0): button clicks on approval messages.

The decision and the message update happen within the request, with short Slack calls, so Slack has its
answer well inside its 3 seconds (a DynamoDB conditional write and one ``chat.update``); see
``shared.approvals.endpoints``. No state is kept between invocations but the warm clients.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.approvals.endpoints import HttpReply, slack_interaction
from shared.approvals.service import ApprovalService
from shared.approvals.settings import approvals_settings
from shared.approvals.slack import SlackError, SlackWeb
from shared.approvals.wiring import build_service, slack_credentials, slack_web
from shared.config import control_plane_settings
from shared.observability import MetricUnit, logger, metrics, tracer


@lru_cache(maxsize=1)
def deps() -> tuple[ApprovalService, SlackWeb]:
    slack = slack_web(approvals_settings())
    return build_service(approvals_settings(), control_plane_settings(), slack), slack


def interaction(request: APIGatewayProxyEventV2) -> HttpReply:
    if request.request_context.http.method != "POST":
        return HttpReply(405, "POST only")
    service, slack = deps()
    try:
        signing_secret = slack_credentials(approvals_settings()).signing_secret
    except SlackError:
        logger.exception("cannot verify Slack requests: no signing secret")
        return HttpReply(503, "signing secret unavailable")
    return slack_interaction(service, slack, signing_secret, request.decoded_body or "", request.headers, time.time)


# Slack's payload names who clicked, never a secret, but it is still not worth logging whole.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reply = interaction(APIGatewayProxyEventV2(event))
    metrics.add_metric(name="SlackInteractions" if reply.status == 200 else "SlackInteractionsRejected",
                       unit=MetricUnit.Count, value=1)  # fmt: skip
    return reply.api_gateway()

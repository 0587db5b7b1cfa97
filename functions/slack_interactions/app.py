"""Slack's interactivity endpoint (HTTP API, payload 2.0): button clicks on approval messages.

The decision and the message update happen within the request, with short Slack calls, so Slack has its
answer well inside its 3 seconds (a DynamoDB conditional write and one ``chat.update``); see
``shared.approvals.endpoints``.
"""

from __future__ import annotations

import time
from functools import lru_cache

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.approvals.endpoints import slack_interaction
from shared.approvals.service import ApprovalService
from shared.approvals.settings import approvals_settings
from shared.approvals.slack import SlackError, SlackWeb
from shared.approvals.wiring import build_service, slack_credentials, slack_web
from shared.config import control_plane_settings
from shared.observability import logger, metrics, tracer

app = APIGatewayHttpResolver()


@lru_cache(maxsize=1)
def deps() -> tuple[ApprovalService, SlackWeb]:
    slack = slack_web(approvals_settings())
    return build_service(approvals_settings(), control_plane_settings(), slack), slack


@app.post("/slack/interactions")
def interactions() -> Response[str]:
    event = app.current_event
    service, slack = deps()
    try:
        signing_secret = slack_credentials(approvals_settings()).signing_secret
    except SlackError:
        logger.exception("cannot verify Slack requests: no signing secret")
        return Response(503, "text/plain", "signing secret unavailable")
    reply = slack_interaction(service, slack, signing_secret, event.decoded_body or "", event.headers, time.time)
    return Response(reply.status, "text/plain", reply.body, dict(reply.headers))


# Slack's payload names who clicked, never a secret, but it is still not worth logging whole.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)

"""The signed approve/deny links of SNS messages (HTTP API, payload 2.0): GET confirms, POST decides."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.approvals.endpoints import HttpReply, follow_link, show_link
from shared.approvals.links import LINK_PATH, PAGE_HEADERS, result_page
from shared.approvals.service import ApprovalService
from shared.approvals.settings import approvals_settings
from shared.approvals.sns import SnsError
from shared.approvals.wiring import build_service, link_signer
from shared.config import control_plane_settings
from shared.observability import logger, metrics, tracer

app = APIGatewayHttpResolver()


@lru_cache(maxsize=1)
def service() -> ApprovalService:
    return build_service(approvals_settings(), control_plane_settings())


def _reply(reply: HttpReply) -> Response[str]:
    headers = dict(reply.headers)
    return Response(reply.status, headers.pop("Content-Type", "text/plain"), reply.body, headers)


def _unavailable() -> Response[str]:
    logger.exception("approval links are unavailable: no link key")
    return _reply(HttpReply(503, result_page("Unavailable", "Approval links are unavailable; nothing changed."),
                            PAGE_HEADERS))  # fmt: skip


@app.get(LINK_PATH)
def show() -> Response[str]:
    try:
        signer = link_signer(approvals_settings())
    except SnsError:
        return _unavailable()
    token = app.current_event.get_query_string_value("t", "") or ""
    return _reply(show_link(service(), signer, token, datetime.now(UTC)))


@app.post(LINK_PATH)
def decide() -> Response[str]:
    try:
        signer = link_signer(approvals_settings())
    except SnsError:
        return _unavailable()
    return _reply(follow_link(service(), signer, app.current_event.decoded_body or "", datetime.now(UTC)))


# The query string holds a bearer token: never log events.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)

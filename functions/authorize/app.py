"""The authorize Lambda: the proxy invokes it with an ``AuthorizeRequest`` and gets an ``AuthorizeResponse``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from shared.authorize import NOT_AUTHORIZED, AuthorizeDeps, authorize
from shared.config import control_plane_settings
from shared.controlplane import AuthorizeRequest, AuthorizeResponse, Refusal
from shared.observability import MetricUnit, logger, metrics, tracer
from shared.store.cache import CachedPolicyStore
from shared.store.dynamo import DynamoApiKeyStore, DynamoIdentityStore, DynamoPolicyStore


@lru_cache(maxsize=1)
def deps() -> AuthorizeDeps:
    """Stores built once per container, so warm invocations reuse connections and the policy cache."""
    settings = control_plane_settings()
    return AuthorizeDeps(
        identities=DynamoIdentityStore(settings),
        api_keys=DynamoApiKeyStore(settings),
        policies=CachedPolicyStore(DynamoPolicyStore(settings), settings.policy_cache_seconds),
        settings=settings,
    )


def _malformed(err: ValidationError) -> AuthorizeResponse:
    # include_input=False: the rejected input may be the agent's token.
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
        for e in err.errors(include_url=False, include_input=False)
    ]
    reason = "malformed authorize request: " + "; ".join(problems)
    return AuthorizeResponse(decision="refuse", refusal=Refusal(sqlstate=NOT_AUTHORIZED, reason=reason))


# log_event=False explicitly: the event holds the agent's token, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        request = AuthorizeRequest.model_validate(event)
    except ValidationError as e:
        response = _malformed(e)
        logger.warning("malformed authorize request", extra={"reason": response.refusal and response.refusal.reason})
        metrics.add_metric(name="MalformedRequests", unit=MetricUnit.Count, value=1)
        return response.model_dump(mode="json")
    response = authorize(request, deps())
    metrics.add_metric(name="Grants" if response.grant else "Refusals", unit=MetricUnit.Count, value=1)
    return response.model_dump(mode="json")

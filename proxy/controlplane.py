"""The proxy's client for the control plane: ``lambda.invoke`` through boto3, exactly as in AWS.

Calls happen once per connection and once per grant renewal (``proxy.invoke`` runs them in a worker
thread). Any failure to obtain an answer is a ``ControlPlaneError``: callers fail closed.
"""

from __future__ import annotations

import json
import logging

from pydantic import ValidationError

from shared.controlplane import AuthorizeRequest, AuthorizeResponse

from .invoke import InvokeError, LambdaInvoker

log = logging.getLogger(__name__)


class ControlPlaneError(Exception):
    """The control plane could not be asked, or answered something unusable."""


class ControlPlaneClient:
    def __init__(self, authorize_function: str, timeout: float) -> None:
        self.invoker = LambdaInvoker(authorize_function, timeout, "authorize")

    def warm(self) -> None:
        """Create the Lambda client now (start-up, before ``gc.freeze``), not on the first connection."""
        self.invoker.warm()

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeResponse:
        data = request.model_dump(mode="json")
        if request.token is not None:
            # SecretStr serialises masked; the Lambda needs the real token (sent over TLS in AWS).
            data["token"] = request.token.get_secret_value()
        try:
            body = await self.invoker.invoke(json.dumps(data).encode())
        except InvokeError as e:
            raise ControlPlaneError(str(e)) from e
        try:
            return AuthorizeResponse.model_validate_json(body)
        except ValidationError as e:
            raise ControlPlaneError("authorize returned an invalid response") from e

"""The proxy's client for the control plane: ``lambda.invoke`` through boto3, exactly as in AWS.

boto3 is synchronous; calls happen once per connection and once per grant renewal, so they run in a
worker thread. Any failure to obtain an answer is a ``ControlPlaneError``: callers fail closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import boto3
from botocore.config import Config
from pydantic import ValidationError

from shared.controlplane import AuthorizeRequest, AuthorizeResponse

log = logging.getLogger(__name__)


class ControlPlaneError(Exception):
    """The control plane could not be asked, or answered something unusable."""


class ControlPlaneClient:
    def __init__(self, authorize_function: str, timeout: float) -> None:
        self._function = authorize_function
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Create the Lambda client now (start-up, before ``gc.freeze``), not on the first connection."""
        self._lambda_client()

    def _lambda_client(self) -> Any:
        # One client for every worker thread: boto3 clients are thread-safe once made, but making one
        # is not, hence the lock (held only the first time).
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    config = Config(
                        connect_timeout=self._timeout, read_timeout=self._timeout, retries={"max_attempts": 2}
                    )
                    self._client = boto3.session.Session().client("lambda", config=config)
                client = self._client
        return client

    def _invoke(self, payload: bytes) -> bytes:
        try:
            response = self._lambda_client().invoke(
                FunctionName=self._function, InvocationType="RequestResponse", Payload=payload
            )
            body: bytes = response["Payload"].read()
        except Exception as e:  # botocore raises many unrelated types; all mean "no answer"
            raise ControlPlaneError(f"authorize call failed: {type(e).__name__}") from e
        if response.get("FunctionError"):
            try:
                error = json.loads(body).get("errorType", "error")
            except ValueError:
                error = "error"
            raise ControlPlaneError(f"authorize function failed: {error}")
        return body

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeResponse:
        data = request.model_dump(mode="json")
        if request.token is not None:
            # SecretStr serialises masked; the Lambda needs the real token (sent over TLS in AWS).
            data["token"] = request.token.get_secret_value()
        payload = json.dumps(data).encode()
        body = await asyncio.wait_for(asyncio.to_thread(self._invoke, payload), self._timeout * 2)
        try:
            return AuthorizeResponse.model_validate_json(body)
        except ValidationError as e:
            raise ControlPlaneError("authorize returned an invalid response") from e

"""``lambda.invoke`` (RequestResponse) from the proxy, for every control-plane function it calls.

boto3 is synchronous; calls happen per connection, per grant renewal and per held statement, so they
run in a worker thread. One Lambda client serves every thread. Any failure to obtain an answer is an
``InvokeError`` naming the function's role (never the payload): callers fail closed.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import boto3
from botocore.config import Config


class InvokeError(Exception):
    """The function could not be asked, or it failed."""


class LambdaInvoker:
    def __init__(self, function: str, timeout: float, what: str) -> None:
        self.function = function
        self._timeout = timeout
        self._what = what
        self._client: Any = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Create the Lambda client now (start-up, before ``gc.freeze``), not on the first call."""
        self._lambda_client()

    def _lambda_client(self) -> Any:
        # boto3 clients are thread-safe once made, but making one is not, hence the lock (held once).
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

    def invoke_sync(self, payload: bytes) -> bytes:
        try:
            response = self._lambda_client().invoke(FunctionName=self.function, InvocationType="RequestResponse",
                                             Payload=payload)  # fmt: skip
            body: bytes = response["Payload"].read()
        except Exception as e:  # botocore raises many unrelated types; all mean "no answer"
            raise InvokeError(f"{self._what} call failed: {type(e).__name__}") from e
        if response.get("FunctionError"):
            try:
                error = json.loads(body).get("errorType", "error")
            except ValueError:
                error = "error"
            raise InvokeError(f"{self._what} function failed: {error}")
        return body

    async def invoke(self, payload: bytes) -> bytes:
        """The function's answer, or ``InvokeError`` (also when it takes longer than twice the timeout)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.invoke_sync, payload), self._timeout * 2)
        except TimeoutError as e:
            raise InvokeError(f"{self._what} call timed out") from e

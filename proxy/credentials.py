"""Backend credentials from Secrets Manager, cached briefly (rotation takes effect within the TTL)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError


class CredentialError(Exception):
    """The backend credential could not be fetched or is malformed."""


@dataclass(frozen=True, slots=True)
class BackendCredential:
    username: str
    password: str = field(repr=False)


class CredentialCache:
    """Secrets Manager reads, cached for ``ttl_seconds`` (so a rotation takes effect within the TTL)."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, str]] = {}
        self._client: Any = None
        self._lock = threading.Lock()  # creating a boto3 client is not thread-safe

    def warm(self) -> None:
        """Create the Secrets Manager client now (start-up, before ``gc.freeze``)."""
        with self._lock:
            if self._client is None:
                self._client = boto3.session.Session().client("secretsmanager")

    def _fetch(self, secret_id: str) -> str:
        try:
            if self._client is None:
                self.warm()
            return str(self._client.get_secret_value(SecretId=secret_id)["SecretString"])
        except ClientError as e:  # AWS's own words (the code and message never hold the secret)
            error = e.response.get("Error", {})
            reason = f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".rstrip(": ")
            raise CredentialError(f"cannot read secret {secret_id!r}: {reason}") from e
        except Exception as e:  # any failure means no secret: fail closed
            raise CredentialError(f"cannot read secret {secret_id!r}: {type(e).__name__}: {e}") from e

    async def get_text(self, secret_id: str) -> str:
        """A secret's string (e.g. the masking tokenization key)."""
        hit = self._cache.get(secret_id)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        value = await asyncio.to_thread(self._fetch, secret_id)
        self._cache[secret_id] = (now, value)
        return value

    async def get(self, secret_id: str) -> BackendCredential:
        """A backend credential: a JSON secret {"username": ..., "password": ...} (the RDS layout)."""
        try:
            data = json.loads(await self.get_text(secret_id))
            return BackendCredential(str(data["username"]), str(data["password"]))
        except (ValueError, KeyError, TypeError) as e:
            raise CredentialError(
                f"backend credential {secret_id!r} is not the documented JSON {{\"username\", \"password\"}}"
            ) from e

    def cached(self, secret_id: str) -> BackendCredential | None:
        """The backend credential if it is in the cache and fresh; never fetches."""
        hit = self._cache.get(secret_id)
        if not hit or time.monotonic() - hit[0] >= self._ttl:
            return None
        try:
            data = json.loads(hit[1])
            return BackendCredential(str(data["username"]), str(data["password"]))
        except (ValueError, KeyError, TypeError):
            return None

    def invalidate(self, secret_id: str) -> None:
        """Drop a cached secret (after the backend rejected it, e.g. following rotation)."""
        self._cache.pop(secret_id, None)

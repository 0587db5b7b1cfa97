"""Backend credentials from Secrets Manager, cached briefly (rotation takes effect within the TTL)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import boto3


class CredentialError(Exception):
    """The backend credential could not be fetched or is malformed."""


@dataclass(frozen=True, slots=True)
class BackendCredential:
    username: str
    password: str = field(repr=False)


class CredentialCache:
    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, BackendCredential]] = {}
        self._client: Any = None
        self._text: dict[str, tuple[float, str]] = {}

    def _fetch(self, secret_id: str) -> BackendCredential:
        try:
            if self._client is None:
                self._client = boto3.session.Session().client("secretsmanager")
            value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
            data = json.loads(value)
            return BackendCredential(str(data["username"]), str(data["password"]))
        except Exception as e:  # any failure means no credential: fail closed
            raise CredentialError(f"cannot read backend credential {secret_id!r}: {type(e).__name__}") from e

    async def get(self, secret_id: str) -> BackendCredential:
        hit = self._cache.get(secret_id)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        credential = await asyncio.to_thread(self._fetch, secret_id)
        self._cache[secret_id] = (now, credential)
        return credential

    async def get_text(self, secret_id: str) -> str:
        """A plain secret string (e.g. the masking tokenization key), cached like credentials."""
        hit = self._text.get(secret_id)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        value = await asyncio.to_thread(self._fetch_text, secret_id)
        self._text[secret_id] = (now, value)
        return value

    def _fetch_text(self, secret_id: str) -> str:
        try:
            if self._client is None:
                self._client = boto3.session.Session().client("secretsmanager")
            return str(self._client.get_secret_value(SecretId=secret_id)["SecretString"])
        except Exception as e:  # any failure means no key: fail closed
            raise CredentialError(f"cannot read secret {secret_id!r}: {type(e).__name__}") from e

    def invalidate(self, secret_id: str) -> None:
        """Drop a cached credential (after the backend rejected it, e.g. following rotation)."""
        self._cache.pop(secret_id, None)

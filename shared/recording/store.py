"""The sessions bucket: Object Lock (COMPLIANCE) puts with SHA-256 checksums, and reads for verify.

Blocking boto3 calls; the uploader runs them in a thread. The endpoint comes from boto3's own
environment handling (``AWS_ENDPOINT_URL``), so the same code talks to AWS and to a local S3. Every
storage failure surfaces as ``RecordingStoreError``; callers never see botocore exceptions.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .format import MANIFEST_NAME, manifest_index_key
from .recorder import SealedChunk

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})



def s3_client() -> Any:
    """An S3 client for recordings and audit lines.

    Every put carries a signed ``x-amz-checksum-sha256`` header that S3 verifies against the body, so
    the body itself is not hashed again for the signature (UNSIGNED-PAYLOAD). botocore already does
    this over HTTPS; this makes a plain-HTTP endpoint (a local emulator) behave the same instead of
    paying a second SHA-256 pass over every chunk.
    """
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"payload_signing_enabled": False}))

class RecordingStoreError(Exception):
    """The sessions bucket could not be read or written."""


class ObjectMissing(RecordingStoreError):
    """The object does not exist."""


@dataclass(frozen=True, slots=True)
class Retention:
    mode: str
    retain_until: datetime


class ChunkStore:
    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def put_chunk(self, chunk: SealedChunk, retain_until: datetime) -> None:
        self.put_locked(chunk.key, chunk.data, retain_until, sha256=chunk.sha256)

    def put_manifest(self, prefix: str, data: bytes, retain_until: datetime) -> None:
        """The manifest, then its copy in the manifest index (docs/audit-events.md), both write-once: a
        retry after a failure between the two finds the first in place and writes the second."""
        self.put_locked(prefix + MANIFEST_NAME, data, retain_until, content_type="application/json")
        self.put_locked(manifest_index_key(prefix), data, retain_until, content_type="application/json")

    def put_locked(
        self,
        key: str,
        data: bytes,
        retain_until: datetime,
        *,
        sha256: bytes | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Write once: COMPLIANCE retention, S3-checked SHA-256, and never over an existing object.

        ``If-None-Match: *`` makes a retry after a lost response safe: if the first attempt landed, the
        retry finds the object, and we accept it only if its checksum is ours.
        """
        checksum = base64.b64encode(sha256 or hashlib.sha256(data).digest()).decode()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",  # Object Lock puts need the checksum header, not just a value
                ChecksumSHA256=checksum,
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
                IfNoneMatch="*",
            )
        except ClientError as e:
            if _code(e) not in {"PreconditionFailed", "412"}:
                raise RecordingStoreError(f"put s3://{self.bucket}/{key}: {_describe(e)}") from e
            existing = self._checksum(key)
            if existing != checksum:
                raise RecordingStoreError(
                    f"put s3://{self.bucket}/{key}: a different object already exists there"
                ) from e
        except BotoCoreError as e:
            raise RecordingStoreError(f"put s3://{self.bucket}/{key}: {e}") from e

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise ObjectMissing(f"s3://{self.bucket}/{key} does not exist") from e
            raise RecordingStoreError(f"get s3://{self.bucket}/{key}: {_describe(e)}") from e
        except BotoCoreError as e:
            raise RecordingStoreError(f"get s3://{self.bucket}/{key}: {e}") from e
        return body

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, in lexical order."""
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as e:
            raise RecordingStoreError(f"list s3://{self.bucket}/{prefix}: {_describe(e)}") from e
        return sorted(keys)

    def versions(self, key: str) -> int:
        """How many versions of ``key`` exist (more than one means someone wrote over it)."""
        count = 0
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
            for page in pages:
                count += sum(1 for v in page.get("Versions", []) if v["Key"] == key)
        except (ClientError, BotoCoreError) as e:
            raise RecordingStoreError(f"list versions of s3://{self.bucket}/{key}: {_describe(e)}") from e
        return count

    def retention(self, key: str) -> Retention | None:
        """The Object Lock retention of the current version, or None if it has none."""
        # HEAD carries the lock headers (given s3:GetObjectRetention), one call instead of two.
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise ObjectMissing(f"s3://{self.bucket}/{key} does not exist") from e
            raise RecordingStoreError(f"head s3://{self.bucket}/{key}: {_describe(e)}") from e
        except BotoCoreError as e:
            raise RecordingStoreError(f"head s3://{self.bucket}/{key}: {e}") from e
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        if not mode or not isinstance(until, datetime):
            return None
        return Retention(str(mode), until)

    def find_session_prefix(self, session_id: str) -> str | None:
        """``sessions/dt=.../<id>/`` for a session id, searching the date partitions (newest first)."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix="sessions/", Delimiter="/"
            )
            partitions = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
            for partition in sorted(partitions, reverse=True):
                prefix = f"{partition}{session_id}/"
                resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
                if resp.get("KeyCount", 0):
                    return prefix
        except (ClientError, BotoCoreError) as e:
            raise RecordingStoreError(f"search s3://{self.bucket}/sessions/: {_describe(e)}") from e
        return None

    def _checksum(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as e:
            raise RecordingStoreError(f"head s3://{self.bucket}/{key}: {_describe(e)}") from e
        value = head.get("ChecksumSHA256")
        return value if isinstance(value, str) else None


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _describe(e: Exception) -> str:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": ")
    return str(e)

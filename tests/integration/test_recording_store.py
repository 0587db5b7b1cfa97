"""Recording store against a real moto server over HTTP: Object Lock puts, signed manifest, verify.

Self-contained (its own moto server) so it runs without the rest of the local stack; boto3 finds the
server through AWS_ENDPOINT_URL exactly as the proxy does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from shared.recording.format import Direction, EventKind, SessionMeta, SessionStatus, format_timestamp
from shared.recording.recorder import SealedChunk, SessionRecorder
from shared.recording.signing import KmsSigner, sign_manifest
from shared.recording.store import ChunkStore, RecordingStoreError
from shared.recording.uploader import ChunkUploader
from shared.recording.verify import DirectorySource, S3Source, download_session, verify_session

BUCKET = "airlock-sessions-test"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    boto3.DEFAULT_SESSION = None
    yield
    boto3.DEFAULT_SESSION = None


@pytest.fixture
def store(aws: None) -> ChunkStore:
    s3 = boto3.client("s3")
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return ChunkStore(BUCKET)


@pytest.fixture
def kms(aws: None) -> KmsSigner:
    key = boto3.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    # moto 5 ignores MessageType=DIGEST (it hashes the digest again), so sign RAW here; real KMS gives
    # the same ECDSA-SHA-256 signature either way, and the unit tests cover the offline check.
    return KmsSigner(key["KeyMetadata"]["KeyId"], message_type="RAW")


def _record(session_id: str, retain_until: datetime) -> tuple[list[SealedChunk], SessionRecorder]:
    started = datetime.now(UTC)
    meta = SessionMeta(
        session_id=session_id,
        identity="ci",
        target="orders",
        database="orders",
        client_addr="127.0.0.1:5000",
        proxy_id="p1",
        started_at=format_timestamp(int(started.timestamp() * 1e9)),
        retain_until=format_timestamp(int(retain_until.timestamp() * 1e9)),
        mode="buffered",
    )
    rec = SessionRecorder(meta, chunk_size=256)
    chunks: list[SealedChunk] = []
    for c in [
        rec.record_decision(EventKind.GRANT, {"identity": "ci", "policy_version": "1"}),
        *[rec.record_bytes(Direction.PROXY_TO_AGENT, bytes([i]) * 100) for i in range(10)],
    ]:
        if c is not None:
            chunks.append(c)
    return chunks, rec


def _upload(store: ChunkStore, kms: KmsSigner, session_id: str) -> tuple[str, datetime]:
    retain = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    chunks, rec = _record(session_id, retain)

    async def main() -> None:
        up = ChunkUploader(store, prefix=rec.prefix, retain_until=retain)
        for c in chunks:
            up.submit(c)
        sealed = rec.seal(SessionStatus.CLOSED)
        if sealed.last_chunk:
            await up.put_now(sealed.last_chunk)
        await up.close(sign_manifest(sealed.manifest, kms))

    asyncio.run(main())
    return rec.prefix, retain


def test_upload_sign_verify_and_retention(store: ChunkStore, kms: KmsSigner, tmp_path: Path) -> None:
    prefix, retain = _upload(store, kms, "ses_ok")
    keys = store.list_keys(prefix)
    assert len(keys) >= 4 and keys[-1].endswith("manifest.json")
    for key in keys:
        r = store.retention(key)
        assert r is not None and r.mode == "COMPLIANCE" and r.retain_until >= retain
    pub = kms.public_key_der()
    report = verify_session(S3Source(store, prefix), pub)
    assert report.ok, report.defect
    assert report.retention_checked
    assert store.find_session_prefix("ses_ok") == prefix
    # The same check offline, on a downloaded copy, with only the public key.
    local = verify_session(DirectorySource(download_session(store, prefix, tmp_path / "dl")), pub)
    assert local.ok and not local.retention_checked


def test_overwriting_a_chunk_is_refused_or_noticed(store: ChunkStore, kms: KmsSigner) -> None:
    prefix, retain = _upload(store, kms, "ses_tamper")
    key = prefix + "00000001.chunk"
    s3 = boto3.client("s3")
    # Our own writer never overwrites (If-None-Match), and says so.
    forged = SealedChunk(1, key, 0, 0, bytes(32), bytes(32), b"forged")
    with pytest.raises(RecordingStoreError, match="different object already exists"):
        store.put_chunk(forged, retain)
    # A raw overwrite, as an attacker with put rights would try: either S3 refuses, or a new version is
    # created and verify must notice that the current object is not the recorded one.
    try:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"forged", ChecksumAlgorithm="SHA256")
    except s3.exceptions.ClientError:
        assert store.get(key) != b"forged"
        return
    report = verify_session(S3Source(store, prefix), kms.public_key_der())
    assert report.defect == "chunk 1: sha256 mismatch (the object has been overwritten: it has several versions)"


def test_missing_retention_is_a_defect(store: ChunkStore, kms: KmsSigner) -> None:
    prefix, _ = _upload(store, kms, "ses_noretain")
    # An extra object written without a lock is not named by the manifest: the listing catches it first.
    boto3.client("s3").put_object(Bucket=BUCKET, Key=prefix + "00000099.chunk", Body=b"x", ChecksumAlgorithm="SHA256")
    report = verify_session(S3Source(store, prefix), kms.public_key_der())
    assert report.defect == "unexpected object 00000099.chunk: not named by the manifest"


def test_store_errors_are_domain_errors(aws: None) -> None:
    with pytest.raises(RecordingStoreError):
        ChunkStore("no-such-bucket").get("x")

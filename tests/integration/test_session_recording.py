"""Session recording against a real moto server: sessions index, audit lines, SessionRecording, sweeper.

Tables, bucket and signing key come from ``template.yaml`` (``provisioned_stack``), so the key schema
the index queries is the one the stack deploys. moto 5 does not implement KMS ``MessageType=DIGEST``,
so signing here uses RAW (``AIRLOCK_RECORDING_SIGNING_MESSAGE_TYPE=RAW`` does the same for a stack).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airlock.devstack.provision import StackResources
from proxy.recording import RecordingServices, RecordingSettings, SessionRecording, SessionStart
from shared.config import ControlPlaneSettings
from shared.pg.wire import messages as m
from shared.recording.audit import AuditEvent, AuditWriter, s3_put_object
from shared.recording.format import EventKind, SessionStatus, decode_chunk, decode_manifest
from shared.recording.signing import KmsSigner
from shared.recording.store import ChunkStore
from shared.recording.sweeper import seal_incomplete, sweep
from shared.recording.uploader import RecordingUnavailable
from shared.recording.verify import S3Source, verify_session
from shared.store.base import NotFound
from shared.store.sessions import (
    DynamoSessionIndex,
    SessionCounters,
    SessionNotActive,
    SessionRecord,
    SessionState,
)
from tests.integration.devstack_fixtures import moto_endpoint, provisioned_stack  # noqa: F401 - session fixtures


@pytest.fixture(scope="module")
def cp(provisioned_stack: StackResources) -> ControlPlaneSettings:  # noqa: F811
    ids = provisioned_stack.physical_ids
    return ControlPlaneSettings(
        region=provisioned_stack.region,
        sessions_table=ids["SessionsTable"],
        sessions_bucket=ids["SessionsBucket"],
        signing_key_id=ids["RecordingSigningKey"],
    )


@pytest.fixture(scope="module")
def index(cp: ControlPlaneSettings) -> DynamoSessionIndex:
    return DynamoSessionIndex(cp)


@pytest.fixture(scope="module")
def signer(cp: ControlPlaneSettings) -> KmsSigner:
    return KmsSigner(cp.signing_key_id, message_type="RAW")


@pytest.fixture(scope="module")
def public_key(signer: KmsSigner) -> bytes:
    return signer.public_key_der()


def _record(
    session_id: str,
    *,
    identity: str = "ci",
    target: str = "orders",
    started: datetime | None = None,
    status: SessionState = SessionState.ACTIVE,
) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        identity=identity,
        target=target,
        database="orders",
        client_addr="127.0.0.1:5000",
        proxy_id="p1",
        started_at=started or datetime.now(UTC),
        status=status,
    )


def _sid() -> str:
    return f"ses_{uuid.uuid4().hex}"


# ---------------------------------------------------------------- sessions index


def test_index_lifecycle_and_queries(index: DynamoSessionIndex) -> None:
    ident = f"id-{uuid.uuid4().hex[:6]}"
    target = f"t-{uuid.uuid4().hex[:6]}"
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    ids = [_sid() for _ in range(3)]
    for i, sid in enumerate(ids):
        index.open(_record(sid, identity=ident, target=target, started=t0 + timedelta(minutes=i)))
    with pytest.raises(Exception, match="exists already"):
        index.open(_record(ids[0], identity=ident))

    counters = SessionCounters(10, 20, 3, 1, "ab" * 32)
    index.heartbeat(ids[0], "p2", counters)
    got = index.get(ids[0])
    assert got.status is SessionState.ACTIVE and got.proxy_id == "p2" and got.counters == counters

    index.close(ids[0], SessionState.CLOSED, manifest_key="k/manifest.json", counters=counters, reason="bye")
    got = index.get(ids[0])
    assert got.status is SessionState.CLOSED and got.manifest_key == "k/manifest.json" and got.ended_at
    # Only an active session can be closed or heartbeat.
    with pytest.raises(SessionNotActive):
        index.close(ids[0], SessionState.INCOMPLETE, manifest_key="x", counters=counters)
    with pytest.raises(SessionNotActive):
        index.heartbeat(ids[0], "p1", counters)
    with pytest.raises(SessionNotActive):
        index.heartbeat("ses_nope", "p1", counters)
    with pytest.raises(NotFound):
        index.get("ses_nope")

    refused = _sid()
    index.refused(
        _record(refused, identity=ident, target=target, started=t0 + timedelta(minutes=5), status=SessionState.REFUSED)
    )

    by_identity = index.query_by_identity(ident)
    assert [r.session_id for r in by_identity] == [refused, ids[2], ids[1], ids[0]]  # newest first
    assert [r.session_id for r in index.query_by_identity(ident, since=t0 + timedelta(minutes=1))] == [
        refused,
        ids[2],
        ids[1],
    ]
    assert len(index.query_by_target(target, limit=2)) == 2
    active = {r.session_id for r in index.active(limit=1000)}
    assert {ids[1], ids[2]} <= active and ids[0] not in active and refused not in active
    assert refused in {r.session_id for r in index.query_by_status(SessionState.REFUSED, since=t0)}
    # Heartbeats were written at open (now), so nothing of ours is stale an hour ago.
    stale = {r.session_id for r in index.stale_active(datetime.now(UTC) - timedelta(hours=1), limit=1000)}
    assert not stale & set(ids)
    stale = {r.session_id for r in index.stale_active(datetime.now(UTC) + timedelta(seconds=1), limit=1000)}
    assert {ids[1], ids[2]} <= stale


# ---------------------------------------------------------------- audit lines


def _objects(bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_audit_writer_writes_partitioned_json_lines(cp: ControlPlaneSettings) -> None:
    proxy_id = f"px-{uuid.uuid4().hex[:6]}"

    async def main() -> AuditWriter:
        writer = AuditWriter(s3_put_object(cp.sessions_bucket), proxy_id=proxy_id, batch_bytes=600)
        for day, n in ((1, 3), (2, 1)):
            for i in range(n):
                writer.add(
                    AuditEvent(
                        time=datetime(2025, 1, day, 23, 59, tzinfo=UTC),
                        event="statement",
                        session_id="ses_a",
                        identity="ci",
                        statement=f"select {i}",
                        statement_kind="select",
                        decision="allow",
                        rows=i,
                        duration_ms=1.5,
                    )
                )
        writer.add(
            AuditEvent(
                time=datetime(2025, 1, 2, tzinfo=UTC), event="statement", session_id="ses_a", statement="x" * 5000
            )
        )
        await writer.close(5)
        return writer

    writer = asyncio.run(main())
    assert writer.dropped == 0
    objs = _objects(cp.sessions_bucket, "audit/")
    ours = {k: v for k, v in objs.items() if f"/{proxy_id}-" in k}
    assert ours and all(k.endswith(".jsonl") for k in ours)
    lines = [json.loads(line) for k in sorted(ours) for line in ours[k].splitlines()]
    assert len(lines) == 5
    day1 = [json.loads(x) for k, v in ours.items() if "dt=2025-01-01/" in k for x in v.splitlines()]
    assert len(day1) == 3 and day1[0]["time"] == "2025-01-01T23:59:00.000000Z"
    long = [x for x in lines if x["statement_truncated"]]
    assert len(long) == 1 and len(long[0]["statement"]) == 4096


def test_audit_writer_bounds_memory() -> None:
    async def main() -> AuditWriter:
        def fail(key: str, body: bytes) -> None:
            raise OSError("down")

        writer = AuditWriter(fail, proxy_id="p", batch_bytes=100, max_buffered_bytes=1000, backoff_initial=0.01)
        for _ in range(100):
            writer.add(AuditEvent(time=datetime.now(UTC), event="decision", session_id="s", decision="deny"))
        assert writer.buffered_bytes <= 1000
        await writer.close(0.1)
        return writer

    assert asyncio.run(main()).dropped > 0


# ---------------------------------------------------------------- SessionRecording


class SwitchableS3:
    """The S3 client, or one pointed at a closed port while ``broken``."""

    def __init__(self) -> None:
        self.good = boto3.client("s3")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.bad = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=0.5, read_timeout=0.5),
        )
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bad if self.broken else self.good, name)


@pytest.fixture
def s3_switch(moto_endpoint: Any) -> SwitchableS3:  # noqa: F811
    return SwitchableS3()


def _services(
    cp: ControlPlaneSettings, index: DynamoSessionIndex, signer: KmsSigner, s3: Any, **settings: Any
) -> RecordingServices:
    rs = RecordingSettings(
        **{
            "flush_interval": 0.2,
            "heartbeat_interval": 0.2,
            "close_timeout": 10.0,
            "strict_timeout": 1.0,
            "upload_backoff_max": 0.2,
            **settings,
        }
    )
    return RecordingServices(
        settings=rs,
        store=ChunkStore(cp.sessions_bucket, client=s3),
        index=index,
        audit=AuditWriter(s3_put_object(cp.sessions_bucket), proxy_id="test-proxy", flush_interval=0.2),
        signer=signer,
    )


def _start(sid: str) -> SessionStart:
    return SessionStart(
        session_id=sid,
        identity="ci-nightly",
        target="demo",
        database="demo",
        client_addr="127.0.0.1:40000",
        proxy_id="test-proxy",
        started_at=datetime.now(UTC),
        policy_version="3",
    )


def _startup_bytes() -> bytes:
    return m.build_startup_message(3 << 16, {"user": "ci-nightly", "database": "demo"}) + m.build_password_message(
        "secret-token"
    )


def test_recording_end_to_end_verifies(
    cp: ControlPlaneSettings,
    index: DynamoSessionIndex,
    signer: KmsSigner,
    public_key: bytes,
    s3_switch: SwitchableS3,
) -> None:
    sid = _sid()
    fatal: list[str] = []

    async def main() -> None:
        services = _services(cp, index, signer, s3_switch, chunk_size=200)
        services.start()
        rec = await SessionRecording.open(
            services,
            _start(sid),
            mode="buffered",
            retention_days=1,
            grant={"expires_at": "soon"},
            on_fatal=fatal.append,
        )
        rec.auth_bytes(_startup_bytes())
        rec.proxy_bytes(m.build_authentication(0) + m.build_ready_for_query(b"I"))
        for i in range(5):
            rec.agent_bytes(m.build_query(f"select {i}"))
            rec.statement(f"select {i}", kind="select", rows=1, duration_ns=400_000)
            rec.proxy_bytes(m.frame(b"C", b"SELECT 1\0") + m.build_ready_for_query(b"I"))
        rec.decision(EventKind.BLOCK, {"statement": "drop table x", "reason": "ddl denied", "sqlstate": "42501"})
        await asyncio.sleep(0.5)  # a heartbeat and a time-based flush
        assert index.get(sid).counters.statements == 5
        assert await rec.close(SessionStatus.CLOSED, "agent disconnected")
        await services.shutdown()

    asyncio.run(main())
    assert not fatal
    item = index.get(sid)
    assert item.status is SessionState.CLOSED and item.manifest_key.endswith("manifest.json")
    assert item.counters.statements == 5 and item.counters.chunks >= 2
    store = ChunkStore(cp.sessions_bucket)
    report = verify_session(S3Source(store, item.prefix), public_key)
    assert report.ok, report.defect
    assert report.retention_checked
    everything = b"".join(store.get(k) for k in store.list_keys(item.prefix) if k.endswith(".chunk"))
    assert b"secret-token" not in everything and b"[redacted]" in everything
    manifest = decode_manifest(store.get(item.manifest_key))
    assert manifest.counts.statements == 5 and manifest.status is SessionStatus.CLOSED
    audit = b"".join(v for k, v in _objects(cp.sessions_bucket, "audit/").items() if "test-proxy" in k)
    mine = [json.loads(x) for x in audit.splitlines() if sid.encode() in x]
    assert sorted({x["decision"] for x in mine}) == ["allow", "block", "grant", "termination"]
    assert sum(x["event"] == "statement" for x in mine) == 5


def test_strict_mode_refuses_when_store_is_down(
    cp: ControlPlaneSettings,
    index: DynamoSessionIndex,
    signer: KmsSigner,
    public_key: bytes,
    s3_switch: SwitchableS3,
) -> None:
    sid = _sid()

    async def main() -> None:
        services = _services(cp, index, signer, s3_switch)
        rec = await SessionRecording.open(
            services, _start(sid), mode="strict", retention_days=1, grant={}, on_fatal=lambda _: None
        )
        rec.agent_bytes(m.build_query("select 1"))
        await rec.before_forward()  # store up: durable, returns
        assert rec.uploader.uploaded == 1
        s3_switch.broken = True
        rec.agent_bytes(m.build_query("delete from orders"))
        with pytest.raises(RecordingUnavailable):
            await rec.before_forward()
        s3_switch.broken = False
        assert await rec.close(SessionStatus.CLOSED, "done")

    asyncio.run(main())
    item = index.get(sid)
    report = verify_session(S3Source(ChunkStore(cp.sessions_bucket), item.prefix), public_key)
    assert report.ok, report.defect  # the refused statement's bytes are still part of the record


def test_buffered_overflow_ends_session_and_uploads_after_recovery(
    cp: ControlPlaneSettings,
    index: DynamoSessionIndex,
    signer: KmsSigner,
    public_key: bytes,
    s3_switch: SwitchableS3,
) -> None:
    sid = _sid()
    fatal: list[str] = []

    async def main() -> None:
        services = _services(cp, index, signer, s3_switch, chunk_size=1000, max_buffered_bytes=5000, close_timeout=0.5)
        rec = await SessionRecording.open(
            services, _start(sid), mode="buffered", retention_days=1, grant={}, on_fatal=fatal.append
        )
        s3_switch.broken = True
        for _ in range(20):
            rec.proxy_bytes(b"D" * 600)
        await asyncio.sleep(0.1)
        assert len(fatal) == 1 and "buffer bound" in fatal[0]
        # The session ends; sealing cannot finish while S3 is down, and close() does not hang.
        assert not await rec.close(SessionStatus.CLOSED, f"FATAL: {fatal[0]}")
        assert not rec.sealed
        s3_switch.broken = False
        await asyncio.wait_for(asyncio.gather(*services.finalising), 20)
        assert rec.sealed and len(fatal) == 1

    asyncio.run(main())
    item = index.get(sid)
    assert item.status is SessionState.CLOSED
    store = ChunkStore(cp.sessions_bucket)
    report = verify_session(S3Source(store, item.prefix), public_key)
    assert report.ok, report.defect
    kinds = [
        e.kind for k in store.list_keys(item.prefix) if k.endswith(".chunk") for e in decode_chunk(store.get(k)).events
    ]
    assert EventKind.RECORDING_FAULT in kinds and kinds[-1] == EventKind.TERMINATION


def test_refused_connection_is_indexed(
    cp: ControlPlaneSettings, index: DynamoSessionIndex, signer: KmsSigner, s3_switch: SwitchableS3
) -> None:
    sid = _sid()

    async def main() -> None:
        services = _services(cp, index, signer, s3_switch)
        await SessionRecording.refused(services, _start(sid), reason="token expired", sqlstate="28P01")
        await services.audit.close(5)

    asyncio.run(main())
    item = index.get(sid)
    assert item.status is SessionState.REFUSED and item.reason == "token expired" and not item.prefix


# ---------------------------------------------------------------- sweeper


def test_sweeper_seals_an_abandoned_session_as_incomplete(
    cp: ControlPlaneSettings,
    index: DynamoSessionIndex,
    signer: KmsSigner,
    public_key: bytes,
    s3_switch: SwitchableS3,
) -> None:
    sid = _sid()

    async def main() -> None:
        services = _services(cp, index, signer, s3_switch, chunk_size=300)
        rec = await SessionRecording.open(
            services, _start(sid), mode="buffered", retention_days=1, grant={}, on_fatal=lambda _: None
        )
        for i in range(6):
            rec.agent_bytes(m.build_query(f"select {i}"))
            rec.statement(f"select {i}")
            rec.proxy_bytes(b"x" * 100)
        await asyncio.sleep(0.5)
        await rec.uploader.flush()
        # The proxy dies: no close, no more heartbeats; the events still pending are lost with it.
        rec.agent_bytes(m.build_query("select 'lost'"))
        rec._stop_timers()
        await rec.uploader.stop()

    asyncio.run(main())
    item = index.get(sid)
    assert item.status is SessionState.ACTIVE
    store = ChunkStore(cp.sessions_bucket)
    # Not stale yet: untouched.
    assert sid not in {r.session_id for r in sweep(index, store, signer, stale_after=timedelta(minutes=5))}
    results = sweep(
        index,
        store,
        signer,
        stale_after=timedelta(seconds=0),
        limit=1000,
        now=datetime.now(UTC) + timedelta(seconds=1),
        audit=s3_put_object(cp.sessions_bucket),
    )
    mine = [r for r in results if r.session_id == sid]
    assert mine and mine[0].outcome == "sealed" and mine[0].chunks >= 1 and mine[0].defect is None
    item = index.get(sid)
    assert item.status is SessionState.INCOMPLETE and item.manifest_key
    report = verify_session(S3Source(store, item.prefix), public_key)
    assert report.ok, report.defect
    assert report.manifest is not None and report.manifest.status is SessionStatus.INCOMPLETE
    assert report.manifest.extra["sealed_by"] == "sweeper"
    # A second sweep finds nothing to do for it; sealing it again only re-reads the manifest.
    assert seal_incomplete(item, index, store, signer, now=datetime.now(UTC)).outcome == "already_sealed"


def test_sweeper_lambda_handler(cp: ControlPlaneSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.sweeper import app

    monkeypatch.setenv("AIRLOCK_SESSIONS_TABLE", cp.sessions_table)
    monkeypatch.setenv("AIRLOCK_SESSIONS_BUCKET", cp.sessions_bucket)
    monkeypatch.setenv("AIRLOCK_SIGNING_KEY_ID", cp.signing_key_id)
    monkeypatch.setenv("AIRLOCK_RECORDING_SIGNING_MESSAGE_TYPE", "RAW")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from shared.config import control_plane_settings

    control_plane_settings.cache_clear()
    app.deps.cache_clear()

    class Ctx:
        function_name = "sweeper"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sweeper"
        aws_request_id = "req-1"

    try:
        out = app.handler({"source": "aws.events"}, Ctx())  # type: ignore[arg-type]
    finally:
        control_plane_settings.cache_clear()
        app.deps.cache_clear()
    assert set(out) == {"sealed", "already_sealed", "failed"} and not out["failed"]


# ---------------------------------------------------------------- CLI: sessions list/show, replay, verify


def _pg_conversation(rec: SessionRecording) -> None:
    """What a psql session looks like on the agent-side wire (split at odd read boundaries)."""
    rec.auth_bytes(m.build_ssl_request())
    rec.proxy_bytes(b"S")
    rec.auth_bytes(_startup_bytes())
    rec.proxy_bytes(
        m.build_authentication(0)
        + m.build_parameter_status("server_version", "17.0")
        + m.build_backend_key_data(42, b"\x01\x02\x03\x04")
        + m.build_ready_for_query(b"I")
    )
    rec.agent_bytes(m.build_query("select id, email from customers"))
    fields = [m.Field(n, 0, 0, 25, -1, -1, 0) for n in ("id", "email")]
    result = (
        m.build_row_description(fields)
        + b"".join(m.build_data_row([str(i).encode(), b"[email]" if i % 2 else None]) for i in range(7))
        + m.frame(b"C", b"SELECT 7\0")
        + m.build_ready_for_query(b"I")
    )
    rec.proxy_bytes(result[:13])
    rec.proxy_bytes(result[13:])
    rec.statement("select id, email from customers", kind="select", rows=7)
    rec.agent_bytes(m.build_query("drop table customers"))
    rec.decision(EventKind.BLOCK, {"statement": "drop table customers", "reason": "ddl", "sqlstate": "42501"})
    rec.proxy_bytes(m.build_error("ERROR", "42501", "Airlock: statement denied") + m.build_ready_for_query(b"I"))
    rec.proxy_bytes(m.build_notice("waiting for approval apr_1"))
    rec.agent_bytes(m.TERMINATE)


def test_cli_list_show_replay_verify(
    cp: ControlPlaneSettings,
    index: DynamoSessionIndex,
    signer: KmsSigner,
    s3_switch: SwitchableS3,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    from airlock.cli import main
    from shared.config import control_plane_settings
    from shared.recording.verify import download_session

    sid = _sid()

    async def record() -> None:
        services = _services(cp, index, signer, s3_switch, chunk_size=120)
        rec = await SessionRecording.open(
            services, _start(sid), mode="buffered", retention_days=1, grant={}, on_fatal=lambda _: None
        )
        _pg_conversation(rec)
        assert await rec.close(SessionStatus.CLOSED, "agent disconnected")
        await services.shutdown()

    asyncio.run(record())
    monkeypatch.setenv("AIRLOCK_SESSIONS_TABLE", cp.sessions_table)
    monkeypatch.setenv("AIRLOCK_SESSIONS_BUCKET", cp.sessions_bucket)
    monkeypatch.setenv("AIRLOCK_SIGNING_KEY_ID", cp.signing_key_id)
    control_plane_settings.cache_clear()
    try:
        main(["sessions", "list", "--identity", "ci-nightly", "--since", "1h", "--limit", "5"])
        out = capsys.readouterr().out
        assert out.splitlines()[0].startswith("STARTED (UTC)") and sid in out and "closed" in out
        main(["sessions", "list", "--status", "closed", "--json", "--limit", "1000"])
        docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert sid in {d["session_id"] for d in docs}
        main(["sessions", "show", sid, "--json"])
        assert json.loads(capsys.readouterr().out)["counters"]["statements"] == 1

        main(["replay", sid, "--rows", "3", "--raw", str(tmp_path / "raw")])
        transcript = capsys.readouterr().out
        for expected in (
            "→ SSLRequest",
            "← TLS accepted",
            "→ StartupMessage user=ci-nightly database=demo",
            "→ password [redacted]",
            "← authenticated",
            "→ Query: select id, email from customers",
            "← SELECT 7: 7 rows, columns (id, email)",
            "| 1 | [email]",
            "... 4 more",
            '== BLOCK reason="ddl"',
            "← ERROR 42501: Airlock: statement denied",
            "← NOTICE 00000: waiting for approval apr_1",
            "→ Terminate",
            "== TERMINATION",
        ):
            assert expected in transcript, f"{expected!r} not in:\n{transcript}"
        assert "secret-token" not in transcript
        agent = (tmp_path / "raw" / "agent_to_proxy.bin").read_bytes()
        assert agent.startswith(m.build_ssl_request()) and agent.endswith(m.TERMINATE)

        main(["verify", sid])
        assert capsys.readouterr().out.startswith("OK s3://")
        # Offline, on a downloaded copy, with only the public key; then tamper with it.
        prefix = index.get(sid).prefix
        local = download_session(ChunkStore(cp.sessions_bucket), prefix, tmp_path / "dl")
        pem = tmp_path / "key.pem"
        from cryptography.hazmat.primitives import serialization

        from shared.recording.signing import load_public_key

        pem.write_bytes(
            load_public_key(signer.public_key_der()).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        main(["verify", "--dir", str(local), "--public-key", str(pem)])
        assert "retention not checked" in capsys.readouterr().out
        (local / "00000001.chunk").unlink()
        with pytest.raises(SystemExit) as exit_info:
            main(["verify", "--dir", str(local), "--public-key", str(pem)])
        assert exit_info.value.code == 1
        assert "DEFECT" in capsys.readouterr().out
    finally:
        control_plane_settings.cache_clear()

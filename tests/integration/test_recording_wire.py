"""Session recording through the real proxy: complete, verifiable, and never silently lossy."""

from __future__ import annotations

import concurrent.futures
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import psycopg
import pytest

from tests.integration.outage import Forwarder
from tests.integration.stack import AirlockStack


def newest_session(stack: AirlockStack, identity: str, after: float, status: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        args = ["sessions", "list", "--identity", identity, "--json"] + (["--status", status] if status else [])
        lines = [json.loads(x) for x in stack.cli(*args).stdout.splitlines() if x.strip()]
        fresh = [s for s in lines if _ts(s["started_at"]) >= after - 1]
        if fresh:
            return fresh[0]
        time.sleep(0.5)
    raise AssertionError(f"no {status or ''} session for {identity} after {after}")


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def verify(stack: AirlockStack, session_id: str) -> str:
    out = stack.cli("verify", session_id, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture
def s3_outage(stack: AirlockStack) -> Iterator[Forwarder]:
    endpoint = urlparse(stack.info["aws_endpoint"])
    forwarder = Forwarder(endpoint.hostname or "127.0.0.1", endpoint.port or 80)
    yield forwarder
    forwarder.close()


def test_a_session_is_recorded_replayable_and_verifiable(stack: AirlockStack, tmp_path: Path) -> None:
    started = time.time()
    token = stack.token("ci-nightly")
    with psycopg.connect(stack.conninfo(token=token), application_name="rec-test") as conn:
        conn.execute("SELECT id, card_number FROM customers ORDER BY id LIMIT 5").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE customers")
    session = newest_session(stack, "ci-nightly", started, status="closed")
    counters = session["counters"]
    assert counters["statements"] >= 2 and counters["bytes_agent_to_proxy"] > 0
    assert counters["bytes_proxy_to_agent"] > counters["bytes_agent_to_proxy"]
    assert "chain and signature valid" in verify(stack, session["session_id"])
    transcript = stack.cli("replay", session["session_id"]).stdout
    assert "SELECT id, card_number FROM customers" in transcript
    assert 'BLOCK' in transcript and "no-destructive-ddl" in transcript
    assert "************" in transcript  # masked values, as the agent saw them
    raw = tmp_path / "raw"
    stack.cli("replay", session["session_id"], "--raw", str(raw))
    exported = b"".join(p.read_bytes() for p in raw.rglob("*") if p.is_file())
    assert b"SELECT id, card_number" in exported
    assert token.encode() not in exported  # the token never reaches the recording
    with psycopg.connect(stack.target_dsn) as direct:
        cards = [r[0] for r in direct.execute("SELECT card_number FROM customers ORDER BY id LIMIT 5")]
    assert not any(card.encode() in exported for card in cards)


def test_strict_mode_refuses_statements_it_cannot_record(stack: AirlockStack, s3_outage: Forwarder) -> None:
    started = time.time()
    env = {"AWS_ENDPOINT_URL_S3": s3_outage.url, "AIRLOCK_RECORDING_STRICT_TIMEOUT": "2",
           "AIRLOCK_RECORDING_UPLOAD_BACKOFF_MAX": "0.5"}
    with stack.extra_proxy(env=env) as (port, _):  # noqa: SIM117 - the proxy must outlive the session
        with psycopg.connect(stack.conninfo("contractor", port=port), autocommit=True) as conn:  # strict binding
            conn.execute("SELECT 1")
            s3_outage.down()
            with pytest.raises(psycopg.Error) as info:
                conn.execute("UPDATE orders SET status = 'strict-outage' WHERE id = 7")
            assert "could not record this statement durably" in str(info.value)
            with psycopg.connect(stack.target_dsn) as direct:
                assert direct.execute("SELECT status <> 'strict-outage' FROM orders WHERE id = 7").fetchone() == (True,)
            s3_outage.up()
            time.sleep(1.5)
            assert conn.execute("SELECT 2").fetchone() == (2,)
    session = newest_session(stack, "contractor", started, status="closed")
    verify(stack, session["session_id"])
    assert "strict-outage" in stack.cli("replay", session["session_id"]).stdout  # the refused attempt is on record


def test_buffered_overflow_ends_the_session_and_loses_nothing(stack: AirlockStack, s3_outage: Forwarder) -> None:
    started = time.time()
    env = {"AWS_ENDPOINT_URL_S3": s3_outage.url, "AIRLOCK_RECORDING_CHUNK_SIZE": "65536",
           "AIRLOCK_RECORDING_MAX_BUFFERED_BYTES": "400000", "AIRLOCK_RECORDING_UPLOAD_BACKOFF_MAX": "0.5"}
    with stack.extra_proxy(env=env) as (port, _):
        conn = psycopg.connect(stack.conninfo("ci-nightly", port=port), autocommit=True)
        s3_outage.down()
        with pytest.raises(psycopg.OperationalError) as info:
            for _ in range(20):
                conn.execute("SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g").fetchall()
        assert "recording cannot be stored" in str(info.value)
        conn.close()
        s3_outage.up()
        session = newest_session(stack, "ci-nightly", started, status="closed")
    report = verify(stack, session["session_id"])
    assert "OK" in report
    transcript = stack.cli("replay", session["session_id"]).stdout
    assert "RECORDING_FAULT" in transcript and "TERMINATION" in transcript


def test_a_slow_store_pauses_the_session_until_its_recording_catches_up(
    stack: AirlockStack, s3_outage: Forwarder
) -> None:
    # Backpressure, not overflow: past backpressure_bytes waiting for S3 the proxy stops reading the
    # backend, so a big result waits at the proxy while the store is away; once the store answers again
    # the result arrives whole and the session goes on, its recording intact.
    started = time.time()
    env = {"AWS_ENDPOINT_URL_S3": s3_outage.url, "AIRLOCK_RECORDING_CHUNK_SIZE": "65536",
           "AIRLOCK_RECORDING_BACKPRESSURE_BYTES": "200000", "AIRLOCK_RECORDING_UPLOAD_BACKOFF_MAX": "0.2"}
    query = "SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g"  # about 2.5 MB on the wire
    with stack.extra_proxy(env=env) as (port, _):
        conn = psycopg.connect(stack.conninfo("ci-nightly", port=port), autocommit=True)
        s3_outage.down()
        pool = concurrent.futures.ThreadPoolExecutor(1)
        result = pool.submit(lambda: conn.execute(query).fetchall())
        with pytest.raises(concurrent.futures.TimeoutError):
            result.result(timeout=3)  # held at the proxy: its recording is 200 kB behind
        s3_outage.up()
        assert len(result.result(timeout=30)) == 20000
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.close()
        pool.shutdown()
        session = newest_session(stack, "ci-nightly", started, status="closed")
    assert "OK" in verify(stack, session["session_id"])


def test_sigterm_seals_live_sessions(stack: AirlockStack) -> None:
    started = time.time()
    with stack.extra_proxy() as (port, process):
        conn = psycopg.connect(stack.conninfo("ci-nightly", port=port), autocommit=True)
        conn.execute("SELECT count(*) FROM orders")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        conn.close()
    session = newest_session(stack, "ci-nightly", started, status="closed")
    verify(stack, session["session_id"])
    assert "proxy shutdown" in stack.cli("replay", session["session_id"]).stdout


def test_sweeper_seals_what_a_dead_proxy_left(stack: AirlockStack) -> None:
    started = time.time()
    env = {"AIRLOCK_RECORDING_FLUSH_INTERVAL": "0.2", "AIRLOCK_RECORDING_HEARTBEAT_INTERVAL": "0.5"}
    with stack.extra_proxy(env=env) as (port, process):
        conn = psycopg.connect(stack.conninfo("ci-nightly", port=port), autocommit=True)
        conn.execute("SELECT count(*) FROM customers")
        time.sleep(1.5)  # a chunk reaches S3, then the proxy dies without sealing anything
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        conn.close()
    session = newest_session(stack, "ci-nightly", started, status="active")
    time.sleep(2)
    lam = boto3.client("lambda", endpoint_url=stack.info["lambda_endpoint"], region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    name = f"{stack.info['stack_name']}-sweeper"
    result = json.loads(lam.invoke(FunctionName=name, Payload=json.dumps({"stale_after_seconds": 1}))["Payload"].read())
    assert session["session_id"] in result["sealed"], result
    report = verify(stack, session["session_id"])
    assert re.search(r"incomplete", report), report


def test_strict_mode_keeps_a_pipeline_in_order_and_records_all_of_it(stack: AirlockStack) -> None:
    """Statements that arrive while an earlier one waits to be durable queue behind it, in order."""
    started = time.time()
    marks = [f"strict-pipeline-{i}" for i in range(6)]
    with psycopg.connect(stack.conninfo("contractor"), autocommit=True) as conn:  # strict binding
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::text, pg_backend_pid()", (mark,)) for mark in marks]
        rows = [cur.fetchone() for cur in cursors]
    assert [r[0] for r in rows if r] == marks
    session = newest_session(stack, "contractor", started, status="closed")
    assert session["counters"]["statements"] >= len(marks)
    assert "chain and signature valid" in verify(stack, session["session_id"])
    transcript = stack.cli("replay", session["session_id"]).stdout
    positions = [transcript.find(mark) for mark in marks]
    assert -1 not in positions and positions == sorted(positions)

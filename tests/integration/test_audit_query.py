"""``airlock audit query`` against data real sessions produced, every named query included.

Sessions go through proxies joined to the local stack (their own proxy ids, so this module finds its own
rows among other tests'): ci-nightly reads masked card numbers, is denied a DROP TABLE, and has two DO
blocks held for approval (one approved from Slack, one denied from the CLI); the contractor
is revoked, refused twice, reinstated and connects again; a third session's proxy is killed (SIGKILL)
after its audit lines landed, so its recording has no manifest until the sweeper Lambda seals it
incomplete. The CLI then runs on DuckDB over the local S3 objects, with the Glue tables the local stack
made from template.yaml and the named queries of template.yaml: the SQL Athena runs in AWS.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest

from tests.integration.stack import AirlockStack, eventually

pytestmark = pytest.mark.stack

TODAY = datetime.now(UTC).date()
PERIOD = [f"--param=from_date={TODAY - timedelta(days=1)}", f"--param=to_date={TODAY + timedelta(days=1)}"]
# Held by the demo policy (opaque-code-needs-approval); approvers: dba.
APPROVED, DENIED = "DO $$ BEGIN PERFORM 1; END $$", "DO $$ BEGIN PERFORM 2; END $$"
FAST_AUDIT = {"AIRLOCK_RECORDING_AUDIT_FLUSH_INTERVAL": "0.2", "AIRLOCK_RECORDING_FLUSH_INTERVAL": "0.2"}


def query(stack: AirlockStack, *args: str) -> list[dict[str, Any]]:
    out = stack.cli("audit", "query", *args, "--format", "json")
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def _audit_objects(stack: AirlockStack, proxy_id: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=stack.info["aws_endpoint"], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    bucket = stack.info["env"]["AIRLOCK_SESSIONS_BUCKET"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="audit/")
    return [o["Key"] for page in pages for o in page.get("Contents", []) if f"/{proxy_id}-" in o["Key"]]


def _held(stack: AirlockStack, conn: psycopg.Connection[Any], statement: str, *decide: str) -> None:
    """Run ``statement``, which the policy holds; decide its approval with the CLI command ``decide``
    (``ID`` stands for the approval id the agent's notice names), and wait for the statement's outcome."""
    notices: queue.Queue[str] = queue.Queue()
    conn.add_notice_handler(lambda d: notices.put(d.message_primary or ""))
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(conn.execute, statement)
        held = notices.get(timeout=30)
        match = re.search(r"holding this statement for approval (apr_\w+)", held)
        assert match, held
        stack.cli(*(match.group(1) if word == "ID" else word for word in decide))
        running.result(timeout=30)


def _sessions_of(stack: AirlockStack, proxy_id: str) -> dict[str, str]:
    rows = query(stack, f"SELECT DISTINCT session_id, identity FROM airlock_events WHERE proxy_id = '{proxy_id}'")
    return {r["session_id"]: r["identity"] for r in rows}


@pytest.fixture(scope="module")
def sessions(stack: AirlockStack) -> dict[str, Any]:
    """Run the sessions once; return their proxy ids and session ids."""
    tag = secrets.token_hex(3)
    served, killed = f"audit-served-{tag}", f"audit-killed-{tag}"
    with stack.extra_proxy(env={**FAST_AUDIT, "AIRLOCK_PROXY_PROXY_ID": served}) as (port, process):
        with psycopg.connect(stack.conninfo("ci-nightly", port=port), autocommit=True) as conn:
            conn.execute("SELECT card_number, email FROM customers ORDER BY id LIMIT 3").fetchall()
            conn.execute("SELECT count(*) FROM orders").fetchall()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE orders")
            _held(stack, conn, APPROVED, "dev", "approvals", "click", "ID", "approve")  # dana, from Slack
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not during the audit"):
                _held(stack, conn, DENIED, "approvals", "deny", "ID", "--reason", "not during the audit",
                      "--as", "U0DEMODANA")
        stack.cli("identity", "revoke", "contractor", "--reason", "offboarded")
        try:
            for _ in range(2):
                with pytest.raises(psycopg.OperationalError, match="revoked"):
                    psycopg.connect(stack.conninfo("contractor", port=port)).close()
                time.sleep(0.01)  # two refusals, at two distinct times
        finally:
            stack.cli("identity", "reinstate", "contractor")
        with psycopg.connect(stack.conninfo("contractor", port=port)) as conn:
            conn.execute("SELECT 1").fetchall()
        process.send_signal(signal.SIGTERM)  # drain: every recording sealed, every audit line written
        assert process.wait(30) == 0

    with stack.extra_proxy(env={**FAST_AUDIT, "AIRLOCK_PROXY_PROXY_ID": killed}) as (port, process):
        conn = psycopg.connect(stack.conninfo("ci-nightly", port=port), autocommit=True)
        conn.execute("SELECT id FROM orders ORDER BY id LIMIT 1").fetchall()
        assert eventually(lambda: len(_audit_objects(stack, killed)) >= 1, timeout=20)
        time.sleep(0.5)  # the statement's line follows the grant's within a flush interval
        process.send_signal(signal.SIGKILL)  # no drain, no seal: a proxy that died
        process.wait(10)
        conn.close()
    return {"served": served, "killed": killed, "by_served": _sessions_of(stack, served),
            "by_killed": _sessions_of(stack, killed)}


def test_sql_in_three_formats(stack: AirlockStack, sessions: dict[str, Any]) -> None:
    sql = (f"SELECT identity, count(*) AS lines FROM airlock_events WHERE proxy_id = '{sessions['served']}' "
           "GROUP BY identity ORDER BY identity")
    rows = query(stack, sql)
    assert [r["identity"] for r in rows] == ["ci-nightly", "contractor"] and all(r["lines"] > 0 for r in rows)
    csv = stack.cli("audit", "query", sql, "--format", "csv").stdout.splitlines()
    assert csv[0] == "identity,lines" and csv[1].startswith("ci-nightly,")
    table = stack.cli("audit", "query", sql).stdout.splitlines()
    assert table[0].split("|")[0].strip() == "identity" and table[-1] == "(2 rows)"
    bad = stack.cli("audit", "query", "SELECT nonsense FROM airlock_events", check=False)
    assert bad.returncode != 0 and "nonsense" in bad.stderr and "Traceback" not in bad.stderr


def test_statements_by_identity(stack: AirlockStack, sessions: dict[str, Any]) -> None:
    rows = query(stack, "--named", "statements_by_identity", "--param", "identity=ci-nightly", *PERIOD)
    mine = [r for r in rows if r["session_id"] in sessions["by_served"]]
    assert [(r["statement"], r["decision"]) for r in mine] == [
        ("SELECT card_number, email FROM customers ORDER BY id LIMIT 3", "allow"),
        ("SELECT count(*) FROM orders", "allow"),
        ("DROP TABLE orders", "deny"),
        (APPROVED, "approved"),
        (DENIED, "hold"),
    ]
    assert mine[0]["rows"] == 3 and mine[2]["error_code"] == "42501" and mine[0]["database"] == "demo"
    assert not [r for r in rows if r["session_id"] in sessions["by_served"] and r["statement"] == "SELECT 1"]


def test_denied_and_held_statements(stack: AirlockStack, sessions: dict[str, Any]) -> None:
    rows = query(stack, "--named", "denied_and_held_statements", *PERIOD)
    mine = [r for r in rows if r["session_id"] in sessions["by_served"]]
    deciders = [(r["statement"], r["decision"], r["error_code"], r["decided_as"], r["decided_by"], r["decided_via"])
                for r in mine]
    assert deciders == [
        ("DROP TABLE orders", "deny", "42501", "block", None, None),
        (APPROVED, "approved", None, "approval_approved", "dana", "slack"),
        (DENIED, "hold", "42501", "approval_denied", "U0DEMODANA", "cli"),
    ]
    assert "schema changes go through a change request" in mine[0]["decider_reason"]
    assert mine[0]["approval_id"] is None
    assert mine[1]["approval_id"].startswith("apr_") and mine[2]["approval_id"].startswith("apr_")
    assert mine[1]["approval_id"] != mine[2]["approval_id"]
    assert "not during the audit" in mine[2]["decider_reason"]
    # The decision lines themselves: the policy's hold, then the approval requested and decided.
    sql = ("SELECT decision, approval_id, decided_by, decided_via FROM airlock_events "
           "WHERE event = 'decision' AND (decision = 'hold' OR decision LIKE 'approval_%') "
           f"AND proxy_id = '{sessions['served']}' ORDER BY \"time\"")
    lines = [(r["decision"], r["approval_id"], r["decided_by"], r["decided_via"]) for r in query(stack, sql)]
    first, second = mine[1]["approval_id"], mine[2]["approval_id"]
    assert lines == [
        ("hold", None, None, None), ("approval_requested", first, None, None),
        ("approval_approved", first, "dana", "slack"),
        ("hold", None, None, None), ("approval_requested", second, None, None),
        ("approval_denied", second, "U0DEMODANA", "cli"),
    ]


def test_sessions_touching_table(stack: AirlockStack, sessions: dict[str, Any]) -> None:
    customers = query(stack, "--named", "sessions_touching_table", "--param", "table_name=CUSTOMERS", *PERIOD)
    touched = {r["session_id"]: r for r in customers if r["session_id"] in sessions["by_served"]}
    assert [sessions["by_served"][s] for s in touched] == ["ci-nightly"]
    assert next(iter(touched.values()))["statements"] == 1
    orders = query(stack, "--named", "sessions_touching_table", "--param", "table_name=orders", *PERIOD)
    assert {r["session_id"] for r in orders} >= set(touched) | set(sessions["by_killed"])


def test_masked_values_by_detector(stack: AirlockStack, sessions: dict[str, Any]) -> None:
    everyone = query(stack, "--named", "masked_values_by_detector", *PERIOD)
    assert everyone and all(r["values_masked"] > 0 and r["detector"] for r in everyone)
    # This module's own masking, counted apart from the rest of the suite's.
    sql = ("SELECT reason AS detector, sum(\"rows\") AS n FROM airlock_events WHERE decision = 'mask_counts' "
           f"AND proxy_id = '{sessions['served']}' GROUP BY reason")
    mine = {r["detector"]: r["n"] for r in query(stack, sql)}
    assert sum(mine.values()) >= 3 and set(mine) <= {r["detector"] for r in everyone}


def test_recordings_failing_verification_then_incomplete_sessions(stack: AirlockStack, sessions: dict[str, Any]
                                                                 ) -> None:
    (killed,) = sessions["by_killed"]
    failing = {r["session_id"]: r for r in query(stack, "--named", "recordings_failing_verification", *PERIOD)}
    assert failing[killed]["defect"] == "no manifest: the recording was never sealed"
    assert not set(failing) & set(sessions["by_served"])  # sealed and signed at the drain

    incomplete = {r["session_id"] for r in query(stack, "--named", "incomplete_sessions", *PERIOD)}
    assert killed not in incomplete
    client = boto3.client("lambda", endpoint_url=stack.info["lambda_endpoint"], region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    function = f"{stack.info['stack_name']}-sweeper"
    answer = json.loads(client.invoke(FunctionName=function, Payload=json.dumps({"stale_after_seconds": 1}))
                        ["Payload"].read())
    assert killed in answer["sealed"], answer

    rows = {r["session_id"]: r for r in query(stack, "--named", "incomplete_sessions", *PERIOD)}
    assert rows[killed]["identity"] == "ci-nightly" and rows[killed]["reason"]
    failing = {r["session_id"] for r in query(stack, "--named", "recordings_failing_verification", *PERIOD)}
    assert killed not in failing


def test_connections_after_revocation(stack: AirlockStack, sessions: dict[str, Any]) -> None:
    rows = query(stack, "--named", "connections_after_revocation", *PERIOD)
    mine = [r for r in rows if r["session_id"] in sessions["by_served"]]
    # After the revocation first showed (this module's first refusal, or an earlier test's): the refusals
    # that followed, then the grant after reinstatement, which an auditor would have to explain.
    assert {r["identity"] for r in mine} == {"contractor"}
    assert [r["decision"] for r in mine][-1] == "grant" and "refusal" in [r["decision"] for r in mine[:-1]]
    assert all("revoked" in r["reason"] and r["error_code"] == "28P01" for r in mine if r["decision"] == "refusal")
    assert all(r["time"] > r["revoked_seen_at"] for r in mine)


def test_named_queries_are_listed_and_parameters_checked(stack: AirlockStack) -> None:
    listing = stack.cli("audit", "query", "--list").stdout
    for name in ("statements_by_identity", "denied_and_held_statements", "sessions_touching_table",
                 "masked_values_by_detector", "incomplete_sessions", "connections_after_revocation",
                 "recordings_failing_verification"):
        assert name in listing
    missing = stack.cli("audit", "query", "--named", "statements_by_identity", *PERIOD, check=False)
    assert missing.returncode != 0 and "--param identity=..." in missing.stderr
    unknown = stack.cli("audit", "query", "--named", "no_such_query", check=False)
    assert unknown.returncode != 0 and "no named query 'no_such_query'" in unknown.stderr

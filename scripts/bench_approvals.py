#!/usr/bin/env python3
"""Approval latency: from a human's decision to the held statement reaching the backend (a benchmark,
not a test).

Each round holds one statement through the proxy (``DELETE ... RETURNING clock_timestamp()``, which the
demo policy holds for a DBA), clicks Approve exactly as Slack would (a signed interaction posted to the
local HTTP API, ``airlock dev approvals click``), and measures ``clock_timestamp()`` of the statement's
execution on the backend minus the approval's ``decided_at`` written by the Slack interactions Lambda (one
machine, one clock). Rounds run one after another; p50 and p95 over ``--rounds`` (default 50).

How the proxy learns of a decision: one watcher task per proxy process reads the state of every waiting
approval with strongly consistent DynamoDB BatchGetItem calls every ``AIRLOCK_APPROVALS_WATCH_INTERVAL``
(0.25 s), up to 100 approvals per call, and makes no call while nothing waits. The report says what that
costs with 1, 100 and 1,000 statements waiting.

    .venv/bin/python scripts/bench_approvals.py [--stack-file .airlock/stack.json] [--rounds 50] [--json FILE]

Without ``--stack-file`` it starts a local stack of its own (``airlock dev up``) and stops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from airlock.devstack.demo_data import APP_ROLE
from bench_lib.target import AirlockStack, airlock_command

SCHEMA = "approvalbench"  # the demo's hold rule matches DELETE on any table called customers


def cli(stack: AirlockStack, *args: str) -> str:
    out = subprocess.run([*airlock_command(), "--state-dir", str(stack.state_dir), *args], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"airlock {' '.join(args)}: {out.stderr.strip()[-500:]}")
    return out.stdout


def approvals(stack: AirlockStack, status: str | None = None) -> list[dict[str, Any]]:
    args = ["approvals", "list", "--limit", "500", "--json"] + (["--status", status] if status else [])
    return [json.loads(line) for line in cli(stack, *args).splitlines()]


def setup(dsn: str, rounds: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f'CREATE SCHEMA {SCHEMA} AUTHORIZATION "{APP_ROLE}"')
        conn.execute(f"CREATE TABLE {SCHEMA}.customers AS SELECT g AS id FROM generate_series(1, %s) g", (rounds,))
        conn.execute(f'ALTER TABLE {SCHEMA}.customers OWNER TO "{APP_ROLE}"')


def one_round(stack: AirlockStack, conninfo: str, customer: int) -> float:
    """Seconds from the decision to the statement running on the backend."""
    result: dict[str, Any] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        def run() -> None:
            try:
                # The id is in the text (not a parameter) so the pending approval can be told by its statement.
                row = conn.execute(
                    f"DELETE FROM {SCHEMA}.customers WHERE id = {customer} RETURNING clock_timestamp()".encode()
                ).fetchone()
                result["ran_at"] = row[0] if row else None
            except psycopg.Error as e:
                result["error"] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        needle = f"WHERE id = {customer} "
        approval_id = None
        deadline = time.monotonic() + 30
        while approval_id is None and time.monotonic() < deadline:
            found = [a for a in approvals(stack, "pending") if needle in a.get("statement", "") + " "]
            approval_id = found[0]["approval_id"] if found else None
            if approval_id is None:
                time.sleep(0.1)
        if approval_id is None:
            raise RuntimeError(f"round {customer}: no pending approval appeared")
        cli(stack, "dev", "approvals", "click", approval_id, "approve", "--as", "dana")
        thread.join(30)
    if "ran_at" not in result or result["ran_at"] is None:
        raise RuntimeError(f"round {customer}: the statement did not run: {result.get('error')}")
    decided = next(a for a in approvals(stack) if a["approval_id"] == approval_id)
    decided_at = datetime.fromisoformat(decided["decided_at"])
    ran_at: datetime = result["ran_at"]
    return (ran_at - decided_at).total_seconds()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack-file", type=Path, help="a running local stack's stack.json (else start one)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    from proxy.approvals import watcher_calls_per_minute

    stack = AirlockStack.reuse(args.stack_file) if args.stack_file else AirlockStack.start(
        Path(tempfile.mkdtemp(prefix="airlock-bench-approvals-")))
    try:
        setup(stack.info["target"]["dsn"], args.rounds)
        conninfo = (f"host=127.0.0.1 port={stack.proxy_port} dbname=demo user=ci-nightly sslmode=require "
                    f"password={stack.token('ci-nightly', 3600)}")  # fmt: skip
        latencies = []
        for customer in range(1, args.rounds + 1):
            latencies.append(one_round(stack, conninfo, customer))
            print(f"round {customer:3d}: {latencies[-1] * 1000:7.1f} ms", flush=True)
    finally:
        if stack.started_here:
            stack.stop()
    figures = {
        "rounds": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "target_p95_ms": 1000,
        "watcher_batchgetitem_per_minute": {n: watcher_calls_per_minute(n) for n in (0, 1, 100, 1000)},
    }
    print(json.dumps(figures, indent=2))
    print(f"decision -> backend: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms "
          f"({'MET' if figures['p95_ms'] < 1000 else 'NOT MET'}: target p95 < 1000 ms)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

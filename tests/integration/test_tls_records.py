"""TLS toward agents as PostgreSQL writes it: records of at most 8 KiB, so libpq never stalls on a COPY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from airlock.devstack.stack import ROOT
from proxy.pg.tls import PG_RECORD_PLAINTEXT
from tests.integration.stack import AirlockStack
from tests.tls_records import TLS13_OVERHEAD, RecordTap

# psycopg over the system's libpq (Debian's libpq5, as CI installs with psql) hangs on seed 3 of these
# nearly every run when records are 16 KiB; the libpq in psycopg's wheel drains OpenSSL itself.
SEEDS = {"python": list(range(16)), "binary": list(range(4))}


def copy_across(stack: AirlockStack, impl: str, api: str) -> list[dict[str, Any]]:
    job = {"conninfo": stack.conninfo(), "seeds": SEEDS[impl], "api": api, "timeout": 10}
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.copy_across"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PSYCOPG_IMPL": impl},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    header, *reports = (json.loads(line) for line in result.stdout.splitlines())
    assert header["impl"] == impl
    return reports


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("impl", ["python", "binary"], ids=["system-libpq", "wheel-libpq"])
def test_psycopg_copies_between_two_connections(stack: AirlockStack, impl: str, api: str) -> None:
    reports = copy_across(stack, impl, api)
    stalled = [r for r in reports if r["stalled"]]
    assert not stalled, "psycopg hung after reading {read} of {total} rows (seed {seed})".format(**stalled[0])
    assert [r["seed"] for r in reports] == SEEDS[impl]
    assert all(r["equal"] for r in reports), [r for r in reports if not r["equal"]]


def test_records_to_the_agent_carry_at_most_8k(stack: AirlockStack) -> None:
    tap = RecordTap(stack.proxy_port)
    try:
        conninfo = stack.conninfo(port=tap.port) + " ssl_min_protocol_version=TLSv1.3"
        with psycopg.connect(conninfo) as conn:
            # One 100 kB row (the proxy writes a message whole) and a COPY of 2 MB: large writes both.
            assert conn.execute("SELECT length(repeat('x', 100000))").fetchone() == (100000,)
            assert len(conn.execute("SELECT repeat('x', 100000)").fetchone()[0]) == 100000  # type: ignore[index]
            with conn.cursor().copy("COPY (SELECT repeat('y', 2000) FROM generate_series(1, 1000)) TO STDOUT") as copy:
                assert sum(bytes(block).count(b"\n") for block in copy) == 1000
    finally:
        tap.close()
    records = tap.server_records()
    assert max(records) == PG_RECORD_PLAINTEXT + TLS13_OVERHEAD, sorted(records)[-5:]
    assert records.count(PG_RECORD_PLAINTEXT + TLS13_OVERHEAD) >= 2_000_000 // PG_RECORD_PLAINTEXT

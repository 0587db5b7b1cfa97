"""The commands a new user types, run as they would run them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airlock.devstack.postgres import EmbeddedPostgres
from airlock.devstack.stack import ROOT
from tests.integration.stack import AirlockStack


def test_stack_file_has_the_promised_fields(stack: AirlockStack) -> None:
    info = stack.info
    assert {"host", "port"} <= set(info["proxy"]) and "dsn" in info["target"]
    assert info["aws_endpoint"].startswith("http://127.0.0.1:")
    assert info["lambda_endpoint"].startswith("http://127.0.0.1:")
    assert info["database"] == "demo"


def test_readme_psql_line_works(stack: AirlockStack) -> None:
    token = stack.cli("dev", "token", "ci-nightly").stdout.strip()
    conninfo = (f"host=127.0.0.1 port={stack.proxy_port} dbname=demo user=ci-nightly sslmode=require "
                f"password={token}")
    out = subprocess.run(["psql", "-X", "-A", "-t", conninfo, "-c", "SELECT count(*) FROM customers"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "10000", out.stderr


@pytest.mark.parametrize("which_psql", ["path", "wheel"])
def test_dev_psql_one_step(stack: AirlockStack, which_psql: str) -> None:
    env = stack.env()
    if which_psql == "wheel":
        env["AIRLOCK_PSQL"] = str(EmbeddedPostgres.bin_dir / "psql")  # built without SSL: goes via the tunnel
    for identity in ("ci-nightly", "contractor"):
        out = subprocess.run(
            [sys.executable, "-m", "airlock.cli", "--state-dir", str(stack.state_dir), "dev", "psql", identity,
             "-X", "-A", "-t", "-c", "SELECT current_database(), count(*) FROM orders"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "demo|50000"


def test_unknown_identity_token_is_a_clear_error(stack: AirlockStack) -> None:
    out = stack.cli("dev", "token", "nobody", check=False)
    assert out.returncode != 0 and "not an identity" in out.stderr

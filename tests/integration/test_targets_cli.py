"""Setting up a real target from the command line: `airlock targets add|check`, the warning of `policy
push`, and what an agent and the proxy log say when a target's credential cannot be had."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import yaml

from shared.config import ControlPlaneSettings
from shared.policy import parse_policy
from tests.integration.stack import AirlockStack, eventually


def secrets(stack: AirlockStack) -> Any:
    env = stack.info["env"]
    return boto3.client(
        "secretsmanager",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def secret_json(stack: AirlockStack, secret_id: str) -> dict[str, str] | None:
    client = secrets(stack)
    try:
        value: dict[str, str] = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        return None
    return value


@pytest.fixture(scope="module")
def app_password(stack: AirlockStack) -> str:
    """The demo target's backend role's password, as the local stack stored it."""
    stored = secret_json(stack, "airlock/targets/demo")
    assert stored is not None and stored["username"] == "airlock_app"
    return stored["password"]


def policy_with(stack: AirlockStack, tmp_path: Path, targets: dict[str, dict[str, Any]], **extra: Any) -> Path:
    """The stack's policy plus ``targets`` (each a change to the demo target) and ``extra`` bindings."""
    policy = yaml.safe_load((stack.state_dir / "policy.yaml").read_text())
    demo = policy["targets"]["demo"]
    policy["targets"].update({name: {**demo, **change} for name, change in targets.items()})
    policy["bindings"] += extra.get("bindings", [])
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def add(stack: AirlockStack, name: str, password: str, *more: str) -> Any:
    port = str(stack.info["target"]["port"])
    return stack.cli(
        "targets", "add", name, "--host", "127.0.0.1", "--port", port, "--database", "demo", "--user", "airlock_app",
        "--credential-from-env", "TARGET_PASSWORD", *more, check=False, env={"TARGET_PASSWORD": password},
    )  # fmt: skip


def test_add_checks_then_stores_the_documented_secret_and_prints_the_entry(
    stack: AirlockStack, app_password: str, tmp_path: Path
) -> None:
    out = add(stack, "orders", app_password)
    assert out.returncode == 0, out.stderr
    assert "ok    login   database 'demo' as airlock_app (SCRAM-SHA-256)" in out.stdout
    assert "stored in Secrets Manager secret airlock/targets/orders (created)" in out.stdout
    assert secret_json(stack, "airlock/targets/orders") == {"username": "airlock_app", "password": app_password}
    assert app_password not in out.stdout + out.stderr
    # The printed entry is a valid policy target; with it the policy passes validation and checks out.
    entry = yaml.safe_load(out.stdout[out.stdout.index("targets:") :])["targets"]["orders"]
    assert entry["credential_secret"] == "airlock/targets/orders" and entry["databases"] == ["demo"]
    path = policy_with(stack, tmp_path, {"orders": entry})
    assert "orders" in parse_policy(path.read_text()).targets
    checked = stack.cli("targets", "check", "orders", "--policy", str(path))
    assert checked.stdout.rstrip().endswith("target orders: ready")
    # Again: a new version of the same secret (a rotation).
    again = add(stack, "orders", app_password)
    assert "(updated)" in again.stdout, again.stderr


def test_add_stores_nothing_that_does_not_log_in(stack: AirlockStack, tmp_path: Path) -> None:
    out = add(stack, "wrongpw", "not-the-password")
    assert out.returncode == 1
    assert "FAIL  login" in out.stdout and "28P01" in out.stdout
    assert "not stored" in out.stderr
    assert secret_json(stack, "airlock/targets/wrongpw") is None
    # The JSON form from a file, and a username that contradicts it, is refused before anything else.
    credential = tmp_path / "credential.json"
    credential.write_text(json.dumps({"username": "someone", "password": "x"}))
    out = stack.cli("targets", "add", "wrongpw", "--host", "127.0.0.1", "--database", "demo", "--user", "airlock_app",
                    "--credential-file", str(credential), check=False)  # fmt: skip
    assert out.returncode == 1 and "differs from the credential's username someone" in out.stderr


def test_check_says_exactly_what_is_wrong(stack: AirlockStack, tmp_path: Path) -> None:
    stored = add(stack, "badpw", "not-the-password", "--no-check")
    assert stored.returncode == 0, stored.stderr
    path = policy_with(
        stack,
        tmp_path,
        {
            "dns": {"host": "no-such-host.invalid"},
            "tcp": {"port": 1},
            "tls": {"tls": "verify-full"},
            "nodb": {"databases": ["no_such_db"]},
            "nosecret": {"credential_secret": "airlock/targets/nosecret"},
            "badpw": {"credential_secret": "airlock/targets/badpw"},
        },
    )
    expected = {
        "dns": "FAIL  dns     cannot resolve no-such-host.invalid",
        "tcp": "FAIL  tcp     cannot connect to 127.0.0.1:1: Connection refused",
        "tls": "FAIL  tls     the server does not offer TLS, which tls: verify-full requires",
        "nodb": "FAIL  login   database 'no_such_db' does not exist",
        "nosecret": "FAIL  secret  cannot read secret 'airlock/targets/nosecret': ResourceNotFoundException",
        "badpw": "FAIL  login   the server refused user 'airlock_app' for database 'demo' (28P01",
    }
    for name, diagnosis in expected.items():
        out = stack.cli("targets", "check", name, "--policy", str(path), check=False)
        assert out.returncode == 1 and diagnosis in out.stdout, (name, out.stdout, out.stderr)
        assert f"target {name} cannot be reached as the proxy reaches it" in out.stderr
    assert stack.cli("targets", "check", "demo").stdout.rstrip().endswith("target demo: ready")


def test_a_target_without_its_secret_is_flagged_at_push_and_named_in_the_agents_fatal(
    stack: AirlockStack, tmp_path: Path
) -> None:
    # Its own database name: a second target serving "demo" to ci-nightly would make a plain dbname=demo
    # ambiguous for every other test while this policy is in force.
    binding = {"identity": "ci-nightly", "target": "ghost", "databases": ["ghostdb"]}
    path = policy_with(
        stack, tmp_path, {"ghost": {"credential_secret": "airlock/targets/ghost", "databases": ["ghostdb"]}},
        bindings=[binding],
    )
    pushed = stack.cli("policy", "push", str(path))
    try:
        assert "warning: target 'ghost': its credential secret 'airlock/targets/ghost' does not exist" in pushed.stderr
        assert "target 'demo'" not in pushed.stderr

        def refused() -> str:
            try:
                psycopg.connect(stack.conninfo(dbname="ghost/ghostdb")).close()
            except psycopg.OperationalError as e:
                return str(e)
            return ""

        assert eventually(lambda: "target 'ghost'" in refused()), refused()
        message = refused()
        assert "could not obtain the credential for target 'ghost'" in message
        assert "an Airlock operator must look" in message and "airlock/targets/ghost" not in message
        log = stack.proxy_log()
        assert "target ghost: no backend credential: cannot read secret 'airlock/targets/ghost'" in log
        assert "ResourceNotFoundException" in log
    finally:
        stack.cli("policy", "push", str(stack.state_dir / "policy.yaml"))
        time.sleep(ControlPlaneSettings().policy_cache_seconds + 0.5)  # the next test sees the demo policy

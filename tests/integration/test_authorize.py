"""The authorize Lambda end to end: real handler, realistic events, DynamoDB on a moto server over HTTP,
tables provisioned from template.yaml, tokens from the local OIDC issuer."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from airlock import admin
from airlock.devstack.provision import StackResources
from airlock.oidc_issuer import IssuerKeys, RunningIssuer, start_issuer
from functions.authorize import app
from shared.config import ControlPlaneSettings, control_plane_settings
from shared.identity import oidc
from shared.identity.keys import generate_key
from shared.observability import logger
from shared.policy import parse_policy
from shared.store import ApiKeyRecord
from shared.store.dynamo import DynamoApiKeyStore, DynamoPolicyStore
from tests.integration.devstack_fixtures import moto_endpoint, provisioned_stack  # noqa: F401 - session fixtures

pytestmark = pytest.mark.stack

POLICY = """
version: 1
identities:
  {ci}:
    oidc: {{issuer: "{issuer}", audience: airlock, subject: "repo:acme/etl:ref:refs/heads/main"}}
  {other}:
    oidc: {{issuer: "{issuer}", audience: airlock, subject: "repo:acme/other:ref:refs/heads/main"}}
  {contractor}:
    keys: true
targets:
  demo:
    host: 127.0.0.1
    port: 5433
    credential_secret: airlock/targets/demo
    tls: require
    databases: [demo, analytics]
bindings:
  - {{identity: {ci}, target: demo, databases: [demo], recording: strict, grant_ttl_seconds: 120}}
  - {{identity: {other}, target: demo, databases: [demo]}}
  - {{identity: {contractor}, target: demo, databases: [demo]}}
"""
CI_SUBJECT = "repo:acme/etl:ref:refs/heads/main"


@dataclass
class FakeContext:
    function_name: str = "airlock-test-authorize"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:airlock-test-authorize"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass
class Env:
    """One test's world: unique identity names and policy name on the shared session stack."""

    issuer: RunningIssuer
    ci: str
    other: str
    contractor: str
    policy_version: int
    settings: ControlPlaneSettings

    def invoke(self, identity: str, token: str | None, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"action": "connect", "identity": identity, "target": "demo", "database": "demo"}
        event.update(client_addr="127.0.0.1:50000", proxy_id="proxy-1", session_id="ses_test", **fields)
        if token is not None:
            event["token"] = token
        # The proxy sends JSON over lambda.invoke: round-trip to be sure the event is plain JSON.
        response: dict[str, Any] = app.handler(json.loads(json.dumps(event)), FakeContext())
        decoded: dict[str, Any] = json.loads(json.dumps(response))
        return decoded

    def ci_token(self, **kwargs: Any) -> str:
        return self.issuer.mint(CI_SUBJECT, **kwargs)


def refused(response: dict[str, Any], sqlstate: str, *fragments: str) -> str:
    assert response["decision"] == "refuse", response
    assert response["grant"] is None
    assert response["refusal"]["sqlstate"] == sqlstate, response
    reason: str = response["refusal"]["reason"]
    for fragment in fragments:
        assert fragment in reason, reason
    return reason


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    running = start_issuer(tmp_path_factory.mktemp("issuer"))
    yield running
    running.stop()


@pytest.fixture
def env(
    provisioned_stack: StackResources,  # noqa: F811 - the imported fixture
    issuer: RunningIssuer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Env]:
    for key, value in provisioned_stack.function_environment("AuthorizeFunction").items():
        monkeypatch.setenv(key, value)
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("AIRLOCK_POLICY_NAME", f"test-{suffix}")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Airlock")
    control_plane_settings.cache_clear()
    app.deps.cache_clear()
    oidc.clear_cache()
    names = {"ci": f"ci-{suffix}", "other": f"other-{suffix}", "contractor": f"contractor-{suffix}"}
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY.format(issuer=issuer.url, **names))
    version = admin.push_policy(policy_file)
    yield Env(issuer=issuer, policy_version=version, settings=ControlPlaneSettings(), **names)
    control_plane_settings.cache_clear()
    app.deps.cache_clear()


# -- OIDC


def test_valid_oidc_token_gets_a_grant(env: Env) -> None:
    before = datetime.now(UTC)
    response = env.invoke(env.ci, env.ci_token())
    assert response["decision"] == "grant", response
    grant = response["grant"]
    assert grant["identity"] == env.ci and grant["auth_method"] == "oidc" and grant["key_id"] is None
    assert (grant["target"], grant["database"], grant["session_id"]) == ("demo", "demo", "ses_test")
    assert grant["policy_version"] == env.policy_version == 1
    assert grant["recording"] == "strict"
    assert grant["backend"] == {
        "engine": "postgres", "host": "127.0.0.1", "port": 5433, "database": "demo",
        "credential_secret": "airlock/targets/demo",
        "tls": "require", "tls_ca_pem": None, "allow_insecure_password": False,
    }  # fmt: skip
    expires = datetime.fromisoformat(grant["expires_at"])
    # The binding's 120 s, not hours.
    assert before + timedelta(seconds=110) < expires < before + timedelta(seconds=130)


def test_wrong_audience_is_refused(env: Env) -> None:
    refused(env.invoke(env.ci, env.ci_token(audience="someone-else")), "28P01", "audience is not accepted")


def test_expired_token_is_refused(env: Env) -> None:
    # Expired well beyond the 30 s clock-skew leeway.
    refused(env.invoke(env.ci, env.ci_token(ttl_seconds=-120)), "28P01", "token has expired")


def test_token_expired_within_leeway_is_accepted(env: Env) -> None:
    assert env.invoke(env.ci, env.ci_token(ttl_seconds=-5))["decision"] == "grant"


def test_untrusted_issuer_is_refused(env: Env, tmp_path: Path) -> None:
    stranger = start_issuer(tmp_path / "stranger")
    try:
        token = stranger.mint(CI_SUBJECT)
    finally:
        stranger.stop()
    refused(env.invoke(env.ci, token), "28P01", "is not trusted by the policy")


def test_token_claiming_a_trusted_issuer_but_signed_elsewhere_is_refused(env: Env, tmp_path: Path) -> None:
    forged = IssuerKeys(tmp_path / "stranger").mint(env.issuer.url, CI_SUBJECT, "airlock")
    refused(env.invoke(env.ci, forged), "28P01", "does not publish")


def test_tampered_token_is_refused(env: Env) -> None:
    token = env.ci_token()
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = "repo:acme/etl:ref:refs/heads/evil"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    response = env.invoke(env.ci, f"{header}.{forged_payload}.{signature}")
    refused(response, "28P01", "signature is invalid")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_symmetric_tokens_are_refused(env: Env, alg: str) -> None:
    claims = jwt.decode(env.ci_token(), options={"verify_signature": False})
    # HS256 would let anyone holding a shared secret (or, with a confused verifier, the issuer's
    # public key) mint tokens; only the algorithm matters for the refusal.
    key = "shared-secret-of-32-bytes-or-more!" if alg == "HS256" else ""
    token = jwt.encode(claims, key, algorithm=alg)
    refused(env.invoke(env.ci, token), "28P01", f"algorithm '{alg}' is not allowed")


def test_token_for_another_identity_is_refused(env: Env) -> None:
    reason = refused(env.invoke(env.other, env.ci_token()), "28P01", f"proves identity '{env.ci}'")
    assert env.other in reason


def test_subject_not_accepted_for_identity(env: Env) -> None:
    token = env.issuer.mint("repo:acme/etl:ref:refs/heads/feature")
    refused(env.invoke(env.ci, token), "28P01", "is not accepted for identity")


def test_garbage_password_is_refused(env: Env) -> None:
    refused(env.invoke(env.ci, "hunter2"), "28P01", "neither an Airlock key")
    refused(env.invoke(env.ci, None), "28P01", "no password")


# -- keys


def issue(env: Env, ttl_days: int = 7) -> str:
    return admin.issue_key(env.contractor, ttl_days=ttl_days)


def test_valid_key_gets_a_grant(env: Env) -> None:
    key = issue(env)
    response = env.invoke(env.contractor, key)
    assert response["decision"] == "grant", response
    grant = response["grant"]
    assert grant["auth_method"] == "key" and key.startswith(f"ak_{grant['key_id']}_")
    assert grant["recording"] == "buffered"


def test_grant_never_outlives_the_key(env: Env) -> None:
    new = generate_key()
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=45)
    DynamoApiKeyStore(env.settings).put(
        ApiKeyRecord(new.key_id, env.contractor, new.secret_hash, created_at=now, expires_at=soon)
    )
    grant = env.invoke(env.contractor, new.token.get_secret_value())["grant"]
    assert datetime.fromisoformat(grant["expires_at"]) == soon


def test_expired_key_is_refused(env: Env) -> None:
    new = generate_key()
    past = datetime.now(UTC) - timedelta(minutes=1)
    DynamoApiKeyStore(env.settings).put(
        ApiKeyRecord(new.key_id, env.contractor, new.secret_hash, created_at=past, expires_at=past)
    )
    refused(env.invoke(env.contractor, new.token.get_secret_value()), "28P01", "expired at")


def test_wrong_secret_and_unknown_key_look_the_same(env: Env) -> None:
    key = issue(env)
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    unknown = generate_key().token.get_secret_value()
    assert refused(env.invoke(env.contractor, wrong_secret), "28P01") == "invalid Airlock key"
    assert refused(env.invoke(env.contractor, unknown), "28P01") == "invalid Airlock key"


def test_key_of_another_identity_is_refused(env: Env) -> None:
    refused(env.invoke(env.ci, issue(env)), "28P01", f"not issued to '{env.ci}'")


def test_revoked_key_is_refused(env: Env) -> None:
    key = issue(env)
    assert admin.revoke_keys(env.contractor) == 1
    refused(env.invoke(env.contractor, key), "28P01", "has been revoked")


def test_issuing_keys_requires_the_policy_to_allow_them(env: Env) -> None:
    with pytest.raises(admin.AdminError, match="does not allow Airlock keys"):
        admin.issue_key(env.ci, ttl_days=1)
    with pytest.raises(admin.AdminError, match="not defined in the policy"):
        admin.issue_key("nobody-at-all", ttl_days=1)


# -- revocation


def test_revoked_identities_are_refused_with_the_reason(env: Env) -> None:
    key = issue(env)
    admin.revoke_identity(env.ci, "laptop stolen")
    admin.revoke_identity(env.contractor, "contract ended")
    refused(env.invoke(env.ci, env.ci_token()), "28P01", f"identity '{env.ci}' has been revoked", "laptop stolen")
    refused(env.invoke(env.contractor, key), "28P01", "has been revoked", "contract ended")
    statuses = {s.name: s for s in admin.list_identities()}
    assert statuses[env.ci].revoked and statuses[env.ci].auth_methods == ("oidc",)
    assert statuses[env.contractor].reason == "contract ended"
    assert not statuses[env.other].revoked

    admin.reinstate_identity(env.contractor)
    assert env.invoke(env.contractor, key)["decision"] == "grant"


# -- authorization


def test_missing_binding_unknown_target_and_database_are_28000(env: Env) -> None:
    token = env.ci_token()
    refused(env.invoke(env.ci, token, database="analytics"), "28000", "no binding", "'analytics'")
    refused(env.invoke(env.ci, token, target="prod"), "28000", "unknown target 'prod'")
    refused(env.invoke(env.ci, token, database="payroll"), "28000", "has no database 'payroll'")


def test_a_plain_database_name_is_routed_by_the_identitys_bindings(env: Env, tmp_path: Path) -> None:
    token = env.ci_token()
    grant = env.invoke(env.ci, token, target=None)["grant"]
    assert (grant["target"], grant["database"], grant["backend"]["database"]) == ("demo", "demo", "demo")
    # A second target serves demo to ci; aliases name a target and a database.
    text = POLICY.format(issuer=env.issuer.url, ci=env.ci, other=env.other, contractor=env.contractor)
    text = text.replace("bindings:\n", (
        "  replica:\n    host: 127.0.0.2\n    credential_secret: airlock/targets/replica\n    databases: [demo]\n"
        f"bindings:\n  - {{identity: {env.ci}, target: replica, databases: [demo]}}\n"))
    text += "aliases:\n  reports: {target: demo, database: demo}\n  ro: {target: replica, database: demo}\n"
    changed = tmp_path / "two-targets.yaml"
    changed.write_text(text)
    admin.push_policy(changed)
    app.deps.cache_clear()
    refused(env.invoke(env.ci, token, target=None), "28000", "served to", "by several targets (demo, replica)",
            "connect with dbname=demo/demo or dbname=replica/demo, or ask for an alias")  # fmt: skip
    alias = env.invoke(env.ci, token, target=None, database="ro")["grant"]
    assert (alias["target"], alias["database"], alias["backend"]["host"]) == ("replica", "demo", "127.0.0.2")
    assert env.invoke(env.ci, token, target="replica")["grant"]["target"] == "replica"  # target/database
    refused(env.invoke(env.ci, token, target=None, database="nope"), "28000", "no binding for a database 'nope'",
            "it may connect to demo/demo or replica/demo, reports, ro")  # fmt: skip
    refused(env.invoke(env.other, token, target=None, database="ro"), "28P01")  # who you are comes first
    # The other identity reaches demo only through target demo: unambiguous for it.
    assert env.invoke(env.other, env.issuer.mint("repo:acme/other:ref:refs/heads/main"), target=None)["grant"]


# -- reauthorize


def test_reauthorize_renews_then_refuses_after_revocation(env: Env) -> None:
    grant = env.invoke(env.ci, env.ci_token())["grant"]
    renewal = env.invoke(env.ci, None, action="reauthorize", grant_id=grant["grant_id"])
    assert renewal["decision"] == "grant", renewal
    assert renewal["grant"]["grant_id"] == grant["grant_id"]
    assert renewal["grant"]["expires_at"] >= grant["expires_at"]

    admin.revoke_identity(env.ci, "offboarded")
    refused(env.invoke(env.ci, None, action="reauthorize", grant_id=grant["grant_id"]), "28P01", "revoked")


def test_reauthorize_of_key_session_rechecks_the_key(env: Env) -> None:
    grant = env.invoke(env.contractor, issue(env))["grant"]
    again = {"action": "reauthorize", "grant_id": grant["grant_id"], "key_id": grant["key_id"]}
    assert env.invoke(env.contractor, None, **again)["grant"]["key_id"] == grant["key_id"]
    without_key = {k: v for k, v in again.items() if k != "key_id"}
    refused(env.invoke(env.contractor, None, **without_key), "28P01", "must carry the session's key_id")
    admin.revoke_keys(env.contractor)
    refused(env.invoke(env.contractor, None, **again), "28P01", "has been revoked")


def test_reauthorize_sees_a_removed_binding(env: Env, tmp_path: Path) -> None:
    grant = env.invoke(env.ci, env.ci_token())["grant"]
    policy = POLICY.format(issuer=env.issuer.url, ci=env.ci, other=env.other, contractor=env.contractor)
    narrowed = tmp_path / "narrowed.yaml"
    narrowed.write_text("\n".join(line for line in policy.splitlines() if f"identity: {env.ci}," not in line))
    assert admin.push_policy(narrowed) == 2
    app.deps.cache_clear()  # a fresh container, rather than waiting out the policy cache
    response = env.invoke(env.ci, None, action="reauthorize", grant_id=grant["grant_id"])
    refused(response, "28000", "no binding")


# -- policies


def test_concurrent_pushes_get_distinct_versions(env: Env) -> None:
    store = DynamoPolicyStore(env.settings)
    text = POLICY.format(issuer=env.issuer.url, ci=env.ci, other=env.other, contractor=env.contractor)
    policy = parse_policy(text)
    versions: list[int] = []
    barrier = threading.Barrier(6)

    def push() -> None:
        barrier.wait()
        versions.append(store.push(env.settings.policy_name, text, policy))

    threads = [threading.Thread(target=push) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == [2, 3, 4, 5, 6, 7]
    assert store.latest(env.settings.policy_name).version == 7


def test_invalid_policy_push_is_rejected(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nbindings:\n  - {identity: ghost, target: demo, databases: [demo]}\n")
    with pytest.raises(admin.AdminError, match=r"bindings\[0\].identity: unknown identity 'ghost'"):
        admin.push_policy(bad)


# -- the boundary


def test_malformed_event_gets_a_clear_refusal_without_echoing_the_token(env: Env) -> None:
    response = app.handler({"identity": "", "token": ["ak_secret-looking"], "surprise": 1}, FakeContext())
    reason = refused(response, "28000", "malformed authorize request", "identity:", "token:")
    assert "surprise: Extra inputs are not permitted" in reason
    assert "ak_secret-looking" not in reason
    refused(app.handler(["not", "an", "object"], FakeContext()), "28000", "malformed authorize request")


def test_storage_failure_fails_closed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    token = env.ci_token()
    monkeypatch.setenv("AIRLOCK_IDENTITIES_TABLE", "no-such-table")
    control_plane_settings.cache_clear()
    app.deps.cache_clear()
    refused(env.invoke(env.ci, token), "28000", "temporarily unavailable", "reading identity failed")


def test_tokens_never_reach_the_logs(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    logged = io.StringIO()
    # The powertools handler holds the stdout of import time; point it at a buffer for this test.
    monkeypatch.setattr(logger.registered_handler, "stream", logged)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # must not override log_event=False
    token, key = env.ci_token(), issue(env)
    env.invoke(env.ci, token)
    env.invoke(env.ci, token, database="analytics")
    env.invoke(env.contractor, key)
    env.invoke(env.contractor, key[:-3] + "xyz")
    env.invoke(env.contractor, key, action="bogus")
    text = logged.getvalue()
    secret = key.split("_", 2)[2]
    assert token.split(".")[2] not in text and secret[:20] not in text
    assert text.count('"message":"granted"') == 2 and text.count('"message":"refused"') == 2

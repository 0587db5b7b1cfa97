"""The policy file: valid documents, field errors with paths, cross-reference errors."""

from __future__ import annotations

import pytest

from shared.controlplane import BackendTLS, RecordingMode
from shared.policy import PolicyError, parse_policy

VALID = """
version: 1
identities:
  ci-nightly:
    oidc: {issuer: "http://127.0.0.1:8710", audience: "airlock", subject: "repo:acme/etl:ref:refs/heads/main"}
  deployer:
    oidc:
      issuer: "https://token.actions.githubusercontent.com"
      audience: airlock
      subject: ["repo:acme/app:environment:prod", "repo:acme/app:ref:refs/heads/main"]
      claims: {repository_owner: acme}
  contractor:
    keys: true
guardrails: {dry_run: true}
approvals: {slack_channel: "#db-approvals"}
targets:
  demo:
    engine: postgres
    host: 127.0.0.1
    port: 5433
    credential_secret: airlock/targets/demo
    tls: prefer
    databases: [demo, analytics]
bindings:
  - identity: ci-nightly
    target: demo
    databases: [demo]
    recording: strict
    grant_ttl_seconds: 120
  - identity: contractor
    target: demo
    databases: [analytics]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return info.value.problems


def test_valid_policy_parses_with_defaults() -> None:
    policy = parse_policy(VALID)
    assert policy.targets["demo"].tls is BackendTLS.PREFER
    ci = policy.binding_for("ci-nightly", "demo", "demo")
    assert ci is not None and ci.recording is RecordingMode.STRICT and ci.grant_ttl_seconds == 120
    contractor = policy.binding_for("contractor", "demo", "analytics")
    assert contractor is not None and contractor.grant_ttl_seconds == 300  # minutes, not hours
    assert policy.binding_for("contractor", "demo", "demo") is None
    assert policy.guardrails is not None and policy.guardrails.dry_run
    assert policy.masking is None


def test_oidc_matching_uses_subject_list_audience_and_extra_claims() -> None:
    policy = parse_policy(VALID)
    claims = {
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "airlock",
        "sub": "repo:acme/app:environment:prod",
        "repository_owner": "acme",
    }
    assert policy.oidc_identities(claims) == ["deployer"]
    assert policy.oidc_identities({**claims, "repository_owner": "evil"}) == []
    assert policy.oidc_identities({**claims, "aud": ["other", "airlock"]}) == ["deployer"]
    assert policy.oidc_identities({**claims, "aud": "other"}) == []
    assert policy.oidc_audiences("https://token.actions.githubusercontent.com/") == ["airlock"]
    assert policy.oidc_audiences("https://evil.example") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("version: 1", "version: 2"), "version: unsupported policy schema version 2"),
        (("    port: 5433", "    port: 99999"), "targets.demo.port: Input should be less than or equal to 65535"),
        (("    tls: prefer", "    tls: sometimes"), "targets.demo.tls: Input should be"),
        (("    grant_ttl_seconds: 120", "    grant_ttl_seconds: 86400"), "bindings[0].grant_ttl_seconds:"),
        (("    recording: strict", "    recording: strikt"), "bindings[0].recording:"),
        (("  contractor:\n    keys: true", "  contractor:\n    keys: false"), "identities.contractor: an identity"),
        (("    engine: postgres", "    engine: postgres\n    colour: blue"), "targets.demo.colour: Extra inputs"),
        (("guardrails: {dry_run: true}", "guardrails: {dry_run: true, rulez: []}"), "guardrails.rulez: Extra"),
        (("  ci-nightly:", "  ci nightly:"), "identities.ci nightly.[key]: String should match pattern"),
    ],
)
def test_field_errors_name_the_path(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in VALID
    found = problems_of(VALID.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_cross_references_are_checked_and_all_reported() -> None:
    text = VALID.replace("identity: ci-nightly", "identity: ghost").replace(
        "databases: [analytics]", "databases: [analytics, payroll]"
    )
    text += "  - identity: contractor\n    target: nowhere\n    databases: [demo]\n"
    assert problems_of(text) == [
        "bindings[0].identity: unknown identity 'ghost'",
        "bindings[1].databases: target 'demo' does not serve database 'payroll'",
        "bindings[2].target: unknown target 'nowhere'",
    ]


def test_overlapping_bindings_are_rejected() -> None:
    text = VALID + "  - identity: contractor\n    target: demo\n    databases: [analytics]\n"
    assert problems_of(text) == ["bindings[2]: duplicates bindings[1] for contractor/demo/analytics"]


def test_yaml_level_errors() -> None:
    assert problems_of("version: 1\nversion: 1\n")[0].startswith("not valid YAML: duplicate key 'version'")
    assert problems_of("- just\n- a list\n")[0].startswith("(policy): the document must be a mapping")
    assert problems_of("version: [1\n")[0].startswith("not valid YAML")
    assert problems_of("identities: {}\n") == [
        "version: unsupported policy schema version missing (this Airlock understands 1)"
    ]


def test_error_message_lists_every_problem() -> None:
    with pytest.raises(PolicyError, match=r"^invalid policy: .*port.*tls"):
        parse_policy(VALID.replace("port: 5433", "port: 0").replace("tls: prefer", "tls: x"))


def test_aliases_name_a_target_that_serves_the_database() -> None:
    good = VALID + "aliases:\n  reports: {target: demo, database: analytics}\n"
    alias = parse_policy(good).aliases["reports"]
    assert (alias.target, alias.database) == ("demo", "analytics")
    bad = VALID + "aliases:\n  a: {target: nowhere, database: demo}\n  b: {target: demo, database: payroll}\n"
    assert problems_of(bad) == [
        "aliases.a.target: unknown target 'nowhere'",
        "aliases.b.database: target 'demo' does not serve 'payroll'",
    ]
    assert parse_policy(VALID).targets["demo"].allow_insecure_password is False

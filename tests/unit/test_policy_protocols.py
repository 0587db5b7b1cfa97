"""One policy file for every protocol: targets told apart by engine, bindings that fit their target."""

from __future__ import annotations

import pytest

from shared.controlplane import BackendRef, Grant, KubernetesBackendRef, SshBackendRef
from shared.k8s.policy import KubernetesTargetSpec
from shared.policy import PolicyError, TargetSpec, parse_policy
from shared.ssh.policy import SshTargetSpec

POLICY = """
version: 1
identities:
  deployer: {keys: true}
targets:
  db: {host: db.internal, credential_secret: s1, databases: [app]}
  web-1:
    engine: ssh
    host: 10.0.0.5
    user: deploy
    credential_secret: s2
    host_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1"]
  prod:
    engine: kubernetes
    server: https://k8s.internal:6443
    credential_secret: s3
bindings:
  - {identity: deployer, target: db, databases: [app]}
  - {identity: deployer, target: web-1, ssh: {allow: [exec, sftp]}}
  - {identity: deployer, target: prod, kubernetes: {namespaces: [prod], groups: [deployers]}}
"""


def test_targets_of_every_protocol_in_one_file() -> None:
    policy = parse_policy(POLICY)
    assert isinstance(policy.targets["db"], TargetSpec)
    assert isinstance(policy.targets["web-1"], SshTargetSpec)
    assert isinstance(policy.targets["prod"], KubernetesTargetSpec)
    ssh = policy.binding_for("deployer", "web-1")
    assert ssh is not None and ssh.ssh is not None and ssh.ssh.allow == ["exec", "sftp"]
    assert policy.binding_for("deployer", "db", "app") is not None
    assert policy.binding_for("deployer", "db", "other") is None


@pytest.mark.parametrize(("binding", "problem"), [
    ("{identity: deployer, target: web-1, databases: [app]}", "has no databases"),
    ("{identity: deployer, target: db}", "names the databases it reaches"),
    ("{identity: deployer, target: db, databases: [app], ssh: {allow: [shell]}}", "is not an SSH target"),
    ("{identity: deployer, target: web-1, kubernetes: {namespaces: [x]}}", "is not a Kubernetes target"),
])
def test_a_binding_must_fit_its_targets_protocol(binding: str, problem: str) -> None:
    text = POLICY.split("bindings:")[0] + f"bindings:\n  - {binding}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert problem in str(info.value)


def test_grants_carry_a_backend_of_their_protocol_and_old_grants_still_parse() -> None:
    base = {"grant_id": "g", "session_id": "s", "identity": "i", "auth_method": "key", "target": "t",
            "database": "", "policy_version": 1, "issued_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-01T00:05:00Z"}
    old = Grant.model_validate({**base, "backend": {"host": "h", "database": "d", "credential_secret": "c"}})
    assert isinstance(old.backend, BackendRef)
    ssh = Grant.model_validate({**base, "backend": {"engine": "ssh", "host": "h", "user": "u",
                                                    "credential_secret": "c", "host_keys": ["k"]}})
    assert isinstance(ssh.backend, SshBackendRef)
    kube = Grant.model_validate_json(Grant.model_validate(
        {**base, "backend": {"engine": "kubernetes", "server": "https://k", "credential_secret": "c"}}
    ).model_dump_json())
    assert isinstance(kube.backend, KubernetesBackendRef)

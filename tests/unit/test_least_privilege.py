"""Least privilege, tested: every role in template.yaml grants exactly what the code running under it calls.

The code side is found statically (``airlock.deploy.awscalls``): from each component's entry point, the
boto3 and pynamodb calls its code can reach, mapped to IAM actions. The template side is read from the
role's policies. A call without a grant fails here (it would fail in AWS with AccessDenied, where the
local stack, which checks no permissions, never would); so does a grant that no code uses. Resources are
checked too: no ``*``, DynamoDB grants on exactly the tables (and indexes) the code binds its models to,
S3, KMS, Lambda, SNS and Secrets Manager grants on exactly the resources whose names the code reads from
its environment, or from the policy file (``POLICY_NAMED``).

Components are discovered from the template: every ``AWS::Serverless::Function`` (entry: its handler),
plus the roles named in ``ROLE_CODE``. A role the test does not know fails it, so none goes unchecked.
A role's statements are its inline policies and every ``AWS::IAM::Policy`` attached to it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from airlock.deploy.awscalls import AwsCall, Codebase, component_calls, iam_actions
from airlock.devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]

# IAM roles whose permissions code of ours uses, and that code's entry point.
ROLE_CODE = {"ProxyTaskRole": "proxy.__main__:main", "AuditorRole": "airlock.audit.athena:query_athena"}
# Roles that only AWS services use on our behalf, with everything they may do. (The auditor role's
# Glue and S3 permissions are Athena's on the auditor's behalf: airlock.deploy.awscalls.IMPLIED.)
SERVICE_ROLES = {"ProxyExecutionRole": {"secretsmanager:GetSecretValue": {"ProxyCertificateSecret"}}}
# Resources the policy file names rather than the environment: the field the code reads -> what the
# deployment provides for it (docs/deploy.md). Backend credentials and the masking token key live
# under airlock/ in Secrets Manager; approval messages go to the stack's approvals topic.
_SECRETS = "arn::secretsmanager:::secret:airlock"
POLICY_NAMED = {
    "credential_secret": {f"{_SECRETS}/targets/*"},
    "token_key_ref": {f"{_SECRETS}/masking-token-key-*"},
    "sns_topic_arn": {"ApprovalsTopic"},
}


@dataclass
class Component:
    name: str  # the logical id of the function or role
    entry: str
    statements: list[dict[str, Any]]
    environment: dict[str, Any]  # variable -> template expression
    calls: list[AwsCall] = field(default_factory=list)
    attributes: frozenset[str] = frozenset()


def _function_entry(props: Mapping[str, Any]) -> str:
    module, _, attribute = props["Handler"].rpartition(".")
    return ".".join([*Path(props["CodeUri"]).parts, module.replace("/", ".")]) + ":" + attribute


def _attached_statements(role: str) -> list[dict[str, Any]]:
    """Statements of the ``AWS::IAM::Policy`` resources attached to ``role``."""
    return [statement for logical_id, resource in RESOURCES.items() if resource["Type"] == "AWS::IAM::Policy"
            and {"Ref": role} in resource["Properties"].get("Roles", [])
            for statement in _inline_statements([resource["Properties"]], logical_id)]


def _inline_statements(policies: list[Any], owner: str) -> list[dict[str, Any]]:
    statements = []
    for policy in policies:
        document = policy.get("PolicyDocument", policy) if isinstance(policy, dict) else None
        if not isinstance(document, dict) or "Statement" not in document:
            # A SAM policy template (DynamoDBCrudPolicy, ...) or a managed policy grants more than it says.
            raise AssertionError(f"{owner}: write the policy out as statements, not {policy!r}")
        statements.extend(document["Statement"])
    return statements


@cache
def components() -> dict[str, Component]:
    codebase = Codebase.load()
    found: dict[str, Component] = {}
    global_env = TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for logical_id, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        found[logical_id] = Component(logical_id, _function_entry(props),
                                      _inline_statements(props.get("Policies", []), logical_id), env)
    for role, entry in ROLE_CODE.items():
        props = RESOURCES[role]["Properties"]
        env = {}
        for task in (r for r in RESOURCES.values() if r["Type"] == "AWS::ECS::TaskDefinition"):
            if task["Properties"].get("TaskRoleArn") == {"Fn::GetAtt": [role, "Arn"]}:
                for container in task["Properties"]["ContainerDefinitions"]:
                    env.update({v["Name"]: v["Value"] for v in container.get("Environment", [])})
        statements = _inline_statements(props.get("Policies", []), role) + _attached_statements(role)
        found[role] = Component(role, entry, statements, env)
    for component in found.values():
        reached = component_calls(component.entry, codebase)
        assert not reached.ambiguous, reached.ambiguous
        component.calls, component.attributes = list(reached.calls), reached.attributes
    return found


def _granted(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Allowed action -> resources (normalised), from a list of statements."""
    out: dict[str, set[str]] = {}
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            out.setdefault(action, set()).update(_normalise(r) for r in resources)
    return out


def _normalise(resource: Any) -> str:
    """A resource expression as "<LogicalId>[suffix]", or the ARN text for one not in the template."""
    if isinstance(resource, str):
        return resource
    if "Ref" in resource:
        return str(resource["Ref"])
    if "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if "Fn::Sub" in resource:
        text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
        text = re.sub(r"\$\{(\w+)\.Arn\}", r"\1", text)
        text = re.sub(r"\$\{(AWS::\w+)\}", "", text)
        return re.sub(r"\$\{(\w+)\}", r"\1", text)
    raise AssertionError(f"resource expression not understood: {resource!r}")


def _needed(component: Component) -> dict[str, list[AwsCall]]:
    needed: dict[str, list[AwsCall]] = {}
    for call in component.calls:
        for action in iam_actions(call):
            needed.setdefault(action, []).append(call)
    return needed


def _addressed(component: Component) -> set[str]:
    """Resources the component's code reads the names of: template resources named in its environment
    (settings fields -> AIRLOCK_* variables), and those a policy file names (``POLICY_NAMED``)."""
    out = {r for name, resources in POLICY_NAMED.items() if name in component.attributes for r in resources}
    for variable, value in component.environment.items():
        fields = {variable.removeprefix(p).lower() for p in ("AIRLOCK_PROXY_", "AIRLOCK_RECORDING_", "AIRLOCK_")}
        if variable.startswith("AIRLOCK_") and fields & component.attributes and isinstance(value, dict):
            target = _normalise(value)
            alias = RESOURCES.get(target, {})
            if alias.get("Type") == "AWS::KMS::Alias":  # the key behind the alias is what IAM checks
                target = _normalise(alias["Properties"]["TargetKeyId"])
            out.add(target)
    return out


def _sub_references(value: Any) -> set[str]:
    text = value["Fn::Sub"] if isinstance(value, dict) and "Fn::Sub" in value else str(value)
    return set(re.findall(r"\$\{(\w+)\}", text)) - {"AWS"}


def _athena_resources(action: str) -> set[str]:
    """What Athena touches on an auditor's behalf: the workgroup, the Glue tables, the tables' data (read)
    and the workgroup's result location (read and write)."""
    workgroups = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::Athena::WorkGroup"]
    databases = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::Glue::Database"]
    data = {b for v in RESOURCES.values() if v["Type"] == "AWS::Glue::Table"
            for b in _sub_references(v["Properties"]["TableInput"]["StorageDescriptor"]["Location"])}
    results = {b for w in workgroups for b in _sub_references(
        RESOURCES[w]["Properties"]["WorkGroupConfiguration"]["ResultConfiguration"]["OutputLocation"])}
    service = action.split(":")[0]
    if service == "athena":
        return {f"arn::athena:::workgroup/{w}" for w in workgroups}
    if service == "glue":
        return {"arn::glue:::catalog"} | {f"arn::glue:::{kind}/{d}{tail}" for d in databases
                                          for kind, tail in (("database", ""), ("table", "/*"))}
    if action in {"s3:ListBucket", "s3:GetBucketLocation"}:
        return data | results
    if action == "s3:GetObject":
        return {f"{b}/*" for b in data | results}
    return {f"{b}/*" for b in results}  # writing results


def _expected_resources(component: Component, action: str, calls: list[AwsCall]) -> set[str] | None:
    """What ``action`` should be granted on; None where the test checks a pattern instead."""
    service = action.split(":")[0]
    if any(c.service == "athena" for c in component.calls) and service in {"athena", "glue", "s3"}:
        return _athena_resources(action)
    addressed = _addressed(component)
    kinds = {"s3": "AWS::S3::Bucket", "kms": "AWS::KMS::Key", "lambda": "AWS::Serverless::Function",
             "sns": "AWS::SNS::Topic", "secretsmanager": "AWS::SecretsManager::Secret"}  # fmt: skip
    if service == "dynamodb":
        out = set()
        for call in calls:
            variable = f"AIRLOCK_{(call.table_field or '').upper()}"
            assert variable in component.environment, f"{call.where}: table field {call.table_field} not configured"
            table = _normalise(component.environment[variable])
            out.add(f"{table}/index/{call.index}" if call.index else table)
        return out
    if service in kinds:
        targets = {r for r in addressed if RESOURCES.get(r, {}).get("Type") == kinds[service]
                   or r.startswith(f"arn::{service}:")}
        if service == "s3":
            bucket_level = action in {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"}
            return targets if bucket_level else {f"{t}/*" for t in targets}
        return targets
    return None


def _describe(calls: list[AwsCall]) -> str:
    return ", ".join(sorted({c.where for c in calls})[:3])


def check(component: Component) -> list[str]:
    """Every way the component's grants differ from what its code calls."""
    problems = []
    granted, needed = _granted(component.statements), _needed(component)
    for action in sorted(set(needed) - set(granted)):
        problems.append(f"{component.name}: code calls {action} without a grant ({_describe(needed[action])})")
    for action in sorted(set(granted) - set(needed)):
        problems.append(f"{component.name}: grants {action}, which no code of {component.entry} calls")
    for action in sorted(set(granted) & set(needed)):
        resources = granted[action]
        if any(r == "*" or r.endswith(":*") for r in resources):
            problems.append(f"{component.name}: {action} on {sorted(resources)}: name the resources")
        expected = _expected_resources(component, action, needed[action])
        if expected is not None and resources != expected:
            problems.append(f"{component.name}: {action} on {sorted(resources)}, its code uses {sorted(expected)}")
    return problems


def test_every_role_is_accounted_for() -> None:
    roles = {k for k, v in RESOURCES.items() if v["Type"] == "AWS::IAM::Role"}
    assert roles == set(ROLE_CODE) | set(SERVICE_ROLES), "tell this test what code (or service) uses each role"
    assert {c.entry for c in components().values()} >= {"functions.authorize.app:handler", "proxy.__main__:main"}


FUNCTIONS = [k for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"]
COMPONENT_NAMES = sorted(FUNCTIONS + list(ROLE_CODE))


@pytest.mark.parametrize("name", COMPONENT_NAMES)
def test_role_grants_exactly_what_its_code_calls(name: str) -> None:
    assert check(components()[name]) == []


@pytest.mark.parametrize("role", sorted(SERVICE_ROLES))
def test_service_roles_grant_what_the_service_needs(role: str) -> None:
    granted = _granted(_inline_statements(RESOURCES[role]["Properties"].get("Policies", []), role))
    assert granted == SERVICE_ROLES[role]


def test_the_three_defects_of_issue_15_stay_fixed() -> None:
    sweeper = _granted(components()["SweeperFunction"].statements)
    proxy = _granted(components()["ProxyTaskRole"].statements)
    # The sweeper seals manifests with COMPLIANCE lock headers: that is s3:PutObjectRetention too.
    assert sweeper["s3:PutObjectRetention"] == {"SessionsBucket/*"}
    # The proxy's retry path (If-None-Match answered 412) reads the existing object's checksum.
    assert proxy["s3:GetObject"] == {"SessionsBucket/*"}
    # The sweeper never deletes, scans or batch-writes sessions.
    assert {a for a in sweeper if a.startswith("dynamodb:")} == {"dynamodb:GetItem", "dynamodb:Query",
                                                                  "dynamodb:UpdateItem"}


def test_a_new_call_without_a_grant_fails() -> None:
    """The check can fail: the proxy's store deleting an object would need s3:DeleteObject."""
    codebase = Codebase.load()
    store = codebase.modules["shared.recording.store"]
    put_locked = next(n for n in ast.walk(store.tree) if isinstance(n, ast.FunctionDef) and n.name == "put_locked")
    put_locked.body.append(ast.parse("self.client.delete_object(Bucket=self.bucket, Key=key)").body[0])
    proxy = components()["ProxyTaskRole"]
    altered = Component(proxy.name, proxy.entry, proxy.statements, proxy.environment)
    reached = component_calls(proxy.entry, codebase)
    altered.calls, altered.attributes = list(reached.calls), reached.attributes
    assert any("code calls s3:DeleteObject without a grant" in p for p in check(altered))


def test_an_unused_grant_fails() -> None:
    proxy = components()["ProxyTaskRole"]
    key = {"Fn::GetAtt": ["RecordingSigningKey", "Arn"]}
    extra = {"Effect": "Allow", "Action": "kms:GetPublicKey", "Resource": key}
    altered = Component(proxy.name, proxy.entry, [*proxy.statements, extra], proxy.environment, proxy.calls,
                        proxy.attributes)
    assert check(altered) == [f"ProxyTaskRole: grants kms:GetPublicKey, which no code of {proxy.entry} calls"]


def test_the_proxy_watches_approvals_but_never_decides() -> None:
    """A gateway asks the approvals Lambda, reads where its approvals stand and counts allowance uses;
    it can neither write an approval nor grant an allowance (that is the approvals service's)."""
    proxy = _granted(components()["ProxyTaskRole"].statements)
    approvals = {a: r for a, r in proxy.items() if r & {"ApprovalsTable", "AllowancesTable", "ApprovalsFunction"}
                 or any(x.startswith(("ApprovalsTable/", "AllowancesTable/")) for x in r)}
    assert approvals == {
        "dynamodb:BatchGetItem": {"ApprovalsTable"},
        "dynamodb:Query": {"AllowancesTable/index/by-scope", "SessionsTable/index/by-status"},
        "dynamodb:UpdateItem": {"AllowancesTable", "SessionsTable"},
        "lambda:InvokeFunction": {"ApprovalsFunction", "AuthorizeFunction"},
    }


def test_each_approvals_function_reads_only_the_secrets_its_channels_need() -> None:
    secrets = {name: _granted(components()[name].statements)["secretsmanager:GetSecretValue"]
               for name in ("ApprovalsFunction", "SlackInteractionsFunction", "ApprovalLinksFunction")}
    assert secrets == {
        "ApprovalsFunction": {"SlackAppSecret", "ApprovalLinkKeySecret"},  # posts to Slack, signs SNS links
        "SlackInteractionsFunction": {"SlackAppSecret"},  # verifies and answers Slack
        "ApprovalLinksFunction": {"SlackAppSecret", "ApprovalLinkKeySecret"},  # verifies links, rewrites Slack
    }
    publishers = {name for name, c in components().items() if "sns:Publish" in _granted(c.statements)}
    assert publishers == {"ApprovalsFunction"}

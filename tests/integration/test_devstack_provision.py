"""The local stack is provisioned from template.yaml itself: what AWS (moto, over HTTP) describes must be
exactly what the template declares, so local tests and the deployed stack cannot drift apart."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from airlock.devstack.provision import StackResources, provision
from airlock.devstack.template import Resolver, load_template
from tests.integration.devstack_fixtures import TEMPLATE, TEST_STACK, moto_endpoint, provisioned_stack  # noqa: F401

pytestmark = pytest.mark.stack

TEMPLATE_DOC = load_template(TEMPLATE)
TABLES = sorted(k for k, v in TEMPLATE_DOC["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table")


def _props(logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = TEMPLATE_DOC["Resources"][logical_id]["Properties"]
    return props


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def test_template_declares_the_control_plane_tables() -> None:
    assert TABLES == [
        "AllowancesTable", "ApiKeysTable", "ApprovalsTable", "IdentitiesTable", "PoliciesTable", "SessionsTable"
    ]


@pytest.mark.parametrize("logical_id", TABLES)
def test_table_matches_template(provisioned_stack: StackResources, logical_id: str) -> None:  # noqa: F811
    props = _props(logical_id)
    ddb = boto3.client("dynamodb")
    name = provisioned_stack.physical_ids[logical_id]
    assert name == f"{TEST_STACK}-{props['TableName']['Fn::Sub'].split('-', 1)[1]}"
    table = ddb.describe_table(TableName=name)["Table"]

    assert _keys(table["KeySchema"]) == _keys(props["KeySchema"])
    assert sorted(map(tuple, (d.values() for d in table["AttributeDefinitions"]))) == sorted(
        map(tuple, (d.values() for d in props["AttributeDefinitions"]))
    )
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"] == "PAY_PER_REQUEST"
    described = {
        gsi["IndexName"]: (_keys(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in table.get("GlobalSecondaryIndexes", [])
    }
    declared = {
        gsi["IndexName"]: (_keys(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in props.get("GlobalSecondaryIndexes", [])
    }
    assert described == declared

    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if "TimeToLiveSpecification" in props:
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
    else:
        assert ttl["TimeToLiveStatus"] == "DISABLED"
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_specific_shapes_the_brief_asks_for(provisioned_stack: StackResources) -> None:  # noqa: F811
    ddb = boto3.client("dynamodb")
    sessions = ddb.describe_table(TableName=provisioned_stack.physical_ids["SessionsTable"])["Table"]
    assert {g["IndexName"] for g in sessions["GlobalSecondaryIndexes"]} == {"by-identity", "by-target", "by-status"}
    policies = ddb.describe_table(TableName=provisioned_stack.physical_ids["PoliciesTable"])["Table"]
    assert _keys(policies["KeySchema"]) == [("policy", "HASH"), ("version", "RANGE")]
    assert {"AttributeName": "version", "AttributeType": "N"} in policies["AttributeDefinitions"]
    ttl = ddb.describe_time_to_live(TableName=provisioned_stack.physical_ids["ApprovalsTable"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "purge_at"


def test_sessions_bucket_has_compliance_object_lock(provisioned_stack: StackResources) -> None:  # noqa: F811
    s3 = boto3.client("s3")
    bucket = provisioned_stack.physical_ids["SessionsBucket"]
    assert bucket == f"{TEST_STACK}-sessions-{provisioned_stack.account_id}"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    default_days = TEMPLATE_DOC["Parameters"]["RecordingRetentionDays"]["Default"]
    retention = lock["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", default_days)
    # A new recording chunk gets the default retention, and its version cannot be deleted.
    version = s3.put_object(Bucket=bucket, Key="sessions/test/0.chunk", Body=b"x")["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="sessions/test/0.chunk")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="sessions/test/0.chunk", VersionId=version)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_signing_key_is_p256_sign_verify_behind_its_alias(provisioned_stack: StackResources) -> None:  # noqa: F811
    kms = boto3.client("kms")
    alias = provisioned_stack.physical_ids["RecordingSigningKeyAlias"]
    assert alias == f"alias/{TEST_STACK}-recording"
    # Resolving through the alias is what the proxy does with AIRLOCK_SIGNING_KEY_ID.
    metadata = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert metadata["KeySpec"] == _props("RecordingSigningKey")["KeySpec"] == "ECC_NIST_P256"
    assert metadata["KeyUsage"] == "SIGN_VERIFY"
    assert metadata["Arn"] == provisioned_stack.arns["RecordingSigningKey"]
    signature = kms.sign(KeyId=alias, Message=b"manifest", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert kms.verify(KeyId=alias, Message=b"manifest", Signature=signature, SigningAlgorithm="ECDSA_SHA_256")[
        "SignatureValid"
    ]


def test_approvals_topic_exists(provisioned_stack: StackResources) -> None:  # noqa: F811
    arn = provisioned_stack.physical_ids["ApprovalsTopic"]
    assert arn.endswith(f":{TEST_STACK}-approvals")
    attributes = boto3.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["TopicArn"] == arn


def test_function_environment_maps_to_control_plane_settings(provisioned_stack: StackResources) -> None:  # noqa: F811
    env = provisioned_stack.function_environment("AuthorizeFunction")
    ids = provisioned_stack.physical_ids
    assert env["AIRLOCK_IDENTITIES_TABLE"] == ids["IdentitiesTable"]
    assert env["AIRLOCK_API_KEYS_TABLE"] == ids["ApiKeysTable"]
    assert env["AIRLOCK_POLICIES_TABLE"] == ids["PoliciesTable"]
    assert env["AIRLOCK_SESSIONS_TABLE"] == ids["SessionsTable"]
    assert env["AIRLOCK_APPROVALS_TABLE"] == ids["ApprovalsTable"]
    assert env["AIRLOCK_SESSIONS_BUCKET"] == ids["SessionsBucket"]
    assert env["AIRLOCK_SIGNING_KEY_ID"] == ids["RecordingSigningKeyAlias"]
    assert env["AIRLOCK_APPROVALS_TOPIC_ARN"] == ids["ApprovalsTopic"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "airlock"
    assert provisioned_stack.lambda_functions() == {
        f"{TEST_STACK}-authorize": "app.handler",
        f"{TEST_STACK}-sweeper": "app.handler",
        f"{TEST_STACK}-approvals": "app.handler",
        f"{TEST_STACK}-slack-interactions": "app.handler",
        f"{TEST_STACK}-approval-links": "app.handler",
    }
    # Each function's code is its own directory (CodeUri), never the repository.
    code = {f.name: f.code_root.relative_to(TEMPLATE.parent).as_posix() for f in provisioned_stack.functions.values()}
    assert code == {
        f"{TEST_STACK}-authorize": "functions/authorize",
        f"{TEST_STACK}-sweeper": "functions/sweeper",
        f"{TEST_STACK}-approvals": "functions/approvals",
        f"{TEST_STACK}-slack-interactions": "functions/slack_interactions",
        f"{TEST_STACK}-approval-links": "functions/approval_links",
    }

    from shared.config import ControlPlaneSettings

    settings = ControlPlaneSettings.model_validate({k.removeprefix("AIRLOCK_").lower(): v for k, v in env.items()})
    assert settings.sessions_table == ids["SessionsTable"]


def test_approvals_functions_routes_and_secrets(provisioned_stack: StackResources) -> None:  # noqa: F811
    import json

    from shared.approvals.dynamo import WATCHED_ATTRIBUTES
    from shared.approvals.settings import ApprovalsSettings

    ids = provisioned_stack.physical_ids
    env = provisioned_stack.function_environment("ApprovalsFunction")
    settings = ApprovalsSettings.model_validate({k.removeprefix("AIRLOCK_").lower(): v for k, v in env.items()})
    assert (settings.approvals_table, settings.allowances_table) == (ids["ApprovalsTable"], ids["AllowancesTable"])
    assert settings.slack_secret == ids["SlackAppSecret"]
    assert settings.approval_link_key_secret == ids["ApprovalLinkKeySecret"]
    routes = {r[1:] for f in provisioned_stack.functions.values() for r in f.http_routes if r[0] == "ApprovalsHttpApi"}
    assert routes == {("POST", "/slack/interactions"), ("GET", "/approvals/link"), ("POST", "/approvals/link")}
    from airlock.devstack.provision import _generated

    # Until the operator puts the real app's values: no usable token, and a signing secret nobody knows.
    # (Generated as provisioning does; the session's stack has the approvals tests' values by now.)
    slack = json.loads(_generated(_props("SlackAppSecret")["GenerateSecretString"]))
    assert slack["bot_token"] == "unset" and len(slack["signing_secret"]) == 64
    secrets = boto3.client("secretsmanager")
    assert secrets.describe_secret(SecretId=ids["SlackAppSecret"])["ARN"] == ids["SlackAppSecret"]
    link_key = secrets.get_secret_value(SecretId=ids["ApprovalLinkKeySecret"])
    assert len(link_key["SecretString"]) == 64
    # The proxy may read exactly what its watcher reads of an approval.
    statements = TEMPLATE_DOC["Resources"]["ProxyApprovalsPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (watch,) = [s for s in statements if s["Sid"] == "WatchApprovalStatus"]
    assert tuple(watch["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == WATCHED_ATTRIBUTES


def test_provision_is_idempotent(provisioned_stack: StackResources) -> None:  # noqa: F811
    assert provision(TEMPLATE, TEST_STACK, {}) == provisioned_stack


def test_resolver_handles_short_tags() -> None:
    resolver = Resolver(TEMPLATE_DOC, "s", "eu-west-1", "111122223333", {"LogLevel": "DEBUG"})
    resolver.attributes[("B", "Arn")] = "arn:aws:s3:::b"
    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-${LogLevel}-${!Literal}-${B.Arn}"}) == (
        "s-DEBUG-${Literal}-arn:aws:s3:::b"
    )
    assert resolver.resolve({"Fn::Join": ["/", [{"Ref": "AWS::Region"}, "x"]]}) == "eu-west-1/x"
    assert resolver.resolve({"Ref": "RecordingRetentionDays"}) == "365"
    assert resolver.resolve({"A": {"Ref": "AWS::NoValue"}, "B": 1}) == {"B": 1}
    assert TEMPLATE_DOC["Resources"]["ProxyTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0][
        "Resource"
    ] == {"Fn::GetAtt": ["AuthorizeFunction", "Arn"]}


def test_audit_tables_match_template(provisioned_stack: StackResources) -> None:  # noqa: F811
    glue = boto3.client("glue")
    database = provisioned_stack.physical_ids["AuditDatabase"]
    assert database == TEMPLATE_DOC["Parameters"]["AuditDatabaseName"]["Default"]
    for logical_id in ("AuditEventsTable", "AuditSessionsTable"):
        declared = _props(logical_id)["TableInput"]
        table = glue.get_table(DatabaseName=database, Name=declared["Name"])["Table"]
        assert table["StorageDescriptor"]["Columns"] == declared["StorageDescriptor"]["Columns"]
        assert table["PartitionKeys"] == declared["PartitionKeys"]
        bucket = provisioned_stack.physical_ids["SessionsBucket"]
        assert table["StorageDescriptor"]["Location"].startswith(f"s3://{bucket}/")
        assert table["Parameters"]["projection.dt.type"] == "date"

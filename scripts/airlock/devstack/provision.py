"""Create the control plane's data resources from ``template.yaml`` itself, through boto3.

Tables (keys, GSIs, billing, TTL, PITR, SSE), the Object Lock bucket, the KMS signing key and its alias,
SNS topics, Secrets Manager secrets, and the Glue database and tables are created from their own
``Properties``, so the local stack cannot drift from the template (``airlock audit query`` reads the Glue
tables back to run SQL on DuckDB). Athena's workgroup and named queries are not: moto's Athena speaks the
JSON protocol, and botocore now calls Athena over REST-JSON; locally the named queries are read from the
template itself. Whatever endpoint the environment points boto3 at (``AWS_ENDPOINT_URL``) receives them.
Re-running against existing resources is a no-op that returns the same ``StackResources``. Resources the
local stack does not emulate (IAM, ECS, load balancers, ...) are skipped; ``AWS::Serverless::Function``
resources are not created but described, for the local Lambda endpoint, together with their ``HttpApi``
events (routes), for the local HTTP API endpoint.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import boto3
from botocore.exceptions import ClientError

from airlock.devstack.template import Resolver, UnresolvedReference, load_template

_STACK_TAG = "airlock:stack"
_LOGICAL_ID_TAG = "airlock:logical-id"


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    """An ``AWS::Serverless::Function`` as the local Lambda endpoint serves it."""

    logical_id: str
    name: str
    arn: str
    handler: str  # e.g. "app.handler", relative to code_root
    code_root: Path
    memory_mb: int
    timeout_seconds: int
    environment: Mapping[str, str]
    # ``HttpApi`` events: (API logical id, method, path) served by the local HTTP API endpoint.
    http_routes: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StackResources:
    """What ``provision`` created: physical ids (what ``Ref`` gives) and ARNs by logical id."""

    stack_name: str
    region: str
    account_id: str
    physical_ids: Mapping[str, str]
    arns: Mapping[str, str]
    functions: Mapping[str, LambdaFunction]  # by function name
    outputs: Mapping[str, str]  # the template's Outputs that resolve locally

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals environment merged with the function's own, resolved."""
        for function in self.functions.values():
            if function.logical_id == logical_id:
                return dict(function.environment)
        raise KeyError(f"no AWS::Serverless::Function {logical_id} in the template")

    def lambda_functions(self) -> dict[str, str]:
        """Function name -> handler string, for every ``AWS::Serverless::Function``."""
        return {name: function.handler for name, function in self.functions.items()}


def provision(
    template_path: Path | str, stack_name: str, parameters: Mapping[str, str] | None = None
) -> StackResources:
    """Create (or find) every locally emulated resource of the template; return their identifiers."""
    template_path = Path(template_path)
    template = load_template(template_path)
    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    account_id = session.client("sts").get_caller_identity()["Account"]
    resolver = Resolver(template, stack_name, region, account_id, dict(parameters or {}))
    resources: dict[str, Any] = template["Resources"]

    # Keys before aliases, and everything before functions, whose environment refers to the rest.
    for resource_type in _ORDER:
        create = _CREATORS[resource_type]
        for logical_id, resource in resources.items():
            if resource["Type"] == resource_type:
                create(session, resolver, logical_id, resource.get("Properties", {}))

    functions = {
        f.name: f
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for f in [_describe_function(template, template_path.parent, resolver, logical_id, resource)]
    }
    return StackResources(
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        physical_ids=MappingProxyType(dict(resolver.refs)),
        arns=MappingProxyType({lid: arn for (lid, att), arn in resolver.attributes.items() if att == "Arn"}),
        functions=MappingProxyType(functions),
        outputs=MappingProxyType(_outputs(template, resolver)),
    )


# -- DynamoDB


def _table(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    name = p.get("TableName") or f"{r.stack_name}-{logical_id}"
    ddb = session.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": p["AttributeDefinitions"],
        "KeySchema": p["KeySchema"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if key in p:
            request[key] = p[key]
    if "StreamSpecification" in p:
        request["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
    if sse := p.get("SSESpecification"):
        request["SSESpecification"] = {
            "Enabled": sse.get("SSEEnabled", False),
            **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
        }
    try:
        ddb.create_table(**request)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig=cast(Any, {"Delay": 0.1}))
    if (ttl := p.get("TimeToLiveSpecification")) and ttl.get("Enabled"):
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    table = ddb.describe_table(TableName=name)["Table"]
    r.refs[logical_id] = name
    r.attributes[(logical_id, "Arn")] = table["TableArn"]
    if "LatestStreamArn" in table:
        r.attributes[(logical_id, "StreamArn")] = table["LatestStreamArn"]


# -- S3


def _bucket(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    name = p.get("BucketName") or f"{r.stack_name}-{logical_id}-{r.account_id}".lower()
    s3 = session.client("s3")
    request: dict[str, Any] = {"Bucket": name, "ObjectLockEnabledForBucket": bool(p.get("ObjectLockEnabled"))}
    if r.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": r.region}
    try:
        s3.create_bucket(**request)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    if versioning := p.get("VersioningConfiguration"):
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
    if lock := p.get("ObjectLockConfiguration"):
        wanted = _object_lock(lock)
        # Only write a change: moto (unlike S3) refuses any lock configuration once objects exist.
        if not _lock_matches(s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"], wanted):
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=cast(Any, wanted))
    if encryption := p.get("BucketEncryption"):
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration=cast(Any, {
                "Rules": [_encryption_rule(rule) for rule in encryption["ServerSideEncryptionConfiguration"]]
            }),
        )
    if block := p.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    r.refs[logical_id] = name
    r.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
    r.attributes[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"


def _object_lock(lock: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"ObjectLockEnabled": lock.get("ObjectLockEnabled", "Enabled")}
    if retention := lock.get("Rule", {}).get("DefaultRetention"):
        # CloudFormation hands Days/Years over as strings when they come from a parameter.
        config["Rule"] = {"DefaultRetention": {k: (v if k == "Mode" else int(v)) for k, v in retention.items()}}
    return config


def _lock_matches(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    have = current.get("Rule", {}).get("DefaultRetention", {})
    want = wanted.get("Rule", {}).get("DefaultRetention", {})
    return current.get("ObjectLockEnabled") == wanted["ObjectLockEnabled"] and all(
        have.get(k) == v for k, v in want.items()
    )


def _encryption_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
    return out


# -- KMS


def _key(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    kms = session.client("kms")
    key_id = _find_key(kms, r.stack_name, logical_id)
    if key_id is None:
        request: dict[str, Any] = {
            "KeySpec": p.get("KeySpec", "SYMMETRIC_DEFAULT"),
            "KeyUsage": p.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "Tags": [
                {"TagKey": _STACK_TAG, "TagValue": r.stack_name},
                {"TagKey": _LOGICAL_ID_TAG, "TagValue": logical_id},
            ],
        }
        if "Description" in p:
            request["Description"] = p["Description"]
        if "KeyPolicy" in p:
            request["Policy"] = json.dumps(p["KeyPolicy"])
        key_id = kms.create_key(**request)["KeyMetadata"]["KeyId"]
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    r.refs[logical_id] = metadata["KeyId"]
    r.attributes[(logical_id, "Arn")] = metadata["Arn"]
    r.attributes[(logical_id, "KeyId")] = metadata["KeyId"]


def _find_key(kms: Any, stack_name: str, logical_id: str) -> str | None:
    # KMS keys have no name to collide on, so idempotence rests on the tags we put on them.
    wanted = {_STACK_TAG: stack_name, _LOGICAL_ID_TAG: logical_id}
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            tags = kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]
            if wanted.items() <= {t["TagKey"]: t["TagValue"] for t in tags}.items():
                state = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
                if state != "PendingDeletion":
                    return str(key["KeyId"])
    return None


def _alias(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    kms = session.client("kms")
    try:
        kms.create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    except ClientError as e:
        if e.response["Error"]["Code"] != "AlreadyExistsException":
            raise
        kms.update_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    r.refs[logical_id] = p["AliasName"]


# -- SNS


def _topic(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    sns = session.client("sns")
    name = p.get("TopicName") or f"{r.stack_name}-{logical_id}"
    attributes = {
        key: str(p[key]).lower() if isinstance(p[key], bool) else str(p[key])
        for key in ("KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication", "DisplayName")
        if key in p
    }
    arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]  # idempotent by name
    for subscription in p.get("Subscription", []):
        sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
    r.refs[logical_id] = arn
    r.attributes[(logical_id, "TopicArn")] = arn
    r.attributes[(logical_id, "TopicName")] = name


# -- Secrets Manager


def _secret(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    client = session.client("secretsmanager")
    name = p.get("Name") or f"{r.stack_name}/{logical_id}"
    try:
        arn = client.describe_secret(SecretId=name)["ARN"]  # idempotent: never replace a value
    except client.exceptions.ResourceNotFoundException:
        value = _generated(p["GenerateSecretString"]) if "GenerateSecretString" in p else p.get("SecretString")
        request: dict[str, Any] = {"Name": name, "SecretString": value or ""}
        if "Description" in p:
            request["Description"] = p["Description"]
        arn = client.create_secret(**request)["ARN"]
    r.refs[logical_id] = arn  # Ref of a secret is its ARN
    r.attributes[(logical_id, "Id")] = arn


def _generated(spec: Mapping[str, Any]) -> str:
    """What Secrets Manager's GenerateSecretString makes: a random string, or a JSON template with one."""
    password = secrets.token_hex(int(spec.get("PasswordLength", 32)) // 2)
    if "SecretStringTemplate" not in spec:
        return password
    return json.dumps({**json.loads(spec["SecretStringTemplate"]), spec["GenerateStringKey"]: password})


# -- HTTP APIs (described: the local HTTP API endpoint serves their routes)


def _http_api(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    # The API id is what Ref gives; the local stack's endpoint URL replaces the execute-api one.
    r.refs[logical_id] = f"local{logical_id.lower()}"


# -- Glue and Athena (the audit tables and named queries)


def _glue_database(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    glue = session.client("glue")
    try:
        glue.create_database(DatabaseInput=p["DatabaseInput"])
    except ClientError as e:
        if e.response["Error"]["Code"] != "AlreadyExistsException":
            raise
    r.refs[logical_id] = p["DatabaseInput"]["Name"]


def _glue_table(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    p = r.resolve(props)
    glue = session.client("glue")
    try:
        glue.create_table(DatabaseName=p["DatabaseName"], TableInput=p["TableInput"])
    except ClientError as e:
        if e.response["Error"]["Code"] != "AlreadyExistsException":
            raise
        glue.update_table(DatabaseName=p["DatabaseName"], TableInput=p["TableInput"])
    r.refs[logical_id] = p["TableInput"]["Name"]


# -- Lambda (described, not created: the local Lambda endpoint serves them)


def _function_name(session: boto3.session.Session, r: Resolver, logical_id: str, props: Any) -> None:
    name = r.resolve_str(props["FunctionName"]) if "FunctionName" in props else f"{r.stack_name}-{logical_id}"
    r.refs[logical_id] = name
    r.attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{r.region}:{r.account_id}:function:{name}"


def _describe_function(
    template: Mapping[str, Any], base_dir: Path, r: Resolver, logical_id: str, resource: Mapping[str, Any]
) -> LambdaFunction:
    defaults: Mapping[str, Any] = template.get("Globals", {}).get("Function", {})
    props: Mapping[str, Any] = resource.get("Properties", {})

    def setting(key: str, fallback: Any) -> Any:
        return r.resolve(props.get(key, defaults.get(key, fallback)))

    variables = {
        **defaults.get("Environment", {}).get("Variables", {}),
        **props.get("Environment", {}).get("Variables", {}),
    }
    routes = tuple(
        (str(event["Properties"]["ApiId"].get("Ref", "")), str(event["Properties"]["Method"]).upper(),
         str(event["Properties"]["Path"]))
        for event in props.get("Events", {}).values()
        if event.get("Type") == "HttpApi"
    )  # fmt: skip
    return LambdaFunction(
        logical_id=logical_id,
        name=r.refs[logical_id],
        arn=r.attributes[(logical_id, "Arn")],
        handler=str(setting("Handler", "app.handler")),
        code_root=(base_dir / str(setting("CodeUri", "."))).resolve(),
        memory_mb=int(setting("MemorySize", 128)),
        timeout_seconds=int(setting("Timeout", 3)),
        environment=MappingProxyType({k: r.resolve_str(v) for k, v in variables.items()}),
        http_routes=routes,
    )


def _outputs(template: Mapping[str, Any], r: Resolver) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for name, output in template.get("Outputs", {}).items():
        try:
            outputs[name] = r.resolve_str(output["Value"])
        except UnresolvedReference:
            continue  # e.g. the load balancer's DNS name: not part of the local stack
    return outputs


_Creator = Callable[[boto3.session.Session, Resolver, str, Any], None]
_CREATORS: dict[str, _Creator] = {
    "AWS::KMS::Key": _key,
    "AWS::KMS::Alias": _alias,
    "AWS::DynamoDB::Table": _table,
    "AWS::S3::Bucket": _bucket,
    "AWS::SNS::Topic": _topic,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::Serverless::HttpApi": _http_api,
    "AWS::Glue::Database": _glue_database,
    "AWS::Glue::Table": _glue_table,
    "AWS::Serverless::Function": _function_name,
}
_ORDER = tuple(_CREATORS)

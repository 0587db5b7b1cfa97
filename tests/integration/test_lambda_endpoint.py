"""The local Lambda endpoint, driven by boto3's real Lambda client over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from airlock.devstack.aws import MotoEndpoint
from airlock.devstack.lambda_endpoint import LambdaEndpoint, start_lambda_endpoint
from airlock.devstack.provision import provision
from tests.integration.devstack_fixtures import moto_endpoint  # noqa: F401

pytestmark = pytest.mark.stack

ECHO_TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "echo_template.yaml"
STACK = "echo-test"


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: MotoEndpoint) -> Iterator[LambdaEndpoint]:  # noqa: F811
    resources = provision(ECHO_TEMPLATE, STACK)
    running = start_lambda_endpoint(resources)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def lambda_client(endpoint: LambdaEndpoint) -> Any:
    return boto3.client("lambda", endpoint_url=endpoint.url)


def test_request_response_returns_the_handler_result(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName=f"{STACK}-echo", Payload=json.dumps({"hello": "world"}))
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["event"] == {"hello": "world"}
    assert result["function_name"] == f"{STACK}-echo"
    assert result["invoked_function_arn"].endswith(f":function:{STACK}-echo")
    assert result["memory_limit_in_mb"] == 256
    assert 0 < result["remaining_ms"] <= 5000
    assert result["aws_request_id"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    # The template's environment, resolved against the provisioned stack, is the handler's environment.
    assert result["greeting"] == f"hello from {STACK}"
    assert result["table"] == f"{STACK}-echo"


def test_function_arn_is_accepted(lambda_client: Any) -> None:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{STACK}-echo"
    response = lambda_client.invoke(FunctionName=arn, Payload=b"{}")
    assert json.loads(response["Payload"].read())["event"] == {}


def test_handler_exception_is_an_unhandled_function_error(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName=f"{STACK}-echo", Payload=json.dumps({"raise": "boom"}))
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorMessage"] == "boom"
    assert error["errorType"] == "ValueError"
    assert any("echo_function/app.py" in frame for frame in error["stackTrace"])


def test_unserialisable_result_is_a_marshal_error(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName=f"{STACK}-echo", Payload=json.dumps({"unserialisable": True}))
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.MarshalError"


def test_missing_handler_module_is_an_import_error(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName=f"{STACK}-missing", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.ImportModuleError"


def test_timeout_is_reported_like_lambda(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName=f"{STACK}-slow", Payload=json.dumps({"sleep": 1.5}))
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(response["Payload"].read())["errorMessage"]


def test_event_invocation_is_accepted(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName=f"{STACK}-echo", InvocationType="Event", Payload=b"{}")
    assert response["StatusCode"] == 202


def test_unknown_function_is_resource_not_found(lambda_client: Any) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="no-such-function", Payload=b"{}")


def test_aws_endpoint_url_lambda_routes_plain_clients(endpoint: LambdaEndpoint, monkeypatch: Any) -> None:
    # The proxy never passes endpoint_url: the environment alone sends lambda.invoke to the local endpoint.
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint.url)
    client = boto3.session.Session().client("lambda")
    response = client.invoke(FunctionName=f"{STACK}-echo", Payload=b'{"via": "env"}')
    assert json.loads(response["Payload"].read())["event"] == {"via": "env"}

"""Session-scoped fixtures for the local stack; import them from a conftest.py.

``moto_endpoint`` starts moto over HTTP and points this process's boto3 at it (``AWS_ENDPOINT_URL`` and
dummy credentials) for the rest of the session; ``provisioned_stack`` provisions ``template.yaml``
there; ``embedded_pg`` is a running embedded PostgreSQL with SCRAM over TCP; ``demo_database`` seeds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.devstack.aws import MotoEndpoint, aws_env, start_moto
from airlock.devstack.demo_data import DemoDatabase, seed_demo
from airlock.devstack.postgres import EmbeddedPostgres
from airlock.devstack.provision import StackResources, provision

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
TEST_STACK = "airlock-test"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    endpoint = start_moto()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in aws_env(endpoint.url).items():
            patch.setenv(key, value)
        # boto3's default session caches credentials and config from before the patch.
        import boto3

        boto3.DEFAULT_SESSION = None
        try:
            yield endpoint
        finally:
            boto3.DEFAULT_SESSION = None
            endpoint.stop()


@pytest.fixture(scope="session")
def provisioned_stack(moto_endpoint: MotoEndpoint) -> StackResources:
    return provision(TEMPLATE, TEST_STACK, {})


@pytest.fixture(scope="session")
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def demo_database(embedded_pg: EmbeddedPostgres) -> DemoDatabase:
    return seed_demo(embedded_pg.dsn())


__all__ = ["demo_database", "embedded_pg", "moto_endpoint", "provisioned_stack"]

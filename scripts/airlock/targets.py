"""``airlock targets``: store a target's credential, and check a target the way the proxy reaches it.

A target is declared in the policy file (host, port, TLS mode, databases, and the Secrets Manager secret
holding the backend credential); the file stays the one source of truth, reviewed and pushed as a whole.
So ``targets add`` never edits a policy: it checks the connection (unless told not to), stores the
credential in the documented form ``{"username": ..., "password": ...}``, and prints the target's entry
for the policy file. ``targets check`` connects exactly as a session does (the proxy's own secret
reader, TLS negotiation and authentication code) and names the first thing that fails: the secret, DNS,
TCP, TLS (verification included), authentication, or a database that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml

from proxy.credentials import BackendCredential, CredentialCache, CredentialError
from proxy.pg.backend import BackendError, connect_backend, open_backend_stream
from shared.controlplane import BackendRef, BackendTLS
from shared.pg.wire import messages as m
from shared.pg.wire.constants import PROTOCOL_3_0
from shared.policy import TargetSpec

from .admin import AdminError

SECRET_PREFIX = "airlock/targets/"
APPLICATION_NAME = "airlock targets check"


def default_secret_id(target: str) -> str:
    return SECRET_PREFIX + target


# ---------------------------------------------------------------------- credentials


def read_credential(user: str | None, from_env: str | None, from_file: Path | None) -> BackendCredential:
    """The backend credential from an environment variable or a file, never from the command line (where
    any user of the machine could read it). A file holds the password alone, or the documented JSON."""
    if from_env is not None:
        password = os.environ.get(from_env)
        if password is None:
            raise AdminError(f"environment variable {from_env} is not set")
        text = password
    elif from_file is not None:
        try:
            text = from_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise AdminError(f"cannot read {from_file}: {e.strerror}") from e
    else:
        raise AdminError("give the credential with --credential-from-env VAR or --credential-file PATH")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            documented = BackendCredential(str(data["username"]), str(data["password"]))
        except (ValueError, KeyError, TypeError) as e:
            raise AdminError('a JSON credential must be {"username": ..., "password": ...}') from e
        if user is not None and user != documented.username:
            raise AdminError(f"--user {user} differs from the credential's username {documented.username}")
        return documented
    if not user:
        raise AdminError("--user is needed when the credential is a password alone")
    if not text:
        raise AdminError("the password is empty")
    return BackendCredential(user, text)


def store_credential(secret_id: str, credential: BackendCredential) -> str:
    """Create the secret, or add a version to an existing one; returns "created" or "updated"."""
    value = json.dumps({"username": credential.username, "password": credential.password})
    client = boto3.client("secretsmanager")
    try:
        try:
            client.create_secret(Name=secret_id, SecretString=value)
            return "created"
        except client.exceptions.ResourceExistsException:
            client.put_secret_value(SecretId=secret_id, SecretString=value)
            return "updated"
    except Exception as e:
        raise AdminError(f"storing secret {secret_id!r}: {_aws_reason(e)}") from e


def _aws_reason(e: Exception) -> str:
    error = getattr(e, "response", {}).get("Error", {})
    return f"{error.get('Code')}: {error.get('Message')}" if error else f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------- the policy entry


class _Literal(str):
    """A string YAML writes as a block (``|``): PEM bundles stay readable."""


class _EntryDumper(yaml.SafeDumper):
    pass


_EntryDumper.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|"))


def policy_entry(name: str, target: TargetSpec) -> str:
    """The target's entry for the policy file's ``targets:`` section."""
    spec: dict[str, Any] = target.model_dump(mode="json", exclude_defaults=False)
    if spec["tls_ca_pem"] is None:
        del spec["tls_ca_pem"]
    else:
        spec["tls_ca_pem"] = _Literal(spec["tls_ca_pem"])
    text: str = yaml.dump({"targets": {name: spec}}, Dumper=_EntryDumper, sort_keys=False)
    return text


# ---------------------------------------------------------------------- check


@dataclass(frozen=True, slots=True)
class Step:
    stage: str  # secret, dns, tcp, tls, login
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'ok' if self.ok else 'FAIL':<5} {self.stage:<7} {self.detail}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    steps: list[Step]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failure(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)


def check(
    target: TargetSpec,
    databases: Iterable[str],
    *,
    credential: BackendCredential | None = None,
    timeout: float = 10.0,
) -> CheckResult:
    """``check_target`` for the command line (its own event loop)."""
    return asyncio.run(check_target(target, databases, credential=credential, timeout=timeout))


async def check_target(
    target: TargetSpec,
    databases: Iterable[str],
    *,
    credential: BackendCredential | None = None,
    timeout: float = 10.0,
) -> CheckResult:
    """Reach ``target`` as a session would, one stage at a time, stopping at the first that fails
    (each database is logged into in turn). ``credential`` None: read it from the target's secret."""
    steps: list[Step] = []
    if credential is None:
        try:
            credential = await CredentialCache(ttl_seconds=0).get(target.credential_secret)
        except CredentialError as e:
            return CheckResult([Step("secret", False, str(e))])
        steps.append(Step("secret", True, f"{target.credential_secret}: credential for user {credential.username}"))
    for step in (_dns, _tcp, _tls):
        outcome = await step(target, timeout)
        steps.append(outcome)
        if not outcome.ok:
            return CheckResult(steps)
    for database in databases:
        steps.append(await _login(target.backend_ref(database), credential, timeout))
    return CheckResult(steps)


async def _dns(target: TargetSpec, timeout: float) -> Step:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM), timeout)
    except (OSError, TimeoutError) as e:
        return Step("dns", False, f"cannot resolve {target.host}: {e}")
    addresses = sorted({str(info[4][0]) for info in infos})
    return Step("dns", True, f"{target.host} -> {', '.join(addresses)}")


async def _tcp(target: TargetSpec, timeout: float) -> Step:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), timeout)
    except TimeoutError:
        return Step("tcp", False, f"no answer from {target.host}:{target.port} within {timeout:g}s (firewall?)")
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        return Step("tcp", False, f"cannot connect to {target.host}:{target.port}: {reason}")
    writer.close()
    return Step("tcp", True, f"connected to {target.host}:{target.port}")


async def _tls(target: TargetSpec, timeout: float) -> Step:
    """The proxy's own TLS negotiation (SSLRequest, then the handshake the policy's mode asks for)."""
    try:
        _, writer, tls = await open_backend_stream(target.backend_ref(target.databases[0]), timeout)
    except BackendError as e:
        cause = e.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Step("tls", False, f"certificate verification failed ({target.tls.value}): {cause.verify_message}")
        if isinstance(cause, ssl.SSLError):
            return Step("tls", False, f"TLS handshake failed ({target.tls.value}): {cause.reason or cause}")
        if cause is None:  # the server answered SSLRequest with 'N'
            return Step("tls", False, f"the server does not offer TLS, which tls: {target.tls.value} requires")
        return Step("tls", False, str(e))
    ssl_object = writer.get_extra_info("ssl_object")
    writer.close()
    if target.tls is BackendTLS.DISABLE:
        return Step("tls", True, "not encrypted (tls: disable)")
    if not tls:
        return Step("tls", True, "not encrypted: the server does not offer TLS, which tls: prefer allows")
    verified = {
        BackendTLS.VERIFY_FULL: f"certificate verified for {target.host}",
        BackendTLS.VERIFY_CA: "certificate chain verified (the name is not checked: verify-ca)",
    }.get(target.tls, "certificate not verified (require/prefer)")
    return Step("tls", True, f"{ssl_object.version()}, {verified}")


async def _login(ref: BackendRef, credential: BackendCredential, timeout: float) -> Step:
    """The proxy's own start-up and authentication, as a session's backend login."""
    try:
        conn = await connect_backend(
            ref, credential, {"application_name": APPLICATION_NAME}, PROTOCOL_3_0, timeout=timeout, max_message=1 << 20
        )
    except BackendError as e:
        code = e.server_fields.get("C", "")
        server_says = e.server_fields.get("M", "")
        if code == "3D000":
            return Step("login", False, f"database {ref.database!r} does not exist on {ref.host}:{ref.port}")
        if code.startswith("28"):
            return Step(
                "login",
                False,
                f"the server refused user {credential.username!r} for database {ref.database!r} ({code}: "
                f"{server_says}): the password is wrong, or pg_hba.conf does not let this user in",
            )
        if code:
            return Step("login", False, f"database {ref.database!r}: the server said {code}: {server_says}")
        return Step("login", False, f"database {ref.database!r}: {e}")
    status = dict(m.parse_parameter_status(whole[5:]) for whole in conn.greeting if whole[:1] == b"S")
    conn.writer.write(m.frame(b"X", b""))
    conn.writer.close()
    version = status.get("server_version", "?")
    return Step(
        "login",
        True,
        f"database {ref.database!r} as {credential.username} ({conn.auth_mechanism}), PostgreSQL {version}",
    )

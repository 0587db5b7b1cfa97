"""``airlock kubeconfig``, ``airlock token`` and ``airlock dev kubeconfig``: kubectl through Airlock.

A kubeconfig from ``airlock kubeconfig IDENTITY`` names the gateway as the cluster's server, with the
cluster and the identity in the path (``https://<gateway>/targets/<cluster>/identities/<identity>``), and
authenticates with an exec plugin: client-go runs ``airlock token IDENTITY --exec-credential`` and sends
the token it prints (a client.authentication.k8s.io/v1 ExecCredential, with the token's expiry so clients
ask again in time). ``--static-token`` writes the token itself instead (for clients without exec plugins;
it stops working when the token expires). kubectl, client-go programs, the Python ``kubernetes`` client,
Helm and k9s read such a kubeconfig unchanged.

Where ``airlock token`` finds the token: ``--token-file`` (or ``AIRLOCK_TOKEN_FILE``: a CI system's OIDC
token file, an Airlock key file), ``AIRLOCK_TOKEN``, and otherwise the local stack, which mints one for
its demo identities.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .environment import load_stack

EXEC_API_VERSION = "client.authentication.k8s.io/v1"


def register(commands: Any, dev: Any) -> None:
    """Add ``kubeconfig`` and ``token`` to ``airlock``, and ``kubeconfig`` to ``airlock dev``."""
    kubeconfig = commands.add_parser("kubeconfig", help="print a kubeconfig that reaches a cluster through Airlock")
    kubeconfig.add_argument("identity")
    kubeconfig.add_argument("--target", help="the cluster (a kubernetes target of the policy)")
    kubeconfig.add_argument("--server", help="the gateway's URL (default: the local stack's)")
    kubeconfig.add_argument("--ca", type=Path, help="CA bundle that signs the gateway's certificate")
    kubeconfig.add_argument("--namespace", default="default")
    kubeconfig.add_argument("--static-token", action="store_true",
                            help="embed the token instead of running `airlock token` when kubectl needs one")
    kubeconfig.add_argument("--token-file", type=Path, help="where `airlock token` reads the token")
    kubeconfig.set_defaults(func=print_kubeconfig)

    token = commands.add_parser("token", help="print an identity's token (for kubectl: an ExecCredential)")
    token.add_argument("identity")
    token.add_argument("--exec-credential", action="store_true",
                       help=f"print a {EXEC_API_VERSION} ExecCredential (what a kubeconfig's exec plugin reads)")
    token.add_argument("--token-file", type=Path, default=os.environ.get("AIRLOCK_TOKEN_FILE") or None)
    token.add_argument("--ttl", type=int, default=900, help="local stack only: lifetime of a minted token")
    token.set_defaults(func=print_token)

    dev_kubeconfig = dev.add_parser("kubeconfig", help="write a kubeconfig for a demo identity")
    dev_kubeconfig.add_argument("identity")
    dev_kubeconfig.add_argument("--target")
    dev_kubeconfig.add_argument("--output", type=Path, help="default: <state dir>/kube/<identity>.kubeconfig")
    dev_kubeconfig.add_argument("--static-token", action="store_true")
    dev_kubeconfig.add_argument("--namespace", default="default")
    dev_kubeconfig.set_defaults(func=write_dev_kubeconfig)


# ---------------------------------------------------------------------- tokens


def identity_token(state_dir: Path, identity: str, token_file: Path | None = None, ttl: int = 900) -> str:
    """The token to present for ``identity`` (see the module docstring for where it comes from)."""
    if token_file is not None:
        return token_file.read_text().strip()
    if os.environ.get("AIRLOCK_TOKEN"):
        return os.environ["AIRLOCK_TOKEN"].strip()
    if (state_dir / "stack.json").exists():
        from .cli import mint_dev_token

        return mint_dev_token(state_dir, identity, ttl_seconds=ttl)
    sys.exit("airlock: no token: pass --token-file or set AIRLOCK_TOKEN (or run the local stack)")


def exec_credential(token: str) -> dict[str, Any]:
    """The ExecCredential client-go reads; it expires with the token (an OIDC token's ``exp``)."""
    status: dict[str, Any] = {"token": token}
    expiry = token_expiry(token)
    if expiry is not None:
        status["expirationTimestamp"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": status}


def token_expiry(token: str) -> datetime | None:
    """A JWT's ``exp`` (read, not verified: the gateway verifies), 30 s early; None for Airlock keys."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(float(claims["exp"]) - 30, UTC)
    except (ValueError, KeyError, TypeError):
        return None


def print_token(args: argparse.Namespace) -> None:
    token = identity_token(args.state_dir, args.identity, args.token_file, args.ttl)
    print(json.dumps(exec_credential(token)) if args.exec_credential else token)


# ---------------------------------------------------------------------- kubeconfigs


def kubeconfig(identity: str, *, server: str, target: str, ca: Path | None, namespace: str = "default",
               token: str | None = None, token_command: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A kubeconfig for ``identity`` on ``target`` through the gateway at ``server``."""
    cluster: dict[str, Any] = {"server": f"{server.rstrip('/')}/targets/{target}/identities/{identity}"}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    user: dict[str, Any]
    if token is not None:
        user = {"token": token}
    else:
        assert token_command
        user = {"exec": {"apiVersion": EXEC_API_VERSION, "command": token_command[0], "args": token_command[1:],
                         "interactiveMode": "Never", "provideClusterInfo": False}}  # fmt: skip
    name = f"airlock-{target}-{identity}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"airlock-{target}", "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": f"airlock-{target}", "user": name, "namespace": namespace}}],
        "current-context": name,
    }


def token_command(state_dir: Path, identity: str, token_file: Path | None) -> list[str]:
    """How the exec plugin runs ``airlock token``: the installed command, else this Python."""
    program = shutil.which("airlock")
    command = [program] if program else [sys.executable, "-m", "airlock.cli"]
    command += ["--state-dir", str(state_dir.resolve()), "token", identity, "--exec-credential"]
    if token_file is not None:
        command += ["--token-file", str(token_file.resolve())]
    return command


def _local(args: argparse.Namespace) -> tuple[str, str, Path | None]:
    """(server, target, CA) from the flags, else from the running local stack."""
    if getattr(args, "server", None):
        if not args.target:
            sys.exit("airlock: --server needs --target (the cluster's name in the policy)")
        return args.server, args.target, args.ca
    info = load_stack(args.state_dir)
    kube = info.get("kubernetes")
    if not kube:
        sys.exit("airlock: the local stack runs no Kubernetes gateway (started with --no-kube?)")
    return kube["server"], args.target or kube["target"], getattr(args, "ca", None) or Path(kube["ca"])


def build(args: argparse.Namespace) -> dict[str, Any]:
    server, target, ca = _local(args)
    token_file = getattr(args, "token_file", None)
    if args.static_token:
        return kubeconfig(args.identity, server=server, target=target, ca=ca, namespace=args.namespace,
                          token=identity_token(args.state_dir, args.identity, token_file))  # fmt: skip
    return kubeconfig(args.identity, server=server, target=target, ca=ca, namespace=args.namespace,
                      token_command=token_command(args.state_dir, args.identity, token_file))  # fmt: skip


def print_kubeconfig(args: argparse.Namespace) -> None:
    print(yaml.safe_dump(build(args), sort_keys=False), end="")


def write_dev_kubeconfig(args: argparse.Namespace) -> None:
    path = args.output or args.state_dir / "kube" / f"{args.identity}.kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(build(args), sort_keys=False))
    print(f"{path}\n  KUBECONFIG={path} kubectl get pods")

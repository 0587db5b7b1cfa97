"""``airlock``: the command line for the local stack, policies and identities."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from . import approvals_cli, kube_cli, sessions_cli, targets_cli
from .audit import cli as audit_cli
from .environment import load_stack, use_local_stack

DEFAULT_STATE = Path(os.environ.get("AIRLOCK_STATE_DIR", ".airlock"))


# ---------------------------------------------------------------------- dev


def dev_up(args: argparse.Namespace) -> None:
    from .devstack.stack import DevStack

    stack = DevStack(args.state_dir, proxy_port=args.proxy_port, grant_ttl_seconds=args.grant_ttl,
                     kube_standin=not args.no_kube, kube_port=args.kube_port)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        info = stack.start()
        port = info["proxy"]["port"]
        print(f"""
Airlock local stack is up (Ctrl-C or `airlock dev down` stops it).
  proxy        127.0.0.1:{port}  (TLS; dev CA in {info['tls_ca']})
  target       {info['target']['host']}:{info['target']['port']} (embedded PostgreSQL, database demo)
  AWS          {info['aws_endpoint']}   Lambda {info['lambda_endpoint']}   OIDC {info['oidc_issuer']}
  Slack        {info['slack']['url']} (stand-in, channel {info['slack']['channel']})   HTTP API {info['http_api']}
Connect as the nightly CI job:
  psql "host=127.0.0.1 port={port} dbname=demo user=ci-nightly sslmode=require password=$(airlock dev token ci-nightly)"
or in one step:  airlock dev psql ci-nightly      (also: contractor)
Held statements (e.g. DELETE FROM customers WHERE id = 42):  airlock dev approvals
  then:  airlock dev approvals click <apr_...> approve      (or: airlock approvals approve <apr_...> --as U0DEMODANA)
Offboard the contractor:  airlock identity revoke contractor
""", flush=True)
        if "kubernetes" in info:
            standin, gateway = info["kube_standin"], info["kubernetes"]
            print(f"Kubernetes API gateway: {gateway['server']} (cluster {gateway['target']}: the local Kubernetes "
                  f"API stand-in at {standin['server']}, not a real cluster)\n"
                  "  airlock dev kubeconfig deployer      (then KUBECONFIG=<that file> kubectl get pods -A)\n"
                  "  also: analyst (read-only), contractor (namespace default)\n", flush=True)
        while not stopping:
            if stack.proxy is not None and stack.proxy.poll() is not None:
                print(f"airlock: proxy exited with {stack.proxy.returncode}; see {args.state_dir}/proxy.log")
                break
            time.sleep(0.5)
    finally:
        print("airlock: stopping the local stack", flush=True)
        stack.stop()


def dev_down(args: argparse.Namespace) -> None:
    info = load_stack(args.state_dir)
    pid = int(info["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        (args.state_dir / "stack.json").unlink(missing_ok=True)
        print("airlock: the local stack was not running")
        return
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("airlock: local stack stopped")
            return
        time.sleep(0.1)
    sys.exit("airlock: the local stack did not stop within 30s")


def dev_token(args: argparse.Namespace) -> None:
    print(mint_dev_token(args.state_dir, args.identity, ttl_seconds=args.ttl))


def mint_dev_token(state_dir: Path, identity: str, ttl_seconds: int = 900) -> str:
    """A valid token for a demo identity: an OIDC JWT from the local issuer, or its Airlock key."""
    import yaml

    from airlock.oidc_issuer import IssuerKeys

    info = load_stack(state_dir)
    policy = yaml.safe_load((state_dir / "policy.yaml").read_text())
    spec = policy.get("identities", {}).get(identity)
    if spec is None:
        sys.exit(f"airlock: {identity!r} is not an identity of the local stack's policy")
    if spec.get("oidc"):
        oidc = spec["oidc"]
        subject = oidc["subject"] if isinstance(oidc["subject"], str) else oidc["subject"][0]
        keys = IssuerKeys(state_dir / "issuer")
        return keys.mint(info["oidc_issuer"], subject, oidc["audience"], ttl_seconds, oidc.get("claims"))
    key_file = state_dir / "keys" / identity
    if not key_file.exists():
        sys.exit(f"airlock: no key was issued for {identity!r} in this local stack")
    return key_file.read_text().strip()


def dev_psql(args: argparse.Namespace) -> None:
    import subprocess

    from .devstack.postgres import EmbeddedPostgres
    from .devstack.tunnel import TlsTunnel

    info = load_stack(args.state_dir)
    token = mint_dev_token(args.state_dir, args.identity)
    psql = os.environ.get("AIRLOCK_PSQL") or info["psql"]
    env = {**os.environ, "PGPASSWORD": token}
    host, port, sslmode = info["proxy"]["host"], info["proxy"]["port"], "require"
    tunnel = None
    if Path(psql).is_relative_to(EmbeddedPostgres.bin_dir):
        # The wheel's psql has no SSL: reach the proxy through a loopback TLS tunnel.
        tunnel = TlsTunnel(host, port, Path(info["tls_ca"]))
        host, port, sslmode = "127.0.0.1", tunnel.start(), "disable"
    conninfo = f"host={host} port={port} dbname={info['database']} user={args.identity} sslmode={sslmode}"
    try:
        code = subprocess.call([psql, conninfo, *args.psql_args], env=env)
    finally:
        if tunnel is not None:
            tunnel.stop()
    sys.exit(code)


# ---------------------------------------------------------------------- control plane


def policy_push(args: argparse.Namespace) -> None:
    from . import admin

    use_local_stack(args.state_dir)
    version = admin.push_policy(Path(args.file), warn=lambda problem: print(f"warning: {problem}", file=sys.stderr))
    print(f"policy pushed: version {version}")
    for warning in admin.policy_warnings(Path(args.file)):
        print(f"warning: {warning}", file=sys.stderr)


def identity_revoke(args: argparse.Namespace) -> None:
    from . import admin

    use_local_stack(args.state_dir)
    admin.revoke_identity(args.name, args.reason)
    print(f"identity {args.name} revoked: new sessions are refused, live sessions end at their next renewal")


def identity_reinstate(args: argparse.Namespace) -> None:
    from . import admin

    use_local_stack(args.state_dir)
    admin.reinstate_identity(args.name)
    print(f"identity {args.name} reinstated")


def keys_issue(args: argparse.Namespace) -> None:
    from . import admin

    use_local_stack(args.state_dir)
    print(admin.issue_key(args.identity, ttl_days=args.ttl_days))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airlock", description="Airlock: the gateway between agents and data")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="local stack state (default .airlock)")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="the local stack").add_subparsers(dest="dev_command", required=True)
    up = dev.add_parser("up", help="start the whole local stack in the foreground")
    up.add_argument("--proxy-port", type=int, default=int(os.environ.get("AIRLOCK_DEV_PROXY_PORT", "6543")))
    up.add_argument("--grant-ttl", type=int, default=300, help="grant lifetime in seconds for the demo bindings")
    up.add_argument("--kube-port", type=int, default=int(os.environ.get("AIRLOCK_DEV_KUBE_PORT", "6443")),
                    help="the proxy's Kubernetes API gateway port (0: any free one)")
    up.add_argument("--no-kube", action="store_true",
                    help="run neither the local Kubernetes API stand-in nor the proxy's Kubernetes gateway")
    up.add_argument("--kube-standin", action="store_true", help=argparse.SUPPRESS)  # the default now
    up.set_defaults(func=dev_up)
    dev.add_parser("down", help="stop the local stack").set_defaults(func=dev_down)
    token = dev.add_parser("token", help="print a valid token for a demo identity")
    token.add_argument("identity")
    token.add_argument("--ttl", type=int, default=900)
    token.set_defaults(func=dev_token)
    psql = dev.add_parser("psql", help="psql through the proxy as a demo identity")
    psql.add_argument("identity")
    psql.add_argument("psql_args", nargs=argparse.REMAINDER)
    psql.set_defaults(func=dev_psql)

    policy = commands.add_parser("policy", help="policies").add_subparsers(dest="policy_command", required=True)
    push = policy.add_parser("push", help="validate a policy file and make it the new version")
    push.add_argument("file")
    push.set_defaults(func=policy_push)

    identity = commands.add_parser("identity", help="identities").add_subparsers(dest="identity_command",
                                                                               required=True)
    revoke = identity.add_parser("revoke", help="revoke an identity: refuse new sessions, end live ones")
    revoke.add_argument("name")
    revoke.add_argument("--reason", default="revoked by an administrator")
    revoke.set_defaults(func=identity_revoke)
    reinstate = identity.add_parser("reinstate", help="lift a revocation")
    reinstate.add_argument("name")
    reinstate.set_defaults(func=identity_reinstate)

    keys = commands.add_parser("keys", help="Airlock-issued keys").add_subparsers(dest="keys_command", required=True)
    issue = keys.add_parser("issue", help="issue a key for an identity (printed once, stored as a hash)")
    issue.add_argument("identity")
    issue.add_argument("--ttl-days", type=int, default=30)
    issue.set_defaults(func=keys_issue)
    sessions_cli.register(commands)
    approvals_cli.register(commands, dev)
    targets_cli.register(commands)
    audit_cli.register(commands)
    kube_cli.register(commands, dev)
    return parser


def main(argv: list[str] | None = None) -> None:
    from .admin import AdminError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AdminError as e:
        sys.exit(f"airlock: {e}")


if __name__ == "__main__":
    main()

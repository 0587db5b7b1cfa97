"""``airlock targets add|check``: the command line over ``airlock.targets`` (see there for what each does)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment import use_local_stack

if TYPE_CHECKING:
    from shared.policy import TargetSpec

    from .targets import CheckResult

TLS_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"]


def register(commands: Any) -> None:
    """Add ``targets add`` and ``targets check`` to the ``airlock`` command parser."""
    targets = commands.add_parser("targets", help="targets: their credentials and reachability").add_subparsers(
        dest="targets_command", required=True
    )
    add = targets.add_parser(
        "add",
        help="check a target as the proxy would, store its credential, print its policy entry",
        description="Checks the connection as the proxy would, stores the backend credential in Secrets Manager as "
        'the documented JSON {"username", "password"}, and prints the target\'s entry for the policy file. It '
        "never edits a policy: the policy file stays the source of truth (add the entry, then `airlock policy "
        "push FILE`).",
    )
    add.add_argument("name")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int, default=5432)
    add.add_argument("--database", action="append", required=True, help="a database the target serves (repeat)")
    add.add_argument("--user", help="the backend role (unless the credential file holds the JSON form)")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--credential-from-env", metavar="VAR", help="the password is in this environment variable")
    source.add_argument(
        "--credential-file", type=Path, metavar="PATH", help='a file holding the password, or {"username", "password"}'
    )
    add.add_argument("--tls", default="prefer", choices=TLS_MODES)
    add.add_argument("--tls-ca-file", type=Path, help="PEM bundle to verify the server with (verify-ca, verify-full)")
    add.add_argument(
        "--secret-id", help="Secrets Manager secret (default: the pushed policy's, else airlock/targets/NAME)"
    )
    add.add_argument("--no-check", action="store_true", help="store without connecting first")
    add.add_argument("--timeout", type=float, default=10.0, help="seconds per connection step (default 10)")
    add.set_defaults(func=targets_add)

    check = targets.add_parser("check", help="connect to a target as the proxy would and say what is wrong")
    check.add_argument("name")
    check.add_argument("--database", action="append", help="check only this database (repeat; default: all)")
    check.add_argument("--policy", type=Path, help="take the target from this file instead of the pushed policy")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds per connection step (default 10)")
    check.set_defaults(func=targets_check)


def targets_add(args: argparse.Namespace) -> None:
    from . import admin, targets

    use_local_stack(args.state_dir)
    credential = targets.read_credential(args.user, args.credential_from_env, args.credential_file)
    pushed = admin.latest_policy()
    known = pushed.targets.get(args.name) if pushed is not None else None
    # A target the pushed policy already has keeps its secret (this is a rotation); else the convention.
    secret_id = args.secret_id or (known.credential_secret if known else targets.default_secret_id(args.name))
    spec = _spec(args, secret_id)
    if not args.no_check:
        print(f"checking {args.name} ({spec.host}:{spec.port}, tls {spec.tls.value}) as the proxy would:")
        failed = _report(targets.check(spec, spec.databases, credential=credential, timeout=args.timeout))
        if failed:
            raise admin.AdminError(
                f"the credential was not stored: {failed} failed (run this where the proxy runs, or add --no-check "
                "to store it anyway)"
            )
    outcome = targets.store_credential(secret_id, credential)
    print(f"credential for {args.name} stored in Secrets Manager secret {secret_id} ({outcome})")
    if known == spec:
        print(f"the pushed policy has target {args.name} as given: sessions use the new credential once the "
              "proxies' credential cache expires (credential_cache_seconds)")  # fmt: skip
        return
    print("\nAdd this entry to the policy file's targets (this command does not edit the policy), bind "
          "identities to it, then run `airlock policy push FILE`:\n")  # fmt: skip
    print(targets.policy_entry(args.name, spec), end="")


def targets_check(args: argparse.Namespace) -> None:
    from shared.policy import PolicyError, parse_policy

    from . import admin, targets

    use_local_stack(args.state_dir)
    if args.policy is not None:
        try:
            policy = parse_policy(args.policy.read_text(encoding="utf-8"))
        except OSError as e:
            raise admin.AdminError(f"cannot read {args.policy}: {e.strerror}") from e
        except PolicyError as e:
            raise admin.AdminError(f"{args.policy}: {e}") from e
        source = str(args.policy)
    else:
        pushed = admin.latest_policy()
        if pushed is None:
            raise admin.AdminError("no policy has been pushed: push one, or check a file's target with --policy FILE")
        policy, source = pushed, "the pushed policy"
    spec = policy.targets.get(args.name)
    if spec is None:
        raise admin.AdminError(f"{source} has no target {args.name!r} (it has: {', '.join(sorted(policy.targets))})")
    from shared.policy import TargetSpec

    if not isinstance(spec, TargetSpec):
        raise admin.AdminError(f"target {args.name!r} is a {spec.engine} target; `targets check` checks PostgreSQL")
    print(f"target {args.name} from {source}: {spec.host}:{spec.port}, tls {spec.tls.value}, "
          f"secret {spec.credential_secret}")  # fmt: skip
    failed = _report(targets.check(spec, args.database or spec.databases, timeout=args.timeout))
    if failed:
        raise admin.AdminError(f"target {args.name} cannot be reached as the proxy reaches it: {failed} failed")
    print(f"target {args.name}: ready")


def _spec(args: argparse.Namespace, secret_id: str) -> TargetSpec:
    from pydantic import ValidationError

    from shared.policy import TargetSpec

    from .admin import AdminError

    try:
        ca_pem = args.tls_ca_file.read_text(encoding="utf-8") if args.tls_ca_file else None
    except OSError as e:
        raise AdminError(f"cannot read {args.tls_ca_file}: {e.strerror}") from e
    try:
        return TargetSpec(host=args.host, port=args.port, credential_secret=secret_id, tls=args.tls,
                          tls_ca_pem=ca_pem, databases=args.database)  # fmt: skip
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise AdminError(f"target {args.name!r}: {problems}") from e


def _report(result: CheckResult) -> str | None:
    """Print each step; the stage that failed, if any."""
    for step in result.steps:
        print(step.line())
    failure = result.failure
    return failure.stage if failure else None

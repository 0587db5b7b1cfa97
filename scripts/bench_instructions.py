"""Instructions per transaction of the proxy, counted by valgrind (callgrind), per variant, side by side.

Throughput ratios on a shared, virtualised machine move with the host (steal, CPU drift of +-15% over
minutes): two runs of ``scripts/bench`` can disagree by more than a change is worth. An instruction
count does not: the same code, the same statements, the same count, whatever the host does. This
script runs each variant's proxy under callgrind, joined to a local stack like ``scripts/bench``'s
extra proxies, and drives it with pgbench (simple protocol, ``-S``, TLS from the client):

1. a warm-up run (clients created, code paths warm), not counted;
2. a short run of ``--short`` transactions per client and a long one of ``--long``, each counted from
   the moment the instrumentation is switched on to a dump taken after the run's sessions have closed.

Each run opens and closes the same sessions (``--clients``), so the difference between the two counts
is what ``--long - --short`` transactions per client cost, without session set-up and close. That
includes what every recorded byte costs when its chunk is cut (hash, upload in a thread), since a
longer session has more of them. Time-driven work (chunk flush, heartbeat, audit flush) is stretched
by ``--slowdown``, the factor by which valgrind slows the proxy, so that each flush covers about as
many transactions as at full speed.

    .venv/bin/python scripts/bench_instructions.py             # recording on vs off, own stack
    .venv/bin/python scripts/bench_instructions.py --stack-file .airlock/stack.json \
        --variants airlock-norec,airlock-nomask

Needs valgrind (Debian: apt-get install valgrind). A measurement, not a test; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_lib.catalog import AIRLOCK_VARIANTS  # noqa: E402
from bench_lib.pgbench import find_pgbench  # noqa: E402
from bench_lib.report import git_revision  # noqa: E402
from bench_lib.target import AirlockStack, ExtraProxy  # noqa: E402

# The stack's own proxy ("airlock") is not one we can start under valgrind: its stand-in is an extra
# proxy with no switches, which is the same code and settings.
VARIANTS = {v.name: dict(v.switches) for v in AIRLOCK_VARIANTS if not v.strict_identity}
TIMED_SETTINGS = {  # seconds at full speed; multiplied by --slowdown
    "AIRLOCK_RECORDING_FLUSH_INTERVAL": 5.0,
    "AIRLOCK_RECORDING_HEARTBEAT_INTERVAL": 15.0,
    "AIRLOCK_RECORDING_AUDIT_FLUSH_INTERVAL": 30.0,
}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench_instructions.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack-file", type=Path, help="reuse a running local stack (its stack.json)")
    p.add_argument(
        "--variants",
        default="airlock,airlock-norec",
        help=f"comma-separated, first is the baseline of the ratios (of: {', '.join(VARIANTS)})",
    )
    p.add_argument("--clients", type=int, default=4, help="pgbench clients, one session each (default 4)")
    p.add_argument("--short", type=int, default=200, help="transactions per client, short run (default 200)")
    p.add_argument("--long", type=int, default=1200, help="transactions per client, long run (default 1200)")
    p.add_argument("--slowdown", type=float, default=30.0, help="valgrind's slowdown, to stretch timers (30)")
    p.add_argument(
        "--settle",
        type=float,
        default=20.0,
        help="seconds after each run for its sessions to close and their recordings to seal (20)",
    )
    p.add_argument("--identity", default="ci-nightly")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        p.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    if not 0 < args.short < args.long:
        p.error("need 0 < --short < --long")
    return args


def pgbench(program: str, port: int, database: str, identity: str, token: str, clients: int, tx: int) -> str:
    dsn = f"host=127.0.0.1 port={port} dbname={database} user={identity} sslmode=require gssencmode=disable"
    command = [program, "-n", "-S", "-M", "simple", "-c", str(clients), "-j", "1", "-t", str(tx), dsn]
    env = {**os.environ, "PGPASSWORD": token}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or "tps = " not in done.stdout:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout


def callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], capture_output=True, check=True)


def total(dump: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
    if not found:
        raise RuntimeError(f"no totals in {dump}")
    return int(found.group(1))


def measure(name: str, args: argparse.Namespace, stack: AirlockStack, token: str, workdir: Path) -> dict[str, object]:
    out = workdir / f"callgrind-{name}.out"
    settings = {**VARIANTS[name], **{k: f"{v * args.slowdown:g}" for k, v in TIMED_SETTINGS.items()}}
    valgrind = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")
    proxy = ExtraProxy(name, stack, settings, workdir / f"{name}.log", wrapper=valgrind)
    program = find_pgbench()
    say(f"{name}: starting the proxy under callgrind ...")
    proxy.start(timeout=300)
    try:
        assert proxy.process is not None
        pid = str(proxy.process.pid)
        pgbench(program, proxy.port, stack.database, args.identity, token, args.clients, 300)  # warm-up
        time.sleep(args.settle / 2)
        callgrind_control("-i", "on", pid)
        callgrind_control("-z", pid)
        for tx in (args.short, args.long):
            say(f"{name}: {args.clients} clients x {tx} transactions, counted ...")
            pgbench(program, proxy.port, stack.database, args.identity, token, args.clients, tx)
            time.sleep(args.settle)
            callgrind_control("-d", pid)
        callgrind_control("-i", "off", pid)
    finally:
        proxy.stop(timeout=300)
    dumps = sorted(workdir.glob(out.name + ".*"), key=lambda f: int(f.name.rsplit(".", 1)[1]))
    if len(dumps) < 2:
        raise RuntimeError(f"callgrind wrote {len(dumps)} dumps for {name}, expected 2; see {proxy.log_file}")
    counts = [total(d) for d in dumps[-2:]]
    per_tx = (counts[1] - counts[0]) / (args.clients * (args.long - args.short))
    say(f"{name}: {per_tx:,.0f} instructions per transaction")
    return {"variant": name, "switches": VARIANTS[name], "short_run": counts[0], "long_run": counts[1],
            "instructions_per_tx": per_tx}  # fmt: skip


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            say(f"{tool} not found: install valgrind (Debian: apt-get install valgrind)")
            return 2
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="airlock-bench-instructions-"))
        if args.stack_file:
            stack = AirlockStack.reuse(args.stack_file)
        else:
            say("starting the local stack (airlock dev up) ...")
            stack = AirlockStack.start(workdir / "stack")
            cleanup.callback(stack.stop)
        token = stack.token(args.identity, 3600 * 3)
        results = [measure(name, args, stack, token, workdir) for name in args.variants]
    base = float(results[0]["instructions_per_tx"])  # type: ignore[arg-type]
    print(f"\n{'variant':<22} {'instructions/tx':>16} {'x ' + args.variants[0]:>20}")
    for r in results:
        per_tx = float(r["instructions_per_tx"])  # type: ignore[arg-type]
        print(f"{r['variant']:<22} {per_tx:>16,.0f} {per_tx / base:>20.3f}")
    print(f"\n(select-simple, {args.clients} sessions, {args.long - args.short} transactions each counted; "
          f"ratios of instructions, so above 1 costs more than {args.variants[0]})")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"instructions-{stamp}.json"
    record = {"revision": git_revision(ROOT), "clients": args.clients, "short": args.short, "long": args.long,
              "slowdown": args.slowdown, "results": results}  # fmt: skip
    path.write_text(json.dumps(record, indent=2))
    print(f"raw results: {path}\ncallgrind dumps and proxy logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

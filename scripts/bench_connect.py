#!/usr/bin/env python3
"""How long a new connection takes, and where the time goes: Airlock against PostgreSQL directly.

Connects N times, one after another (psycopg, so libpq: TLS with sslmode=require through Airlock, plain
TCP directly), each connection opened and closed before the next, and reports the median and p90 of the
client's connect time per route. For Airlock it also reports the median of each set-up step the proxy
logged for those sessions (``session ... granted: ..., set-up X ms (negotiate, password, authorize,
recording, credential, backend or head start)``): negotiate = TLS handshake and StartupMessage,
password = the client's answer to the password request, authorize = the control plane's decision,
recording = opening the session's recording, credential = backend credential, backend = the backend
login, head start = waiting for a backend login started during authorize (proxy/pg/headstart.py).
Like scripts/bench, it is a measurement, not a test.

    .venv/bin/python scripts/bench_connect.py                      # starts a stack in a temp dir
    .venv/bin/python scripts/bench_connect.py --stack-file .airlock/stack.json -n 200 --pause 0.05
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench_lib.probe import wait_quiet
from bench_lib.target import AirlockStack

_SETUP = re.compile(r"session (ses_\w+) granted: .* set-up ([0-9.]+) ms \(([^)]*)\)")


def connect_times(conninfo: str, n: int, pause: float) -> list[float]:
    times = []
    for _ in range(n):
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        conn = psycopg.connect(conninfo)
        times.append((time.perf_counter() - started) * 1000)
        conn.close()
    return times


def setup_steps(log: Path, offset: int) -> dict[str, list[float]]:
    """Each step's times (ms) in the proxy's 'granted' lines written after ``offset``."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    steps: dict[str, list[float]] = {}
    for match in _SETUP.finditer(text):
        steps.setdefault("total (proxy)", []).append(float(match.group(2)))
        for part in match.group(3).split(", "):
            name, _, value = part.rpartition(" ")
            steps.setdefault(name, []).append(float(value))
    return steps


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    return f"median {statistics.median(ordered):6.1f} ms   p90 {ordered[int(len(ordered) * 0.9)]:6.1f} ms"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="scripts/bench_connect.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack-file", type=Path, help="reuse a running local stack instead of starting one")
    p.add_argument("-n", type=int, default=100, help="connections per route (default 100)")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between connections (default 0)")
    p.add_argument("--identity", default="ci-nightly")
    p.add_argument("--json", type=Path, help="write the raw times here")
    args = p.parse_args(argv)
    stack = AirlockStack.reuse(args.stack_file) if args.stack_file else AirlockStack.start(
        Path(tempfile.mkdtemp(prefix="airlock-bench-connect-")))  # fmt: skip
    try:
        token = stack.token(args.identity, 900)
        airlock = (f"host={stack.proxy_host} port={stack.proxy_port} dbname={stack.database} user={args.identity} "
                   f"sslmode=require gssencmode=disable password={token}")  # fmt: skip
        direct = stack.info["target"]["dsn"]
        connect_times(airlock, 3, 0)  # warm: the first session's imports and caches
        wait_quiet(longest=10)
        offset = stack.proxy_log.stat().st_size
        through = connect_times(airlock, args.n, args.pause)
        time.sleep(0.5)
        steps = setup_steps(stack.proxy_log, offset)
        wait_quiet(longest=10)
        plain = connect_times(direct, args.n, args.pause)
        print(f"{args.n} connections each, one after another, pause {args.pause:g} s")
        print(f"  direct (plain TCP)        {summary(plain)}")
        print(f"  airlock (TLS, {args.identity}) {summary(through)}")
        print("  airlock set-up steps (proxy's log, median ms):")
        for name, values in steps.items():
            print(f"    {name:<22} {statistics.median(values):6.1f}   ({len(values)} sessions)")
        if args.json:
            args.json.write_text(json.dumps({"direct_ms": plain, "airlock_ms": through, "steps_ms": steps}))
    finally:
        if stack.started_here:
            stack.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

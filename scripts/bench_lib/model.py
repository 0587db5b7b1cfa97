"""Routes, workloads and measurements; parsing pgbench's summary."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Route:
    """One way to reach the target database.

    ``conninfo`` holds libpq keywords and is safe to print; secrets go in ``env`` (PGPASSWORD), which
    is never printed or recorded. ``log_file`` is the log of what sits in the path (proxy, pooler):
    the lines it writes during a failed run are kept with the result.
    """

    name: str
    conninfo: dict[str, str]
    env: dict[str, str] = field(repr=False)
    description: str
    log_file: Path | None = None
    in_path: bool = True  # a process (proxy, pooler) listens on the port: its CPU time is measured

    def dsn(self) -> str:
        return " ".join(f"{key}={_quote(value)}" for key, value in self.conninfo.items())


def _quote(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class Workload:
    """One pgbench invocation, minus connection, client, thread and duration options.

    ``script`` is a custom pgbench script (passed with ``-f``); ``payload_queries`` are representative
    queries of one transaction, run directly once to measure the result bytes a transaction returns,
    which turns TPS into MB/s. ``resets_tables`` asks for pgbench's own pre-run cleanup (VACUUM, empty
    history) done as superuser before each route, since every route runs with ``-n``.
    """

    name: str
    pgbench_args: tuple[str, ...]
    description: str
    script: str | None = None
    payload_queries: tuple[str, ...] = ()
    resets_tables: bool = False


@dataclass(slots=True)
class PgbenchResult:
    """What pgbench printed for one (workload, route) run, parsed; raw output kept for the record."""

    workload: str
    route: str
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    tps: float | None = None
    latency_ms: float | None = None
    transactions: int | None = None
    failed_transactions: int | None = None
    connection_ms: float | None = None
    log_lines: list[str] = field(default_factory=list)
    round: int = 0  # which repeat: ratios pair runs of the same round
    path_cpu_s: float | None = None  # CPU seconds of the proxy or pooler in the path, all threads
    steal_pct: float | None = None  # share of the machine's CPU time the hypervisor took during the run
    path_ctx_switches: int | None = None  # of the path's processes during the run
    path_minor_faults: int | None = None
    discarded: str | None = None  # why the run was left out of every figure (set by the steal gate)
    waited_quiet_s: float | None = None  # how long the machine took to go idle before the run

    @property
    def cpu_us_per_tx(self) -> float | None:
        if not self.ok or self.path_cpu_s is None or not self.transactions:
            return None
        return self.path_cpu_s * 1e6 / self.transactions

    def per_tx(self, count: int | None) -> float | None:
        """``count`` (switches, faults) per transaction."""
        if not self.ok or count is None or not self.transactions:
            return None
        return count / self.transactions

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.tps is not None

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return "\n".join(lines[-8:]) or f"pgbench exited with {self.returncode}"


_PATTERNS = {
    "tps": re.compile(r"^tps = ([0-9.]+)", re.M),
    "latency_ms": re.compile(r"^latency average = ([0-9.]+) ms", re.M),
    "transactions": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "failed_transactions": re.compile(r"^number of failed transactions: (\d+)", re.M),
    # "initial connection time" without -C, "average connection time" with -C
    "connection_ms": re.compile(r"^(?:initial|average) connection time = ([0-9.]+) ms", re.M),
}


def parse_pgbench(result: PgbenchResult) -> PgbenchResult:
    """Fill the numeric fields of ``result`` from pgbench's summary (pgbench 14 and later)."""
    for name, pattern in _PATTERNS.items():
        match = pattern.search(result.stdout)
        if match is None:
            continue
        kind = int if name in ("transactions", "failed_transactions") else float
        setattr(result, name, kind(match.group(1)))
    return result


@dataclass(frozen=True, slots=True)
class Summary:
    """The medians over repeats of one (workload, route); MB/s when the workload's payload is known."""

    workload: str
    route: str
    tps: float | None
    latency_ms: float | None
    mb_per_s: float | None
    runs: int
    failures: int
    ratios: dict[str, float]  # baseline route -> median over rounds of (this TPS / baseline TPS)
    cpu_us_per_tx: float | None = None  # median over runs: the path process's CPU per transaction
    steal_pct: float | None = None  # median over runs
    switches_per_tx: float | None = None  # median over runs: the path processes' context switches
    faults_per_tx: float | None = None  # median over runs: the path processes' minor page faults


def summarise(workload: Workload, route: str, results: list[PgbenchResult], payload_bytes: float | None) -> Summary:
    """Medians over the repeats of ``route`` on ``workload``; ``results`` may hold every route's runs.

    ``ratios`` holds this route's paired ratio to every other route measured on the workload.
    """
    runs = [r for r in results if r.workload == workload.name and r.route == route]
    good = [r for r in runs if r.ok]
    tps = statistics.median(r.tps for r in good if r.tps is not None) if good else None
    latencies = [r.latency_ms for r in good if r.latency_ms is not None]
    latency = statistics.median(latencies) if latencies else None
    mb = tps * payload_bytes / 1e6 if tps is not None and payload_bytes else None
    others = sorted({r.route for r in results if r.workload == workload.name and r.route != route})
    ratios = {}
    for baseline in others:
        per_round = paired_ratios(results, workload.name, route, baseline)
        if per_round:
            ratios[baseline] = statistics.median(per_round)
    return Summary(workload.name, route, tps, latency, mb, len(runs), len(runs) - len(good), ratios,
                   _median([r.cpu_us_per_tx for r in good]), _median([r.steal_pct for r in good]),
                   _median([r.per_tx(r.path_ctx_switches) for r in good]),
                   _median([r.per_tx(r.path_minor_faults) for r in good]))  # fmt: skip


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def paired_cpu_ratios(results: list[PgbenchResult], workload: str, route: str, baseline: str) -> list[float]:
    """Each round's path CPU per transaction of ``baseline`` over ``route``'s: the TPS ratio a machine
    would show where that process is the bottleneck and nothing steals its time."""
    cpu = {(r.route, r.round): r.cpu_us_per_tx for r in results if r.workload == workload and r.cpu_us_per_tx}
    rounds = sorted({round_ for (name, round_) in cpu if name == route})
    return [cpu[(baseline, n)] / cpu[(route, n)] for n in rounds if (baseline, n) in cpu]


def paired_ratios(results: list[PgbenchResult], workload: str, route: str, baseline: str) -> list[float]:
    """Each round's TPS of ``route`` over ``baseline``'s TPS in the same round, in round order.

    Pairing within a round cancels slow drifts of the machine (other load) that a ratio of medians
    taken over different moments would not. Their median is the ratio reported. Rounds where either
    run failed are left out. With the same payload per transaction on both routes, the TPS ratio is
    also the MB/s ratio.
    """
    tps = {(r.route, r.round): r.tps for r in results if r.workload == workload and r.ok and r.tps}
    rounds = sorted({round_ for (name, round_) in tps if name == route})
    return [tps[(route, n)] / tps[(baseline, n)] for n in rounds if (baseline, n) in tps]

"""The results: a table for people, a JSON file for the record, and the machine they came from."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .model import PgbenchResult, Summary, paired_cpu_ratios, paired_ratios


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """On ``workload``, ``route`` reaches at least ``minimum`` x ``baseline``, paired per round.

    ``minimum`` None: a ratio reported for the record, with no target. ``measure`` is what the ratio
    is read as: TPS, or MB/s on bulk workloads (the same number, since both routes are credited with
    the same bytes per transaction).
    """

    name: str
    workload: str
    route: str
    baseline: str
    minimum: float | None
    measure: str = "TPS"
    about: str = ""

    def evaluate(self, results: list[PgbenchResult], *, fixed_rate: bool = False) -> dict[str, Any]:
        """``fixed_rate``: the runs offered the same load (pgbench -R), so the TPS ratio cannot judge a
        throughput target; the verdict says so and the CPU ratio is the figure to read."""
        per_round = paired_ratios(results, self.workload, self.route, self.baseline)
        ratio = statistics.median(per_round) if per_round else None
        cpu_rounds = paired_cpu_ratios(results, self.workload, self.route, self.baseline)
        if ratio is None:
            verdict = f"not measured (needs {self.route} and {self.baseline} on {self.workload})"
        elif self.minimum is None:
            verdict = "reported"
        elif fixed_rate:
            verdict = "no verdict at a fixed rate (read the CPU ratio)"
        else:
            verdict = "MET" if ratio >= self.minimum else "NOT MET"
        return {**asdict(self), "ratio": ratio, "per_round": per_round, "verdict": verdict,
                "cost": None if ratio is None else 1 - ratio,
                "cpu_ratio": statistics.median(cpu_rounds) if cpu_rounds else None,
                "cpu_per_round": cpu_rounds}  # fmt: skip

    def describe(self) -> str:
        goal = f" >= {self.minimum:.2f}" if self.minimum is not None else ""
        return f"{self.route} / {self.baseline} {self.measure} on {self.workload}{goal}"


TARGETS: tuple[TargetCheck, ...] = (
    TargetCheck("issue-2", "select-simple", "airlock-passthrough", "pgbouncer", 0.9,
                about="the proxy itself, every protection off, against pgbouncer (the issue's goal)"),
    TargetCheck("as-deployed", "select-simple", "airlock", "pgbouncer", None,
                about="the proxy as deployed (buffered recording, guardrails, masking) against pgbouncer"),
    TargetCheck("recording-buffered", "select-simple", "airlock", "airlock-norec", 0.9,
                about="buffered recording costs at most 10%"),
    TargetCheck("recording-strict", "select-simple", "airlock-strict", "airlock-norec", None,
                about="strict recording's cost (contractor) against no recording"),
    TargetCheck("recording-strict-tpcb", "tpcb", "airlock-strict", "airlock-norec", None,
                about="strict recording's cost on a write transaction of 7 statements"),
    TargetCheck("masking-clean", "rows-1000-clean", "airlock", "airlock-nomask", 0.8, "MB/s",
                about="masking's scan of results without sensitive values (orders)"),
    TargetCheck("masking-pii", "rows-1000", "airlock", "airlock-nomask", 0.5, "MB/s",
                about="masking results where every row holds a card number, an SSN and an e-mail (customers)"),
    TargetCheck("connect", "connect-select", "airlock", "pgbouncer", None,
                about="a new connection per transaction (-C): TLS, authorize, backend login, recording open"),
)  # fmt: skip


def targets_table(evaluated: list[dict[str, Any]]) -> str:
    header = ("target", "ratio", "per round", "cost", "CPU ratio", "verdict")
    rows: list[tuple[str, ...]] = [header]
    for t in evaluated:
        judged = t["verdict"] in ("MET", "NOT MET")
        goal = f" (>= {t['minimum']:.2f})" if judged and t["minimum"] is not None else ""
        rows.append((
            f"{t['name']}: {t['route']} / {t['baseline']} {t['measure']} on {t['workload']}",
            _num(t["ratio"], 2),
            ", ".join(f"{r:.2f}" for r in t["per_round"]) or "-",
            "-" if t["cost"] is None else f"{t['cost'] * 100:.0f}%",
            _num(t["cpu_ratio"], 2),
            t["verdict"] + goal,
        ))  # fmt: skip
    return _render(rows, left=1)


RATIO_COLUMNS = ("direct", "pgbouncer", "airlock")


def table(summaries: list[Summary]) -> str:
    header = ("workload", "route", "TPS", "MB/s", "lat avg ms", "CPU us/tx", "ctx/tx", "faults/tx",
              "steal %", *(f"x {b}" for b in RATIO_COLUMNS))  # fmt: skip
    rows: list[tuple[str, ...]] = [header]
    previous = None
    for s in summaries:
        r = s.ratios
        failed = f"FAILED {s.failures}/{s.runs}" if s.failures == s.runs else None
        rows.append((
            s.workload if s.workload != previous else "",
            s.route,
            failed or _num(s.tps, 1),
            _num(s.mb_per_s, 1),
            _num(s.latency_ms, 3),
            _num(s.cpu_us_per_tx, 1),
            _num(s.switches_per_tx, 2),
            _num(s.faults_per_tx, 2),
            _num(s.steal_pct, 0),
            *(_num(r.get(b), 2) for b in RATIO_COLUMNS),
        ))  # fmt: skip
        previous = s.workload
    return _render(rows, left=2)


def _render(rows: list[tuple[str, ...]], left: int) -> str:
    """Columns padded to their widest cell: the first ``left`` ones to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        models = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu_model = models[0].split(":", 1)[1].strip() if models else cpu_model
    memory = None
    with contextlib.suppress(OSError, IndexError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory": memory,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def git_revision(root: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")

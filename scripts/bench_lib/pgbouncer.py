"""A session-mode pgbouncer in front of the target, with client TLS, in a directory of its own.

Client side: TLS required (a generated certificate, like Airlock's listener) and SCRAM-SHA-256 against
a userlist holding the superuser's password in clear (so pgbouncer can also answer the target's SCRAM
challenge). Server side: plain TCP to 127.0.0.1, as Airlock's proxy connects to the local target.
pgbouncer refuses to run as root; under root it is told to drop to an unprivileged user (``-u``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "pgbouncer not found; install it with `apt-get install pgbouncer` (Debian/Ubuntu) to compare"


def find_pgbouncer() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)


@dataclass
class PgBouncer:
    binary: str
    directory: Path
    upstream: Upstream
    pool_size: int
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.directory / "pgbouncer.log"

    def start(self) -> None:
        from airlock.devstack.stack import free_port, wait_for_port
        from airlock.devstack.tls import ensure_dev_certificate

        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key, _ = ensure_dev_certificate(self.directory / "tls")
        self.port = self.port or free_port()
        userlist = self.directory / "userlist.txt"
        userlist.touch(mode=0o600)
        userlist.write_text(f'"{self.upstream.user}" "{self.upstream.password}"\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(self._ini(userlist, cert, key))
        command = [self.binary, str(ini)]
        run_as = _unprivileged_user()
        if run_as is not None:
            command[1:1] = ["-u", run_as.pw_name]
            for path in [self.directory, *self.directory.rglob("*")]:
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        output = self.directory / "pgbouncer.out"
        with output.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.directory)
        try:
            wait_for_port("127.0.0.1", self.port, self.process, timeout=15)
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            raise RuntimeError(f"pgbouncer did not start: {e}\n{output.read_text(errors='replace')}") from e

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # safe shutdown; SIGTERM is "immediate"
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _ini(self, userlist: Path, cert: Path, key: Path) -> str:
        u = self.upstream
        return f"""\
[databases]
{u.database} = host={u.host} port={u.port} dbname={u.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
pidfile = {self.directory / "pgbouncer.pid"}
logfile = {self.log_file}
auth_type = scram-sha-256
auth_file = {userlist}
pool_mode = session
max_client_conn = 1000
default_pool_size = {self.pool_size}
client_tls_sslmode = require
client_tls_cert_file = {cert}
client_tls_key_file = {key}
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
"""


def _unprivileged_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run pgbouncer as")

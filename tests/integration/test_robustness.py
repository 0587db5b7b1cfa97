"""Bad input ends one connection with a clear error; the proxy and every other session carry on."""

from __future__ import annotations

import socket
import struct
import threading
import time

import psutil
import psycopg
import pytest

from shared.pg.wire import messages as m
from shared.pg.wire.constants import GSSENC_REQUEST_CODE, PROTOCOL_3_0, PROTOCOL_3_2
from tests.integration.rawpg import RawConnection, error_fields, login, open_tls
from tests.integration.stack import AirlockStack


@pytest.fixture
def bystander(stack: AirlockStack) -> psycopg.Connection[tuple[object, ...]]:
    """A healthy session that must survive whatever the test does to other connections."""
    conn = psycopg.connect(stack.conninfo(), autocommit=True)
    yield conn
    assert conn.execute("SELECT count(*) FROM customers").fetchone() == (10000,)
    conn.close()


def plain(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_error(sock: socket.socket) -> dict[str, str]:
    conn = RawConnection(sock)
    mtype, body = conn.read()
    assert mtype == ord("E"), chr(mtype)
    return m.parse_error_fields(body)


def logged_in(stack: AirlockStack, protocol: int = PROTOCOL_3_0) -> tuple[RawConnection, list[tuple[int, bytes]]]:
    conn, said = login(stack.proxy_port, "ci-nightly", stack.token("ci-nightly"), protocol=protocol)
    assert said[-1][0] == ord("Z"), said
    return conn, said


def test_garbage_instead_of_startup(stack: AirlockStack, bystander: object) -> None:
    sock = plain(stack.proxy_port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    fields = read_error(sock)
    assert fields["C"] == "08P01" and "startup packet" in fields["M"]


def test_truncated_startup_and_vanishing_client(stack: AirlockStack, bystander: object) -> None:
    sock = plain(stack.proxy_port)
    sock.sendall(struct.pack("!i", 100) + b"\x00\x03")
    sock.close()
    with psycopg.connect(stack.conninfo()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_unsupported_protocol_version(stack: AirlockStack, bystander: object) -> None:
    sock = open_tls(stack.proxy_port)
    sock.send(m.build_startup_message(2 << 16, {"user": "ci-nightly"}))
    mtype, body = sock.read()
    assert mtype == ord("E") and m.parse_error_fields(body)["C"] == "0A000"


def test_plaintext_pipelined_after_ssl_request_is_refused(stack: AirlockStack, bystander: object) -> None:
    sock = plain(stack.proxy_port)
    sock.sendall(m.build_ssl_request() + m.build_startup_message(PROTOCOL_3_0, {"user": "ci-nightly"}))
    fields = read_error(sock)
    assert fields["C"] == "08P01" and "unencrypted data after SSL request" in fields["M"]


def test_gssenc_request_is_declined_then_tls_works(stack: AirlockStack) -> None:
    sock = plain(stack.proxy_port)
    sock.sendall(struct.pack("!ii", 8, GSSENC_REQUEST_CODE))
    assert sock.recv(1) == b"N"
    sock.close()


@pytest.mark.parametrize(
    ("payload", "sqlstate", "words"),
    [
        (b"Q" + struct.pack("!i", 0x7FFFFFF0), "08P01", "invalid message length"),
        (b"Q" + struct.pack("!i", 2), "08P01", "invalid message length"),
        (b"\x01" + struct.pack("!i", 4), "08P01", "invalid frontend message type"),
        (b"S" + struct.pack("!i", 50_000) + b"x" * 10, "08P01", "invalid message length"),
    ],
    ids=["absurd-length", "short-length", "unknown-type", "oversized-sync"],
)
def test_malformed_message_mid_session(
    stack: AirlockStack, bystander: object, payload: bytes, sqlstate: str, words: str
) -> None:
    conn, _ = logged_in(stack)
    conn.send(payload)
    mtype, body = conn.read()
    fields = m.parse_error_fields(body)
    assert mtype == ord("E") and fields["S"] == "FATAL" and fields["C"] == sqlstate and words in fields["M"]
    assert conn.closed_by_peer()
    assert "protocol violation from agent" in stack.proxy_log()


def test_client_vanishes_mid_result(stack: AirlockStack, bystander: object) -> None:
    conn, _ = logged_in(stack)
    conn.send(m.build_query("SELECT g, repeat('x', 100) FROM generate_series(1, 2000000) g"))
    conn.read()
    conn.sock.close()
    # The backend session behind it goes away too: nothing keeps streaming to nobody.
    with psycopg.connect(stack.target_dsn, autocommit=True) as direct:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            busy = direct.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT g, repeat%' AND state = 'active'"
            ).fetchone()
            if busy == (0,):
                break
            time.sleep(0.2)
        assert busy == (0,)


@pytest.mark.parametrize("protocol", [PROTOCOL_3_0, PROTOCOL_3_2], ids=["3.0", "3.2"])
def test_backend_key_data_and_raw_cancel(stack: AirlockStack, protocol: int) -> None:
    conn, said = logged_in(stack, protocol)
    keys = [m.parse_backend_key_data(body) for mtype, body in said if mtype == ord("K")]
    assert len(keys) == 1
    pid, key = keys[0]
    assert len(key) == (32 if protocol == PROTOCOL_3_2 else 4)
    conn.send(m.build_query("SELECT pg_backend_pid()"))
    rows = [m.parse_data_row(body) for mtype, body in conn.read_until("Z") if mtype == ord("D")]
    assert rows == [[str(pid).encode()]]  # the agent sees the backend's real pid
    conn.send(m.build_query("SELECT pg_sleep(30)"))
    time.sleep(0.5)
    wrong = plain(stack.proxy_port)
    wrong.sendall(m.build_cancel_request(pid, bytes(len(key))))  # a guessed key is ignored
    wrong.close()
    time.sleep(0.5)
    canceller = plain(stack.proxy_port)
    canceller.sendall(m.build_cancel_request(pid, key))
    canceller.close()
    said = conn.read_until("Z", timeout=10)
    assert error_fields(said)["C"] == "57014"


def test_slow_reader_of_a_million_rows_keeps_proxy_memory_bounded(stack: AirlockStack) -> None:
    # The relay's own bound. Recording is off on this proxy so the measurement is about the relay: the
    # recording's buffer has its own bound and backpressure (test_recording_wire: overflow), and writing
    # 230 MB to the local S3 emulator would make this test minutes long. Masking is off too: the rows'
    # runs of 'x' look like tokens to its prefilter, and scanning each 256 KB read took 1.5 s of the event
    # loop (the test ran 64 s, and grant renewals landed after the grant's hard deadline).
    off = {"AIRLOCK_PROXY_DISABLE_RECORDING": "1", "AIRLOCK_PROXY_DISABLE_MASKING": "1"}
    with stack.extra_proxy(env=off) as (port, process):
        proxy = psutil.Process(process.pid)
        conn, said = login(port, "ci-nightly", stack.token("ci-nightly"))
        assert said[-1][0] == ord("Z")
        baseline = proxy.memory_info().rss
        # About 230 MB of DataRows; the agent stops reading for a while.
        conn.send(m.build_query("SELECT g, repeat('x', 200) FROM generate_series(1, 1000000) g"))
        peak = 0
        for _ in range(20):
            time.sleep(0.15)
            peak = max(peak, proxy.memory_info().rss)
        rows = 0
        last = b""
        while True:
            mtype, body = conn.read(timeout=60)
            if mtype == ord("D"):
                rows += 1
                if rows % 50_000 == 0:
                    peak = max(peak, proxy.memory_info().rss)
                last = body
            elif mtype == ord("Z"):
                break
        assert rows == 1_000_000
        assert m.parse_data_row(last)[0] == b"1000000"
        growth = peak - baseline
        assert growth < 48 * 1024 * 1024, f"proxy grew by {growth / 1e6:.1f} MB while the agent lagged"


def test_sigterm_drains_live_statements_then_closes(stack: AirlockStack) -> None:
    with stack.extra_proxy(drain_seconds="10") as (port, process):
        busy = psycopg.connect(stack.conninfo(port=port), autocommit=True)
        idle = psycopg.connect(stack.conninfo(port=port), autocommit=True)
        result: list[object] = []

        def long_statement() -> None:
            result.append(busy.execute("SELECT pg_sleep(2), 'finished'").fetchone())

        worker = threading.Thread(target=long_statement)
        worker.start()
        time.sleep(0.5)
        process.terminate()
        time.sleep(0.3)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(stack.conninfo(port=port), connect_timeout=3)
        worker.join(10)
        assert result == [("", "finished")]  # the live statement finished during the drain
        assert process.wait(15) == 0
        for conn in (busy, idle):
            with pytest.raises(psycopg.OperationalError, match=r"Airlock proxy is shutting down"):
                conn.execute("SELECT 1")
            conn.close()

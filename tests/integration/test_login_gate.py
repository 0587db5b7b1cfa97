"""Nothing before login can hurt the proxy: floods, caps, and refusals that stay on record without
letting a stranger write records or spend the control plane at will (proxy/admission.py)."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import struct
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psutil
import psycopg
import pytest

from airlock.devstack.stack import free_port
from shared.pg.wire import messages as m
from shared.pg.wire.constants import GSSENC_REQUEST_CODE
from tests.integration.rawpg import connect, error_fields, login, open_tls
from tests.integration.stack import AirlockStack, eventually

GSSENC_REQUEST = struct.pack("!ii", 8, GSSENC_REQUEST_CODE)


def until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the proxy sends until it closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pytest.fail(f"the proxy kept the connection open for {timeout}s; it said {data[:200]!r}")
    except ConnectionError:
        pass
    return data


def error_in(data: bytes) -> dict[str, str]:
    start = data.index(b"E")
    length = int.from_bytes(data[start + 1 : start + 5], "big")
    return m.parse_error_fields(data[start + 5 : start + 1 + length])


def park(port: int, source: str) -> socket.socket:
    """An unauthenticated connection that sits inside its start-up packet (9 KB of a 10 KB one)."""
    sock = connect(port, source)
    sock.sendall(struct.pack("!i", 10_000) + b"\0" * 9_000)
    return sock


def turned_away(sock: socket.socket) -> dict[str, str]:
    """The FATAL a connection over the caps gets at once."""
    return error_in(until_closed(sock, 5))


def sessions_of(stack: AirlockStack, identity: str) -> list[dict[str, Any]]:
    out = stack.cli("sessions", "list", "--identity", identity, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def audit_lines(stack: AirlockStack, proxy_id: str) -> list[dict[str, Any]]:
    s3 = stack.aws_client("s3")
    bucket = stack.info["env"]["AIRLOCK_SESSIONS_BUCKET"]
    prefix = f"audit/dt={datetime.now(UTC):%Y-%m-%d}/{proxy_id}-"
    lines = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        lines += [json.loads(line) for line in body.splitlines()]
    return lines


def test_a_second_gssenc_or_ssl_request_is_refused(stack: AirlockStack) -> None:
    sock = connect(stack.proxy_port)
    sock.sendall(GSSENC_REQUEST + GSSENC_REQUEST)
    data = until_closed(sock, 5)
    assert data[:1] == b"N"
    fields = error_in(data[1:])
    assert fields["C"] == "08P01" and "GSSENCRequest received twice" in fields["M"]
    # Inside TLS a GSSENCRequest is refused too, as PostgreSQL does.
    tls = open_tls(stack.proxy_port)
    tls.send(GSSENC_REQUEST)
    mtype, body = tls.read()
    assert mtype == ord("E") and "GSSENCRequest received on an encrypted connection" in m.parse_error_fields(body)["M"]


def test_a_flood_before_login_keeps_proxy_memory_bounded(stack: AirlockStack) -> None:
    # Default caps: 32 unauthenticated connections per source address, 512 in all. The waiters wait long
    # enough for the test to count them, however slowly this machine opens 1,500 sockets.
    with stack.extra_proxy(login_wait_seconds="120") as (port, process):
        proxy = psutil.Process(process.pid)
        psycopg.connect(stack.conninfo(port=port)).close()  # warm: the first session's imports
        baseline = proxy.memory_info().rss
        # One connection, 100,000 GSSENCRequests: today's proxy answered each one and kept them all.
        flood = connect(port)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # closed while we still sent: the point
            flood.sendall(GSSENC_REQUEST * 100_000)
        data = until_closed(flood, 10)
        assert data[:1] == b"N" and "received twice" in error_in(data[1:])["M"]
        # 1,500 connections from one address, each parked inside a 10 KB start-up packet.
        parked = [park(port, "127.0.0.2") for _ in range(1500)]
        selector = selectors.DefaultSelector()
        for sock in parked:
            selector.register(sock, selectors.EVENT_READ)
        refused: set[socket.socket] = set()
        deadline = time.monotonic() + 20
        # 32 log in, 32 wait for a place (unread), the rest are refused at once.
        while len(refused) < len(parked) - 64 and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                selector.unregister(sock)
                refused.add(sock)
        peak = proxy.memory_info().rss
        assert len(refused) == len(parked) - 64
        fields = turned_away(next(iter(refused)))
        assert fields["C"] == "53300" and "127.0.0.2" in fields["M"], fields
        # A login from another address is not affected.
        with psycopg.connect(stack.conninfo(port=port)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        growth = peak - baseline
        assert growth < 12 * 1024 * 1024, f"proxy grew by {growth / 1e6:.1f} MB under the flood"
        for sock in parked:
            sock.close()


def test_unauthenticated_connections_are_capped_per_source_and_in_all(stack: AirlockStack) -> None:
    settings = {"max_unauthenticated": "6", "max_unauthenticated_per_source": "3", "login_wait_seconds": "20"}
    with stack.extra_proxy(**settings) as (port, _):
        # Three log in from 127.0.0.2, three more wait for a place; the seventh is refused at once.
        first = [park(port, "127.0.0.2") for _ in range(6)]
        fields = turned_away(park(port, "127.0.0.2"))
        assert fields["S"] == "FATAL" and fields["C"] == "53300"
        assert "too many connections from 127.0.0.2 are logging in at once (3)" in fields["M"]
        # Three from 127.0.0.3 fill the proxy (6 in all). An honest login from 127.0.0.1 waits...
        second = [park(port, "127.0.0.3") for _ in range(3)]
        result: list[object] = []
        login_thread = threading.Thread(target=lambda: result.append(_log_in(stack, port)))
        login_thread.start()
        time.sleep(1.0)
        assert not result
        # ... with two more; six wait, and the next connection is refused at once.
        third = [park(port, "127.0.0.4") for _ in range(2)]
        fields = turned_away(park(port, "127.0.0.9"))
        assert fields["C"] == "53300" and "too many connections are logging in to this proxy (6)" in fields["M"]
        # Places go to the waiters in arrival order: 127.0.0.2's three, then the honest login.
        for sock in first[:3] + second:
            sock.close()
        login_thread.join(20)
        assert result == [True]
        for sock in first[3:] + third:
            sock.close()
        # Authenticated sessions do not count: four logged-in sessions from one address with a cap of 3.
        sessions = [psycopg.connect(stack.conninfo(port=port)) for _ in range(4)]
        assert all(s.execute("SELECT 1").fetchone() == (1,) for s in sessions)
        for s in sessions:
            s.close()


def _log_in(stack: AirlockStack, port: int) -> bool:
    with psycopg.connect(stack.conninfo(port=port), connect_timeout=30) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def test_refusals_before_tls_leave_no_record(stack: AirlockStack) -> None:
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    with pytest.raises(psycopg.OperationalError, match="only over TLS"):
        psycopg.connect(stack.conninfo(stranger, sslmode="disable", token="x"))
    # The same stranger over TLS, with a password shaped like a token: refused, and on record.
    with pytest.raises(psycopg.OperationalError, match="Airlock refused the connection"):
        psycopg.connect(stack.conninfo(stranger, token=stack.token("ci-nightly")))
    assert eventually(lambda: len(sessions_of(stack, stranger)) == 1, timeout=10)
    (record,) = sessions_of(stack, stranger)
    assert record["status"] == "refused" and "only over TLS" not in (record.get("reason") or "")


def test_a_password_that_is_no_token_never_reaches_the_control_plane(stack: AirlockStack) -> None:
    # This proxy's control plane is unreachable: anything it asked would fail as "unavailable".
    dead = {"AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{free_port()}"}
    with stack.extra_proxy(env=dead, authorize_timeout="2") as (port, _):
        for garbage in ("not-a-token", "ak_123_short", "a.b.c", "x" * 5000):
            _, said = login(port, "ci-nightly", garbage)
            fields = error_fields(said)
            assert fields["C"] == "28P01", fields
            assert "control plane" not in fields["M"], fields["M"]
            assert "neither an Airlock key" in fields["M"] or "malformed Airlock key" in fields["M"], fields["M"]
        _, said = login(port, "ci-nightly", stack.token("ci-nightly"))
        assert "control plane unavailable" in error_fields(said)["M"]


def test_refusals_from_one_source_are_rate_limited_and_aggregated(stack: AirlockStack) -> None:
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    proxy_id = f"login-gate-{uuid.uuid4().hex[:6]}"
    header, payload, signature = stack.token("ci-nightly").split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"  # a JWT's shape, not its signature
    settings = {"refusal_burst": "2", "refusal_rate": "0.001", "refusal_window": "1", "proxy_id": proxy_id}
    with stack.extra_proxy(**settings) as (port, _):
        answers = [error_fields(login(port, stranger, forged, source="127.0.0.5")[1]) for _ in range(5)]
        assert [a["C"] for a in answers] == ["28P01", "28P01", "53300", "53300", "53300"], answers
        assert "too many refused logins from 127.0.0.5" in answers[2]["M"]
        # Another address is not throttled, and a good token from it logs in.
        with psycopg.connect(stack.conninfo(port=port)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert eventually(lambda: len(sessions_of(stack, stranger)) == 2, timeout=10)
        time.sleep(1.5)  # one aggregation window
    assert len(sessions_of(stack, stranger)) == 2  # the throttled three have no item of their own
    lines = [a for a in audit_lines(stack, proxy_id) if a["decision"] == "refusals_aggregated"]
    assert len(lines) == 1, lines
    assert lines[0]["rows"] == 3 and "127.0.0.5" in lines[0]["reason"] and "53300" in lines[0]["reason"]
    assert stranger not in json.dumps(lines)  # claimed names are not what the aggregate is about

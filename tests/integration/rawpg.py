"""A minimal PostgreSQL client built on the project's codec, for tests that need the raw wire."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

from shared.pg.wire import messages as m
from shared.pg.wire.constants import PROTOCOL_3_0
from shared.pg.wire.framing import Framer


@dataclass
class RawConnection:
    sock: socket.socket | ssl.SSLSocket
    framer: Framer = field(default_factory=lambda: Framer(limit=1 << 30, peer="backend"))
    queue: list[tuple[int, bytes]] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 10) -> tuple[int, bytes]:
        self.sock.settimeout(timeout)
        while not self.queue:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            chunk, frames = self.framer.feed(data)
            self.queue.extend((t, chunk[s:e]) for t, s, e in frames)
        return self.queue.pop(0)

    def read_until(self, mtype: str, timeout: float = 10) -> list[tuple[int, bytes]]:
        seen = []
        while True:
            item = self.read(timeout)
            seen.append(item)
            if item[0] == ord(mtype):
                return seen

    def closed_by_peer(self, timeout: float = 5) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def connect(port: int, source: str | None = None) -> socket.socket:
    """A TCP connection to the proxy, optionally from another loopback address (127.0.0.2, ...)."""
    return socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(source, 0) if source else None
    )


def open_tls(port: int, source: str | None = None) -> RawConnection:
    sock = connect(port, source)
    sock.sendall(m.build_ssl_request())
    assert sock.recv(1) == b"S"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return RawConnection(context.wrap_socket(sock))


def login(
    port: int,
    user: str,
    token: str,
    database: str = "demo",
    protocol: int = PROTOCOL_3_0,
    *,
    source: str | None = None,
    params: dict[str, str] | None = None,
) -> tuple[RawConnection, list[tuple[int, bytes]]]:
    """TLS, startup, password; returns the connection and what the proxy said up to ReadyForQuery/Error."""
    conn = open_tls(port, source)
    conn.send(m.build_startup_message(protocol, {"user": user, "database": database, **(params or {})}))
    mtype, body = conn.read()
    if mtype == ord("E"):  # refused before the password was asked for
        return conn, [(mtype, body)]
    assert mtype == ord("R") and m.parse_authentication(body)[0] == 3, (chr(mtype), body)
    conn.send(m.build_password_message(token))
    seen = []
    while True:
        mtype, body = conn.read()
        seen.append((mtype, body))
        if mtype in (ord("Z"), ord("E")):
            return conn, seen


def error_fields(messages: list[tuple[int, bytes]]) -> dict[str, str]:
    for mtype, body in messages:
        if mtype == ord("E"):
            return m.parse_error_fields(body)
    raise AssertionError("no ErrorResponse")

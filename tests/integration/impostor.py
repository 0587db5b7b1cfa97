"""A stand-in for a hostile server where the target should be (a machine in the middle, a hijacked DNS
name): it speaks just enough PostgreSQL to ask for a password the way it chooses and to claim success.
A real PostgreSQL cannot be made to lie, hence the stand-in; it is named as such wherever it is used."""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
from contextlib import suppress
from dataclasses import dataclass, field

from shared.pg.wire import messages as m
from shared.pg.wire.constants import AUTH_CLEARTEXT, AUTH_MD5, AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, SSL_REQUEST_CODE


@dataclass
class Impostor:
    """Listens on 127.0.0.1; ``how`` is "cleartext", "md5" or "scram-without-proof"."""

    how: str
    received: list[bytes] = field(default_factory=list)  # the password messages it was sent

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(client,), daemon=True).start()

    def _talk(self, sock: socket.socket) -> None:
        with suppress(OSError, ConnectionError), sock:
            sock.settimeout(10)
            body = _packet(sock)
            if struct.unpack("!i", body[:4])[0] == SSL_REQUEST_CODE:
                sock.sendall(b"N")
                body = _packet(sock)
            if self.how == "cleartext":
                sock.sendall(m.build_authentication(AUTH_CLEARTEXT))
                self.received.append(_message(sock))
            elif self.how == "md5":
                sock.sendall(m.build_authentication(AUTH_MD5, os.urandom(4)))
                self.received.append(_message(sock))
            else:  # SCRAM up to the client's proof, then "OK" without the server's own proof
                sock.sendall(m.build_authentication(AUTH_SASL, b"SCRAM-SHA-256\0\0"))
                initial = _message(sock)
                first = initial[5:].split(b"\0", 1)[1][4:].decode()  # mechanism, int32 length, data
                nonce = first.split("r=", 1)[1].split(",", 1)[0] + base64.b64encode(os.urandom(18)).decode()
                salt = base64.b64encode(os.urandom(16)).decode()
                sock.sendall(m.build_authentication(AUTH_SASL_CONTINUE, f"r={nonce},s={salt},i=4096".encode()))
                self.received.append(_message(sock))  # client-final: the client's proof
            sock.sendall(
                m.build_authentication(AUTH_OK)
                + m.build_parameter_status("server_version", "18.0")
                + m.build_parameter_status("client_encoding", "UTF8")
                + m.build_parameter_status("standard_conforming_strings", "on")
                + m.build_parameter_status("integer_datetimes", "on")
                + m.build_parameter_status("DateStyle", "ISO, MDY")
                + m.build_backend_key_data(4242, b"\0\0\0\1")
                + m.build_ready_for_query(b"I")
            )
            while sock.recv(65536):
                pass


def _packet(sock: socket.socket) -> bytes:
    length = struct.unpack("!i", _exactly(sock, 4))[0]
    return _exactly(sock, length - 4)


def _message(sock: socket.socket) -> bytes:
    header = _exactly(sock, 5)
    return header + _exactly(sock, struct.unpack("!i", header[1:])[0] - 4)


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data

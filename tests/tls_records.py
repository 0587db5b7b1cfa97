"""Seeing TLS records from outside: a record-header parser, and a loopback relay that notes the records a
server sends (after PostgreSQL's SSLRequest answer) while passing every byte through unchanged."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

APPLICATION_DATA = 23
# TLS 1.3 with any AEAD suite OpenSSL enables by default: a record's ciphertext is its plaintext plus the
# inner content-type byte and a 16-byte tag.
TLS13_OVERHEAD = 17


@dataclass
class RecordParser:
    """Feed bytes of one direction of a TLS stream; collects (content type, length) per whole record."""

    records: list[tuple[int, int]] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 5:
            length = int.from_bytes(buffer[3:5], "big")
            if len(buffer) < 5 + length:
                return
            self.records.append((buffer[0], length))
            del buffer[: 5 + length]

    def application_data(self) -> list[int]:
        return [length for kind, length in self.records if kind == APPLICATION_DATA]


class RecordTap:
    """A loopback TCP relay in front of a PostgreSQL-speaking TLS server (Airlock's proxy).

    Clients connect to ``port``; each connection is relayed to ``upstream`` byte for byte, and what the
    server sends after its one-byte answer to SSLRequest is parsed into TLS records (``server_records``)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._parsers: list[RecordParser] = []  # one per connection
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def server_records(self) -> list[int]:
        """Lengths of the application-data records the server has sent so far."""
        with self._lock:
            return [length for parser in self._parsers for length in parser.application_data()]

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            parser = RecordParser()
            with self._lock:
                self._sockets += [client, server]
                self._parsers.append(parser)
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, parser), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, parser: RecordParser | None) -> None:
        answered = parser is None  # the server's first byte answers SSLRequest; records follow it
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if not answered:
                    answered, data = True, data[1:]
                if parser is not None:
                    with self._lock:
                        parser.feed(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

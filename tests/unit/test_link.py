"""The relay's endpoints over real loopback sockets: a backend that stops reading stops the agent being
read, with the proxy holding a bounded number of bytes (its buffer and the kernel's unsent queue)."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import sys
import termios
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import uvloop

from proxy.pg.link import PEER_WRITE, UNSENT_LOW_WATER, Endpoint

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's send queue (SIOCOUTQ)")

HIGH_WATER = 64 * 1024
CHUNK = bytes(range(256)) * 256  # 64 KiB, so reordering or loss shows


def unsent(sock: socket.socket) -> int:
    """Bytes in a socket's send queue (SIOCOUTQ: not yet acknowledged by the peer's kernel)."""
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])


@dataclass
class Relay:
    """Agent socket -> proxy (two endpoints relaying to each other) -> backend socket, all on loopback."""

    agent: socket.socket
    backend: socket.socket
    agent_side: Endpoint
    backend_side: Endpoint
    errors: list[Exception] = field(default_factory=list)


@asynccontextmanager
async def relay() -> AsyncIterator[Relay]:
    loop = asyncio.get_running_loop()
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    for listener in listeners:
        listener.setblocking(False)
    agent = socket.create_connection(listeners[0].getsockname())
    agent.setblocking(False)
    accepted, _ = await loop.sock_accept(listeners[0])
    agent_transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, accepted)
    backend_transport, _ = await loop.create_connection(asyncio.Protocol, *listeners[1].getsockname())
    backend, _ = await loop.sock_accept(listeners[1])
    errors: list[Exception] = []

    def forward(to: list[Endpoint]) -> Callable[[bytes], None]:
        return lambda data: to[0].transport.write(data)

    to_backend: list[Endpoint] = []
    to_agent: list[Endpoint] = []
    agent_side = Endpoint("agent", agent_transport, forward(to_backend), lambda *_: None, errors.append)
    backend_side = Endpoint("backend", backend_transport, forward(to_agent), lambda *_: None, errors.append)
    to_backend.append(backend_side)
    to_agent.append(agent_side)
    agent_side.peer, backend_side.peer = backend_side, agent_side
    backend_side.attach(b"", write_high_water=HIGH_WATER)
    agent_side.attach(b"", write_high_water=1 << 20)
    try:
        yield Relay(agent, backend, agent_side, backend_side, errors)
    finally:
        for sock in (agent, backend, *listeners):
            sock.close()
        agent_transport.close()
        backend_transport.close()


async def send_until_stuck(loop: asyncio.AbstractEventLoop, sock: socket.socket, limit: int) -> int:
    """Send CHUNKs until the socket accepts nothing for a while (or ``limit`` bytes went); returns bytes sent."""
    sent = 0
    offset = 0
    idle = 0
    while sent < limit and idle < 20:
        try:
            n = sock.send(memoryview(CHUNK)[offset:])
        except BlockingIOError:
            idle += 1
            await asyncio.sleep(0.02)
            continue
        idle = 0
        sent += n
        offset = (offset + n) % len(CHUNK)
        await asyncio.sleep(0)
    return sent


async def receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, total: int) -> bytes:
    received = bytearray()
    while len(received) < total:
        data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
        assert data, "connection closed early"
        received += data
    return bytes(received)


def test_a_backend_that_stops_reading_stops_the_agent_with_little_held_by_the_proxy() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        async with relay() as r:
            sent = await send_until_stuck(loop, r.agent, limit=256 << 20)
            assert sent < 256 << 20, "the agent was never stopped"
            assert r.agent_side.holding(PEER_WRITE)
            # What the proxy took from the agent and the backend has not: its buffer toward the backend
            # (one read past the high-water mark at most) and the kernel's unsent queue.
            proxy_socket = r.backend_side.transport.get_extra_info("socket")
            held = r.backend_side.transport.get_write_buffer_size()
            assert held <= HIGH_WATER + 256 * 1024, held
            assert unsent(proxy_socket) <= UNSENT_LOW_WATER + 64 * 1024, unsent(proxy_socket)
            # The backend reads again: every byte arrives, in order, and the agent is read again.
            expected = (CHUNK * (sent // len(CHUNK) + 1))[:sent]
            assert await receive(loop, r.backend, sent) == expected
            await asyncio.sleep(0.05)
            assert not r.agent_side.holding(PEER_WRITE)
            assert r.errors == []

    uvloop.run(run())


def test_holds_nest_and_a_side_is_read_again_only_when_no_reason_holds_it() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        async with relay() as r:
            side = r.agent_side
            side.hold("recording")
            side.hold(PEER_WRITE)
            side.release("recording")
            assert not side.transport.is_reading()
            r.agent.send(b"x" * 10)
            await asyncio.sleep(0.05)
            side.release(PEER_WRITE)
            side.release(PEER_WRITE)  # releasing what is not held is a no-op
            assert side.transport.is_reading()
            assert await receive(loop, r.backend, 10) == b"x" * 10

    uvloop.run(run())

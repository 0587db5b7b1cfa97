"""The relay's two sockets as protocols: bytes go to the session synchronously, as the loop reads them.

Theory of operation. Start-up and login use asyncio streams (few messages, readable code). Once the
session is established, each side's transport is taken over by an ``Endpoint``: the transport calls
``data_received`` and the session's handler relays the bytes to the other side at once, with no
StreamReader buffer, future or task switch per read. That is most of a small query's cost in the proxy.

Flow control stays bounded. When a side's write buffer passes its high-water mark, the transport calls
that side's ``pause_writing``, and the endpoint stops reading the *other* side (``hold``) until
``resume_writing``. The session can hold a side for its own reasons too (recording backpressure, a
strict-mode statement waiting to be durable); a side is read again only when no reason holds it.

A side's write buffer is the transport's and the kernel's: a TCP socket's send queue grows by itself to
megabytes, and a peer that stopped reading would not fill the transport's buffer until the kernel's was
full. So each socket keeps at most ``UNSENT_LOW_WATER`` bytes the kernel has not sent yet
(TCP_NOTSENT_LOWAT; bytes in flight are not limited, so throughput is not): the transport then holds
what the peer has not taken, its high-water mark bounds it, and the other side stops being read about as
soon as this one stops reading. A paused TLS transport reads ahead at most ``TLS_READ_AHEAD`` bytes.
The proxy then takes little more from an agent than the backend would itself (asyncpg's executemany,
for one, expects its writes to stop early when the server fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import cast

DataHandler = Callable[[bytes], None]
LostHandler = Callable[["Endpoint", Exception | None], None]
ErrorHandler = Callable[[Exception], None]

PEER_WRITE = "peer-write"  # the other side's write buffer is full
# Bytes a socket may hold that the kernel has not sent (TCP_NOTSENT_LOWAT). Bytes in flight are apart.
UNSENT_LOW_WATER = 64 * 1024
# Ciphertext a paused TLS transport still reads ahead (asyncio's and uvloop's default: 256 KiB).
TLS_READ_AHEAD = 64 * 1024


class Endpoint(asyncio.Protocol):
    """One side of an established relay (the agent's TLS transport or the backend's)."""

    def __init__(
        self,
        name: str,
        transport: asyncio.BaseTransport,
        on_data: DataHandler,
        on_lost: LostHandler,
        on_error: ErrorHandler,
    ) -> None:
        self.name = name
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.peer: Endpoint | None = None
        self.lost = False
        self.stopped = False  # the session is over: bytes still arriving are dropped
        self._on_data = on_data
        self._on_error = on_error
        self._on_lost = on_lost
        self._holds: set[str] = set()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def attach(self, buffered: bytes, *, write_high_water: int) -> None:
        """Take the transport over from its stream; ``buffered`` = bytes the stream read but nobody consumed."""
        transport = self.transport
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=write_high_water)
        limit_unsent(transport)
        limit_read_ahead(transport)
        if buffered:  # relayed (and so recorded) even when the peer has already gone
            self.data_received(buffered)
        if transport.is_closing():
            self._mark_lost(None)
            return
        if not self._holds and not self.lost:
            transport.resume_reading()  # a stream may have paused it while its buffer was full

    # ------------------------------------------------------------------ asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self.stopped:
            return
        try:
            self._on_data(data)
        except Exception as e:
            # A bug must end this session like any other session error, not be logged and ignored.
            self._on_error(e)

    def eof_received(self) -> bool:
        return False  # a half-closed PostgreSQL connection is a closed one

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_lost(exc)

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.hold(PEER_WRITE)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.release(PEER_WRITE)

    # ------------------------------------------------------------------ reading holds

    def hold(self, reason: str) -> None:
        """Stop reading this side until ``release(reason)`` (reasons nest; each is held once)."""
        if not self._holds and not self.lost and not self.transport.is_closing():
            self.transport.pause_reading()
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and not self.lost and not self.transport.is_closing():
            self.transport.resume_reading()

    def handle_with(self, on_data: DataHandler) -> None:
        """From now on, bytes read on this side go to ``on_data`` (the session changed how it relays)."""
        self._on_data = on_data

    def holding(self, reason: str) -> bool:
        return reason in self._holds

    def _mark_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(self, exc)


def limit_unsent(transport: asyncio.BaseTransport, low_water: int = UNSENT_LOW_WATER) -> None:
    """Let the kernel hold at most ``low_water`` unsent bytes of this transport's TCP socket (Linux and
    macOS; elsewhere, and for other sockets, the kernel's own sizing stays)."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, low_water)


def limit_read_ahead(transport: asyncio.BaseTransport, high: int = TLS_READ_AHEAD) -> None:
    """A TLS transport whose reading is paused goes on reading ciphertext up to its read high-water mark
    (asyncio's and uvloop's have one; plain transports read nothing while paused)."""
    set_read_limits = getattr(transport, "set_read_buffer_limits", None)
    if set_read_limits is not None:
        set_read_limits(high=high)

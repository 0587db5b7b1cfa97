"""Message-at-a-time reading for the startup phases (the relay uses the framer directly)."""

from __future__ import annotations

import asyncio

from shared.pg.wire.constants import MAX_STARTUP_PACKET
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Framer


class PeerClosed(Exception):
    """The peer closed the connection."""


class MessageReader:
    """Reads whole typed messages from a StreamReader, keeping what arrives after them."""

    def __init__(self, reader: asyncio.StreamReader, framer: Framer, read_size: int = 65536) -> None:
        self.reader = reader
        self.framer = framer
        self._read_size = read_size
        self._queue: list[tuple[int, bytes, bytes]] = []

    async def read_message(self) -> tuple[int, bytes, bytes]:
        """Returns (type, body, whole message bytes)."""
        while not self._queue:
            data = await self.reader.read(self._read_size)
            if not data:
                raise PeerClosed()
            chunk, frames = self.framer.feed(data)
            self._queue.extend((mtype, chunk[start:end], chunk[start - 5 : end]) for mtype, start, end in frames)
        return self._queue.pop(0)

    def take_unconsumed(self) -> list[bytes]:
        """Whole messages already read but not consumed (the relay forwards them first)."""
        rest = [whole for _, _, whole in self._queue]
        self._queue.clear()
        return rest


async def read_startup_packet(reader: asyncio.StreamReader) -> bytes:
    """One untyped startup-phase packet body (after the int32 length)."""
    try:
        header = await reader.readexactly(4)
        length = int.from_bytes(header, "big", signed=True)
        if length < 8 or length > MAX_STARTUP_PACKET:
            raise ProtocolViolation("invalid length of startup packet")
        return await reader.readexactly(length - 4)
    except asyncio.IncompleteReadError as e:
        if e.partial or e.expected == 4:
            raise PeerClosed("incomplete startup packet") from e
        raise PeerClosed() from e


def has_buffered_plaintext(reader: asyncio.StreamReader) -> bool:
    """True if bytes arrived after an SSLRequest before we answered it.

    Such bytes would be read as if they had come through TLS (the class of bug behind
    CVE-2021-23214), so the connection must be refused. StreamReader has no public way to ask.
    """
    return bool(getattr(reader, "_buffer", b""))


def take_buffered(reader: asyncio.StreamReader) -> bytes:
    """What a stream has read but nobody consumed, removed from it (the relay takes the socket over)."""
    buffer: bytearray | None = getattr(reader, "_buffer", None)
    if not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data

"""Framing: turn a byte stream into whole messages without copying what passes through.

Theory of operation. A ``Framer`` is fed whatever the socket delivered. It returns the longest prefix
that consists of complete messages (as one ``bytes`` object, ready to be forwarded untouched) plus the
(type, body_start, end) offsets of each message in it; an incomplete trailing message stays inside the
framer until the rest arrives. Headers are validated as soon as their five bytes are present, so an
absurd length is rejected at once instead of being waited for. ``StartupFramer`` does the same for the
untyped packets of the startup phase (SSLRequest, StartupMessage, CancelRequest).
"""

from __future__ import annotations

import struct

from .constants import MAX_STARTUP_PACKET
from .errors import ProtocolViolation

_LEN = struct.Struct("!i")
Frame = tuple[int, int, int]  # (type byte, body start, end) as offsets into the returned chunk


class Framer:
    """Splits a typed message stream (everything after the startup packet)."""

    __slots__ = ("_need", "_pending", "allowed", "limit", "peer", "small_limit", "small_types")

    def __init__(
        self,
        *,
        limit: int,
        allowed: frozenset[int] | None = None,
        small_types: frozenset[int] = frozenset(),
        small_limit: int = 0,
        peer: str = "peer",
    ) -> None:
        self.limit = limit
        self.allowed = allowed
        self.small_types = small_types
        self.small_limit = small_limit
        self.peer = peer
        self._pending = bytearray()
        self._need = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a message."""
        return len(self._pending)

    def take_pending(self) -> bytes:
        """The incomplete trailing message held back, removed (another framer continues the stream)."""
        data = bytes(self._pending)
        self._pending.clear()
        self._need = 0
        return data

    def feed(self, data: bytes) -> tuple[bytes, list[Frame]]:
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return b"", []
            data = bytes(self._pending)
            self._pending.clear()
        frames: list[Frame] = []
        pos = 0
        size = len(data)
        unpack = _LEN.unpack_from
        allowed, limit, small_types, small_limit = self.allowed, self.limit, self.small_types, self.small_limit
        while size - pos >= 5:
            mtype = data[pos]
            (length,) = unpack(data, pos + 1)
            if allowed is not None and mtype not in allowed:
                raise ProtocolViolation(f"invalid {self.peer} message type {_show(mtype)}")
            if length < 4 or length > limit or (mtype in small_types and length > small_limit):
                raise ProtocolViolation(f"invalid message length {length} for message type {_show(mtype)}")
            end = pos + 1 + length
            if end > size:
                self._need = end - pos
                break
            frames.append((mtype, pos + 5, end))
            pos = end
        else:
            self._need = 5
        if pos < size:
            self._pending += memoryview(data)[pos:]
            return data[:pos], frames
        return data, frames


class StartupFramer:
    """Reads one untyped startup-phase packet: int32 length (self-inclusive), then the body."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> bytes | None:
        """Returns the packet body once complete; bytes after it are kept for ``take_rest``."""
        self._buf += data
        if len(self._buf) < 4:
            return None
        (length,) = _LEN.unpack_from(self._buf, 0)
        if length < 8 or length > MAX_STARTUP_PACKET:
            raise ProtocolViolation("invalid length of startup packet")
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[4:length])
        del self._buf[:length]
        return body

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def _show(mtype: int) -> str:
    return repr(chr(mtype)) if 32 <= mtype < 127 else f"0x{mtype:02x}"

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
from collections.abc import Iterable

from .constants import MAX_STARTUP_PACKET
from .errors import ProtocolViolation

_LEN = struct.Struct("!i")
Frame = tuple[int, int, int]  # (type byte, body start, end) as offsets into the returned chunk

BAD_TYPE, BAD_LENGTH = 1, 2


def scan_py(
    data: bytes,
    pos: int,
    allowed: bytes | None,
    limit: int,
    small: bytes | None,
    small_limit: int,
    frames: list[Frame] | None,
    watch: bytes | None,
) -> tuple[int, int, int, int, int]:
    """Walk the whole messages of ``data`` from ``pos``; the contract of the compiled ``_framing.scan``.

    ``allowed``, ``small`` and ``watch`` are 256-byte tables indexed by message type (nonzero: member)
    or None. Each whole message is checked (type in ``allowed``; length at least 4, at most ``limit``,
    and at most ``small_limit`` for a type in ``small``), appended to ``frames`` as (type, body start,
    end) when ``frames`` is a list, and counted when its type is in ``watch``. Returns (end of the last
    whole message, bytes needed to complete the next one from ``end``, messages watched, body start of
    the last watched one or -1, error). On an error (``BAD_TYPE``, ``BAD_LENGTH``), ``end`` is the
    offending message's start."""
    size = len(data)
    pos = size if pos < 0 or pos > size else pos
    need, watched, last = 5, 0, -1
    unpack = _LEN.unpack_from
    while size - pos >= 5:
        mtype = data[pos]
        (length,) = unpack(data, pos + 1)
        if allowed is not None and not allowed[mtype]:
            return pos, need, watched, last, BAD_TYPE
        if length < 4 or length > limit or (small is not None and small[mtype] and length > small_limit):
            return pos, need, watched, last, BAD_LENGTH
        end = pos + 1 + length
        if end > size:
            need = end - pos
            break
        if watch is not None and watch[mtype]:
            watched += 1
            last = pos + 5
        if frames is not None:
            frames.append((mtype, pos + 5, end))
        pos = end
    return pos, need, watched, last, 0


try:  # the same loop compiled (shared/pg/wire/_framing.c); the pure-Python twin where it was not built
    from ._framing import scan
except ImportError:  # pragma: no cover - depends on the build
    scan = scan_py

COMPILED = scan is not scan_py


def type_table(types: Iterable[int] | None) -> bytes | None:
    """The 256-byte membership table ``scan`` takes for a set of message types (None: no table)."""
    if types is None:
        return None
    table = bytearray(256)
    for t in types:
        table[t] = 1
    return bytes(table)


class Framer:
    """Splits a typed message stream (everything after the startup packet)."""

    __slots__ = ("_allowed", "_need", "_pending", "_small", "_watch", "allowed", "limit", "peer", "small_limit")

    def __init__(
        self,
        *,
        limit: int,
        allowed: frozenset[int] | None = None,
        small_types: frozenset[int] = frozenset(),
        small_limit: int = 0,
        peer: str = "peer",
        watch: frozenset[int] = frozenset(),
    ) -> None:
        self.limit = limit
        self.allowed = allowed
        self.small_limit = small_limit
        self.peer = peer
        self._allowed = type_table(allowed)
        self._small = type_table(small_types) if small_types else None
        self._watch = type_table(watch) if watch else None
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
        """The longest prefix of whole messages (held-back bytes first) and each message's offsets in it."""
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return b"", []
            data = bytes(self._pending)
            self._pending.clear()
        frames: list[Frame] = []
        end, self._need, _, _, error = scan(
            data, 0, self._allowed, self.limit, self._small, self.small_limit, frames, None
        )
        if error:
            self._reject(data, end, error)
        return self._cut(data, end), frames

    def count(self, data: bytes) -> tuple[bytes, int, int]:
        """``feed`` for a relay that only counts: (the prefix of whole messages, how many of them have a
        type in ``watch``, the body offset of the last of those in the prefix, or -1)."""
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return b"", 0, -1
            data = bytes(self._pending)
            self._pending.clear()
        end, self._need, watched, last, error = scan(
            data, 0, self._allowed, self.limit, self._small, self.small_limit, None, self._watch
        )
        if error:
            self._reject(data, end, error)
        return self._cut(data, end), watched, last

    def _cut(self, data: bytes, end: int) -> bytes:
        if end < len(data):
            self._pending += memoryview(data)[end:]
            return data[:end]
        return data

    def _reject(self, data: bytes, pos: int, error: int) -> None:
        mtype = data[pos]
        if error == BAD_TYPE:
            raise ProtocolViolation(f"invalid {self.peer} message type {_show(mtype)}")
        (length,) = _LEN.unpack_from(data, pos + 1)
        raise ProtocolViolation(f"invalid message length {length} for message type {_show(mtype)}")


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

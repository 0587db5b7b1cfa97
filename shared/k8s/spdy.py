"""SPDY/3.1 framing, sans-I/O: the subset Kubernetes' streaming (exec, attach, port-forward) uses.

Feed received bytes to :meth:`SpdyConnection.receive_data` and get frames back; build outgoing frames with
the ``*_frame`` methods. Control frames: SYN_STREAM (1), SYN_REPLY (2), RST_STREAM (3), SETTINGS (4),
PING (6), GOAWAY (7), HEADERS (8), WINDOW_UPDATE (9); data frames carry a 31-bit stream id. Header blocks
are zlib streams, one per direction for the whole connection, primed with SPDY/3's dictionary and flushed
with Z_SYNC_FLUSH after each block. Like moby/spdystream (the peer kubectl links), flow control is not
enforced in either direction: WINDOW_UPDATE is read and ignored.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 3
FLAG_FIN = 0x01
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9

Headers = dict[str, list[str]]


def _dictionary() -> bytes:
    """SPDY/3's header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1)."""
    prefixed = (
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
        "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
        "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
        "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
        "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
        "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public",
        "set-cookie", "keep-alive", "origin",
    )
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 "
        "Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 "
        "Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar "
        "Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,"
        "image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in prefixed) + tail.encode()


DICTIONARY = _dictionary()


class SpdyProtocolError(Exception):
    """The peer broke framing; the connection cannot continue (answer with GOAWAY and close)."""


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    associated_id: int
    priority: int
    headers: Headers
    fin: bool
    unidirectional: bool


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool


@dataclass(frozen=True, slots=True)
class Data:
    stream_id: int
    payload: bytes
    fin: bool


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool


@dataclass(frozen=True, slots=True)
class Settings:
    values: tuple[tuple[int, int, int], ...]  # (flags, id, value)


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = SynStream | SynReply | Data | RstStream | Ping | GoAway | HeadersFrame | Settings | WindowUpdate


class SpdyConnection:
    """One side of a SPDY/3.1 connection's framing (either side; the server's here)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(level=zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data`` (a partial frame waits for more)."""
        return [frame for frame, _ in self.receive_raw(data) if frame is not None]

    def receive_raw(self, data: bytes) -> list[tuple[Frame | None, bytes]]:
        """Each frame completed by ``data`` with its exact bytes (None for a control frame of an unknown
        type): what a relay needs to pass frames on unchanged while reading them. Header blocks are
        inflated in order, so one connection object must see every frame of its direction."""
        self._buffer += data
        frames: list[tuple[Frame | None, bytes]] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            raw = bytes(self._buffer[:8 + length])
            payload = raw[8:]
            del self._buffer[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise SpdyProtocolError(f"unsupported SPDY version {version}")
                frames.append((self._control(kind, flags, payload), raw))
            else:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyProtocolError("stream id zero is disallowed")
                frames.append((Data(stream_id, payload, bool(flags & FLAG_FIN)), raw))
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == SYN_STREAM:
                stream_id, associated, priority = struct.unpack_from(">IIB", payload)
                return SynStream(stream_id & 0x7FFFFFFF, associated & 0x7FFFFFFF, priority >> 5,
                                 self._headers(payload[10:]), fin, bool(flags & 0x02))
            if kind == SYN_REPLY:
                (stream_id,) = struct.unpack_from(">I", payload)
                return SynReply(stream_id & 0x7FFFFFFF, self._headers(payload[4:]), fin)
            if kind == HEADERS:
                (stream_id,) = struct.unpack_from(">I", payload)
                return HeadersFrame(stream_id & 0x7FFFFFFF, self._headers(payload[4:]), fin)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == PING:
                return Ping(struct.unpack_from(">I", payload)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", payload) if len(payload) >= 8 else (
                    struct.unpack_from(">I", payload)[0], 0)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", payload)
                values = []
                for i in range(count):
                    flag_id, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                    values.append((flag_id >> 24, flag_id & 0xFFFFFF, value))
                return Settings(tuple(values))
        except struct.error as e:
            raise SpdyProtocolError(f"truncated control frame of type {kind}") from e
        return None  # unknown control frames are ignored, as the spec asks

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as e:
            raise SpdyProtocolError(f"header block does not decompress: {e}") from e
        headers: Headers = {}
        try:
            (count,) = struct.unpack_from(">I", raw)
            position = 4
            for _ in range(count):
                (size,) = struct.unpack_from(">I", raw, position)
                name = raw[position + 4:position + 4 + size].decode().lower()
                position += 4 + size
                (size,) = struct.unpack_from(">I", raw, position)
                value = raw[position + 4:position + 4 + size].decode()
                position += 4 + size
                headers.setdefault(name, []).extend(value.split("\x00"))
        except (struct.error, UnicodeDecodeError) as e:
            raise SpdyProtocolError("malformed header block") from e
        return headers

    # ------------------------------------------------------------------ output

    def _compress(self, headers: Headers) -> bytes:
        block = struct.pack(">I", len(headers))
        for name, values in headers.items():
            value = "\x00".join(values).encode()
            block += struct.pack(">I", len(name)) + name.lower().encode() + struct.pack(">I", len(value)) + value
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control_frame(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_stream_frame(self, stream_id: int, headers: Headers, fin: bool = False) -> bytes:
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + self._compress(headers)
        return self._control_frame(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply_frame(self, stream_id: int, headers: Headers | None = None, fin: bool = False) -> bytes:
        payload = struct.pack(">I", stream_id) + self._compress(headers or {})
        return self._control_frame(SYN_REPLY, FLAG_FIN if fin else 0, payload)

    @staticmethod
    def data_frame(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload

    def rst_stream_frame(self, stream_id: int, status: int) -> bytes:
        return self._control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping_frame(self, ping_id: int) -> bytes:
        return self._control_frame(PING, 0, struct.pack(">I", ping_id))

    def goaway_frame(self, last_good_stream_id: int, status: int = 0) -> bytes:
        return self._control_frame(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))

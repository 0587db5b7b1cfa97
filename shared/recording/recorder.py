"""The sans-I/O session recorder: events in, sealed chunks and an unsigned manifest out.

Theory of operation. The proxy calls ``record_bytes`` for every read it relays (in both directions, as
the bytes crossed the agent-side wire) and ``record_decision`` for every decision. Each call encodes an
event with the next sequence number into the pending buffer, held by the session's ``tape`` (tape.py:
the relay calls the tape directly, once per read). The recorder keeps no reference to what it was
given. A chunk is cut when the pending events reach ``chunk_size`` encoded bytes (the call that
crossed the threshold returns it), when ``poll(now)`` finds the oldest pending event older than
``flush_interval_ns`` (buffered mode), or when the caller forces it with ``take_chunk_now()`` (strict
mode: the statement's event must be durable before it is forwarded). Each chunk carries the SHA-256
of the one before, so the chunks form a hash chain whose head goes into the manifest that ``seal``
returns. The recorder does no I/O: shipping chunks is the uploader's job.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .format import (
    FIRST_DECISION_KIND,
    GENESIS_SHA256,
    ChunkEntry,
    ChunkHeader,
    Counts,
    Direction,
    EventKind,
    Manifest,
    SessionMeta,
    SessionStatus,
    chunk_name,
    encode_chunk_header,
    encode_decision_payload,
    format_timestamp,
    session_prefix,
)
from .tape import Tape, TapePy

# 4 MiB: few puts for bulk results (each costs milliseconds of client CPU whatever its size; at 1 MiB a
# 70 MB/s result stream spent a quarter of a CPU on them), still small enough to retry cheaply.
DEFAULT_CHUNK_SIZE: Final = 4 << 20
DEFAULT_FLUSH_INTERVAL_NS: Final = 5_000_000_000  # an idle session's tail reaches S3 within 5 s


class RecorderClosed(Exception):
    """An event was recorded after the session was sealed (a bug in the caller, not the peer)."""


@dataclass(frozen=True, slots=True)
class SealedChunk:
    """A finished chunk, ready to upload under ``key``."""

    index: int
    key: str
    first_seq: int
    last_seq: int
    prev_sha256: bytes
    sha256: bytes
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def entry(self) -> ChunkEntry:
        return ChunkEntry(self.index, self.key, self.sha256.hex(), self.first_seq, self.last_seq, self.size)


@dataclass(frozen=True, slots=True)
class SealedSession:
    """What ``seal`` hands over: the last chunk to upload (if events were pending) and the manifest."""

    last_chunk: SealedChunk | None
    manifest: Manifest


class SessionRecorder:
    def __init__(
        self,
        meta: SessionMeta,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        flush_interval_ns: int = DEFAULT_FLUSH_INTERVAL_NS,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if chunk_size <= 0 or flush_interval_ns <= 0:
            raise ValueError("chunk_size and flush_interval_ns must be positive")
        self.meta = meta
        self.prefix = session_prefix(meta.session_id, meta.started_at)
        self.chunk_size = chunk_size
        self.flush_interval_ns = flush_interval_ns
        self._clock = clock
        # Events not yet in a chunk, encoded into one buffer as they come (header, payload, header, ...),
        # with the sequence numbers and counts: the per-read path's state, in compiled code where it was
        # built (tape.py). The relayed bytes objects are not kept: their memory goes straight back to
        # the allocator, still in cache, instead of piling up in a session's memory until the chunk is cut.
        self.tape: TapePy = Tape(chunk_size, None if clock is time.time_ns else clock)
        self._prev_sha256 = GENESIS_SHA256
        self._chunks: list[ChunkEntry] = []
        self._decisions = 0
        self._sealed = False

    @property
    def pending_bytes(self) -> int:
        """Encoded size of the events not yet in a chunk."""
        return self.tape.pending_bytes

    @property
    def next_seq(self) -> int:
        return self.tape.next_seq

    @property
    def chunks(self) -> tuple[ChunkEntry, ...]:
        return tuple(self._chunks)

    def record_bytes(
        self,
        direction: Direction,
        data: bytes,
        *,
        statements: int = 0,
        kind: EventKind = EventKind.WIRE,
        now_ns: int | None = None,
    ) -> SealedChunk | None:
        """Record wire bytes; ``statements`` = how many agent statements they complete (for counts).

        Returns a chunk when this event filled one. Empty ``data`` records nothing.
        """
        if direction == Direction.DECISION or kind >= FIRST_DECISION_KIND:
            raise ValueError("wire bytes need a wire direction and a wire kind")
        if statements:
            self.tape.count(statements)
        if not data:
            return None
        return self._append(direction, kind, bytes(data), now_ns)

    def record_wire(
        self, direction: Literal[Direction.AGENT_TO_PROXY, Direction.PROXY_TO_AGENT], data: bytes
    ) -> SealedChunk | None:
        """``record_bytes(direction, data)`` for relayed bytes (not empty, kind WIRE, now): the per-read
        path, without the checks its callers' types already make. (The proxy's relay calls the tape's
        ``agent``/``proxy`` instead, which hand a full chunk to a callback.)"""
        if self._sealed:
            raise RecorderClosed("event recorded after the session was sealed")
        return self.take_chunk_now() if self.tape.wire(direction, data) else None

    def record_auth_bytes(self, data: bytes, *, now_ns: int | None = None) -> SealedChunk | None:
        """Record agent->proxy bytes of the startup/auth phase with passwords and tokens redacted."""
        redacted = redact_startup_and_auth(data)
        kind = EventKind.WIRE if redacted == data else EventKind.WIRE_REDACTED
        return self.record_bytes(Direction.AGENT_TO_PROXY, redacted, kind=kind, now_ns=now_ns)

    def count_statement(self) -> None:
        """One more agent statement completed (for the manifest's counts; records no event)."""
        self.tape.count(1)

    def record_decision(
        self, kind: EventKind, payload: Mapping[str, Any], *, now_ns: int | None = None
    ) -> SealedChunk | None:
        """Record a decision (grant, refusal, block, ...) as a JSON object."""
        if kind < FIRST_DECISION_KIND:
            raise ValueError(f"{kind!r} is not a decision kind")
        self._decisions += 1
        return self._append(Direction.DECISION, kind, encode_decision_payload(payload), now_ns)

    def flush_due(self, now_ns: int | None = None) -> bool:
        """True when the oldest pending event has waited ``flush_interval_ns``."""
        if not self.tape.pending_bytes:
            return False
        now = self._clock() if now_ns is None else now_ns
        return now - self.tape.first_ts >= self.flush_interval_ns

    def poll(self, now_ns: int | None = None) -> SealedChunk | None:
        """The time-based flush: a chunk if one is due, else None. Call it from a timer."""
        return self.take_chunk_now() if self.flush_due(now_ns) else None

    def take_chunk_now(self) -> SealedChunk | None:
        """Cut a chunk from everything pending (None if nothing is)."""
        tape = self.tape
        if not tape.pending_bytes:
            return None
        index = len(self._chunks)
        first_seq, last_seq = tape.first_seq, tape.next_seq - 1
        header = ChunkHeader(
            self.meta.session_id, index, first_seq, last_seq, last_seq - first_seq + 1, self._prev_sha256
        )
        data = tape.take(encode_chunk_header(header))
        chunk = SealedChunk(
            index=index,
            key=self.prefix + chunk_name(index),
            first_seq=first_seq,
            last_seq=last_seq,
            prev_sha256=self._prev_sha256,
            sha256=hashlib.sha256(data).digest(),
            data=data,
        )
        self._prev_sha256 = chunk.sha256
        self._chunks.append(chunk.entry())
        return chunk

    def seal(self, status: SessionStatus, *, ended_at_ns: int | None = None) -> SealedSession:
        """End the recording: the last chunk (if any) and the unsigned manifest covering every chunk."""
        if self._sealed:
            raise RecorderClosed("session already sealed")
        last = self.take_chunk_now()
        self._sealed = True
        tape = self.tape
        tape.open = False
        counts = Counts(
            events=tape.next_seq,
            bytes_agent_to_proxy=tape.bytes_agent,
            bytes_proxy_to_agent=tape.bytes_proxy,
            statements=tape.statements,
            decisions=self._decisions,
        )
        manifest = Manifest(
            session=self.meta,
            status=status,
            ended_at=format_timestamp(self._clock() if ended_at_ns is None else ended_at_ns),
            counts=counts,
            chunks=tuple(self._chunks),
            chain_head=self._prev_sha256.hex(),
        )
        return SealedSession(last, manifest)

    def _append(self, direction: int, kind: int, payload: bytes, now_ns: int | None) -> SealedChunk | None:
        if self._sealed:
            raise RecorderClosed("event recorded after the session was sealed")
        return self.take_chunk_now() if self.tape.append(direction, kind, payload, now_ns) else None


# ---------------------------------------------------------------- redaction

REDACTED: Final = b"[redacted]"
_I32 = struct.Struct("!i")


def redact_startup_and_auth(data: bytes) -> bytes:
    """Agent->proxy startup/auth bytes with every PasswordMessage ('p') body replaced.

    Untyped startup packets (StartupMessage, SSLRequest, CancelRequest) are kept as they are; a 'p'
    message (password, token, SASL response) becomes ``p`` + length + ``[redacted]\\0``. Pass whole
    messages: bytes that do not parse as complete messages (a truncated tail, garbage) are replaced by
    ``[redacted]`` too, because a secret may hide in anything we cannot parse.
    """
    out: list[bytes] = []
    pos, size = 0, len(data)
    while pos < size:
        if data[pos] == 0:
            # An untyped packet: its int32 length starts with a zero byte, no message type does.
            if size - pos < 8:
                break
            (length,) = _I32.unpack_from(data, pos)
            if length < 8 or pos + length > size:
                break
            out.append(data[pos : pos + length])
            pos += length
            continue
        if size - pos < 5:
            break
        (length,) = _I32.unpack_from(data, pos + 1)
        if length < 4 or pos + 1 + length > size:
            break
        if data[pos] == ord("p"):
            body = REDACTED + b"\0"
            out.append(b"p" + _I32.pack(len(body) + 4) + body)
        else:
            out.append(data[pos : pos + 1 + length])
        pos += 1 + length
    if pos < size:
        out.append(REDACTED)
    return b"".join(out)

"""Recording format v1: events, chunks, manifest and S3 layout (spec: docs/recording-format.md).

Everything here is pure: bytes and JSON in, dataclasses out, and back. Decoders treat their input as
hostile (it may come from a tampered bucket) and raise ``RecordingFormatError`` with a message that names
what is wrong and where, never IndexError, struct.error or KeyError.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

FORMAT_VERSION: Final = 1
CHUNK_MAGIC: Final = b"ALRC"
GENESIS_SHA256: Final = bytes(32)  # "previous chunk" hash of chunk 0
SIGNATURE_ALGORITHM: Final = "ECDSA_SHA_256"

# u64 seq, i64 ts_ns, u8 direction, u8 kind, u32 payload length
EVENT_HEADER: Final = struct.Struct("!QqBBI")
# magic, u16 version, u16 session id length (the id follows)
_CHUNK_HEAD: Final = struct.Struct("!4sHH")
# u32 chunk index, u64 first seq, u64 last seq, u32 event count, 32s previous chunk's SHA-256
_CHUNK_TAIL: Final = struct.Struct("!IQQI32s")
MAX_PAYLOAD: Final = 0xFFFFFFFF


class RecordingFormatError(Exception):
    """Bytes or JSON that are not a valid v1 recording object; the message says what and where."""


class Direction(enum.IntEnum):
    AGENT_TO_PROXY = 0
    PROXY_TO_AGENT = 1
    DECISION = 2


class EventKind(enum.IntEnum):
    """Kinds 0-15 carry wire bytes, 16-255 carry a decision (JSON object). Readers keep unknown kinds."""

    WIRE = 0  # bytes exactly as they crossed the agent-side wire (already masked by the masker)
    WIRE_REDACTED = 1  # wire bytes with a secret replaced (password / token in startup and auth)
    # HTTP APIs (the Kubernetes gateway): a u32 exchange number, then the head / a piece of the body /
    # a u8 channel and a piece of an upgraded stream (exec, attach, port-forward); see recording-format.md.
    HTTP_HEAD = 8
    HTTP_BODY = 9
    STREAM = 10
    GRANT = 16  # identity, policy version, expiry, recording mode
    REFUSAL = 17  # no grant: reason, sqlstate
    REAUTHORIZATION = 18  # grant renewed (new expiry) or revoked
    TERMINATION = 19  # why the session ended
    BLOCK = 20  # statement denied by policy
    HOLD = 21  # statement held for approval
    APPROVAL = 22  # approval decision for a held statement
    MASK_COUNTS = 23  # values masked, per detector
    RECORDING_FAULT = 24  # the recorder itself failed (e.g. store unreachable, buffer bound hit)
    ALERT = 25  # something that should never happen did (the proxy's and the server's readings differ)
    REQUEST = 40  # an HTTP API request as judged: exchange, request-info, verdict (Kubernetes)
    EXCHANGE_END = 41  # an HTTP exchange (or its stream) ended: exchange, status, bytes, why


FIRST_DECISION_KIND: Final = 16


class SessionStatus(enum.StrEnum):
    CLOSED = "closed"
    INCOMPLETE = "incomplete"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    ts_ns: int
    direction: int  # a Direction value
    kind: int  # an EventKind value, or an unknown kind from a newer writer
    payload: bytes

    def decision(self) -> dict[str, Any]:
        """The JSON object of a decision event."""
        if self.direction != Direction.DECISION:
            raise RecordingFormatError(f"event {self.seq}: not a decision event")
        return decode_decision_payload(self.payload, where=f"event {self.seq}")


def encode_decision_payload(payload: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, compact, UTF-8) so equal decisions have equal bytes."""
    try:
        return canonical_json(dict(payload))
    except (TypeError, ValueError) as e:
        raise ValueError(f"decision payload is not JSON-serialisable: {e}") from e


def decode_decision_payload(payload: bytes, *, where: str = "decision") -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as e:
        raise RecordingFormatError(f"{where}: decision payload is not JSON") from e
    if not isinstance(value, dict):
        raise RecordingFormatError(f"{where}: decision payload is not a JSON object")
    return value


def encode_event(event: Event) -> bytes:
    return encode_event_parts(event.seq, event.ts_ns, event.direction, event.kind, event.payload)


def encode_event_parts(seq: int, ts_ns: int, direction: int, kind: int, payload: bytes) -> bytes:
    try:
        return EVENT_HEADER.pack(seq, ts_ns, direction, kind, len(payload)) + payload
    except struct.error as e:
        raise ValueError(f"event {seq}: field out of range: {e}") from e


def decode_events(data: bytes | memoryview, *, where: str = "events") -> list[Event]:
    """All events in ``data``, which must end exactly at an event boundary."""
    view = memoryview(data)
    events: list[Event] = []
    pos, size, hsize = 0, len(view), EVENT_HEADER.size
    while pos < size:
        if size - pos < hsize:
            raise RecordingFormatError(f"{where}: truncated event header at offset {pos}")
        seq, ts_ns, direction, kind, length = EVENT_HEADER.unpack_from(view, pos)
        if direction > Direction.DECISION:
            raise RecordingFormatError(f"{where}: event {seq} has invalid direction {direction}")
        start = pos + hsize
        if size - start < length:
            raise RecordingFormatError(f"{where}: event {seq} payload truncated ({length} bytes declared)")
        pos = start + length
        events.append(Event(seq, ts_ns, direction, kind, bytes(view[start:pos])))
    return events


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    session_id: str
    index: int
    first_seq: int
    last_seq: int
    event_count: int
    prev_sha256: bytes


@dataclass(frozen=True, slots=True)
class DecodedChunk:
    header: ChunkHeader
    events: list[Event]


def encode_chunk_header(header: ChunkHeader) -> bytes:
    sid = header.session_id.encode()
    if len(header.prev_sha256) != 32:
        raise ValueError("prev_sha256 must be 32 bytes")
    try:
        return (
            _CHUNK_HEAD.pack(CHUNK_MAGIC, FORMAT_VERSION, len(sid))
            + sid
            + _CHUNK_TAIL.pack(header.index, header.first_seq, header.last_seq, header.event_count, header.prev_sha256)
        )
    except struct.error as e:
        raise ValueError(f"chunk header field out of range: {e}") from e


def encode_chunk(session_id: str, index: int, prev_sha256: bytes, events: Iterable[Event]) -> bytes:
    """A whole chunk: header, then the events (at least one, in sequence order)."""
    evs = list(events)
    if not evs:
        raise ValueError("a chunk holds at least one event")
    header = ChunkHeader(session_id, index, evs[0].seq, evs[-1].seq, len(evs), prev_sha256)
    return encode_chunk_header(header) + b"".join(encode_event(e) for e in evs)


def decode_chunk(data: bytes | memoryview) -> DecodedChunk:
    """Parse and check a chunk's internal consistency (not its place in the chain)."""
    view = memoryview(data)
    if len(view) < _CHUNK_HEAD.size:
        raise RecordingFormatError("chunk truncated: no header")
    magic, version, sid_len = _CHUNK_HEAD.unpack_from(view, 0)
    if magic != CHUNK_MAGIC:
        raise RecordingFormatError("not a chunk: bad magic")
    if version != FORMAT_VERSION:
        raise RecordingFormatError(f"unsupported chunk format version {version}")
    pos = _CHUNK_HEAD.size
    if len(view) < pos + sid_len + _CHUNK_TAIL.size:
        raise RecordingFormatError("chunk truncated: header incomplete")
    try:
        session_id = bytes(view[pos : pos + sid_len]).decode()
    except UnicodeDecodeError as e:
        raise RecordingFormatError("chunk header: session id is not UTF-8") from e
    pos += sid_len
    index, first_seq, last_seq, count, prev = _CHUNK_TAIL.unpack_from(view, pos)
    header = ChunkHeader(session_id, index, first_seq, last_seq, count, bytes(prev))
    events = decode_events(view[pos + _CHUNK_TAIL.size :], where=f"chunk {index}")
    if len(events) != count:
        raise RecordingFormatError(f"chunk {index}: header says {count} events, found {len(events)}")
    if not events:
        raise RecordingFormatError(f"chunk {index}: no events")
    if events[0].seq != first_seq or events[-1].seq != last_seq:
        raise RecordingFormatError(f"chunk {index}: first/last seq in header do not match its events")
    return DecodedChunk(header, events)


# ---------------------------------------------------------------- layout


def session_prefix(session_id: str, started_at: str) -> str:
    """``sessions/dt=YYYY-MM-DD/<session id>/`` (the date is the session's UTC start date)."""
    if not session_id or "/" in session_id:
        raise ValueError("session id must be non-empty and contain no '/'")
    return f"sessions/dt={parse_timestamp(started_at).date().isoformat()}/{session_id}/"


MANIFEST_INDEX_PREFIX: Final = "manifests/"


def manifest_index_key(prefix: str) -> str:
    """``manifests/dt=YYYY-MM-DD/<session id>.json`` for the session at ``prefix``.

    A verbatim copy of the manifest, apart from the chunks: the Athena table ``airlock_sessions`` reads
    this prefix, where nothing but manifests lies (a table over ``sessions/`` would scan every chunk)."""
    parts = prefix.split("/")
    if len(parts) != 4 or parts[0] != "sessions" or not parts[1].startswith("dt=") or not parts[2] or parts[3]:
        raise ValueError(f"not a session prefix: {prefix!r}")
    return f"{MANIFEST_INDEX_PREFIX}{parts[1]}/{parts[2]}.json"


def chunk_name(index: int) -> str:
    # Zero-padded so that a lexical listing is chunk order.
    return f"{index:08d}.chunk"


MANIFEST_NAME: Final = "manifest.json"
_CHUNK_NAME = re.compile(r"^(\d{8,})\.chunk$")


def parse_chunk_name(name: str) -> int | None:
    """Chunk index from a file name, or None if the name is not a chunk's."""
    m = _CHUNK_NAME.match(name)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- timestamps


def format_timestamp(ts_ns: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2025-01-31T12:00:00.000001Z."""
    dt = datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).replace(microsecond=ts_ns // 1000 % 1_000_000)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    try:
        dt = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError) as e:
        raise RecordingFormatError(f"invalid timestamp {value!r}: want YYYY-MM-DDTHH:MM:SS.ffffffZ") from e
    return dt.replace(tzinfo=UTC)


# ---------------------------------------------------------------- manifest


def canonical_json(value: Any) -> bytes:
    """The one JSON encoding that is hashed and signed: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class SessionMeta:
    session_id: str
    identity: str
    target: str
    database: str
    client_addr: str
    proxy_id: str
    started_at: str  # format_timestamp()
    retain_until: str  # Object Lock retain-until date every object of the session must carry, at least
    mode: str = "buffered"  # "buffered" | "strict"
    policy_version: str = ""


@dataclass(frozen=True, slots=True)
class Counts:
    events: int = 0
    bytes_agent_to_proxy: int = 0
    bytes_proxy_to_agent: int = 0
    statements: int = 0
    decisions: int = 0


@dataclass(frozen=True, slots=True)
class ChunkEntry:
    index: int
    key: str
    sha256: str  # hex
    first_seq: int
    last_seq: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Signature:
    algorithm: str
    key_id: str
    value: str  # base64 of the DER-encoded ECDSA signature

    def raw(self) -> bytes:
        try:
            return base64.b64decode(self.value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise RecordingFormatError("manifest signature is not valid base64") from e


@dataclass(frozen=True, slots=True)
class Manifest:
    session: SessionMeta
    status: SessionStatus
    ended_at: str
    counts: Counts
    chunks: tuple[ChunkEntry, ...]
    chain_head: str  # hex SHA-256 of the last chunk; GENESIS (zeros) if there are none
    signature: Signature | None = None
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)  # room for later issues, signed with the rest

    def signed(self, signature: Signature) -> Manifest:
        return replace(self, signature=signature)

    def signing_bytes(self) -> bytes:
        """What the signature covers: the canonical JSON of the manifest without its signature block."""
        body = manifest_to_dict(self)
        body.pop("signature", None)
        return canonical_json(body)


def manifest_to_dict(m: Manifest) -> dict[str, Any]:
    s = m.session
    out: dict[str, Any] = {
        "format_version": m.format_version,
        "session": {
            "session_id": s.session_id,
            "identity": s.identity,
            "target": s.target,
            "database": s.database,
            "client_addr": s.client_addr,
            "proxy_id": s.proxy_id,
            "started_at": s.started_at,
            "ended_at": m.ended_at,
            "status": m.status.value,
            "retain_until": s.retain_until,
            "mode": s.mode,
            "policy_version": s.policy_version,
        },
        "counts": {
            "events": m.counts.events,
            "bytes_agent_to_proxy": m.counts.bytes_agent_to_proxy,
            "bytes_proxy_to_agent": m.counts.bytes_proxy_to_agent,
            "statements": m.counts.statements,
            "decisions": m.counts.decisions,
        },
        "chunks": [
            {
                "index": c.index,
                "key": c.key,
                "sha256": c.sha256,
                "first_seq": c.first_seq,
                "last_seq": c.last_seq,
                "bytes": c.bytes,
            }
            for c in m.chunks
        ],
        "chain_head": m.chain_head,
        "extra": dict(m.extra),
    }
    if m.signature is not None:
        out["signature"] = {
            "algorithm": m.signature.algorithm,
            "key_id": m.signature.key_id,
            "value": m.signature.value,
        }
    return out


def encode_manifest(m: Manifest) -> bytes:
    """The manifest.json bytes (canonical JSON, so re-encoding a decoded manifest is byte-identical)."""
    return canonical_json(manifest_to_dict(m))


def decode_manifest(data: bytes) -> Manifest:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise RecordingFormatError("manifest: not JSON") from e
    r = _Reader(doc, "manifest")
    version = r.integer("format_version")
    if version != FORMAT_VERSION:
        raise RecordingFormatError(f"manifest: unsupported format version {version}")
    s = r.obj("session")
    c = r.obj("counts")
    chunks = tuple(
        ChunkEntry(
            e.integer("index"),
            e.string("key"),
            e.hex32("sha256"),
            e.integer("first_seq"),
            e.integer("last_seq"),
            e.integer("bytes"),
        )
        for e in r.list_of_obj("chunks")
    )
    status_raw = s.string("status")
    try:
        status = SessionStatus(status_raw)
    except ValueError as e:
        raise RecordingFormatError(f"manifest.session.status: unknown status {status_raw!r}") from e
    meta = SessionMeta(
        session_id=s.string("session_id"),
        identity=s.string("identity"),
        target=s.string("target"),
        database=s.string("database"),
        client_addr=s.string("client_addr"),
        proxy_id=s.string("proxy_id"),
        started_at=s.timestamp("started_at"),
        retain_until=s.timestamp("retain_until"),
        mode=s.string("mode"),
        policy_version=s.string("policy_version"),
    )
    sig: Signature | None = None
    if "signature" in doc:
        g = r.obj("signature")
        sig = Signature(g.string("algorithm"), g.string("key_id"), g.string("value"))
    extra = doc.get("extra", {})
    if not isinstance(extra, dict):
        raise RecordingFormatError("manifest.extra: not an object")
    return Manifest(
        session=meta,
        status=status,
        ended_at=s.timestamp("ended_at"),
        counts=Counts(
            c.integer("events"),
            c.integer("bytes_agent_to_proxy"),
            c.integer("bytes_proxy_to_agent"),
            c.integer("statements"),
            c.integer("decisions"),
        ),
        chunks=chunks,
        chain_head=r.hex32("chain_head"),
        signature=sig,
        format_version=version,
        extra=extra,
    )


class _Reader:
    """Typed field access on untrusted JSON, with errors that name the field's path."""

    __slots__ = ("doc", "path")

    def __init__(self, doc: Any, path: str) -> None:
        if not isinstance(doc, dict):
            raise RecordingFormatError(f"{path}: not an object")
        self.doc: dict[str, Any] = doc
        self.path = path

    def _get(self, name: str) -> Any:
        if name not in self.doc:
            raise RecordingFormatError(f"{self.path}.{name}: missing")
        return self.doc[name]

    def integer(self, name: str) -> int:
        v = self._get(name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise RecordingFormatError(f"{self.path}.{name}: not a non-negative integer")
        return v

    def string(self, name: str) -> str:
        v = self._get(name)
        if not isinstance(v, str):
            raise RecordingFormatError(f"{self.path}.{name}: not a string")
        return v

    def timestamp(self, name: str) -> str:
        v = self.string(name)
        parse_timestamp(v)
        return v

    def hex32(self, name: str) -> str:
        v = self.string(name)
        if not re.fullmatch(r"[0-9a-f]{64}", v):
            raise RecordingFormatError(f"{self.path}.{name}: not a lowercase hex SHA-256")
        return v

    def obj(self, name: str) -> _Reader:
        return _Reader(self._get(name), f"{self.path}.{name}")

    def list_of_obj(self, name: str) -> list[_Reader]:
        v = self._get(name)
        if not isinstance(v, list):
            raise RecordingFormatError(f"{self.path}.{name}: not a list")
        return [_Reader(item, f"{self.path}.{name}[{i}]") for i, item in enumerate(v)]

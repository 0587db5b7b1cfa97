"""Offline verification of a recorded session: from S3 or from a downloaded directory.

The checks run in an order that makes the first defect the most telling one: the manifest and its
signature (everything else is judged against the manifest), then each chunk in index order (present,
hash, decodable, belongs here, chained to the previous one, sequence numbers continuing without gaps),
then the chain head and counts, then objects the manifest does not name, then (S3 only) Object Lock
retention on every object. The report names the first defect and stops there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from .format import (
    GENESIS_SHA256,
    MANIFEST_NAME,
    Direction,
    Manifest,
    RecordingFormatError,
    decode_chunk,
    decode_manifest,
    parse_chunk_name,
    parse_timestamp,
)
from .signing import verify_manifest_signature
from .store import ChunkStore, ObjectMissing, Retention


class SessionSource(Protocol):
    """Where a session's files are: names are relative (``manifest.json``, ``00000003.chunk``)."""

    def describe(self) -> str: ...

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        ...

    def retention(self, name: str) -> Retention | bool | None:
        """Object Lock retention; False when the source cannot have any (a local directory)."""
        ...


class DirectorySource:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_file())

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def retention(self, name: str) -> Retention | bool | None:
        return False


class S3Source:
    def __init__(self, store: ChunkStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"

    def describe(self) -> str:
        return f"s3://{self.store.bucket}/{self.prefix}"

    def names(self) -> list[str]:
        return [k[len(self.prefix) :] for k in self.store.list_keys(self.prefix)]

    def read(self, name: str) -> bytes | None:
        try:
            return self.store.get(self.prefix + name)
        except ObjectMissing:
            return None

    def retention(self, name: str) -> Retention | bool | None:
        return self.store.retention(self.prefix + name)

    def versions(self, name: str) -> int:
        return self.store.versions(self.prefix + name)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    source: str
    defect: str | None  # the first defect found, None if the session verified
    manifest: Manifest | None = None
    chunks_checked: int = 0
    events_checked: int = 0
    retention_checked: bool = False

    @property
    def ok(self) -> bool:
        return self.defect is None


class _Defect(Exception):
    pass


def verify_session(source: SessionSource, public_key: bytes | ec.EllipticCurvePublicKey) -> VerifyReport:
    """Check everything about one recorded session; the report names the first defect, if any."""
    state = _Progress()
    try:
        _verify(source, public_key, state)
    except _Defect as d:
        return state.report(source, str(d))
    return state.report(source, None)


@dataclass(slots=True)
class _Progress:
    manifest: Manifest | None = None
    chunks: int = 0
    events: int = 0
    retention_checked: bool = False

    def report(self, source: SessionSource, defect: str | None) -> VerifyReport:
        return VerifyReport(source.describe(), defect, self.manifest, self.chunks, self.events, self.retention_checked)


def _verify(source: SessionSource, public_key: bytes | ec.EllipticCurvePublicKey, st: _Progress) -> None:
    raw = source.read(MANIFEST_NAME)
    if raw is None:
        raise _Defect("manifest: missing")
    try:
        m = decode_manifest(raw)
    except RecordingFormatError as e:
        raise _Defect(str(e)) from e
    problem = verify_manifest_signature(m, public_key)
    if problem:
        raise _Defect(f"manifest: {problem}")
    st.manifest = m

    by_sha = {c.sha256: c.index for c in m.chunks}
    prev = GENESIS_SHA256
    next_seq = 0
    wire = [0, 0]
    decisions = 0
    for position, entry in enumerate(m.chunks):
        where = f"chunk {entry.index}"
        if entry.index != position:
            raise _Defect(f"manifest: chunk list out of order at position {position} (index {entry.index})")
        name = entry.key.rsplit("/", 1)[-1]
        if parse_chunk_name(name) != entry.index:
            raise _Defect(f"manifest: {where} has key {entry.key!r}, not a chunk key for that index")
        data = source.read(name)
        if data is None:
            raise _Defect(f"{where}: missing ({name})")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise _Defect(_mismatch(source, where, name, by_sha.get(digest)))
        try:
            chunk = decode_chunk(data)
        except RecordingFormatError as e:
            raise _Defect(f"{where}: corrupt: {e}") from e
        h = chunk.header
        if h.index != entry.index or h.session_id != m.session.session_id:
            raise _Defect(f"{where}: header names chunk {h.index} of session {h.session_id!r}")
        if h.prev_sha256 != prev:
            raise _Defect(f"{where}: chain broken: its previous-chunk hash is not chunk {entry.index - 1}'s")
        if (h.first_seq, h.last_seq, len(data)) != (entry.first_seq, entry.last_seq, entry.bytes):
            raise _Defect(f"{where}: seq range or size differs from the manifest")
        for event in chunk.events:
            if event.seq != next_seq:
                kind = "duplicate" if event.seq < next_seq else "gap"
                raise _Defect(f"{where}: sequence {kind}: expected event {next_seq}, found {event.seq}")
            next_seq += 1
            if event.direction == Direction.DECISION:
                decisions += 1
            else:
                wire[event.direction] += len(event.payload)
        prev = bytes.fromhex(entry.sha256)
        st.chunks += 1
        st.events = next_seq

    if prev.hex() != m.chain_head:
        raise _Defect("manifest: chain head is not the hash of the last chunk")
    c = m.counts
    if c.events != next_seq or c.decisions != decisions:
        raise _Defect(
            f"manifest: counts say {c.events} events / {c.decisions} decisions, chunks hold {next_seq} / {decisions}"
        )
    if wire != [c.bytes_agent_to_proxy, c.bytes_proxy_to_agent]:
        raise _Defect("manifest: byte counts differ from the bytes recorded")

    named = {c.key.rsplit("/", 1)[-1] for c in m.chunks} | {MANIFEST_NAME}
    for name in source.names():
        if name not in named:
            raise _Defect(f"unexpected object {name}: not named by the manifest")

    _check_retention(source, m, named, st)


def _check_retention(source: SessionSource, m: Manifest, names: set[str], st: _Progress) -> None:
    required = parse_timestamp(m.session.retain_until)
    for name in sorted(names):
        r = source.retention(name)
        if r is False:
            return  # a local copy carries no retention; the report says it was not checked
        if not isinstance(r, Retention):
            raise _Defect(f"{_label(name)}: no Object Lock retention")
        if r.mode != "COMPLIANCE":
            raise _Defect(f"{_label(name)}: Object Lock mode is {r.mode}, not COMPLIANCE")
        if _aware(r.retain_until) < required:
            raise _Defect(
                f"{_label(name)}: retained until {r.retain_until.isoformat()}, manifest requires "
                f"{m.session.retain_until}"
            )
    st.retention_checked = True


def _mismatch(source: SessionSource, where: str, name: str, other: int | None) -> str:
    msg = f"{where}: sha256 mismatch"
    if other is not None:
        msg += f" (it holds chunk {other}'s content: chunks reordered)"
    if isinstance(source, S3Source) and source.versions(name) > 1:
        msg += " (the object has been overwritten: it has several versions)"
    return msg


def _label(name: str) -> str:
    index = parse_chunk_name(name)
    return "manifest" if index is None else f"chunk {index}"


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def download_session(store: ChunkStore, prefix: str, dest: str | Path) -> Path:
    """Copy every object under a session prefix into ``dest`` (created), for offline verification."""
    source = S3Source(store, prefix)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name in source.names():
        if "/" in name or name in {"", ".", ".."}:
            continue  # nothing of ours nests; never write outside dest
        data = source.read(name)
        if data is not None:
            (out / name).write_bytes(data)
    return out

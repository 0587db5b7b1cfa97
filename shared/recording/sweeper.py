"""The sweeper: seal the recordings of sessions whose proxy died, marking them ``incomplete``.

A proxy heartbeats its sessions' index items every few seconds and seals each recording at close. If a
proxy is killed (OOM, host failure, SIGKILL) its sessions stay ``active`` with a heartbeat that no
longer moves. For each such session the sweeper lists the chunks that reached S3, verifies them in
index order (decodable, naming this session and index, chained to the previous hash, sequence numbers
continuing) up to the first defect or gap, and writes a signed manifest with status ``incomplete``
that covers exactly the verified chunks; ``extra`` says who sealed it, why, and what was left out. The
index item is then finalised as ``incomplete``. A session whose manifest is already there (the proxy
sealed it after all, or an earlier sweep could not update the index) only has its index item fixed.

Blocking (boto3, pynamodb): the Lambda handler calls ``sweep`` directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.store.base import StoreError
from shared.store.sessions import SessionCounters, SessionIndex, SessionNotActive, SessionRecord, SessionState

from .audit import AuditEvent, PutObject, audit_key
from .format import (
    GENESIS_SHA256,
    MANIFEST_NAME,
    ChunkEntry,
    Counts,
    Direction,
    Manifest,
    RecordingFormatError,
    SessionMeta,
    SessionStatus,
    decode_chunk,
    decode_manifest,
    encode_manifest,
    format_timestamp,
    parse_chunk_name,
    parse_timestamp,
    session_prefix,
)
from .signing import ManifestSigner, SigningError, sign_manifest
from .store import ChunkStore, RecordingStoreError

log = logging.getLogger(__name__)


class SweeperSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRLOCK_SWEEPER_", extra="ignore", populate_by_name=True)

    # A live proxy heartbeats every few seconds; this much silence means it is gone.
    stale_after_seconds: float = 120.0
    max_sessions: int = 50  # per run; the rest wait for the next run
    signing_message_type: Literal["DIGEST", "RAW"] = Field(
        default="DIGEST", validation_alias="AIRLOCK_RECORDING_SIGNING_MESSAGE_TYPE"
    )


@dataclass(frozen=True, slots=True)
class SweepResult:
    session_id: str
    outcome: Literal["sealed", "already_sealed", "failed"]
    chunks: int = 0
    defect: str | None = None  # first defect among the chunks found (they were left out of the manifest)
    manifest_key: str = ""


@dataclass(slots=True)
class _Verified:
    entries: list[ChunkEntry] = field(default_factory=list)
    events: int = 0
    decisions: int = 0
    wire: list[int] = field(default_factory=lambda: [0, 0])
    last_ts_ns: int | None = None
    defect: str | None = None
    left_out: list[str] = field(default_factory=list)


def sweep(
    index: SessionIndex,
    store: ChunkStore,
    signer: ManifestSigner,
    *,
    stale_after: timedelta,
    now: datetime | None = None,
    limit: int = 50,
    audit: PutObject | None = None,
) -> list[SweepResult]:
    """Seal every active session whose last heartbeat is older than ``stale_after``."""
    now = now or datetime.now(UTC)
    results: list[SweepResult] = []
    for record in index.stale_active(now - stale_after, limit=limit):
        try:
            results.append(seal_incomplete(record, index, store, signer, now=now))
        except (RecordingStoreError, SigningError, StoreError, RecordingFormatError) as e:
            log.error("sweeper: could not seal session %s: %s", record.session_id, e)
            results.append(SweepResult(record.session_id, "failed", defect=str(e)))
    if audit is not None and results:
        _write_audit(audit, results, index, now)
    return results


def seal_incomplete(
    record: SessionRecord, index: SessionIndex, store: ChunkStore, signer: ManifestSigner, *, now: datetime
) -> SweepResult:
    """Verify what exists of one session's recording, sign an ``incomplete`` manifest, finalise the item."""
    started_at = format_timestamp(datetime_ns(record.started_at))
    prefix = record.prefix or session_prefix(record.session_id, started_at)
    names = [k[len(prefix) :] for k in store.list_keys(prefix)]
    if MANIFEST_NAME in names:
        return _already_sealed(record, index, store, prefix)

    v = _verify_existing(store, prefix, record.session_id, names)
    heartbeat = record.last_heartbeat or record.started_at
    reason = f"proxy {record.proxy_id} stopped heartbeating (last heartbeat {heartbeat.isoformat()})"
    retain_until = record.retain_until or format_timestamp(datetime_ns(now))
    meta = SessionMeta(
        session_id=record.session_id,
        identity=record.identity,
        target=record.target,
        database=record.database,
        client_addr=record.client_addr,
        proxy_id=record.proxy_id,
        started_at=started_at,
        retain_until=retain_until,
        mode=record.mode,
        policy_version=record.policy_version,
    )
    ended_ns = v.last_ts_ns if v.last_ts_ns is not None else datetime_ns(heartbeat)
    chain_head = v.entries[-1].sha256 if v.entries else GENESIS_SHA256.hex()
    extra: dict[str, Any] = {
        "sealed_by": "sweeper",
        "reason": reason,
        "last_heartbeat": format_timestamp(datetime_ns(heartbeat)),
        "sealed_at": format_timestamp(datetime_ns(now)),
    }
    if v.defect:
        extra["first_defect"] = v.defect
        extra["left_out"] = v.left_out
    manifest = Manifest(
        session=meta,
        status=SessionStatus.INCOMPLETE,
        ended_at=format_timestamp(max(ended_ns, datetime_ns(record.started_at))),
        counts=Counts(
            events=v.events,
            bytes_agent_to_proxy=v.wire[Direction.AGENT_TO_PROXY],
            bytes_proxy_to_agent=v.wire[Direction.PROXY_TO_AGENT],
            statements=record.counters.statements,  # counted by the proxy, not derivable from chunks
            decisions=v.decisions,
        ),
        chunks=tuple(v.entries),
        chain_head=chain_head,
        extra=extra,
    )
    data = encode_manifest(sign_manifest(manifest, signer))
    try:
        store.put_manifest(prefix, data, parse_timestamp(retain_until))
    except RecordingStoreError:
        # The proxy may have sealed it between our listing and our put (If-None-Match refused ours).
        if MANIFEST_NAME in [k[len(prefix) :] for k in store.list_keys(prefix)]:
            return _already_sealed(record, index, store, prefix)
        raise
    key = prefix + MANIFEST_NAME
    try:
        index.close(
            record.session_id,
            SessionState.INCOMPLETE,
            manifest_key=key,
            counters=manifest_counters(manifest),
            reason=reason,
            ended_at=parse_timestamp(manifest.ended_at),
        )
    except SessionNotActive:
        log.warning("sweeper: session %s was finalised meanwhile; its manifest is ours", record.session_id)
    log.warning(
        "sweeper: sealed session %s as incomplete: %d chunks verified%s",
        record.session_id,
        len(v.entries),
        f", first defect: {v.defect}" if v.defect else "",
    )
    return SweepResult(record.session_id, "sealed", len(v.entries), v.defect, key)


def manifest_counters(m: Manifest) -> SessionCounters:
    """The index item's counters for a sealed recording."""
    c = m.counts
    return SessionCounters(
        bytes_agent_to_proxy=c.bytes_agent_to_proxy,
        bytes_proxy_to_agent=c.bytes_proxy_to_agent,
        statements=c.statements,
        chunks=len(m.chunks),
        chain_head=m.chain_head,
    )


def _verify_existing(store: ChunkStore, prefix: str, session_id: str, names: list[str]) -> _Verified:
    """The chunks in index order from 0, as far as they exist and check out."""
    v = _Verified()
    indexed = sorted((i, n) for n in names if (i := parse_chunk_name(n)) is not None)
    prev = GENESIS_SHA256
    next_seq = 0
    for position, (idx, name) in enumerate(indexed):
        if idx != position:
            v.defect = f"chunk {position}: missing (found chunk {idx} after it)"
        else:
            data = store.get(prefix + name)
            try:
                chunk = decode_chunk(data)
            except RecordingFormatError as e:
                v.defect = f"chunk {idx}: corrupt: {e}"
            else:
                h = chunk.header
                if h.index != idx or h.session_id != session_id:
                    v.defect = f"chunk {idx}: header names chunk {h.index} of session {h.session_id!r}"
                elif h.prev_sha256 != prev:
                    v.defect = f"chunk {idx}: chain broken: its previous-chunk hash is not chunk {idx - 1}'s"
                elif h.first_seq != next_seq or any(e.seq != next_seq + k for k, e in enumerate(chunk.events)):
                    v.defect = f"chunk {idx}: sequence gap or duplicate: expected event {next_seq} first"
        if v.defect:
            v.left_out = [n for _, n in indexed[position:]]
            break
        digest = hashlib.sha256(data).digest()
        v.entries.append(ChunkEntry(idx, prefix + name, digest.hex(), h.first_seq, h.last_seq, len(data)))
        for event in chunk.events:
            if event.direction == Direction.DECISION:
                v.decisions += 1
            else:
                v.wire[event.direction] += len(event.payload)
        v.events += len(chunk.events)
        v.last_ts_ns = chunk.events[-1].ts_ns
        next_seq = h.last_seq + 1
        prev = digest
    return v


def _already_sealed(record: SessionRecord, index: SessionIndex, store: ChunkStore, prefix: str) -> SweepResult:
    m = decode_manifest(store.get(prefix + MANIFEST_NAME))
    with contextlib.suppress(SessionNotActive):
        index.close(
            record.session_id,
            SessionState(m.status.value),
            manifest_key=prefix + MANIFEST_NAME,
            counters=manifest_counters(m),
            ended_at=parse_timestamp(m.ended_at),
        )
    return SweepResult(record.session_id, "already_sealed", len(m.chunks), None, prefix + MANIFEST_NAME)


def _write_audit(put: PutObject, results: list[SweepResult], index: SessionIndex, now: datetime) -> None:
    lines: list[bytes] = []
    for r in results:
        if r.outcome != "sealed":
            continue
        try:
            rec = index.get(r.session_id)
        except StoreError:
            continue
        event = AuditEvent(
            time=now,
            event="decision",
            session_id=r.session_id,
            identity=rec.identity,
            target=rec.target,
            database=rec.database,
            proxy_id=rec.proxy_id,
            decision="incomplete",
            reason=rec.reason or "sealed by the sweeper",
        )
        lines.append(event.line())
    if not lines:
        return
    key = audit_key(now.date().isoformat(), "sweeper", format(datetime_ns(now) // 1000, "x"), 0)
    try:
        put(key, b"".join(lines))
    except Exception as e:  # audit lines are an index; the sealed manifests are what matters
        log.error("sweeper: audit lines not written: %s", e)


def datetime_ns(dt: datetime) -> int:
    """Nanoseconds since the epoch of a datetime (naive means UTC), exact to the microsecond."""
    aware = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return int(aware.timestamp()) * 1_000_000_000 + aware.microsecond * 1000

"""The proxy side of session recording: one ``SessionRecording`` per agent session.

Theory of operation. ``RecordingServices`` is built once per proxy process (S3 store, sessions index,
audit writer, KMS signer, settings) and tracks every live recording so that SIGTERM can seal them all
(``shutdown``). ``SessionRecording.open`` starts a ``SessionRecorder`` (events -> hash-chained chunks)
and a ``ChunkUploader`` (chunks -> S3, in order, never dropping), writes the ``active`` index item
(strict mode before the session may start, buffered mode in the background) and records the GRANT.
The session then feeds it every byte that crossed the agent-side wire (``auth_bytes`` during start-up,
so passwords are redacted; ``agent_bytes`` / ``proxy_bytes`` after) and every decision; these calls
are synchronous, never block and never raise for storage trouble. A periodic task cuts chunks by time
and heartbeats the index item (the sweeper seals sessions whose heartbeat stops).

Modes. *buffered*: chunks go to S3 in the background. If the uploader's byte bound is crossed (S3 down
or too slow), ``on_fatal(reason)`` is called once: the session must end with a FATAL; nothing is
dropped, and the uploads complete once S3 answers again. *strict*: ``before_forward`` makes every
pending event durable before the caller forwards a statement, or raises ``RecordingUnavailable`` (the
caller refuses the statement; nothing reaches the backend).

``close`` records the TERMINATION, seals, and finalises in a task: wait for every chunk, sign the
manifest (KMS, in a thread), write it, finalise the index item. ``close`` waits for that task at most
``close_timeout`` seconds; if the store is still unreachable by then the finalisation goes on in the
background and what is missing is logged loudly (``RecordingServices.shutdown`` logs whatever is left
when the process exits; the sweeper later seals such a session as ``incomplete``).

Refused connections get an index item with status ``refused`` and a ``refusal`` audit line, but no S3
objects: signing a manifest per unauthenticated connection would let anyone spend our KMS quota.

Threading: every method must be called on the event loop that opened the recording. Blocking I/O
(S3, DynamoDB, KMS) runs in threads via ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypedDict

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import ControlPlaneSettings, control_plane_settings
from shared.recording.audit import STATEMENT_LIMIT, AuditEvent, AuditWriter, StatementLines, s3_put_object
from shared.recording.format import (
    MANIFEST_NAME,
    Direction,
    EventKind,
    Manifest,
    SessionMeta,
    SessionStatus,
    encode_manifest,
    format_timestamp,
    session_prefix,
)
from shared.recording.recorder import DEFAULT_CHUNK_SIZE, SealedChunk, SessionRecorder
from shared.recording.signing import KmsSigner, ManifestSigner, SigningError, sign_manifest
from shared.recording.store import ChunkStore, RecordingStoreError
from shared.recording.sweeper import datetime_ns, manifest_counters
from shared.recording.uploader import ChunkUploader, RecordingUnavailable, backoff_delay
from shared.store.base import StoreError
from shared.store.sessions import (
    GENESIS_HEAD,
    DynamoSessionIndex,
    SessionCounters,
    SessionIndex,
    SessionNotActive,
    SessionRecord,
    SessionState,
)

from .admission import RefusalAggregate

log = logging.getLogger(__name__)


Mode = Literal["buffered", "strict"]
_MAX_RETRY_DELAY: Final = 10.0

__all__ = [
    "RecordingServices",
    "RecordingSettings",
    "RecordingUnavailable",
    "SessionRecording",
    "SessionStart",
]


class RecordingSettings(BaseSettings):
    """Recorder tuning (AIRLOCK_RECORDING_*)."""

    model_config = SettingsConfigDict(env_prefix="AIRLOCK_RECORDING_", extra="ignore")

    chunk_size: int = DEFAULT_CHUNK_SIZE
    flush_interval: float = 5.0  # seconds an event may wait before its chunk is cut (buffered mode)
    max_buffered_bytes: int = 64 << 20  # per session: chunks waiting for S3 before the session is ended
    # Above this many bytes waiting for S3 the session's reads pause until the recording catches up;
    # if it does not within stall_timeout, the session is ended like an overflow.
    backpressure_bytes: int = 16 << 20  # four chunks in flight
    stall_timeout: float = 30.0
    close_timeout: float = 30.0  # how long close() waits for the recording to be sealed in S3
    # Live sessions' counters reach the index this often. Each heartbeat is a DynamoDB write whose
    # client work (signing, HTTP) holds the interpreter lock for milliseconds, so not much more often
    # than needed: the sweeper seals a session after 120 s without one (AIRLOCK_SWEEPER_STALE_AFTER_SECONDS).
    heartbeat_interval: float = 15.0
    strict_timeout: float = 5.0  # strict mode: how long a statement may wait for its chunk to land
    upload_backoff_max: float = 10.0  # longest pause between retries of a failed upload
    # DIGEST for AWS KMS; RAW for emulators that do not implement DIGEST (moto 5). RAW caps the
    # manifest at 4096 bytes, so it is only for local stacks.
    signing_message_type: Literal["DIGEST", "RAW"] = "DIGEST"
    # Each put costs a few milliseconds of client CPU whatever its size, and Athena reads fewer, larger
    # objects faster: a busy proxy writes one object per 4 MiB of lines, a quiet one every 30 s.
    audit_batch_bytes: int = 4 << 20
    audit_flush_interval: float = 30.0
    audit_max_buffered_bytes: int = 16 << 20


class SessionWho(TypedDict):
    session_id: str
    identity: str
    target: str
    database: str
    client_addr: str
    proxy_id: str
    policy_version: str


@dataclass(frozen=True, slots=True)
class SessionStart:
    """Who, where and when: what the proxy knows once a session is granted (or refused)."""

    session_id: str
    identity: str
    target: str
    database: str
    client_addr: str
    proxy_id: str
    started_at: datetime
    policy_version: str = ""

    def who(self) -> SessionWho:
        """The fields every record of this session repeats (recording meta, index item, audit)."""
        return {
            "session_id": self.session_id,
            "identity": self.identity,
            "target": self.target,
            "database": self.database,
            "client_addr": self.client_addr,
            "proxy_id": self.proxy_id,
            "policy_version": self.policy_version,
        }


@dataclass(eq=False)
class RecordingServices:
    """Per-process recording dependencies, and the set of live recordings for shutdown."""

    settings: RecordingSettings
    store: ChunkStore
    index: SessionIndex
    audit: AuditWriter
    signer: ManifestSigner
    live: set[SessionRecording] = field(default_factory=set)
    finalising: set[asyncio.Task[bool]] = field(default_factory=set)
    _audit_task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(
        cls,
        proxy_id: str,
        *,
        control_plane: ControlPlaneSettings | None = None,
        settings: RecordingSettings | None = None,
    ) -> RecordingServices:
        cp = control_plane or control_plane_settings()
        rs = settings or RecordingSettings()
        store = ChunkStore(cp.sessions_bucket)
        return cls(
            settings=rs,
            store=store,
            index=DynamoSessionIndex(cp),
            audit=AuditWriter(
                s3_put_object(cp.sessions_bucket, client_factory=lambda: store.client),  # one S3 client
                proxy_id=proxy_id,
                batch_bytes=rs.audit_batch_bytes,
                flush_interval=rs.audit_flush_interval,
                max_buffered_bytes=rs.audit_max_buffered_bytes,
            ),
            signer=KmsSigner(cp.signing_key_id, message_type=rs.signing_message_type),
        )

    def warm(self) -> None:
        """Create the S3, DynamoDB and KMS clients now. The proxy calls this at start-up, before
        ``gc.freeze()``: created at the first session instead, their service models (tens of thousands
        of objects) would be scanned by every full collection, a pause of tens of milliseconds in every
        session's relay."""
        _ = self.store.client
        if isinstance(self.index, DynamoSessionIndex):
            self.index.warm()
        if isinstance(self.signer, KmsSigner):
            _ = self.signer.client

    def start(self) -> None:
        """Start the audit writer's timer (call once, on the proxy's event loop)."""
        if self._audit_task is None:
            self._audit_task = asyncio.get_running_loop().create_task(self.audit.run(), name="airlock-audit-timer")

    def refusals_aggregated(self, aggregate: RefusalAggregate) -> None:
        """One audit line for refusals the login gate counted instead of recording one by one: the count
        (in ``rows``), the source and the reasons (in ``reason``), the window's last time."""
        self.audit.add(
            AuditEvent(
                time=datetime.fromtimestamp(aggregate.last, UTC),
                event="decision",
                session_id="",
                proxy_id=self.audit.proxy_id,
                decision="refusals_aggregated",
                rows=aggregate.count,
                reason=aggregate.describe(),
            )
        )

    async def shutdown(self, reason: str = "proxy shutting down") -> None:
        """SIGTERM: seal every live recording, wait (bounded) for finalisation, flush audit lines."""
        timeout = self.settings.close_timeout
        live = list(self.live)
        if live:
            log.info("sealing %d live recordings before exit", len(live))
            await asyncio.gather(*(r.close(SessionStatus.CLOSED, reason) for r in live), return_exceptions=True)
        if self.finalising:
            _, pending = await asyncio.wait(set(self.finalising), timeout=timeout)
            for task in pending:
                task.cancel()
            for r in live:
                if not r.sealed:
                    r.log_unsealed("process exiting")
        if self._audit_task is not None:
            self._audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._audit_task
            self._audit_task = None
        await self.audit.close(timeout)


class SessionRecording:
    """One session's recording. Use ``await SessionRecording.open(...)``; see the module docstring."""

    def __init__(
        self,
        services: RecordingServices,
        start: SessionStart,
        *,
        mode: Mode,
        retain_until: datetime,
        on_fatal: Callable[[str], None],
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.start = start
        self.mode: Mode = mode
        self.retain_until = retain_until
        self._on_fatal = on_fatal
        meta = SessionMeta(
            **start.who(),
            started_at=format_timestamp(datetime_ns(start.started_at)),
            retain_until=format_timestamp(datetime_ns(retain_until)),
            mode=mode,
        )
        self.recorder = SessionRecorder(
            meta,
            chunk_size=self.settings.chunk_size,
            flush_interval_ns=int(self.settings.flush_interval * 1e9),
        )
        self.uploader = ChunkUploader(
            services.store,
            prefix=self.recorder.prefix,
            retain_until=retain_until,
            max_buffered_bytes=self.settings.max_buffered_bytes,
            on_overflow=self._overflow,
            strict_timeout=self.settings.strict_timeout,
            backoff_max=self.settings.upload_backoff_max,
        )
        self.fatal: str | None = None  # why on_fatal was called, once it was
        # needs_backpressure() as of the last chunk queued: it can only become true then, so the relay
        # reads this attribute after each read instead of asking the uploader.
        self.backlogged = False
        self.sealed = False  # the manifest is in S3 and the index item finalised
        self._lines = StatementLines(
            session_id=start.session_id,
            identity=start.identity,
            target=start.target,
            database=start.database,
            proxy_id=start.proxy_id,
        )
        # The relay's calls, once per read and once per statement of every session, go straight to the
        # recorder's tape (compiled where it was built; shared/recording/tape.py). Once the recording
        # is sealed, the tape ignores them: a FATAL written while the session winds down cannot be
        # part of a sealed recording.
        tape = self.recorder.tape
        tape.on_full = self._chunk_full
        tape.lines(self._lines.encoded_prefix(), STATEMENT_LIMIT, services.audit.add_line, self._lines.line)
        # Bytes read from the agent, as they were relayed.
        self.agent_bytes = tape.agent
        # Bytes written to the agent (after masking), including anything the proxy itself sent.
        self.proxy_bytes = tape.proxy
        # statement(text, kind=None, decision="allow", rows=None, duration_ns=None, error_code=None):
        # count a statement and write its audit line (call when its outcome is known).
        self.statement = tape.statement
        self._indexed = False
        self._indexing: asyncio.Task[None] | None = None  # buffered mode: the index item being written
        self._closing: asyncio.Task[bool] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ open / refused

    @classmethod
    async def open(
        cls,
        services: RecordingServices,
        start: SessionStart,
        *,
        mode: Mode,
        retention_days: int,
        grant: Mapping[str, Any],
        on_fatal: Callable[[str], None],
    ) -> SessionRecording:
        """Start recording a granted session: index item (``active``), GRANT decision, timers.

        Strict mode waits for the index item and raises ``RecordingUnavailable`` if it cannot be written
        (a session the sweeper cannot find must not run unrecorded). Buffered mode writes it in the
        background, as it uploads its chunks: the session does not wait for it, a failure is logged and
        retried from the heartbeat, and ``close`` waits for it before it finalises the item.
        """
        # Whole seconds, rounded up: S3 keeps retain-until dates at second precision.
        retain_until = (datetime.now(UTC) + timedelta(days=retention_days)).replace(microsecond=0) + timedelta(
            seconds=1
        )
        rec = cls(services, start, mode=mode, retain_until=retain_until, on_fatal=on_fatal)
        loop = asyncio.get_running_loop()
        if mode == "strict":
            try:
                await rec._open_index()
            except StoreError as e:
                raise RecordingUnavailable(f"sessions index unavailable, session not started: {e}") from e
        else:
            rec._indexing = loop.create_task(rec._open_index_or_log(), name=f"airlock-index-{start.session_id}")
        rec.decision(EventKind.GRANT, {"identity": start.identity, "mode": mode, **grant})
        rec._ticker = loop.create_task(rec._tick(), name=f"airlock-recording-{start.session_id}")
        services.live.add(rec)
        return rec

    @classmethod
    async def refused(
        cls, services: RecordingServices, start: SessionStart, *, reason: str, sqlstate: str = "28000"
    ) -> None:
        """A refused connection: an index item with status ``refused`` and a ``refusal`` audit line.

        No S3 objects (see the module docstring). Storage errors are logged, never raised: the refusal
        itself must reach the agent whatever happens here.
        """
        now = datetime.now(UTC)
        record = SessionRecord(
            **start.who(),
            started_at=start.started_at,
            status=SessionState.REFUSED,
            ended_at=now,
            last_heartbeat=now,
            reason=reason,
        )
        services.audit.add(
            _audit(start, event="decision", decision="refusal", reason=reason, error_code=sqlstate, time=now)
        )
        try:
            await asyncio.to_thread(services.index.refused, record)
        except StoreError as e:
            log.error("session %s: refused connection not indexed: %s", start.session_id, e)

    # ------------------------------------------------------------------ events (sync, non-blocking)

    @property
    def session_id(self) -> str:
        return self.start.session_id

    def auth_bytes(self, data: bytes) -> None:
        """Agent->proxy bytes of the start-up/auth phase (pass whole messages: secrets are redacted)."""
        if data and self._recording:
            self._ship(self.recorder.record_auth_bytes(data))

    def wire(self, direction: Direction, kind: EventKind, payload: bytes) -> None:
        """Wire bytes of a protocol whose events carry their own framing (the Kubernetes gateway's HTTP
        exchanges: ``EventKind.HTTP_HEAD``, ``HTTP_BODY``, ``STREAM``; shared/k8s/recorded.py)."""
        if payload and self._recording:
            self._ship(self.recorder.record_bytes(direction, payload, kind=kind))

    def _chunk_full(self) -> None:
        """The tape's pending events reached a chunk: cut it and queue it for the store."""
        self._ship(self.recorder.take_chunk_now())

    def decision(self, kind: EventKind, payload: Mapping[str, Any], *, audit: bool = True) -> None:
        """Record a decision (BLOCK, HOLD, APPROVAL, MASK_COUNTS, ...) and write its audit line (``audit``:
        False for a decision that only structures the recording, such as an HTTP exchange's REQUEST,
        whose audit line is the exchange's statement line)."""
        if not self._recording:
            return
        self._ship(self.recorder.record_decision(kind, payload))
        if not audit:
            return
        decision = kind.name.lower() if isinstance(kind, EventKind) else str(kind)
        if kind is EventKind.APPROVAL and payload.get("step"):
            decision = f"approval_{payload['step']}"  # approval_requested, approval_approved, approval_denied, ...
        if kind == EventKind.MASK_COUNTS and isinstance(payload.get("counts"), Mapping):
            # One line per detector, flat for SQL: ``reason`` names the detector, ``rows`` counts its values.
            for detector, count in sorted(payload["counts"].items()):
                self.services.audit.add(
                    _audit(self.start, event="decision", decision=decision, reason=str(detector), rows=int(count))
                )
            return
        self.services.audit.add(
            _audit(
                self.start,
                event="decision",
                decision=decision,
                statement=_opt_str(payload.get("statement")),
                statement_kind=_opt_str(payload.get("statement_kind")),
                reason=_opt_str(payload.get("reason")),
                error_code=_opt_str(payload.get("sqlstate")),
                approval_id=_opt_str(payload.get("approval_id")),
                decided_by=_opt_str(payload.get("decided_by")),
                decided_via=_opt_str(payload.get("decided_via")),
            )
        )

    async def before_forward(self) -> None:
        """Strict mode: make every pending event durable, or raise ``RecordingUnavailable``."""
        if self.mode != "strict":
            return
        if self.fatal is not None:
            raise RecordingUnavailable(f"recording failed, statement not executed: {self.fatal}")
        chunk = self.recorder.take_chunk_now()
        try:
            # Chunks cut earlier (by size) are in the background queue: they must land first.
            await asyncio.wait_for(self.uploader.flush(), self.settings.strict_timeout)
        except TimeoutError as e:
            if chunk is not None:
                self.uploader.submit(chunk)  # keep it: refused, but still part of the record
            raise RecordingUnavailable(
                f"recording store unavailable, statement not executed: {self.uploader.last_error}"
            ) from e
        if chunk is not None:
            await self.uploader.put_now(chunk)

    @property
    def _recording(self) -> bool:
        # After close() the recording is sealed: later calls (e.g. a FATAL written while the session
        # winds down) cannot be part of it any more, and are ignored rather than raised.
        if self._closing is None:
            return True
        log.debug("session %s: event after close ignored", self.session_id)
        return False

    @property
    def counters(self) -> SessionCounters:
        chunks = self.recorder.chunks
        tape = self.recorder.tape
        return SessionCounters(
            bytes_agent_to_proxy=tape.bytes_agent,
            bytes_proxy_to_agent=tape.bytes_proxy,
            statements=tape.statements,
            chunks=len(chunks),
            chain_head=chunks[-1].sha256 if chunks else GENESIS_HEAD,
        )

    # ------------------------------------------------------------------ close

    async def close(self, status: SessionStatus = SessionStatus.CLOSED, reason: str = "") -> bool:
        """Record the TERMINATION, seal, upload, sign, write the manifest, finalise the index item.

        Idempotent. Returns True if the recording was sealed within ``close_timeout``; otherwise the
        finalisation continues in the background and the remainder is logged.
        """
        if self._closing is None:
            self._stop_timers()
            self.decision(EventKind.TERMINATION, {"reason": reason or "session ended", "status": status.value})
            sealed = self.recorder.seal(status)
            self.recorder.tape.on_full = None  # the tape is closed; and no cycle through this object
            if sealed.last_chunk is not None:
                self.uploader.submit(sealed.last_chunk)
            self._closing = asyncio.get_running_loop().create_task(
                self._finalise(sealed.manifest, reason), name=f"airlock-seal-{self.session_id}"
            )
            self.services.finalising.add(self._closing)
            self._closing.add_done_callback(self.services.finalising.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(self._closing), self.settings.close_timeout)
        except TimeoutError:
            self.log_unsealed(f"not sealed within {self.settings.close_timeout:g}s; still trying in the background")
            return False

    def log_unsealed(self, why: str) -> None:
        log.error(
            "session %s recording %s: %d chunks (%d bytes) not yet in s3://%s/%s, manifest not written "
            "(last error: %s)",
            self.session_id,
            why,
            self.uploader.pending_chunks,
            self.uploader.buffered_bytes,
            self.services.store.bucket,
            self.recorder.prefix,
            self.uploader.last_error,
        )

    async def _finalise(self, manifest: Manifest, reason: str) -> bool:
        try:
            if self._indexing is not None:
                await self._indexing  # never raises: it logs
            if not self._indexed:
                await self._open_index_or_log()  # the item is closed below, so it must exist
            await self.uploader.flush()
            signed = await _retry("signing manifest", lambda: sign_manifest(manifest, self.services.signer))
            data = encode_manifest(signed)
            await _retry("writing manifest", lambda: self._put_manifest(data))
            key = self.recorder.prefix + MANIFEST_NAME
            counters = manifest_counters(manifest)
            try:
                await _retry(
                    "finalising index item",
                    lambda: self.services.index.close(
                        self.session_id,
                        SessionState(manifest.status.value),
                        manifest_key=key,
                        counters=counters,
                        reason=reason,
                    ),
                    attempts=5,
                )
            except SessionNotActive as e:
                log.error("session %s: %s (sealed by the sweeper meanwhile?)", self.session_id, e)
            except StoreError as e:
                log.error("session %s: recording sealed but index item not finalised: %s", self.session_id, e)
            self.sealed = True
            return True
        except _ManifestConflict as e:
            log.error("session %s: %s", self.session_id, e)
            return False
        finally:
            await self.uploader.stop()
            self.services.live.discard(self)

    def _put_manifest(self, data: bytes) -> None:
        try:
            self.services.store.put_manifest(self.recorder.prefix, data, self.retain_until)
        except RecordingStoreError as e:
            # A manifest that is there but is not ours (the sweeper sealed this session) will never be
            # replaced: stop retrying.
            try:
                existing: bytes | None = self.services.store.get(self.recorder.prefix + MANIFEST_NAME)
            except RecordingStoreError:
                existing = None
            if existing is not None and existing != data:
                raise _ManifestConflict(
                    "a different manifest.json exists already: this recording was sealed without this proxy"
                ) from e
            raise

    # ------------------------------------------------------------------ internals

    def _ship(self, chunk: SealedChunk | None) -> None:
        if chunk is not None:
            self.uploader.submit(chunk)
            self.backlogged = self.needs_backpressure()

    def needs_backpressure(self) -> bool:
        """True when more of this session's recording waits for the store than it may run ahead of."""
        return self.uploader.buffered_bytes > self.settings.backpressure_bytes and self.fatal is None

    async def backpressure(self) -> None:
        """Hold the session's reads while its recording catches up with the store (a slow store slows
        the session instead of growing the proxy's memory). If it cannot catch up within
        ``stall_timeout`` the store is considered unreachable: the session ends (``on_fatal``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.stall_timeout
        try:
            while self.needs_backpressure():
                if loop.time() >= deadline:
                    self._overflow(f"the recording store has not caught up for {self.settings.stall_timeout:.0f}s")
                    return
                await asyncio.sleep(0.01)
        finally:
            self.backlogged = self.needs_backpressure()

    def _overflow(self, why: str = "") -> None:
        if self.fatal is not None:
            return
        reason = why or (
            f"recording buffer bound reached ({self.uploader.buffered_bytes} bytes waiting for the store: "
            f"{self.uploader.last_error})"
        )
        self.fatal = reason
        # A decision appended now lands in the next chunk; nothing recorded so far is dropped.
        self.decision(EventKind.RECORDING_FAULT, {"reason": reason})
        # Not from inside submit(): the caller is in the middle of recording bytes.
        asyncio.get_running_loop().call_soon(self._on_fatal, reason)

    def _stop_timers(self) -> None:
        for task in (self._ticker, self._heartbeat):
            if task is not None and not task.done():
                task.cancel()

    async def _tick(self) -> None:
        period = max(0.05, min(1.0, self.settings.flush_interval / 2))
        next_heartbeat = time.monotonic() + self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(period)
            self._ship(self.recorder.poll())
            if time.monotonic() >= next_heartbeat and (self._heartbeat is None or self._heartbeat.done()):
                next_heartbeat = time.monotonic() + self.settings.heartbeat_interval
                self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        try:
            if not self._indexed:
                if self._indexing is None or self._indexing.done():  # not while the first write is in flight
                    await self._open_index()
            else:
                await asyncio.to_thread(
                    self.services.index.heartbeat, self.session_id, self.start.proxy_id, self.counters
                )
        except SessionNotActive as e:
            log.error("session %s: index item no longer active (%s); the sweeper sealed it", self.session_id, e)
            if self.fatal is None:
                self.fatal = "recording was sealed as incomplete while the session was live"
                self._on_fatal(self.fatal)
        except StoreError as e:
            log.warning("session %s: heartbeat failed: %s", self.session_id, e)

    async def _open_index_or_log(self) -> None:
        try:
            await self._open_index()
        except StoreError as e:
            log.error("session %s: index item not written yet (%s); retrying from the heartbeat", self.session_id, e)

    async def _open_index(self) -> None:
        s = self.start
        record = SessionRecord(
            **s.who(),
            started_at=s.started_at,
            status=SessionState.ACTIVE,
            prefix=session_prefix(s.session_id, self.recorder.meta.started_at),
            retain_until=self.recorder.meta.retain_until,
            mode=self.mode,
            last_heartbeat=datetime.now(UTC),
        )
        await asyncio.to_thread(self.services.index.open, record)
        self._indexed = True


class _ManifestConflict(Exception):
    pass


async def _retry(what: str, call: Callable[[], Any], *, attempts: int | None = None) -> Any:
    """Run a blocking call in a thread until it succeeds (or ``attempts`` run out), backing off."""
    attempt = 0
    while True:
        try:
            return await asyncio.to_thread(call)
        except (RecordingStoreError, SigningError, StoreError) as e:
            if isinstance(e, SessionNotActive):
                raise
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            log.warning("%s failed (attempt %d): %s", what, attempt, e)
            await asyncio.sleep(backoff_delay(attempt, 0.1, _MAX_RETRY_DELAY))


def _audit(start: SessionStart, *, event: Literal["statement", "decision"], **fields: Any) -> AuditEvent:
    return AuditEvent(
        time=fields.pop("time", None) or datetime.now(UTC),
        event=event,
        session_id=start.session_id,
        identity=start.identity,
        target=start.target,
        database=start.database,
        proxy_id=start.proxy_id,
        **fields,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)

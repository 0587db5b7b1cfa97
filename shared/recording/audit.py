"""Audit events: one JSON line per statement and per decision, batched into S3 for Athena / DuckDB.

Layout (docs/audit-events.md): ``audit/dt=YYYY-MM-DD/<proxy id>-<writer token>-<seq>.jsonl``, where
``dt`` is the UTC date of the events inside (a batch that spans midnight becomes two objects) and the
writer token keeps two processes that share a proxy id from writing the same key.

Theory of operation. ``add`` is synchronous and never blocks: it serialises the event into the
current batch. A batch is handed to an upload task when it reaches ``batch_bytes`` or when the
periodic ``run`` loop finds it older than ``flush_interval``; ``flush``/``close`` hand over whatever is
left. Uploads run in a thread (``asyncio.to_thread``), retried with backoff. Memory is bounded by
``max_buffered_bytes`` across the open batch and batches waiting to upload: beyond it new lines are
dropped and counted (``dropped``) and the loss is logged as an error. Audit lines are an index for
queries; the signed recording remains the evidence, so dropping lines never loses the record itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from .uploader import backoff_delay

log = logging.getLogger(__name__)

STATEMENT_LIMIT: Final = 4096  # bytes of UTF-8 statement text kept per line
AUDIT_PREFIX: Final = "audit/"


# Fields only the approval decision lines carry (absent, not null, elsewhere).
APPROVAL_FIELDS = frozenset({"approval_id", "decided_by", "decided_via"})


class AuditEvent(BaseModel):
    """One line of the audit log. ``event`` says whether it describes a statement or a decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: datetime
    event: Literal["statement", "decision"]
    session_id: str
    identity: str = ""
    target: str = ""
    database: str = ""
    proxy_id: str = ""
    statement: str | None = None
    statement_truncated: bool = False
    statement_kind: str | None = None  # the guard's classification (select, delete, ddl, unknown, ...)
    decision: str | None = None  # allow, deny, hold, approved, grant, refusal, termination, ...
    rows: int | None = None
    duration_ms: float | None = None
    error_code: str | None = None  # SQLSTATE of the error the agent saw, if any
    reason: str | None = None  # why (for decisions)
    # Approvals (decision lines approval_requested / approval_approved / ...): which one, who decided, how.
    # Written only on the lines that have them (statement lines stay as the compiled tape writes them).
    approval_id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    decided_by: str | None = Field(default=None, exclude_if=lambda v: v is None)
    decided_via: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="before")
    @classmethod
    def _bound_statement(cls, data: Any) -> Any:
        # Bound the text before validation so an enormous statement never sits in a model twice.
        if isinstance(data, dict) and isinstance(data.get("statement"), str):
            text, cut = bound_text(data["statement"], STATEMENT_LIMIT)
            if cut:
                data = {**data, "statement": text, "statement_truncated": True}
        return data

    @field_serializer("time")
    def _rfc3339(self, value: datetime) -> str:
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def line(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode() + b"\n"

    @property
    def date(self) -> str:
        aware = self.time if self.time.tzinfo else self.time.replace(tzinfo=UTC)
        return aware.astimezone(UTC).date().isoformat()


class StatementLines:
    """Audit lines for one session's statements: the session's own fields are encoded once.

    The per-statement path of a busy session: what ``AuditEvent(event="statement", ...).line()`` holds,
    with the same fields, order and bounds (tests check it against the model), for a few string
    operations per statement instead of a model. Times are nanoseconds: the statement's end since the
    epoch, and its duration, written in milliseconds with six decimals (a JSON number that parses to
    ``duration_ns / 1e6``, the float the model holds). The fields that repeat from one statement to the
    next (kind, decision, error code) are encoded once per distinct value."""

    __slots__ = ("_date", "_ends", "_middles", "_prefix", "_second", "_stamp")

    def __init__(self, *, session_id: str, identity: str, target: str, database: str, proxy_id: str) -> None:
        who = {"event": "statement", "session_id": session_id, "identity": identity, "target": target,
               "database": database, "proxy_id": proxy_id}  # fmt: skip
        # Everything between the time and the statement, in the model's field order.
        self._prefix = 'Z",' + json.dumps(who, ensure_ascii=False, separators=(",", ":"))[1:-1] + ',"statement":'
        self._second = -1
        self._stamp = self._date = ""
        self._middles: dict[tuple[str | None, str | None, bool], str] = {}
        self._ends: dict[str | None, str] = {}

    def encoded_prefix(self) -> bytes:
        """The part of every line between the time's microseconds and the statement, as written."""
        return self._prefix.encode("utf-8", "surrogatepass")

    def line(
        self,
        time_ns: int,
        statement: str,
        kind: str | None,
        decision: str | None,
        rows: int | None,
        duration_ns: int | None,
        error_code: str | None,
    ) -> tuple[str, bytes]:
        """The UTC date (the line's partition) and the line."""
        second = time_ns // 1_000_000_000
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._stamp = moment.strftime('{"time":"%Y-%m-%dT%H:%M:%S.')
            self._date = moment.date().isoformat()
            self._second = second
        truncated = False
        if len(statement) * 4 > STATEMENT_LIMIT:  # only then can its UTF-8 form exceed the bound
            statement, truncated = bound_text(statement, STATEMENT_LIMIT)
        middle = self._middles.get((kind, decision, truncated)) or self._middle(kind, decision, truncated)
        end = self._ends.get(error_code) or self._end(error_code)
        if duration_ns is None:
            duration = "null"
        else:
            ms, ns = divmod(abs(int(duration_ns)), 1_000_000)
            # Six decimals, without a format spec's parsing; the sign apart, since divmod floors.
            duration = f"{'-' if duration_ns < 0 else ''}{ms}.{str(1_000_000 + ns)[1:]}"
        # One f-string (a single BUILD_STRING): this runs once per statement of every session.
        text = (
            f"{self._stamp}{str(1_000_000 + time_ns // 1000 % 1_000_000)[1:]}{self._prefix}{_json_str(statement)}"
            f'{middle}{"null" if rows is None else int(rows)},"duration_ms":{duration}{end}'
        )
        return self._date, text.encode("utf-8", "surrogatepass")

    def _middle(self, kind: str | None, decision: str | None, truncated: bool) -> str:
        middle = (
            f',"statement_truncated":{"true" if truncated else "false"}'
            f',"statement_kind":{"null" if kind is None else _json_str(kind)}'
            f',"decision":{"null" if decision is None else _json_str(decision)},"rows":'
        )
        if len(self._middles) < _REMEMBERED:
            self._middles[(kind, decision, truncated)] = middle
        return middle

    def _end(self, error_code: str | None) -> str:
        end = f',"error_code":{"null" if error_code is None else _json_str(error_code)},"reason":null}}\n'
        if len(self._ends) < _REMEMBERED:
            self._ends[error_code] = end
        return end


_REMEMBERED: Final = 256  # distinct encoded fragments a session keeps (kinds x decisions, error codes)
# A str as json.dumps(ensure_ascii=False) writes it, without JSONEncoder.encode's dispatch.
_json_str: Callable[[str], str] = json.encoder.encode_basestring


def bound_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, and whether it was cut."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


def audit_key(date: str, proxy_id: str, token: str, seq: int) -> str:
    return f"{AUDIT_PREFIX}dt={date}/{proxy_id}-{token}-{seq:08d}.jsonl"


# A put function: (key, body) -> None, blocking; raises on failure.
PutObject = Callable[[str, bytes], None]


def s3_put_object(bucket: str, client: Any = None, *, client_factory: Callable[[], Any] | None = None) -> PutObject:
    """A ``PutObject`` writing to ``bucket`` once per key (the bucket's default retention applies).

    The S3 client is ``client``, else made by ``client_factory`` (default ``store.s3_client``) at the
    first put."""
    state: dict[str, Any] = {"client": client}

    def put(key: str, body: bytes) -> None:
        if state["client"] is None:
            from .store import s3_client

            state["client"] = (client_factory or s3_client)()
        state["client"].put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/x-ndjson",
            ChecksumAlgorithm="SHA256",  # Object Lock buckets require a checksum on every put
            ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            IfNoneMatch="*",
        )

    return put


class AuditWriter:
    def __init__(
        self,
        put: PutObject,
        *,
        proxy_id: str,
        batch_bytes: int = 1 << 20,
        flush_interval: float = 60.0,
        max_buffered_bytes: int = 16 << 20,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if "/" in proxy_id or not proxy_id:
            raise ValueError("proxy_id must be non-empty and contain no '/'")
        self._put = put
        self.proxy_id = proxy_id
        self.token = secrets.token_hex(3)
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self.max_buffered_bytes = max_buffered_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._clock = clock
        # The open batch by date, one buffer each: lines are copied in, not kept as objects (a busy
        # proxy's million small objects would sit in memory until the batch is cut).
        self._lines: dict[str, bytearray] = {}
        self._open_bytes = 0
        self._opened_at: float | None = None
        # add_line's fast path: the batch the last line went to, and how much more it may take before a
        # cut or the memory bound (0: take the full path). Only uploads finishing make more room, so a
        # stale value is only ever too small.
        self._date: str | None = None
        self._batch = bytearray()
        self._room = 0
        self._queue: deque[tuple[str, bytes]] = deque()  # (key, body) waiting to upload
        self._queued_bytes = 0
        self._seq = 0
        self._worker: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self.dropped = 0
        self.written = 0  # objects written
        self.last_error: Exception | None = None

    @property
    def buffered_bytes(self) -> int:
        return self._open_bytes + self._queued_bytes

    def add(self, event: AuditEvent) -> None:
        """Append one line (sync, non-blocking). Over the memory bound the line is dropped and counted."""
        self.add_line(event.date, event.line())

    def add_line(self, date: str, line: bytes) -> None:
        """``add`` for a line made by ``StatementLines`` (``date`` is the line's UTC date)."""
        size = len(line)
        if size < self._room and date == self._date:
            # The common case, once per statement: the open batch of that date takes the line, and
            # neither the batch size nor the memory bound is reached (``_room`` is the lesser margin).
            self._batch += line
            self._open_bytes += size
            self._room -= size
            return
        self._add_line(date, line)

    def _add_line(self, date: str, line: bytes) -> None:
        if self.buffered_bytes + len(line) > self.max_buffered_bytes:
            if self.dropped == 0 or self.dropped % 1000 == 0:
                log.error(
                    "audit buffer full (%d bytes waiting; last error: %s): dropping audit lines, %d so far",
                    self.buffered_bytes,
                    self.last_error,
                    self.dropped + 1,
                )
            self.dropped += 1
            return
        batch = self._lines.get(date)
        if batch is None:
            batch = self._lines[date] = bytearray()
        batch += line
        self._open_bytes += len(line)
        if self._opened_at is None:
            self._opened_at = self._now()
        if self._open_bytes >= self.batch_bytes:
            self._cut()
        else:
            self._date, self._batch = date, batch
            self._room = min(self.batch_bytes - self._open_bytes, self.max_buffered_bytes - self.buffered_bytes)

    def poll(self) -> None:
        """The time-based flush: hand the open batch to the uploader once it is ``flush_interval`` old."""
        if self._opened_at is not None and self._now() - self._opened_at >= self.flush_interval:
            self._cut()

    async def run(self, tick: float = 1.0) -> None:
        """Call ``poll`` every ``tick`` seconds until cancelled (one task per writer)."""
        while True:
            await asyncio.sleep(tick)
            self.poll()

    async def flush(self) -> None:
        """Hand over the open batch and wait until everything handed over has been written."""
        self._cut()
        if self._idle is not None:
            await self._idle.wait()

    async def close(self, timeout: float | None = None) -> None:
        """Flush (bounded by ``timeout``), then stop; lines still unwritten are logged as lost."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.error(
                "audit writer closing with %d objects (%d bytes) unwritten: %s",
                len(self._queue),
                self._queued_bytes,
                self.last_error,
            )
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def _cut(self) -> None:
        if not self._lines:
            return
        for date in sorted(self._lines):
            body = bytes(self._lines[date])
            self._queue.append((audit_key(date, self.proxy_id, self.token, self._seq), body))
            self._seq += 1
            self._queued_bytes += len(body)
        self._lines = {}
        self._open_bytes = 0
        self._opened_at = None
        self._date, self._batch, self._room = None, bytearray(), 0
        if self._wakeup is None or self._idle is None:
            self._wakeup, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.clear()
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="airlock-audit-writer")

    async def _run(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        attempt = 0
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key, body = self._queue[0]
            try:
                await asyncio.to_thread(self._put, key, body)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if _already_written(e):
                    log.warning("audit object %s exists already; treating it as written", key)
                else:
                    self.last_error = e
                    delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
                    log.warning("audit upload %s failed (attempt %d): %s", key, attempt + 1, e)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
            attempt = 0
            self.last_error = None
            self.written += 1
            self._queue.popleft()
            self._queued_bytes -= len(body)


def _already_written(e: Exception) -> bool:
    # If-None-Match: a retry after a lost response finds its own object (keys are never reused).
    response = getattr(e, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in {"PreconditionFailed", "412"}

"""Ships a session's chunks to the store from asyncio, losing nothing.

Theory of operation. ``submit`` (buffered mode) appends a chunk to an in-order queue and returns at
once; one worker task uploads the head of the queue in a thread and removes it only once it has landed,
retrying failures forever with exponential backoff and full jitter. The queue is bounded in bytes, but
a full queue never drops a chunk: the first time the bound is crossed, ``on_overflow`` is called so the
proxy can end the session with a FATAL (which it records; that chunk lands once the store is back),
and the uploader keeps every chunk and keeps retrying. ``put_now`` (strict mode) uploads one chunk
before returning, with a few quick attempts; if they fail it raises, and the chunk joins the queue so
it is still written eventually. ``close`` waits for every chunk, then writes the signed manifest, so a
manifest never names a chunk that is not in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, Protocol

from .format import Manifest, encode_manifest
from .recorder import SealedChunk
from .store import RecordingStoreError

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_BYTES: Final = 64 << 20


class ChunkWriter(Protocol):
    """The part of ``ChunkStore`` the uploader needs (blocking calls)."""

    def put_chunk(self, chunk: SealedChunk, retain_until: datetime) -> None: ...

    def put_manifest(self, prefix: str, data: bytes, retain_until: datetime) -> None: ...


class RecordingUnavailable(RecordingStoreError):
    """Strict mode: the statement's event could not be made durable, so the statement must not run."""


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: many proxies retrying against a recovering S3 (or KMS,
    or DynamoDB) must not retry in lockstep."""
    return (rng or random).uniform(0, min(maximum, initial * 2**attempt))


class ChunkUploader:
    def __init__(
        self,
        store: ChunkWriter,
        *,
        prefix: str,
        retain_until: datetime,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        on_overflow: Callable[[], None] | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        strict_attempts: int = 3,
        strict_timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.retain_until = retain_until
        self.max_buffered_bytes = max_buffered_bytes
        self.on_overflow = on_overflow
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.strict_attempts = strict_attempts
        self.strict_timeout = strict_timeout
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._queue: deque[SealedChunk] = deque()
        self._buffered = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self.overflowed = False
        self.last_error: Exception | None = None
        self.uploaded = 0  # chunks known to have landed

    @property
    def buffered_bytes(self) -> int:
        """Bytes of chunks accepted but not yet in the store."""
        return self._buffered

    @property
    def pending_chunks(self) -> int:
        return len(self._queue)

    def submit(self, chunk: SealedChunk) -> None:
        """Queue a chunk for upload (buffered mode). Never blocks, never drops."""
        self._queue.append(chunk)
        self._buffered += chunk.size
        self._idle.clear()
        self._wakeup.set()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="airlock-chunk-uploader")
        if self._buffered > self.max_buffered_bytes and not self.overflowed:
            self.overflowed = True
            log.error(
                "recording buffer bound hit: %d bytes waiting for the store (%s)",
                self._buffered,
                self.last_error,
            )
            if self.on_overflow is not None:
                self.on_overflow()

    async def put_now(self, chunk: SealedChunk) -> None:
        """Strict mode: return once ``chunk`` is durable, or raise ``RecordingUnavailable``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.strict_timeout
        error: Exception | None = None
        for attempt in range(self.strict_attempts):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._put(chunk), remaining)
            except (RecordingStoreError, TimeoutError) as e:
                error = e
                await self._sleep(min(self._backoff(attempt), max(0.0, deadline - loop.time())))
            else:
                self.uploaded += 1
                return
        # Keep the chunk: the statement is refused, but its event is still part of the record.
        self.submit(chunk)
        raise RecordingUnavailable(f"recording store unavailable, statement not executed: {error}") from error

    async def flush(self) -> None:
        """Wait until every submitted chunk has landed (however long the store takes)."""
        await self._idle.wait()

    async def close(self, manifest: Manifest) -> None:
        """Wait for every chunk, then write the signed manifest (retrying until it lands)."""
        if manifest.signature is None:
            raise ValueError("close() needs a signed manifest")
        data = encode_manifest(manifest)
        await self.flush()
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(self.store.put_manifest, self.prefix, data, self.retain_until)
                break
            except RecordingStoreError as e:
                self.last_error = e
                log.warning("manifest upload failed (attempt %d): %s", attempt + 1, e)
                await self._sleep(self._backoff(attempt))
                attempt += 1
        await self.stop()

    async def stop(self) -> None:
        """Stop the worker. Chunks still queued are NOT written: only for a process that is exiting."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _run(self) -> None:
        attempt = 0
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            chunk = self._queue[0]
            try:
                await self._put(chunk)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # Anything, not only store errors: the worker must outlive bugs rather than lose data.
                self.last_error = e
                log.warning("chunk %s upload failed (attempt %d): %s", chunk.key, attempt + 1, e)
                await self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            self.last_error = None
            self.uploaded += 1
            self._queue.popleft()
            self._buffered -= chunk.size
            if not self._queue:
                self._idle.set()

    async def _put(self, chunk: SealedChunk) -> None:
        await asyncio.to_thread(self.store.put_chunk, chunk, self.retain_until)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff_initial, self.backoff_max, self._rng)

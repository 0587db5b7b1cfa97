"""ChunkUploader against a fake store that fails on demand: retries, overflow, strict mode, close order."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from recording_helpers import FakeClock, meta

from shared.recording.format import Direction, SessionStatus
from shared.recording.recorder import SealedChunk, SessionRecorder
from shared.recording.signing import LocalKeySigner, sign_manifest
from shared.recording.store import RecordingStoreError
from shared.recording.uploader import ChunkUploader, RecordingUnavailable

RETAIN = datetime(2026, 1, 1, tzinfo=UTC)


class FlakyStore:
    def __init__(self) -> None:
        self.down = False
        self.chunks: list[str] = []
        self.manifests: list[str] = []
        self.attempts = 0

    def put_chunk(self, chunk: SealedChunk, retain_until: datetime) -> None:
        self.attempts += 1
        if self.down:
            raise RecordingStoreError("connection refused")
        self.chunks.append(chunk.key)

    def put_manifest(self, prefix: str, data: bytes, retain_until: datetime) -> None:
        if self.down:
            raise RecordingStoreError("connection refused")
        self.manifests.append(prefix)


def _chunks(n: int, size: int = 100) -> tuple[SessionRecorder, list[SealedChunk]]:
    rec = SessionRecorder(meta(), chunk_size=size, clock=FakeClock())
    out = []
    while len(out) < n:
        c = rec.record_bytes(Direction.PROXY_TO_AGENT, b"x" * size)
        assert c is not None
        out.append(c)
    return rec, out


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def _uploader(store: FlakyStore, **kw: object) -> ChunkUploader:
    return ChunkUploader(store, prefix="p/", retain_until=RETAIN, sleep=_no_sleep, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def test_buffered_uploads_in_order_and_close_writes_manifest_last() -> None:
    async def main() -> None:
        store = FlakyStore()
        rec, chunks = _chunks(3)
        up = _uploader(store)
        for c in chunks:
            up.submit(c)
        sealed = rec.seal(SessionStatus.CLOSED)
        await up.close(sign_manifest(sealed.manifest, LocalKeySigner()))
        assert store.chunks == [c.key for c in chunks]
        assert store.manifests == ["p/"]
        assert up.buffered_bytes == 0 and up.uploaded == 3

    asyncio.run(main())


def test_store_outage_keeps_everything_calls_overflow_once_and_recovers() -> None:
    async def main() -> None:
        store = FlakyStore()
        store.down = True
        overflows: list[int] = []
        _, chunks = _chunks(5)
        up = _uploader(store, max_buffered_bytes=2 * chunks[0].size, on_overflow=lambda: overflows.append(1))
        for c in chunks:
            up.submit(c)
            await asyncio.sleep(0)
        for _ in range(500):  # the worker retries in a thread: give it real time
            if store.attempts >= 3:
                break
            await asyncio.sleep(0.01)
        assert overflows == [1] and up.overflowed
        assert up.pending_chunks == 5 and store.attempts > 1
        assert isinstance(up.last_error, RecordingStoreError)
        store.down = False
        await asyncio.wait_for(up.flush(), 5)
        assert store.chunks == [c.key for c in chunks]
        await up.stop()

    asyncio.run(main())


def test_strict_put_now_succeeds_or_raises_and_keeps_the_chunk() -> None:
    async def main() -> None:
        store = FlakyStore()
        _, (a, b) = _chunks(2)
        up = _uploader(store, strict_attempts=2)
        await up.put_now(a)
        assert store.chunks == [a.key]
        store.down = True
        with pytest.raises(RecordingUnavailable, match="statement not executed"):
            await up.put_now(b)
        assert up.pending_chunks == 1  # queued, still retried in the background
        store.down = False
        await asyncio.wait_for(up.flush(), 5)
        assert store.chunks == [a.key, b.key]
        await up.stop()

    asyncio.run(main())


def test_close_refuses_an_unsigned_manifest() -> None:
    async def main() -> None:
        rec, _ = _chunks(1)
        with pytest.raises(ValueError, match="signed"):
            await _uploader(FlakyStore()).close(rec.seal(SessionStatus.CLOSED).manifest)

    asyncio.run(main())

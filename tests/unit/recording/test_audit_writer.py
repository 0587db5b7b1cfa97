"""AuditWriter's batching: every line lands once, in order, in its date's object; cuts and the memory
bound are exact (the per-statement fast path must agree with the full path at every boundary)."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.recording.audit import AuditWriter


def _line(i: int, width: int = 20) -> bytes:
    return f"{i:0{width - 1}d}\n".encode()


@pytest.mark.parametrize("batch_lines", [1, 3, 10])
def test_lines_land_once_in_order_by_date(batch_lines: int) -> None:
    written: list[tuple[str, bytes]] = []

    async def main() -> AuditWriter:
        writer = AuditWriter(lambda key, body: written.append((key, body)), proxy_id="p",
                             batch_bytes=20 * batch_lines, clock=time.monotonic)  # fmt: skip
        for i in range(25):
            writer.add_line("2026-12-03" if i < 17 else "2026-12-04", _line(i))
            if i < 17:  # a cut happens exactly when the open batch reaches batch_bytes
                assert writer.buffered_bytes - writer._queued_bytes == 20 * ((i + 1) % batch_lines)
        await writer.flush()
        return writer

    writer = asyncio.run(main())
    assert writer.dropped == 0
    by_date = {"2026-12-03": b"", "2026-12-04": b""}
    for key, body in written:
        date = key.split("dt=")[1].split("/")[0]
        by_date[date] += body
        assert len(body) <= 20 * batch_lines
    assert by_date["2026-12-03"] == b"".join(_line(i) for i in range(17))
    assert by_date["2026-12-04"] == b"".join(_line(i) for i in range(17, 25))


def test_memory_bound_is_exact_and_counts_every_dropped_line() -> None:
    async def main() -> AuditWriter:
        def down(key: str, body: bytes) -> None:
            raise OSError("store down")

        writer = AuditWriter(down, proxy_id="p", batch_bytes=60, max_buffered_bytes=200, backoff_initial=5,
                             clock=time.monotonic)  # fmt: skip
        for i in range(30):
            writer.add_line("2026-12-03", _line(i))
            assert writer.buffered_bytes <= 200
        assert writer.buffered_bytes == 200  # ten lines of 20 bytes fit exactly; the rest are counted
        await writer.close(0.05)
        return writer

    assert asyncio.run(main()).dropped == 20

"""Micro-benchmark of the result masker (not a test): MB/s over 1000-row server buffers.

Compares a plain framing pass (what the no-masking proxy does per buffer) with the masker's path:
prefilter per buffer, then ``mask_data_row`` per DataRow when the prefilter hits.

    .venv/bin/python scripts/bench_masking.py [--rows 1000] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from stdnum import luhn

from shared.masking import MaskingPolicy, ResultMasker, is_card_number
from shared.pgwire.constants import LARGE_MESSAGE_LIMIT
from shared.pgwire.framing import Framer
from shared.pgwire.messages import Field, build_data_row, build_row_description

FIELDS = [
    Field("id", 0, 1, 20, 8, -1, 0),
    Field("customer", 0, 2, 25, -1, -1, 0),
    Field("created_at", 0, 3, 1184, 8, -1, 0),
    Field("amount", 0, 4, 1700, -1, -1, 0),
    Field("note", 0, 5, 25, -1, -1, 0),
    Field("card", 0, 6, 25, -1, -1, 0),
]


def card(i: int) -> str:
    """A distinct Luhn-valid card number per row, in the usual printed shapes."""
    body = ("4" if i % 2 else "51") + str(10**13 + i * 7919)[-(14 if i % 2 else 13):]
    number = body + luhn.calc_check_digit(body)
    return " ".join(number[j : j + 4] for j in range(0, 16, 4)) if i % 3 == 0 else number


def buffer(rows: int, with_cards: bool) -> bytes:
    out = [build_row_description(FIELDS)]
    for i in range(rows):
        number = card(i) if with_cards else f"order {100000 + i}"
        out.append(build_data_row([
            str(700000 + i).encode(), f"Customer number {i}".encode(), b"2024-05-01 12:00:00.123456+00",
            f"{i * 3.25:.2f}".encode(), b"delivered to the usual address, no issues", number.encode(),
        ]))
    return b"".join(out)


def plain(data: bytes) -> int:
    framer = Framer(limit=LARGE_MESSAGE_LIMIT)
    chunk, frames = framer.feed(data)
    return len(chunk) + len(frames)


def masking(masker: ResultMasker) -> Callable[[bytes], int]:
    def run(data: bytes) -> int:
        is_card_number.cache_clear()  # every pass sees its card numbers for the first time, as in a session
        framer = Framer(limit=LARGE_MESSAGE_LIMIT)
        chunk, frames = framer.feed(data)
        plan = masker.on_row_description(FIELDS)
        if not masker.prefilter(chunk) and not plan.forced:
            return len(chunk)
        out: list[bytes] = []
        last = 0
        for mtype, start, end in frames:
            if mtype == 0x44:  # 'D'
                new = masker.mask_data_row(plan, chunk[start:end])
                if new is not None:
                    out.append(chunk[last : start - 5])
                    out.append(new)
                    last = end
        out.append(chunk[last:])
        return len(b"".join(out))

    return run


def rate(fn: Callable[[bytes], int], data: bytes, seconds: float) -> float:
    n = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn(data)
        n += 1
    return n * len(data) / elapsed / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    masker = ResultMasker(MaskingPolicy())
    for label, with_cards in (("no sensitive values", False), ("card number in every row", True)):
        data = buffer(args.rows, with_cards)
        base = rate(plain, data, args.seconds)
        masked = rate(masking(masker), data, args.seconds)
        print(f"{label:26} {len(data) / 1e3:7.1f} kB  framing {base:8.1f} MB/s  masking {masked:8.1f} MB/s"
              f"  ratio {masked / base:5.2f}")
    print("masked values:", masker.take_counts())


if __name__ == "__main__":
    main()

"""Micro-benchmark of the result masker (not a test): MB/s over 1000-row server buffers.

Compares a plain framing pass (what the no-masking proxy does per buffer) with the masker's path:
prefilter per buffer, then ``mask_data_row`` per DataRow when the prefilter hits (or a column rule forces
it). Each shape is masked *cold* (a masker whose row memo is empty, as a session meeting rows no session
has seen) and *warm* (the same rows again, served from the memo).

Shapes: an orders table with nothing sensitive, the same with a card number in free text on every row,
and the demo ``customers`` table under the demo policy (card and ssn column rules, e-mail tokens).

    .venv/bin/python scripts/bench_masking.py [--rows 1000] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import repeat

from stdnum import luhn

from shared.masking import MaskingPolicy, is_card_number
from shared.pg.masking import ResultMasker, StatementRef
from shared.pg.masking.catalog import Attribute, FixedCatalog, Relation, catalog_of
from shared.pg.masking.memo import SHARED_BUDGET
from shared.pg.wire.constants import LARGE_MESSAGE_LIMIT
from shared.pg.wire.framing import Framer
from shared.pg.wire.messages import Field, build_data_row, build_row_description

ORDERS = [
    Field("id", 0, 1, 20, 8, -1, 0),
    Field("customer", 0, 2, 25, -1, -1, 0),
    Field("created_at", 0, 3, 1184, 8, -1, 0),
    Field("amount", 0, 4, 1700, -1, -1, 0),
    Field("note", 0, 5, 25, -1, -1, 0),
    Field("card", 0, 6, 25, -1, -1, 0),
]
CUSTOMERS = [
    Field("id", 0, 1, 20, 8, -1, 0),
    Field("name", 0, 2, 25, -1, -1, 0),
    Field("email", 0, 3, 25, -1, -1, 0),
    Field("ssn", 0, 4, 25, -1, -1, 0),
    Field("card_number", 0, 5, 25, -1, -1, 0),
    Field("created_at", 0, 6, 1184, 8, -1, 0),
]
# scripts/airlock/devstack/demo_policy.yaml's masking section.
DEMO_POLICY = MaskingPolicy.model_validate(
    {
        "detectors": {"card": "partial", "ssn": "redact", "email": "token", "iban": "partial"},
        "columns": [{"name": "*card*", "action": "partial"}, {"name": "ssn", "action": "redact"}],
    }
)
TOKEN_KEY = b"bench-token-key-" * 2
# The relations the statements read (lineage follows them; column rules cover customers' ssn and card).
CATALOG = FixedCatalog(catalog_of([
    Relation(1, "public", "orders", "r", tuple(Attribute(f.name, f.type_oid) for f in ORDERS)),
    Relation(2, "public", "customers", "r", tuple(Attribute(f.name, f.type_oid) for f in CUSTOMERS)),
]))


@dataclass(frozen=True)
class Shape:
    label: str
    fields: list[Field]
    policy: MaskingPolicy
    row: Callable[[int], list[bytes]]
    statement: StatementRef


def card(i: int) -> str:
    """A distinct Luhn-valid card number per row, in the usual printed shapes."""
    body = ("4" if i % 2 else "51") + str(10**13 + i * 7919)[-(14 if i % 2 else 13) :]
    number = body + luhn.calc_check_digit(body)
    return " ".join(number[j : j + 4] for j in range(0, 16, 4)) if i % 3 == 0 else number


def order(with_cards: bool) -> Callable[[int], list[bytes]]:
    def row(i: int) -> list[bytes]:
        number = card(i) if with_cards else f"order {100000 + i}"
        return [
            str(700000 + i).encode(),
            f"Customer number {i}".encode(),
            b"2024-05-01 12:00:00.123456+00",
            f"{i * 3.25:.2f}".encode(),
            b"delivered to the usual address, no issues",
            number.encode(),
        ]

    return row


def customer(i: int) -> list[bytes]:
    return [
        str(i).encode(),
        f"Customer {i} Smith".encode(),
        f"customer{i}@example.com".encode(),
        f"{100 + i % 800:03d}-{10 + i % 89:02d}-{1000 + i % 9000:04d}".encode(),
        card(i).encode(),
        b"2024-05-01 12:00:00.123456+00",
    ]


SELECT_ORDERS = StatementRef("SELECT * FROM orders LIMIT 1000 OFFSET 10")
SELECT_CUSTOMERS = StatementRef("SELECT * FROM customers LIMIT 1000 OFFSET 10")
SHAPES = [
    Shape("no sensitive values", ORDERS, MaskingPolicy(), order(False), SELECT_ORDERS),
    Shape("card number in every row", ORDERS, MaskingPolicy(), order(True), SELECT_ORDERS),
    Shape("demo customers", CUSTOMERS, DEMO_POLICY, customer, SELECT_CUSTOMERS),
]


def buffer(shape: Shape, rows: int) -> bytes:
    return b"".join([build_row_description(shape.fields), *(build_data_row(shape.row(i)) for i in range(rows))])


def plain(data: bytes) -> int:
    framer = Framer(limit=LARGE_MESSAGE_LIMIT)
    chunk, frames = framer.feed(data)
    return len(chunk) + len(frames)


def masking(shape: Shape, session_masker: Callable[[], ResultMasker]) -> Callable[[bytes], int]:
    """One pass of the proxy's masking path over a buffer, with the masker ``session_masker`` gives."""

    def run(data: bytes) -> int:
        is_card_number.cache_clear()  # every pass sees its card numbers for the first time, as in a session
        session = session_masker()
        framer = Framer(limit=LARGE_MESSAGE_LIMIT)
        chunk, frames = framer.feed(data)
        plan = session.on_row_description(shape.fields, shape.statement)
        if not plan.needs_rows(session.prefilter(chunk)):
            return len(chunk)
        out: list[bytes] = []
        last = 0
        for mtype, start, end in frames:
            if mtype == 0x44:  # 'D'
                new = session.mask_data_row(plan, chunk[start:end])
                if new is not None:
                    out.append(chunk[last : start - 5])
                    out.append(new)
                    last = end
        out.append(chunk[last:])
        return len(b"".join(out))

    return run


def rate(fn: Callable[[bytes], int], data: bytes, seconds: float) -> float:
    """MB/s of ``fn`` over ``data``."""
    n = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn(data)
        n += 1
    return n * len(data) / elapsed / 1e6


def fresh(shape: Shape) -> ResultMasker:
    """A masker whose memo is empty and its own: every row is masked for the first time."""
    return ResultMasker(shape.policy, TOKEN_KEY, catalog=CATALOG, memo_bytes=SHARED_BUDGET)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    print(f"{'':26} {'size':>8}  {'framing':>10}  {'cold masking':>22}  {'warm masking':>22}  ratio cold/warm")
    for shape in SHAPES:
        data = buffer(shape, args.rows)
        base = rate(plain, data, args.seconds)
        # Cold: a fresh masker on every pass. Warm: one masker, the same rows again (from its memo).
        cold = rate(masking(shape, partial(fresh, shape)), data, args.seconds)
        warm = rate(masking(shape, repeat(fresh(shape)).__next__), data, args.seconds)
        ms = [len(data) / mbs / 1e3 * 1000 / args.rows for mbs in (cold, warm)]  # per 1000 rows
        print(
            f"{shape.label:26} {len(data) / 1e3:6.1f} kB  {base:7.1f} MB/s"
            f"  {cold:7.1f} MB/s {ms[0]:6.2f} ms/1k  {warm:7.1f} MB/s {ms[1]:6.2f} ms/1k"
            f"  {cold / base:5.2f} / {warm / base:5.2f}"
        )
        once = fresh(shape)
        masking(shape, repeat(once).__next__)(data)
        print(f"{'':26} masked per pass: {once.take_counts()}")


if __name__ == "__main__":
    main()

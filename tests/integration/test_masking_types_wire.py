"""Masked values stay valid for their type (issue 19, item 6), and bytea is looked into (issue 13, item 4).

Random int8, numeric, JSON and bytea values that happen to look like card numbers came back as text the
client could not parse (``-***...4369`` for an int8, a numeric that raised ``InvalidOperation``, JSON that
no longer parsed, bytea with ``*`` in its hex) and a COPY from one table into another through Airlock
failed on the masked text; a ``bytea`` column holding a card number leaked in every format.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import sql
from stdnum import luhn

from tests.integration.stack import AirlockStack
from tests.integration.test_masking_lineage_wire import leaks


def card_like(rng: random.Random) -> int:
    """A 16-digit number a detector takes for a card: a Visa or Mastercard prefix and a Luhn digit."""
    body = rng.choice(["4", "51", "52", "55"])
    body += "".join(rng.choice("0123456789") for _ in range(15 - len(body)))
    return int(body + luhn.calc_check_digit(body))


ROWS = 60
COLUMNS = "id int, n8 bigint, n numeric, n_frac numeric(20, 2), doc json, docb jsonb, raw bytea, words text"


def random_rows(seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    rows = []
    for i in range(ROWS):
        card = card_like(rng)
        signed = -card if i % 3 == 0 else card  # a negative number is never a card number
        text = f"card {card}" if signed > 0 else "none"
        rows.append((
            i,
            signed,
            Decimal(signed),
            Decimal(card) + Decimal("0.25"),
            json.dumps({"pan": signed, "s": text, "list": [signed, 1]}),
            json.dumps([signed, {"k": text}]),
            f"PAN {text} ok".encode(),
            f"paid with {text}, ref {rng.randrange(10**6)}",
        ))
    return rows


@pytest.fixture
def tables(stack: AirlockStack) -> Iterator[tuple[str, str, list[tuple[Any, ...]]]]:
    """A source table of card-like values and an empty one like it (regular tables: two sessions see them)."""
    src, dst = f"mt_src_{uuid.uuid4().hex[:8]}", f"mt_dst_{uuid.uuid4().hex[:8]}"
    rows = random_rows(1913)
    with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
        for name in (src, dst):
            admin.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(COLUMNS)))
            admin.execute(sql.SQL("GRANT ALL ON {} TO airlock_app").format(sql.Identifier(name)))
        with admin.cursor() as cur:
            insert = sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(sql.Identifier(src))
            cur.executemany(insert, rows)
    try:
        yield src, dst, rows
    finally:
        with psycopg.connect(stack.target_dsn, autocommit=True) as admin:
            for name in (src, dst):
                admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def cards_of(rows: list[tuple[Any, ...]]) -> list[str]:
    return [str(abs(r[1])) for r in rows]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_masked_values_parse_as_their_type(
    stack: AirlockStack, tables: tuple[str, str, list[tuple[Any, ...]]], binary: bool
) -> None:
    src, _, rows = tables
    with psycopg.connect(stack.conninfo()) as conn:
        got = conn.cursor(binary=binary).execute(f"SELECT * FROM {src} ORDER BY id").fetchall()  # parses, or raises
    assert len(got) == ROWS
    positives = [str(r[1]) for r in rows if r[1] > 0]
    assert not leaks([g[1:3] + g[4:] for g in got], positives), "n_frac holds fractions: no card numbers"
    for g, r in zip(got, rows, strict=True):
        assert isinstance(g[1], int) and isinstance(g[2], Decimal) and isinstance(g[7], str)
        assert isinstance(g[6], bytes) and g[6].startswith(b"PAN ") and str(r[1]).encode() not in g[6]
        assert isinstance(g[4], dict) and isinstance(g[5], list), "the JSON parsed"
        if r[1] < 0:
            assert g[1] == r[1] and g[2] == r[2], "a negative number is never a card number"
            assert g[4]["pan"] == g[5][0] == r[1], "nor inside JSON"
        else:
            last4 = int(str(r[1])[-4:])
            assert g[1] == last4 and g[2] == Decimal(last4), "partial: the last four, as a number"
            assert g[4]["pan"] == g[5][0] == last4, "a JSON number stays a number"
        assert g[3] == r[3], "a number with a fraction is not a card number"


def test_text_and_binary_agree(stack: AirlockStack, tables: tuple[str, str, list[tuple[Any, ...]]]) -> None:
    src, _, _ = tables
    query = f"SELECT n8, n, docb, raw FROM {src} ORDER BY id"
    with psycopg.connect(stack.conninfo()) as conn:
        assert conn.cursor().execute(query).fetchall() == conn.cursor(binary=True).execute(query).fetchall()

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(
            f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo", ssl="require"
        )
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()

    with psycopg.connect(stack.conninfo()) as conn:
        expected = conn.cursor(binary=True).execute(query).fetchall()
    got = asyncio.run(fetch())
    assert [(a, b, json.loads(c), d) for a, b, c, d in got] == expected


@pytest.mark.parametrize("fmt", ["text", "csv", "binary"])
@pytest.mark.parametrize("source", ["{src}", "(SELECT * FROM {src} ORDER BY id)"], ids=["table", "query"])
def test_copy_from_one_table_into_another_through_airlock(
    stack: AirlockStack, tables: tuple[str, str, list[tuple[Any, ...]]], fmt: str, source: str
) -> None:
    src, dst, rows = tables
    with psycopg.connect(stack.conninfo()) as out, psycopg.connect(stack.conninfo()) as into:
        with out.cursor().copy(f"COPY {source.format(src=src)} TO STDOUT (FORMAT {fmt})") as reading, \
                into.cursor().copy(f"COPY {dst} FROM STDIN (FORMAT {fmt})") as writing:
            for block in reading:
                writing.write(block)
        into.commit()
    with psycopg.connect(stack.target_dsn) as direct:
        copied = direct.execute(f"SELECT * FROM {dst} ORDER BY id").fetchall()
    assert len(copied) == ROWS
    positives = [str(r[1]) for r in rows if r[1] > 0]
    assert not leaks([c[:3] + c[4:] for c in copied], positives)
    assert [c[1] for c in copied if c[1] < 0] == [r[1] for r in rows if r[1] < 0]


def test_a_bytea_holding_a_card_number_does_not_leak(stack: AirlockStack) -> None:
    with psycopg.connect(stack.target_dsn) as direct:
        cards = [r[0] for r in direct.execute("SELECT card_number FROM customers ORDER BY id LIMIT 50")]
    queries = [
        "SELECT payload FROM receipts ORDER BY id LIMIT 50",
        "SELECT row_to_json(r) FROM receipts r ORDER BY id LIMIT 50",
        "SELECT json_agg(r) FROM (SELECT * FROM receipts ORDER BY id LIMIT 50) r",
        "SELECT ARRAY[payload] FROM receipts ORDER BY id LIMIT 50",
        "SELECT encode(payload, 'escape') FROM receipts ORDER BY id LIMIT 50",
    ]
    with psycopg.connect(stack.conninfo()) as conn:
        for query in queries:
            for binary in (False, True):
                got = conn.cursor(binary=binary).execute(query).fetchall()
                assert got and not leaks(got, cards), (query, binary, leaks(got, cards))
        conn.execute("SET bytea_output = escape")
        escaped = conn.execute("SELECT payload FROM receipts ORDER BY id LIMIT 50").fetchall()
        assert not leaks(escaped, cards) and b"APPROVED PAN" in escaped[0][0]
        for options in ("", "(FORMAT csv)", "(FORMAT binary)"):
            for source in ("receipts", "(SELECT * FROM receipts ORDER BY id LIMIT 50)"):
                data = bytearray()
                with conn.cursor().copy(f"COPY {source} TO STDOUT {options}") as copy:
                    for block in copy:
                        data += block
                assert not leaks(bytes(data).decode("latin-1"), cards), (source, options)

"""A COPY from one connection into another, as psycopg's own test suite runs it, with random schemas and rows.

Run as a program (``python -m tests.integration.copy_across``) so that the test chooses which libpq
psycopg drives: ``PSYCOPG_IMPL=python`` loads the system's libpq, ``binary`` the one in psycopg's wheel.
Reads a JSON job on stdin ({"conninfo", "seeds", "api": "sync"|"async", "timeout"}) and prints one JSON
line per seed: how many rows were read out of how many, whether the target table now holds exactly the
rows generated, and whether the reader stalled (no row for ``timeout`` seconds). A stall ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ROWS = 20
COLUMNS = 20
# Text without digits, '@' or '.': random values must not look like a card number, an e-mail address or
# a token, or masking (on for every identity of the demo policy) would rewrite them. COPY's own escapes
# (tab, newline, backslash) and multi-byte characters are in.
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,;:!?-_'\"\\\t\nàéîõüßçñ€жπ中文"


def _text(rng: random.Random, longest: int = 1000) -> str:
    return "".join(rng.choices(ALPHABET, k=rng.randint(0, longest)))


# Column type -> a random value of it (shorter than any card number where digits are involved).
VALUES: dict[str, Callable[[random.Random], Any]] = {
    "int4": lambda r: r.randint(-(2**31), 2**31 - 1),
    "int8": lambda r: r.randint(-(10**11), 10**11),
    "numeric": lambda r: Decimal(r.randint(-(10**8), 10**8)).scaleb(-2),
    "float8": lambda r: round(r.uniform(-1e4, 1e4), 3),
    "bool": lambda r: r.random() < 0.5,
    "text": _text,
    "bytea": lambda r: r.randbytes(r.randint(0, 5)),
    "date": lambda r: dt.date(2000, 1, 1) + dt.timedelta(days=r.randint(0, 20000)),
    "jsonb": lambda r: {"word": _text(r, 40), "flag": r.random() < 0.5, "n": r.randint(-999, 999)},
    "text[]": lambda r: [_text(r, 200) for _ in range(r.randint(0, 4))],
    "int4[]": lambda r: [r.randint(-999, 999) for _ in range(r.randint(0, 6))],
}


@dataclass(frozen=True, slots=True)
class Table:
    types: list[str]
    rows: list[tuple[Any, ...]]

    @classmethod
    def random(cls, seed: int) -> Table:
        rng = random.Random(seed)
        types = [rng.choice(list(VALUES)) for _ in range(COLUMNS)]
        rows = [(n, *(None if rng.random() < 0.1 else VALUES[t](rng) for t in types)) for n in range(ROWS)]
        return cls(types, rows)

    def ddl(self, name: str) -> str:
        columns = ", ".join(f"c{i} {t}" for i, t in enumerate(self.types))
        return f"CREATE TEMP TABLE {name} (n int, {columns})"

    def insert(self, name: str) -> str:
        return f"INSERT INTO {name} VALUES ({', '.join(['%s'] * (COLUMNS + 1))})"

    def params(self) -> list[tuple[Any, ...]]:
        return [tuple(Jsonb(v) if isinstance(v, dict) else v for v in row) for row in self.rows]


@dataclass
class Progress:
    read: int = 0


def copy_sync(conninfo: str, table: Table, progress: Progress) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as source, psycopg.connect(conninfo) as target:
        source.execute(table.ddl("copy_src"))
        source.cursor().executemany(table.insert("copy_src"), table.params())
        target.execute(table.ddl("copy_tgt"))
        with (
            source.cursor().copy("COPY copy_src TO STDOUT") as out,
            target.cursor().copy("COPY copy_tgt FROM STDIN") as into,
        ):
            for row in out:
                into.write(row)
                progress.read += bytes(row).count(b"\n")
        return target.execute("SELECT * FROM copy_tgt ORDER BY n").fetchall()


async def copy_async(conninfo: str, table: Table, progress: Progress) -> list[tuple[Any, ...]]:
    async with (
        await psycopg.AsyncConnection.connect(conninfo) as source,
        await psycopg.AsyncConnection.connect(conninfo) as target,
    ):
        await source.execute(table.ddl("copy_src"))
        await source.cursor().executemany(table.insert("copy_src"), table.params())
        await target.execute(table.ddl("copy_tgt"))
        async with (
            source.cursor().copy("COPY copy_src TO STDOUT") as out,
            target.cursor().copy("COPY copy_tgt FROM STDIN") as into,
        ):
            async for row in out:
                await into.write(row)
                progress.read += bytes(row).count(b"\n")
        cursor = await target.execute("SELECT * FROM copy_tgt ORDER BY n")
        return await cursor.fetchall()


def run_seed(conninfo: str, seed: int, api: str, timeout: float) -> dict[str, Any]:
    """Copy one random table; the reader stalls if the whole copy takes ``timeout`` (it takes ~0.1 s)."""
    table = Table.random(seed)
    progress = Progress()
    copied: list[list[tuple[Any, ...]]] = []
    if api == "async":
        with contextlib.suppress(TimeoutError):
            copied.append(asyncio.run(asyncio.wait_for(copy_async(conninfo, table, progress), timeout)))
    else:
        worker = threading.Thread(target=lambda: copied.append(copy_sync(conninfo, table, progress)), daemon=True)
        worker.start()
        worker.join(timeout)
    rows = copied[0] if copied else []
    return {
        "seed": seed,
        "read": progress.read,
        "total": len(table.rows),
        "stalled": not copied,
        "equal": rows == table.rows,
        "types": table.types,
    }


def main() -> None:
    job = json.load(sys.stdin)
    print(json.dumps({"libpq": psycopg.pq.version(), "impl": psycopg.pq.__impl__}), flush=True)
    for seed in job["seeds"]:
        report = run_seed(job["conninfo"], seed, job["api"], job["timeout"])
        print(json.dumps(report), flush=True)
        if report["stalled"]:
            os._exit(0)  # the stalled reader's thread cannot be stopped


if __name__ == "__main__":
    main()

"""Masking on the real wire: no raw card number, SSN or e-mail leaves the proxy, in any format."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import asyncpg
import psycopg
import pytest
from psycopg import sql

from tests.integration.stack import AirlockStack, eventually


@pytest.fixture(scope="module")
def secrets_in_db(stack: AirlockStack) -> dict[str, list[str]]:
    with psycopg.connect(stack.target_dsn) as direct:
        rows = direct.execute("SELECT card_number, ssn, email FROM customers ORDER BY id LIMIT 200").fetchall()
    return {"card": [r[0] for r in rows], "ssn": [r[1] for r in rows], "email": [r[2] for r in rows]}


def assert_nothing_leaks(text: str, secrets: dict[str, list[str]]) -> None:
    for kind, values in secrets.items():
        leaked = [v for v in values if v in text]
        assert not leaked, f"raw {kind} values leaked: {leaked[:3]}"


def test_psql_sees_masked_values(stack: AirlockStack, secrets_in_db: dict[str, list[str]]) -> None:
    out = subprocess.run(
        ["psql", "-X", "-A", "-t", stack.conninfo(), "-c",
         "SELECT id, card_number, ssn, email, name FROM customers ORDER BY id LIMIT 200"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert_nothing_leaks(out.stdout, secrets_in_db)
    first = out.stdout.splitlines()[0].split("|")
    card = secrets_in_db["card"][0]
    assert first[1] == "*" * (len(card) - 4) + card[-4:]  # partial: keep the last four
    assert first[2] == "****"  # the ssn column rule redacts
    assert re.fullmatch(r"tok_[a-z0-9]+", first[3])  # e-mail: deterministic keyed token
    assert first[4] != "" and "*" not in first[4]  # names are not sensitive: untouched


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_psycopg_text_and_binary(stack: AirlockStack, secrets_in_db: dict[str, list[str]], binary: bool) -> None:
    # card_number is covered by a column rule: what is computed from it is masked whole. The e-mail is not:
    # its detector tokenizes it wherever it appears.
    query = ("SELECT card_number, card_number::numeric AS n, card_number::bigint AS b, email, "
             "ARRAY[name, email] AS arr, jsonb_build_object('name', name, 'mail', email) AS j, "
             "row_to_json(c)::text AS rj FROM customers c ORDER BY id LIMIT 200")
    with psycopg.connect(stack.conninfo()) as conn:
        rows = conn.cursor(binary=binary).execute(query).fetchall()
    assert len(rows) == 200
    assert_nothing_leaks(repr(rows), secrets_in_db)
    # Deterministic tokens: the same e-mail masks to the same token in every format and session.
    assert rows[0][3] == rows[0][4][1] == rows[0][5]["mail"]
    assert rows[0][1] == 0 and rows[0][2] == 0 and rows[0][6] == "****", "computed from a covered column"


def test_tokens_are_stable_across_sessions_so_joins_still_work(stack: AirlockStack) -> None:
    def tokens() -> list[str]:
        with psycopg.connect(stack.conninfo()) as conn:
            return [r[0] for r in conn.execute("SELECT email FROM customers ORDER BY id LIMIT 20").fetchall()]

    first, second = tokens(), tokens()
    assert first == second and len(set(first)) == 20


def test_asyncpg_binary(stack: AirlockStack, secrets_in_db: dict[str, list[str]]) -> None:
    async def run() -> list[object]:
        conn = await asyncpg.connect(
            f"postgresql://ci-nightly:{stack.token('ci-nightly')}@127.0.0.1:{stack.proxy_port}/demo", ssl="require")
        try:
            stmt = await conn.prepare("SELECT card_number, ssn, email, card_number::numeric, "
                                      "array_agg(card_number) OVER () AS all_cards FROM customers WHERE id <= $1")
            return [tuple(r) for r in await stmt.fetch(200)]
        finally:
            await conn.close()

    rows = asyncio.run(run())
    assert len(rows) == 200
    assert_nothing_leaks(repr(rows), secrets_in_db)


@pytest.mark.parametrize("options", ["", "(FORMAT csv, HEADER)", "(FORMAT binary)"], ids=["text", "csv", "binary"])
def test_copy_to_stdout(stack: AirlockStack, secrets_in_db: dict[str, list[str]], options: str) -> None:
    with psycopg.connect(stack.conninfo()) as conn:
        data = bytearray()
        sql = f"COPY (SELECT id, card_number, ssn, email FROM customers ORDER BY id LIMIT 200) TO STDOUT {options}"
        with conn.cursor().copy(sql.encode()) as copy:
            for block in copy:
                data += block
    assert_nothing_leaks(bytes(data).decode("latin-1"), secrets_in_db)
    assert len(data) > 200 * 10


def test_error_detail_does_not_quote_the_value(stack: AirlockStack, secrets_in_db: dict[str, list[str]]) -> None:
    card = secrets_in_db["card"][0]
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE cards (card text UNIQUE)")
        conn.execute("INSERT INTO cards VALUES (%s)", (card,))
        with pytest.raises(psycopg.errors.UniqueViolation) as info:
            conn.execute("INSERT INTO cards VALUES (%s)", (card,))
    detail = info.value.diag.message_detail or ""
    # The statement reads a column a rule covers ("card"): the key the error quotes is redacted whole.
    assert detail == "Key (card)=(****) already exists." and card not in detail


def test_rows_without_sensitive_values_are_byte_identical(stack: AirlockStack) -> None:
    sql = "SELECT id, name, created_at, round(id / 3.0, 4) FROM customers ORDER BY id LIMIT 500"
    direct = subprocess.run(["psql", "-X", "-A", stack.target_dsn, "-c", sql], capture_output=True, timeout=60)
    proxied = subprocess.run(["psql", "-X", "-A", stack.conninfo(), "-c", sql], capture_output=True, timeout=60)
    assert proxied.stdout == direct.stdout and len(proxied.stdout) > 10_000


def test_json_values(stack: AirlockStack, secrets_in_db: dict[str, list[str]]) -> None:
    with psycopg.connect(stack.conninfo()) as conn:
        rows = conn.execute("SELECT json_agg(c) FROM (SELECT * FROM customers ORDER BY id LIMIT 50) c").fetchone()
        contacts = conn.execute("SELECT json_agg(c) FROM (SELECT id, email FROM customers ORDER BY id LIMIT 50) c")
        contact = contacts.fetchone()
    assert rows is not None and contact is not None
    assert rows[0] == "****", "whole rows holding covered columns are masked whole (still JSON: a string)"
    text = json.dumps(contact[0])
    assert_nothing_leaks(text, secrets_in_db)
    assert json.loads(text)[0]["id"] == 1 and json.loads(text)[0]["email"].startswith("tok_")


def test_a_masking_rule_pushed_during_a_session_applies_to_it(stack: AirlockStack, tmp_path: Path) -> None:
    """A new policy version reaches live sessions at their next grant renewal: masking too, not only
    guardrails; and a rule taken away again stops applying the same way."""
    original = stack.state_dir / "policy.yaml"
    rule = "    - {name: ssn, action: redact}\n"
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(original.read_text().replace(rule, rule + "    - {name: status, action: redact}\n"))
    assert stricter.read_text() != original.read_text()
    with psycopg.connect(stack.conninfo(), autocommit=True) as conn:

        def status() -> str:
            row = conn.execute("SELECT status FROM orders ORDER BY id LIMIT 1").fetchone()
            assert row is not None
            return str(row[0])

        before = status()
        assert before != "****"
        stack.cli("policy", "push", str(stricter))
        try:
            assert eventually(lambda: status() == "****"), "the live session never picked up the new rule"
        finally:
            stack.cli("policy", "push", str(original))
        assert eventually(lambda: status() == before)


def test_a_notification_does_not_carry_a_card_number(stack: AirlockStack, secrets_in_db: dict[str, list[str]]) -> None:
    """NOTIFY from elsewhere (a trigger, another application) reaches a listening agent through Airlock."""
    card = secrets_in_db["card"][0]
    with psycopg.connect(stack.conninfo(), autocommit=True) as listener:
        listener.execute("LISTEN payments")
        with psycopg.connect(stack.target_dsn, autocommit=True) as app:
            app.execute(sql_notify(f"paid with {card}"))
        notes = listener.notifies(timeout=5, stop_after=1)
        payloads = [n.payload for n in notes]
    assert payloads == [f"paid with {'*' * 12}{card[-4:]}"]


def sql_notify(payload: str) -> sql.Composed:
    return sql.SQL("NOTIFY payments, {}").format(sql.Literal(payload))

"""The per-column fast paths give what the general string path gives: same bytes, same counts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from shared.masking import Detector, MaskingPolicy, find
from shared.masking.actions import Tokenizer, partial, partial_bytes
from shared.masking.detectors import (
    EMAIL_AT,
    STRUCTURED,
    candidate_kinds,
    candidates,
    find_emails,
    is_card_number,
    is_lone_email,
    luhn_valid,
)
from shared.pg.masking import ResultMasker
from shared.pg.masking.engine import ColumnPlan
from shared.pg.masking.values import PREFILTERABLE, ValueMasker
from shared.pg.wire.messages import Field, build_data_row, parse_data_row
from tests.unit.masking.plain import plan_for

ALL = frozenset(Detector)
CUSTOMERS: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "golden" / "customers.yaml").read_text())
# Characters that make addresses, almost-addresses and the shapes other detectors look for.
ADDRESSY = "abcXYZ019._%+-@ é"


def body(values: list[bytes | None]) -> bytes:
    return build_data_row(values)[5:]


def test_customers_golden() -> None:
    masker = ResultMasker(MaskingPolicy.model_validate(CUSTOMERS["policy"]), CUSTOMERS["token_key"].encode())
    plan = plan_for(masker,
        [Field(n, 0, i, oid, -1, -1, fmt) for i, (n, oid, fmt) in enumerate(CUSTOMERS["fields"])]
    )
    for case in CUSTOMERS["rows"]:
        out = masker.mask_data_row(plan, body([None if v is None else v.encode() for v in case["in"]]))
        assert out is not None and out[:1] == b"D"
        assert [None if v is None else v.decode() for v in parse_data_row(out[5:])] == case["out"]
    assert masker.take_counts() == CUSTOMERS["counts"]


def spec_partial(value: str) -> str:
    """Keep the last 4 letters/digits (any script), star the earlier ones, keep everything else."""
    keep, cut = 4, len(value)
    while cut and keep:
        cut -= 1
        keep -= value[cut].isalnum()
    return re.sub(r"[^\W_]", "*", value[:cut]) + value[cut:]


@given(st.binary(max_size=40) | st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")))
@settings(max_examples=400, deadline=None)
def test_partial_keeps_the_last_four_letters_or_digits(value: bytes) -> None:
    text = value.decode("utf-8", "surrogateescape")
    assert partial(text) == spec_partial(text)
    assert partial_bytes(value) == spec_partial(text).encode("utf-8", "surrogateescape")


@given(st.text(alphabet="0123456789", min_size=1, max_size=20) | st.sampled_from(["4111111111111111", "79927398713"]))
@settings(max_examples=400, deadline=None)
def test_luhn_is_stdnums_luhn(digits: str) -> None:
    assert luhn_valid(digits) == luhn.is_valid(digits)


def test_card_numbers_are_ascii_digits() -> None:
    assert is_card_number("4111111111111111") and not is_card_number("4111111111111112")
    assert not is_card_number("٤١١١١١١١١١١١١١١١"), "other scripts' digits are not card numbers (and do not crash)"


@given(st.binary(min_size=1, max_size=150), st.binary(max_size=60))
@settings(max_examples=200, deadline=None)
def test_token_is_hmac_sha256_in_base32(key: bytes, message: bytes) -> None:
    expected = "tok_" + base64.b32encode(hmac.new(key, message, hashlib.sha256).digest()[:10]).decode().lower()
    assert Tokenizer(key).token(message).decode() == expected
    assert Tokenizer(key).text(message.decode("utf-8", "surrogateescape")) == expected


@given(st.text(alphabet=ADDRESSY, max_size=60))
@settings(max_examples=500, deadline=None)
def test_prefilter_kinds_cover_their_detectors(text: str) -> None:
    kinds = candidate_kinds(text.encode())
    if find(text, ALL - {Detector.EMAIL}):
        assert kinds & STRUCTURED
    if find(text, frozenset({Detector.EMAIL})):
        assert kinds & EMAIL_AT
    assert candidates(text.encode()) == bool(kinds)


@given(st.text(alphabet=ADDRESSY.replace("é", "") + "@", max_size=80))
@settings(max_examples=500, deadline=None)
def test_email_shortcuts_find_what_find_finds(text: str) -> None:
    value = text.encode()
    matches = [(m.start, m.end) for m in find(text, ALL)]
    if candidate_kinds(value) == EMAIL_AT:
        assert find_emails(value) == matches
    if is_lone_email(value):
        assert matches == [(0, len(value))]


def test_lone_email_shortcut_takes_the_usual_addresses() -> None:
    assert is_lone_email(b"customer1@example.com") and is_lone_email(b"Zoe.U+tag@Mail.Example.CO.UK")
    assert not is_lone_email(b"customer12345678@example.com"), "digits a card could hide in: the full path"
    assert (
        not is_lone_email(b"a@b.c") and not is_lone_email(b"x@y.com,z@w.org") and not is_lone_email("é@ü.com".encode())
    )


# ---------------------------------------------------------------- whole rows against the general path

VALUES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "alice@example.com",
            "Bob.Smith+x@Mail.CO.uk",
            "Ann (ann@example.com)",
            "a@b.com@c.org",
            "customer12345678@example.com",
            "4111 1111 1111 1111",
            "123-45-6789",
            "DE89370400440532013000",
            "Zoë Ünïcode",
            "é@ü.com",
            "secret-9876",
            "",
            "x",
            '{"m": "bob@example.com"}',
            "{alice@example.com,NULL}",
            "{4111111111111111,42}",
            "4111111111111111",
        ]
    ).map(str.encode),
    st.text(alphabet=ADDRESSY, max_size=30).map(str.encode),
    st.binary(max_size=20),
)
COLUMNS = st.tuples(
    st.sampled_from([25, 1043, 20, 1700, 114, 3802, 1009, 1016, 23, 1184]),
    st.sampled_from([0, 1]),
    st.sampled_from([None, "redact", "partial", "token"]),
)
ACTION = st.sampled_from(["redact", "partial", "token", "off"])


def reference(
    policy: MaskingPolicy, key: bytes, plan: ColumnPlan, row: bytes
) -> tuple[list[bytes | None], Counter[str]]:
    """The row as the general path masks it, value by value (what the masker did before it had cells)."""
    values = ValueMasker(policy.detectors if policy.enabled else {}, Tokenizer(key))
    out = parse_data_row(row)
    for col in plan.active.values():
        value = out[col.index]
        if value is None:
            continue
        try:
            if col.source is not None:
                out[col.index] = values.apply(col.source.action, col.type_oid, col.format, value, col.source.counted)
            elif col.mode not in PREFILTERABLE or candidates(value):
                new = values.scan(col.mode, value, prefiltered=True)
                out[col.index] = value if new is None else new
        except (ValueError, struct.error, UnicodeError):
            values.found.append("undecodable")
            out[col.index] = None
    return out, Counter(values.found)


@given(
    st.lists(st.tuples(COLUMNS, st.lists(VALUES, min_size=3, max_size=3)), min_size=1, max_size=6),
    ACTION,
    ACTION,
    st.sampled_from([None, 0, 1 << 20]),
)
@settings(max_examples=300, deadline=None)
def test_rows_match_the_general_path(columns: list[Any], email: str, card: str, memo_bytes: int | None) -> None:
    rules = [{"name": f"c{i}", "action": rule} for i, ((_, _, rule), _) in enumerate(columns) if rule]
    policy = MaskingPolicy.model_validate({"detectors": {"email": email, "card": card}, "columns": rules})
    key = b"k" * 32
    masker = ResultMasker(policy, key, memo_bytes=memo_bytes)
    plan = plan_for(masker,
        [Field(f"c{i}", 0, i, oid, -1, -1, fmt) for i, ((oid, fmt, _), _) in enumerate(columns)]
    )
    expected_counts: Counter[str] = Counter()
    for n in range(3):
        values = [vs[n] for _, vs in columns]
        row = body(values)
        for _ in range(2):  # the second time from the memo
            expected, counts = reference(policy, key, plan, row)
            out = masker.mask_data_row(plan, row)
            assert (values if out is None else parse_data_row(out[5:])) == expected
            expected_counts += counts
    assert Counter(masker.take_counts()) == +expected_counts

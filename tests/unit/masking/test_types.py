"""Masked values stay valid for their type, in text and binary format (issue 19, item 6).

Whatever a detector or a rule does to an int8, a numeric, a json/jsonb document, a bytea or an int8[],
the client must still decode it as that type; negative numbers and numbers with a fraction are never card
numbers; and the false-positive rate of the card detector on random numbers is bounded.
"""

from __future__ import annotations

import json
import random
import struct
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from shared.masking.actions import Tokenizer
from shared.masking.detectors import is_card_number_value
from shared.masking.rules import MaskAction, MaskingPolicy
from shared.pg.masking import CopyFormat, StatementRef
from shared.pg.masking import binary as b
from shared.pg.masking.copy import CopyMasker, _split_csv, _split_text, copy_options
from shared.pg.masking.values import Mode, ValueMasker, escape_bytea, unescape_bytea

ACTIONS = [MaskAction.PARTIAL, MaskAction.REDACT, MaskAction.TOKEN]


def masker(card: MaskAction = MaskAction.PARTIAL) -> ValueMasker:
    detectors = MaskingPolicy().detectors | {"card": card}
    return ValueMasker({k: MaskAction(v) for k, v in detectors.items()}, Tokenizer(b"k" * 32))


@st.composite
def card_numbers(draw: st.DrawFn) -> int:
    body = draw(st.sampled_from(["4", "51", "55", "34", "6011", "3530"]))
    length = 15 if body == "34" else 16
    body += "".join(draw(st.sampled_from("0123456789")) for _ in range(length - 1 - len(body)))
    return int(body + luhn.calc_check_digit(body))


INT8 = st.one_of(st.integers(-(2**63), 2**63 - 1), card_numbers(), card_numbers().map(lambda n: -n))


@given(INT8, st.sampled_from(ACTIONS))
@settings(max_examples=300, deadline=None)
@example(4111111111111111, MaskAction.TOKEN)
@example(-4111111111111111, MaskAction.PARTIAL)
def test_int8_stays_an_int8(n: int, action: MaskAction) -> None:
    values = masker(action)
    text = values.scan(Mode.NUMBER_TEXT, str(n).encode())
    binary = values.scan(Mode.INT_BINARY, struct.pack("!q", n))
    if n < 0 or not is_card_number_value(str(n)):
        assert text is None and binary is None, "not a card number: untouched"
        return
    assert text is not None and binary is not None
    assert -(2**63) <= int(text) < 2**63 and struct.unpack("!q", binary)[0] == int(text), "text and binary agree"
    for fmt, value in ((0, str(n).encode()), (1, struct.pack("!q", n))):
        out = values.apply(action, b.INT8, fmt, value, "column:x")
        assert out is not None
        assert -(2**63) <= (int(out) if fmt == 0 else struct.unpack("!q", out)[0]) < 2**63


NUMERIC = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**20), max_value=10**20),
    card_numbers().map(Decimal),
    card_numbers().map(lambda n: Decimal(n) + Decimal("0.5")),
    card_numbers().map(lambda n: Decimal(-n)),
)


@given(NUMERIC, st.sampled_from(ACTIONS))
@settings(max_examples=300, deadline=None)
def test_numeric_stays_a_numeric(d: Decimal, action: MaskAction) -> None:
    values = masker(action)
    text = values.scan(Mode.NUMBER_TEXT, str(d).encode())
    if text is not None:
        Decimal(text.decode())  # parses
        assert d > 0 and d == d.to_integral_value(), "only a positive whole number can be a card number"
    if d == d.to_integral_value():
        packed = b.encode_numeric(int(d))
        binary = values.scan(Mode.NUMERIC_BINARY, packed)
        assert (binary is None) == (text is None), "text and binary agree"
        if binary is not None:
            digits, _ = b.decode_numeric(binary)
            assert text is not None and digits == text.decode()
    out = values.apply(action, b.NUMERIC, 0, str(d).encode(), "column:x")
    assert out is not None and Decimal(out.decode()) is not None


JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    card_numbers(), card_numbers().map(lambda n: -n), card_numbers().map(lambda n: n + 0.5),
    card_numbers().map(str), card_numbers().map(lambda n: f"card {n}, thanks"), st.just("alice@example.com"),
    card_numbers().map(lambda n: str(n).encode().hex()),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@given(JSON_VALUES, st.sampled_from(ACTIONS), st.booleans())
@settings(max_examples=300, deadline=None)
def test_json_still_parses(document: object, action: MaskAction, compact: bool) -> None:
    values = masker(action)
    text = json.dumps(document, separators=(",", ":") if compact else None)
    for mode, raw in ((Mode.JSON_TEXT, text.encode()), (Mode.JSONB_BINARY, b.JSONB_VERSION + text.encode())):
        out = values.scan(mode, raw)
        if out is None:
            continue
        body = out[1:] if mode is Mode.JSONB_BINARY else out
        assert mode is not Mode.JSONB_BINARY or out[:1] == b.JSONB_VERSION
        json.loads(body)
    for fmt, raw in ((0, text.encode()), (1, b.JSONB_VERSION + text.encode())):
        out = values.apply(action, b.JSONB, fmt, raw, "column:x")
        assert out is not None and isinstance(json.loads(out[1:] if fmt else out), str)


def test_negative_fractional_and_exponent_numbers_in_json_are_not_cards() -> None:
    doc = '{"a": -4111111111111111, "b": 4111111111111111.5, "c": 4111111111111111e2, "d": 4111111111111111}'
    out = masker().scan(Mode.JSON_TEXT, doc.encode())
    assert out is not None
    assert json.loads(out) == {"a": -4111111111111111, "b": 4111111111111111.5, "c": 4111111111111111e2, "d": 1111}


BYTES = st.one_of(
    st.binary(max_size=40),
    st.tuples(st.binary(max_size=10), card_numbers(), st.binary(max_size=10)).map(
        lambda t: t[0] + str(t[1]).encode() + t[2]
    ),
)


@given(BYTES, st.sampled_from(ACTIONS))
@settings(max_examples=300, deadline=None)
@example(b"APPROVED PAN 4111111111111111 AUTH", MaskAction.PARTIAL)
def test_bytea_stays_a_bytea_in_hex_escape_and_binary(raw: bytes, action: MaskAction) -> None:
    values = masker(action)
    hexed = values.scan(Mode.BYTEA_TEXT, b"\\x" + raw.hex().encode())
    escaped = values.scan(Mode.BYTEA_TEXT, escape_bytea(raw))
    binary = values.scan(Mode.BYTEA_BINARY, raw)
    assert (hexed is None) == (escaped is None) == (binary is None)
    if binary is None:
        return
    assert hexed is not None and escaped is not None
    assert hexed.startswith(b"\\x") and bytes.fromhex(hexed[2:].decode()) == binary
    assert unescape_bytea(escaped) == binary
    for fmt, value in ((0, b"\\x" + raw.hex().encode()), (1, raw)):
        out = values.apply(action, b.BYTEA, fmt, value, "column:x")
        assert out is not None
        assert fmt == 1 or bytes.fromhex(out[2:].decode()) is not None


@given(st.lists(st.one_of(INT8, st.none()), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_int8_arrays_stay_int8_arrays(numbers: list[int | None]) -> None:
    text = "{" + ",".join("NULL" if n is None else str(n) for n in numbers) + "}"
    out = masker().scan(Mode.NUMBER_ARRAY_TEXT, text.encode())
    if out is None:
        return
    elements = out.decode()[1:-1].split(",")
    assert len(elements) == len(numbers)
    for e, n in zip(elements, numbers, strict=True):
        assert (e == "NULL") == (n is None)
        if n is not None:
            assert -(2**63) <= int(e) < 2**63 and (int(e) == n or is_card_number_value(str(n)))


def test_the_card_detector_rarely_takes_random_numbers_for_cards() -> None:
    """The false-positive rate on random numbers (scripts/masking_false_positives.py measures more)."""
    rng = random.Random(19)
    values = masker()
    n = 100_000
    hits = sum(values.scan(Mode.INT_BINARY, struct.pack("!q", rng.randrange(-(2**63), 2**63))) is not None
               for _ in range(n))
    assert hits / n < 1e-4
    sixteen = sum(values.scan(Mode.NUMBER_TEXT, str(rng.randrange(10**15, 10**16)).encode()) is not None
                  for _ in range(20_000))
    assert sixteen / 20_000 < 0.05, "a random 16-digit number passes issuer and Luhn about 1 time in 27"
    negatives = sum(values.scan(Mode.NUMBER_TEXT, str(-rng.randrange(10**15, 10**16)).encode()) is not None
                    for _ in range(20_000))
    assert negatives == 0


# ---------------------------------------------------------------- COPY fields


FIELDS = st.lists(st.one_of(st.none(), st.text(alphabet='ab,"\\\t\n\r;x4 1', max_size=12)), min_size=1, max_size=5)


@given(FIELDS, st.sampled_from(["text", "csv"]), st.sampled_from(["", ";"]))
@settings(max_examples=300, deadline=None)
def test_copy_fields_split_where_they_were_joined(values: list[str | None], kind: str, delimiter: str) -> None:
    option = f" (FORMAT {kind}" + (f", DELIMITER '{delimiter}'" if delimiter else "") + ")"
    fmt = CopyFormat(kind, statement=StatementRef(f"COPY (SELECT 1) TO STDOUT{option}"))
    copy = CopyMasker(fmt, masker(), None, lambda name: None)
    line = copy.options.delimiter.join(copy.options.null if v is None else copy._encode(v) for v in values) + "\n"
    split = _split_csv if kind == "csv" else _split_text
    spans = split(line, len(line) - 1, copy.options)
    assert [copy._decode(line[s:e]) for s, e in spans] == values
    assert copy_options(fmt, None).kind == kind

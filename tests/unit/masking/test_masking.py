"""Result masking: detectors, goldens for rows / COPY / errors, binary formats, fail-closed, properties."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.masking import Detector, MaskingPolicy, find
from shared.masking.detectors import candidates
from shared.pg.masking import CopyFormat, ResultMasker, StatementRef, UndecodableCopyData
from shared.pg.masking import binary as b
from shared.pg.wire.messages import Field, build_data_row, parse_data_row
from tests.unit.masking.plain import plain, plain_copy, plan_for

GOLDEN = Path(__file__).parent / "golden"
DETECTORS: list[dict[str, Any]] = yaml.safe_load((GOLDEN / "detectors.yaml").read_text())
RESULTS: dict[str, Any] = yaml.safe_load((GOLDEN / "results.yaml").read_text())
ALL = frozenset(Detector)


def golden_masker() -> ResultMasker:
    return ResultMasker(MaskingPolicy.model_validate(RESULTS["policy"]), RESULTS["token_key"].encode())


def fields(spec: list[list[Any]]) -> list[Field]:
    return [Field(name, 0, i + 1, oid, -1, -1, fmt) for i, (name, oid, fmt) in enumerate(spec)]


def body(values: list[bytes | None]) -> bytes:
    return build_data_row(values)[5:]


def enc(values: list[str | None]) -> list[bytes | None]:
    return [None if v is None else v.encode() for v in values]


# ---------------------------------------------------------------- detectors


@pytest.mark.parametrize("case", DETECTORS, ids=[c["text"][:40] for c in DETECTORS])
def test_detector_golden(case: dict[str, Any]) -> None:
    text = case["text"]
    assert [[m.detector.value, text[m.start : m.end]] for m in find(text, ALL)] == case["found"]
    if case["found"]:
        assert candidates(text.encode()), "the prefilter must never miss what a detector finds"


def test_disabled_detector_finds_nothing() -> None:
    assert find("alice@example.com 4111111111111111", frozenset({Detector.CARD}))[0].detector is Detector.CARD
    assert find("alice@example.com", frozenset({Detector.CARD})) == []


@given(st.text(alphabet="0123456789 -@.abcXYZ_AKIeyJ", max_size=80))
@settings(max_examples=300, deadline=None)
def test_prefilter_is_a_superset_of_detectors(text: str) -> None:
    if find(text, ALL):
        assert candidates(text.encode())


def test_an_address_after_a_leading_at_sign_is_found() -> None:
    """An '@' at the start of a value (a mention) once hid every address after it, from the detector and
    from the prefilter alike: the value passed unmasked."""
    text = "@channel write to bob@example.com or @ops"
    assert [(m.detector, text[m.start : m.end]) for m in find(text, ALL)] == [(Detector.EMAIL, "bob@example.com")]
    assert candidates(text.encode())
    assert candidates(text.encode() + b" " * 600)  # and on the whole-buffer path
    fields = [Field("note", 0, 0, 25, -1, -1, 0)]
    masker = ResultMasker(MaskingPolicy())
    masked = masker.mask_data_row(plan_for(masker, fields), build_data_row([text.encode()])[5:])
    assert masked is not None and b"bob@example.com" not in masked and b"@channel" in masked


# ---------------------------------------------------------------- goldens: rows, COPY, errors


@pytest.mark.parametrize("case", RESULTS["rows"], ids=[c["name"] for c in RESULTS["rows"]])
def test_row_golden(case: dict[str, Any]) -> None:
    masker = golden_masker()
    plan = plan_for(masker, fields(case["fields"]))
    out = masker.mask_data_row(plan, body(enc(case["in"])))
    if case["out"] == "unchanged":
        assert out is None
    else:
        assert out is not None and out[:1] == b"D"
        assert parse_data_row(out[5:]) == enc(case["out"])


@pytest.mark.parametrize("case", RESULTS["copy"], ids=[c["name"] for c in RESULTS["copy"]])
def test_copy_golden(case: dict[str, Any]) -> None:
    out = golden_masker().mask_copy_data(plain_copy(case["format"]), case["in"].encode())
    if case["out"] == "unchanged":
        assert out is None
    else:
        assert out is not None and out[:1] == b"d"
        assert struct.unpack("!i", out[1:5])[0] == len(out) - 1
        assert out[5:].decode() == case["out"]


@pytest.mark.parametrize("case", RESULTS["errors"], ids=[c["name"] for c in RESULTS["errors"]])
def test_error_golden(case: dict[str, Any]) -> None:
    out = golden_masker().mask_error_fields(case["in"], plain([]))
    assert out == (None if case["out"] == "unchanged" else case["out"])


def test_counts_per_detector_and_column() -> None:
    masker = golden_masker()
    plan = plan_for(masker, fields([["note", 25, 0], ["customer_ssn", 25, 0]]))
    masker.mask_data_row(plan, body([b"4111111111111111 and bob@example.com", b"x"]))
    masker.mask_data_row(plan, body([b"5555555555554444", b"y"]))
    assert masker.take_counts() == {"card": 2, "email": 1, "column:customer_ssn": 2}
    assert masker.take_counts() == {}


# ---------------------------------------------------------------- pass-through and framing


def test_rows_without_candidates_pass_byte_identical() -> None:
    masker = ResultMasker(MaskingPolicy())
    plan = plan_for(masker, fields([["id", 20, 0], ["note", 25, 0], ["at", 1184, 0]]))
    for values in ([b"1", b"hello", b"2024-05-01 00:00:00+00"], [None, None, None], [b"", b"", b""],
                   [b"9", b"order 123456 shipped", None]):
        assert masker.mask_data_row(plan, body(values)) is None


def test_prefilter_on_whole_buffers() -> None:
    masker = ResultMasker(MaskingPolicy())
    clean = b"".join(build_data_row([str(i).encode(), b"2024-05-01 12:00:00", b"no secrets"]) for i in range(500))
    assert not masker.prefilter(clean)
    assert masker.prefilter(clean + build_data_row([b"4111 1111 1111 1111"]))
    # A value of length 64 puts an '@' into its length word: that alone is not a candidate.
    assert not masker.prefilter(build_data_row([b"abc " * 16]))
    assert not ResultMasker(MaskingPolicy(enabled=False)).prefilter(b"alice@example.com")


def test_disabled_policy_masks_nothing() -> None:
    policy = {"enabled": False, "columns": [{"name": "*", "action": "redact"}]}
    masker = ResultMasker(MaskingPolicy.model_validate(policy))
    plan = plan_for(masker, fields([["ssn", 25, 0]]))
    assert masker.mask_data_row(plan, body([b"123-45-6789"])) is None
    assert masker.mask_copy_data(CopyFormat(), b"123-45-6789\n") is None
    assert masker.mask_error_fields({"D": "alice@example.com"}) is None


def test_token_action_needs_a_key() -> None:
    with pytest.raises(ValueError, match="token key"):
        ResultMasker(MaskingPolicy.model_validate({"detectors": {"email": "token"}}))


def test_row_description_mismatch_is_a_protocol_error() -> None:
    from shared.pg.wire.errors import ProtocolViolation

    masker = golden_masker()
    plan = plan_for(masker, fields([["customer_ssn", 25, 0]]))
    with pytest.raises(ProtocolViolation):
        masker.mask_data_row(plan, body([b"a", b"b"]))


# ---------------------------------------------------------------- binary format


def numeric(digits: str) -> bytes:
    return b.encode_numeric(int(digits))


def test_binary_text_int8_numeric_card_numbers() -> None:
    masker = ResultMasker(MaskingPolicy())
    plan = plan_for(masker, fields([["t", 25, 1], ["i", 20, 1], ["n", 1700, 1], ["small", 20, 1]]))
    row = [b"visa 4111111111111111", struct.pack("!q", 4111111111111111), numeric("5555555555554444"),
           struct.pack("!q", 42)]
    out = masker.mask_data_row(plan, body(row))
    assert out is not None
    t, i, n, small = parse_data_row(out[5:])
    assert t == b"visa ************1111"
    assert i is not None and struct.unpack("!q", i)[0] == 1111
    assert n is not None and b.decode_numeric(n) == ("4444", 0)
    assert small == struct.pack("!q", 42)


def test_binary_int8_is_decoded_even_without_a_buffer_candidate() -> None:
    masker = ResultMasker(MaskingPolicy())
    plan = plan_for(masker, fields([["i", 20, 1]]))
    assert plan.forced
    raw = body([struct.pack("!q", 4111111111111111)])
    assert not masker.prefilter(raw), "binary digits are invisible to the bytes prefilter"
    assert masker.mask_data_row(plan, raw) is not None
    assert masker.mask_data_row(plan, body([struct.pack("!q", 1234567890123452)])) is None


def test_binary_jsonb_and_json() -> None:
    masker = golden_masker()
    plan = plan_for(masker, fields([["j", 3802, 1], ["k", 114, 1]]))
    out = masker.mask_data_row(plan, body([b'\x01{"m": "alice@example.com"}', b'[4111111111111111]']))
    assert out is not None
    assert parse_data_row(out[5:]) == [b'\x01{"m": "tok_hux2tbeuupxdim3n"}', b"[1111]"], "a JSON number stays one"


def array(elem_oid: int, elements: list[bytes | None]) -> bytes:
    head = struct.pack("!iiI", 1, int(None in elements), elem_oid) + struct.pack("!ii", len(elements), 1)
    return b.encode_array(head, elements)


def test_binary_arrays_of_text_and_int8() -> None:
    masker = ResultMasker(MaskingPolicy())
    plan = plan_for(masker, fields([["a", 1009, 1], ["b", 1016, 1]]))
    texts = array(25, [b"ok", None, b"4111 1111 1111 1111"])
    ints = array(20, [struct.pack("!q", 5555555555554444), struct.pack("!q", 7)])
    out = masker.mask_data_row(plan, body([texts, ints]))
    assert out is not None
    a, c = parse_data_row(out[5:])
    assert a is not None and c is not None
    assert b.decode_array(a)[2] == [b"ok", None, b"**** **** **** 1111"]
    assert [struct.unpack("!q", v)[0] for v in b.decode_array(c)[2] if v] == [4444, 7]


def test_binary_column_rules_keep_types_decodable() -> None:
    policy = MaskingPolicy.model_validate({"columns": [{"name": "*", "action": "partial"}]})
    masker = ResultMasker(policy)
    spec = [["i4", 23, 1], ["i8", 20, 1], ["n", 1700, 1], ["t", 25, 1], ["jb", 3802, 1], ["f", 701, 1],
            ["u", 2950, 1], ["bytes", 17, 1], ["arr", 1007, 1]]
    plan = plan_for(masker, fields(spec))
    row = [struct.pack("!i", 123456789), struct.pack("!q", 4111111111111111), numeric("987654321"), b"secret-9876",
           b'\x01{"a": 1}', struct.pack("!d", 1234567.0), b"\x00" * 16, b"\xff\x00\xfe",
           array(23, [struct.pack("!i", 5)])]
    out = masker.mask_data_row(plan, body(row))
    assert out is not None
    i4, i8, n, t, jb, f, u, raw, arr = parse_data_row(out[5:])
    assert i4 == struct.pack("!i", 6789) and i8 == struct.pack("!q", 1111)
    assert n is not None and b.decode_numeric(n) == ("4321", 0)
    assert t == b"******-9876" and jb == b'\x01"{\\"a\\": 1}"', "partial keeps the last 4 letters/digits"
    assert f is not None and len(f) == 8
    assert u is None, "no safe placeholder: NULL"
    assert raw == b"****", "bytea: binary data has no last four characters to keep"
    assert arr is not None and b.decode_array(arr)[2] == [struct.pack("!i", 5)]


def test_fail_closed_on_undecodable_binary_values() -> None:
    masker = ResultMasker(MaskingPolicy.model_validate({"columns": [{"name": "pan", "action": "redact"}]}))
    plan = plan_for(masker, fields([["pan", 1700, 1], ["j", 3802, 1], ["i", 20, 1]]))
    broken = [b"\x00\x05garbage", b"\x02{}", b"\x01\x02\x03"]
    out = masker.mask_data_row(plan, body(broken))
    assert out is not None
    assert parse_data_row(out[5:]) == [None, b"\x02{}", None]
    assert masker.take_counts()["undecodable"] == 2
    # jsonb with an unknown version byte that may hold a candidate: replaced whole.
    out = masker.mask_data_row(plan, body([None, b"\x02{\"m\": \"alice@example.com\"}", None]))
    assert out is not None and parse_data_row(out[5:]) == [None, None, None]


def test_binary_copy_header_tuples_and_trailer() -> None:
    masker = ResultMasker(MaskingPolicy())
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)

    def tup(values: list[bytes | None]) -> bytes:
        return struct.pack("!h", len(values)) + b"".join(
            struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v for v in values)

    first = header + tup([b"alice@example.com", None, struct.pack("!q", 4111111111111111)])
    fmt = CopyFormat("binary", column_types=(25, 25, 20))
    out = masker.mask_copy_data(fmt, first)
    assert out is not None and out[5:].startswith(header)
    rest = out[5 + len(header):]
    assert rest == tup([b"****", None, struct.pack("!q", 1111)])
    assert masker.mask_copy_data(fmt, b"\xff\xff") is None
    assert masker.mask_copy_data(CopyFormat("binary"), tup([b"nothing here"])) is None
    with pytest.raises(UndecodableCopyData):
        masker.mask_copy_data(fmt, struct.pack("!h", 1) + struct.pack("!i", 100) + b"4111111111111111")


def test_unterminated_private_key_does_not_swallow_structure() -> None:
    masker = ResultMasker(MaskingPolicy())
    pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    out = masker.mask_copy_data(CopyFormat("text"), f"1\t{pem}\tnext\n".encode())
    assert out is not None and out[5:] == b"1\t****\tnext\n"
    plan = plan_for(masker, fields([["doc", 114, 0]]))
    row = masker.mask_data_row(plan, body([('{"k": "' + pem + '", "n": 1}').encode()]))
    assert row is not None and parse_data_row(row[5:]) == [b'{"k": "****", "n": 1}']


# ---------------------------------------------------------------- properties


value = st.one_of(st.none(), st.binary(max_size=40),
                  st.sampled_from([b"4111 1111 1111 1111", b"alice@example.com", b"123-45-6789", b"x" * 64]))
text_like = st.sampled_from([25, 1043, 20, 1700, 114, 3802, 1009, 1016, 23, 2950, 17])


@given(st.lists(st.tuples(value, text_like, st.sampled_from([0, 1]), st.booleans()), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_masked_rows_always_reparse_with_the_same_column_count(cols: list[tuple[Any, int, int, bool]]) -> None:
    rules = [{"name": f"c{i}", "action": "partial"} for i, (_, _, _, ruled) in enumerate(cols) if ruled]
    masker = ResultMasker(MaskingPolicy.model_validate({"columns": rules}))
    plan = plan_for(masker,
        [Field(f"c{i}", 0, i, oid, -1, -1, fmt) for i, (_, oid, fmt, _) in enumerate(cols)])
    values = [v for v, _, _, _ in cols]
    out = masker.mask_data_row(plan, body(values))
    if out is None:
        return
    assert out[:1] == b"D" and struct.unpack("!i", out[1:5])[0] == len(out) - 1
    assert len(parse_data_row(out[5:])) == len(values)


@given(st.lists(st.text(max_size=30), min_size=1, max_size=6), st.sampled_from(["text", "csv"]))
@settings(max_examples=200, deadline=None)
def test_copy_rows_keep_their_field_count(fields_: list[str], kind: str) -> None:
    delimiter = "\t" if kind == "text" else ","
    clean = [f.replace(delimiter, " ").replace("\n", " ").replace('"', " ").replace("\\", " ") for f in fields_]
    clean[0] = "4111 1111 1111 1111 " + clean[0]
    line = delimiter.join(clean) + "\n"
    out = ResultMasker(MaskingPolicy()).mask_copy_data(CopyFormat(kind), line.encode("utf-8", "surrogateescape"))
    assert out is not None
    assert out[5:].decode("utf-8", "surrogateescape").count(delimiter) == line.count(delimiter)


def test_detector_off_leaves_its_values_alone() -> None:
    masker = ResultMasker(MaskingPolicy.model_validate({"detectors": {"card": "off"}}))
    plan = plan_for(masker, fields([["i", 20, 1], ["t", 20, 0], ["a", 1009, 1], ["n", 25, 0]]))
    row = [struct.pack("!q", 4111111111111111), b"4111111111111111", array(25, [b"bob@example.com"]),
           b"4111 1111 1111 1111"]
    out = masker.mask_data_row(plan, body(row))
    assert out is not None
    i, t, a, n = parse_data_row(out[5:])
    assert (i, t, n) == (row[0], row[1], row[3])
    assert a is not None and b.decode_array(a)[2] == [b"****"]


def test_plan_tells_the_proxy_when_rows_need_the_masker() -> None:
    masker = golden_masker()
    plain = plan_for(masker, fields([["id", 23, 0], ["at", 1184, 0]]))
    assert plain.inert and not plain.needs_rows(True)
    text = plan_for(masker, fields([["note", 25, 0]]))
    assert not text.inert and not text.needs_rows(False) and text.needs_rows(True)
    ruled = plan_for(masker, fields([["customer_ssn", 25, 0]]))
    assert ruled.forced and ruled.needs_rows(False)
    assert plan_for(masker, fields([["note", 25, 0]])) is text, "plans are cached per RowDescription"


def test_a_value_error_of_a_statement_reading_covered_columns_quotes_nothing() -> None:
    """``translate(card_number, ...)::int`` fails quoting the translated card: no detector sees it, so the
    error's quoted values are redacted whenever the statement reads a covered column."""
    masker = golden_masker()
    cast = {"S": "ERROR", "C": "22P02", "M": 'invalid input syntax for type integer: "ebbbbbbbbbbbbbbb"'}
    reads = StatementRef("SELECT translate(customer_ssn, '0123456789', 'abcdefghij')::int FROM t")
    assert masker.mask_error_fields(cast, reads) == cast | {"M": 'invalid input syntax for type integer: "****"'}
    assert masker.mask_error_fields(cast, StatementRef("SELECT 'ebbbbbbbbbbbbbbb'::int")) is None
    unique = {"S": "ERROR", "C": "23505", "M": 'duplicate key value violates unique constraint "k"',
              "D": "Key (secret_code)=(ebbb) already exists."}
    assert masker.mask_error_fields(unique, reads) == unique | {"D": "Key (secret_code)=(****) already exists."}


def test_what_user_code_raises_or_notices_is_redacted_when_the_statement_reads_covered_data() -> None:
    masker = golden_masker()
    notice = {"S": "NOTICE", "C": "00000", "M": "value ebbbbbbbbbbbbbbb", "W": "PL/pgSQL function leak(text) line 1"}
    reads = StatementRef("SELECT leak(translate(customer_ssn, '0123456789', 'abcdefghij')) FROM t")
    assert masker.mask_error_fields(notice, reads) == notice | {"M": "****"}
    block = StatementRef("DO $$ BEGIN RAISE NOTICE 'x'; END $$")
    assert masker.mask_error_fields(notice, block) == notice | {"M": "****"}, "a DO block is code Airlock cannot see"
    server = {"S": "NOTICE", "C": "00000", "M": 'table "x" does not exist, skipping'}
    assert masker.mask_error_fields(server, reads) is None


def test_a_notification_payload_is_masked() -> None:
    masker = golden_masker()
    body = struct.pack("!i", 42) + b"orders\0paid with 4111 1111 1111 1111\0"
    out = masker.mask_notification(body)
    assert out is not None and out[:1] == b"A"
    assert out[5:] == struct.pack("!i", 42) + b"orders\0paid with **** **** **** 1111\0"
    assert masker.mask_notification(struct.pack("!i", 42) + b"orders\0nothing\0") is None
    assert masker.take_counts() == {"card": 1}

"""The byte-stream masker: values found however the stream is cut, a bounded hold, fail closed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.masking.rules import MaskingPolicy
from shared.masking.stream import WITHHELD, StreamMasker
from shared.masking.text import TextMasker

CARD, EMAIL, AWS = "4111 1111 1111 1111", "bob@example.com", "AKIAIOSFODNN7EXAMPLE"
POLICY = MaskingPolicy()


def masker(**kwargs: int) -> StreamMasker:
    return StreamMasker(TextMasker(POLICY), **kwargs)


def whole(text: str) -> bytes:
    return TextMasker(POLICY).mask(text).encode()


def feed_all(m: StreamMasker, chunks: list[bytes]) -> bytes:
    return b"".join(m.feed(c) for c in chunks) + m.flush()


def test_values_split_across_reads_are_masked() -> None:
    m = masker()
    assert m.feed(b"charge for card 4111 ") == b""
    assert m.feed(b"1111 1111") == b""
    assert m.feed(b" 1111 ok\n") == b"charge for card **** **** **** 1111 ok\n"
    assert m.feed(b"user bob@exa") == b""
    assert m.feed(b"mple.com in\n") == b"user **** in\n"


def test_lines_pass_at_once_and_a_prompt_at_a_flush() -> None:
    m = masker()
    assert m.feed(b"total 0\n$ ") == b"total 0\n$"
    assert m.pending == 1
    assert m.flush() == b" "
    assert m.feed(b"ls -l\r\n") == b"ls -l\r\n"


def test_a_value_straddling_a_forced_release_has_its_unsent_part_masked() -> None:
    m = masker()
    first = m.feed(b"card 4111 1111")
    first += m.flush()  # a pause in the middle of the value: its beginning is gone
    rest = m.feed(b" 1111 1111\n")
    assert first == b"card 4111 1111"
    assert b"1111 1111" not in rest and rest.endswith(b"\n")


def test_the_hold_is_bounded() -> None:
    m = masker(hold=64)
    out = m.feed(b"a" * 1000)
    assert len(out) == 1000 - 64 and m.pending == 64


def test_an_unterminated_private_key_is_held_then_masked() -> None:
    m = masker()
    head = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n"
    assert m.feed(head) == b""
    out = m.feed(b"7KEjSdHaLbL8\n-----END RSA PRIVATE KEY-----\nbye\n")
    assert b"MIIE" not in out and out.endswith(b"bye\n")


def test_utf8_split_inside_a_character_is_whole_again() -> None:
    data = "héllo wörld ✓\n".encode()
    m = masker()
    assert b"".join(m.feed(data[i : i + 1]) for i in range(len(data))) + m.flush() == data


def test_bytes_that_are_not_utf8_pass_unchanged() -> None:
    data = b"\xff\xfe binary \x00\x01\n"
    assert feed_all(masker(), [data]) == data


def test_masking_failure_withholds_output() -> None:
    m = masker()

    def broken(text: str) -> list[object]:
        raise RuntimeError("bug")

    m.masker.matches = broken  # type: ignore[method-assign,assignment]
    assert m.feed(b"card 4111 1111 1111 1111\n") == WITHHELD
    assert m.withheld == 1


PIECES = [CARD, EMAIL, AWS, "hello", " ", "\n", "id=42", "é", "-", "\t"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@given(text=TEXT, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_cutting_gives_what_masking_the_whole_gives(text: str, cuts: list[int]) -> None:
    data = text.encode()
    points = sorted({c for c in cuts if c < len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed_all(masker(), chunks) == whole(text)

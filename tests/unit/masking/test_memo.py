"""The masking memo changes nothing but speed: same rows out, same counts, bounded memory."""

from __future__ import annotations

from shared.masking.engine import ResultMasker
from shared.masking.rules import MaskingPolicy
from shared.pgwire import messages as m

FIELDS = [m.Field("card_number", 0, 0, 25, -1, -1, 0), m.Field("note", 0, 0, 25, -1, -1, 0)]
CARDS = [b"4111111111111111", b"5500005555555559", b"4012888888881881"]


def rows(repeat: int) -> list[bytes]:
    return [m.build_data_row([card, b"card on file"])[5:] for _ in range(repeat) for card in CARDS]


def test_memo_gives_the_same_rows_and_counts_as_no_memo() -> None:
    with_memo = ResultMasker(MaskingPolicy())
    without = ResultMasker(MaskingPolicy(), memo_bytes=0)
    plan_a = with_memo.on_row_description(FIELDS)
    plan_b = without.on_row_description(FIELDS)
    out_a = [with_memo.mask_data_row(plan_a, r) for r in rows(5)]
    out_b = [without.mask_data_row(plan_b, r) for r in rows(5)]
    assert out_a == out_b and all(o is not None for o in out_a)
    assert with_memo.take_counts() == without.take_counts() == {"card": 15}
    assert with_memo.take_counts() == {}


def test_memo_is_bounded_by_bytes() -> None:
    masker = ResultMasker(MaskingPolicy(), memo_bytes=16 * 1024)
    plan = masker.on_row_description(FIELDS)
    for i in range(5000):
        masker.mask_data_row(plan, m.build_data_row([b"4111111111111111", str(i).encode()])[5:])
    assert masker._memo._size <= 16 * 1024

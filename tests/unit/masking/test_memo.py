"""The masking memo changes nothing but speed: same rows out, same counts, bounded memory, and results
shared only between maskers of the same policy and the same key."""

from __future__ import annotations

import os

import pytest

from shared.masking.rules import MaskingPolicy
from shared.pg.masking import memo
from shared.pg.masking.engine import ColumnPlan, ResultMasker
from shared.pg.masking.memo import RowMemo, identity
from shared.pg.wire import messages as m
from shared.pg.wire.errors import ProtocolViolation
from tests.unit.masking.plain import plan_for

FIELDS = [m.Field("card_number", 0, 0, 25, -1, -1, 0), m.Field("note", 0, 0, 25, -1, -1, 0)]
CARDS = [b"4111111111111111", b"5500005555555559", b"4012888888881881"]
CONTACTS = [m.Field("email", 0, 0, 25, -1, -1, 0), m.Field("ssn", 0, 0, 25, -1, -1, 0)]
TOKENS = MaskingPolicy.model_validate(
    {"detectors": {"email": "token"}, "columns": [{"name": "ssn", "action": "redact"}]}
)


def rows(repeat: int) -> list[bytes]:
    return [m.build_data_row([card, b"card on file"])[5:] for _ in range(repeat) for card in CARDS]


def contacts(n: int) -> list[bytes]:
    """Rows no other test has masked (the shared memo lives as long as the process)."""
    tag = os.urandom(6).hex()
    return [m.build_data_row([f"user{i}.{tag}@example.com".encode(), b"123-45-6789"])[5:] for i in range(n)]


def test_memo_gives_the_same_rows_and_counts_as_no_memo() -> None:
    with_memo = ResultMasker(MaskingPolicy(), memo_bytes=1 << 20)
    shared = ResultMasker(MaskingPolicy())
    without = ResultMasker(MaskingPolicy(), memo_bytes=0)
    outs = []
    for masker in (with_memo, shared, without):
        plan = plan_for(masker, FIELDS)
        outs.append([masker.mask_data_row(plan, r) for r in rows(5)])
    assert outs[0] == outs[1] == outs[2] and all(o is not None for o in outs[0])
    assert with_memo.take_counts() == shared.take_counts() == without.take_counts() == {"card": 15}
    assert with_memo.take_counts() == {}


def test_memo_is_bounded_by_bytes() -> None:
    masker = ResultMasker(MaskingPolicy(), memo_bytes=16 * 1024)
    plan = plan_for(masker, FIELDS)
    for i in range(5000):
        masker.mask_data_row(plan, m.build_data_row([b"4111111111111111", str(i).encode()])[5:])
    assert masker._memo is not None and 0 < masker._memo.size <= 16 * 1024


def session(policy: MaskingPolicy, key: bytes, memo_bytes: int | None = None) -> tuple[ResultMasker, ColumnPlan]:
    masker = ResultMasker(policy, key, memo_bytes=memo_bytes)
    return masker, plan_for(masker, CONTACTS)


def masked(masker: ResultMasker, plan: ColumnPlan, batch: list[bytes]) -> list[bytes | None]:
    return [masker.mask_data_row(plan, r) for r in batch]


def test_sessions_share_results_and_each_counts_what_it_was_sent() -> None:
    batch = contacts(50)
    first, second = session(TOKENS, b"key-1"), session(TOKENS, b"key-1")
    out = masked(*first, batch)
    held = memo.SHARED.size
    assert masked(*second, batch) == out
    assert memo.SHARED.size == held, "the second session was served from the memo"
    assert first[0].take_counts() == second[0].take_counts() == {"email": 50, "column:ssn": 50}
    assert first[0].take_counts() == second[0].take_counts() == {}


@pytest.mark.parametrize(
    ("key", "policy"),
    [
        (b"key-2", TOKENS),
        (b"key-1", {"detectors": {"email": "redact"}, "columns": [{"name": "ssn", "action": "redact"}]}),
        (b"key-1", {"detectors": {"email": "token"}, "columns": [{"name": "ssn", "action": "partial"}]}),
        (b"key-1", {"detectors": {"email": "token", "ssn": "off"}, "columns": [{"name": "ssn", "action": "off"}]}),
    ],
    ids=["another key", "email redacted", "ssn partial", "ssn off"],
)
def test_another_key_or_policy_is_never_served_results_of_the_first(key: bytes, policy: object) -> None:
    batch = contacts(5)
    warmed = masked(*session(TOKENS, b"key-1"), batch)
    changed = policy if isinstance(policy, MaskingPolicy) else MaskingPolicy.model_validate(policy)
    out = masked(*session(changed, key), batch)
    assert out == masked(*session(changed, key, memo_bytes=0), batch)
    assert all(new != old for new, old in zip(out, warmed, strict=True))


def test_identity_is_a_digest_of_policy_and_key() -> None:
    key = b"a-secret-token-key"
    ident = identity(TOKENS, key)
    assert len(ident) == 32 and key not in ident
    assert ident == identity(MaskingPolicy.model_validate(TOKENS.model_dump()), key)
    assert ident != identity(TOKENS, b"another-key") and ident != identity(MaskingPolicy(), key)


def test_spaces_are_never_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    rows_memo = RowMemo(1 << 20)
    fields = tuple(CONTACTS)
    old = rows_memo.space(b"id-1", fields)
    assert rows_memo.space(b"id-1", fields) == old != rows_memo.space(b"id-2", fields)
    rows_memo.put(old + b"row", (b"masked", ("email",)))
    monkeypatch.setattr(memo, "_MAX_SPACES", 2)
    rows_memo.space(b"id-3", fields)  # the table is full: it starts over
    new = rows_memo.space(b"id-1", fields)
    assert new != old and rows_memo.get(new + b"row") is None


def test_shared_budget_evicts_oldest_first() -> None:
    rows_memo = RowMemo(64 * 1024)
    spaces = [rows_memo.space(bytes([i]), tuple(FIELDS)) for i in range(4)]
    keys = [spaces[i % 4] + os.urandom(200) for i in range(1000)]
    for key in keys:
        rows_memo.put(key, (key, ()))
    assert rows_memo.size <= 64 * 1024
    assert rows_memo.get(keys[-1]) is not None and rows_memo.get(keys[0]) is None


def test_a_broken_row_counts_nothing() -> None:
    masker = ResultMasker(TOKENS, b"key-1")
    plan = plan_for(masker, CONTACTS)
    row = contacts(1)[0]
    with pytest.raises(ProtocolViolation):
        masker.mask_data_row(plan, row[:-3])
    assert masker.take_counts() == {}

"""Signed approve/deny links: what they bind, and what makes them unusable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.approvals.links import LinkClaims, LinkError, LinkSigner, link_url
from shared.approvals.model import Verdict

KEY = b"k" * 32
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CLAIMS = LinkClaims("apr_" + "a" * 26, Verdict.APPROVE, "dana@example.com", NOW + timedelta(minutes=5))


def test_a_link_verifies_to_exactly_what_was_signed() -> None:
    token = LinkSigner(KEY).sign(CLAIMS)
    assert LinkSigner(KEY).verify(token, NOW) == CLAIMS
    assert link_url("https://api.example.com/", token) == f"https://api.example.com/approvals/link?t={token}"


@pytest.mark.parametrize("where", ["claims", "mac", "key"])
def test_an_altered_link_or_another_key_is_refused(where: str) -> None:
    token = LinkSigner(KEY).sign(CLAIMS)
    claims, mac = token.split(".")
    if where == "claims":  # e.g. approve -> deny, or another member
        other = LinkSigner(KEY).sign(LinkClaims(CLAIMS.approval_id, Verdict.DENY, CLAIMS.member, CLAIMS.expires_at))
        token = f"{other.split('.')[0]}.{mac}"
    elif where == "mac":
        token = f"{claims}.{mac[:-2]}AA"
    signer = LinkSigner(b"x" * 32 if where == "key" else KEY)
    with pytest.raises(LinkError) as info:
        signer.verify(token, NOW)
    assert not info.value.expired


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.def", "a.b.c"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(LinkError):
        LinkSigner(KEY).verify(token, NOW)


def test_an_expired_link_says_so() -> None:
    token = LinkSigner(KEY).sign(CLAIMS)
    with pytest.raises(LinkError) as info:
        LinkSigner(KEY).verify(token, CLAIMS.expires_at)
    assert info.value.expired and "expired" in str(info.value)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        LinkSigner(b"short")

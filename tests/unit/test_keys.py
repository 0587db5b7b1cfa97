"""Airlock-issued keys: format, hashing, constant-time verification, no leaks."""

from __future__ import annotations

import pytest

from shared.identity.keys import (
    KeyFormatError,
    generate_key,
    hash_secret,
    looks_like_key,
    parse_key,
    secret_matches,
)


def test_generated_key_round_trips_and_only_the_hash_is_kept() -> None:
    new = generate_key()
    token = new.token.get_secret_value()
    assert token.startswith(f"ak_{new.key_id}_") and looks_like_key(token)
    presented = parse_key(token)
    assert presented.key_id == new.key_id
    secret = presented.secret.get_secret_value()
    assert len(secret) >= 43  # 32 random bytes, urlsafe base64
    assert new.secret_hash == hash_secret(secret) and secret not in new.secret_hash
    assert secret_matches(presented, new.secret_hash)


def test_keys_are_unique() -> None:
    tokens = {generate_key().token.get_secret_value() for _ in range(200)}
    assert len(tokens) == 200


def test_wrong_secret_does_not_match() -> None:
    a, b = generate_key(), generate_key()
    assert not secret_matches(parse_key(a.token.get_secret_value()), b.secret_hash)


def test_secrets_never_show_in_reprs() -> None:
    new = generate_key()
    token = new.token.get_secret_value()
    secret = parse_key(token).secret.get_secret_value()
    for text in (repr(new), str(new), repr(parse_key(token))):
        assert token not in text and secret not in text


@pytest.mark.parametrize(
    "token",
    ["ak_zz", "ak_nothex0123456789_" + "a" * 43, "ak_0123456789abcdef_short", "ak_0123456789abcdef_" + "!" * 43],
)
def test_malformed_keys_are_rejected_without_echoing_them(token: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        parse_key(token)
    assert token not in str(info.value)


def test_jwts_are_not_keys() -> None:
    assert not looks_like_key("eyJhbGciOiJFUzI1NiJ9.e30.sig")

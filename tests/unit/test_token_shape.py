"""The proxy's local check of a password's shape before it asks the control plane (shared/identity/shape.py)."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.identity.keys import generate_key
from shared.identity.shape import token_shape_problem

_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwt(claims: dict[str, object], alg: str = "ES256") -> str:
    key: object = _KEY if alg.startswith("ES") else "a-shared-secret-that-is-long-enough-for-hs256"
    return jwt.encode(claims, key, algorithm=alg)  # type: ignore[arg-type]


def test_credentials_of_the_right_shape_pass() -> None:
    assert token_shape_problem(generate_key().token.get_secret_value()) is None
    # Shape only: expiry, audience and signature are the control plane's to judge.
    assert token_shape_problem(_jwt({"iss": "https://issuer.example", "exp": 1})) is None


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("", "no password"),
        ("not-a-token", "neither an Airlock key"),
        ("a.b.c", "neither an Airlock key"),
        ("ak_0123_short", "malformed Airlock key"),
        (_jwt({"sub": "x"}), "no issuer"),
        (_jwt({"iss": "https://issuer.example"}, alg="HS256"), "'HS256' is not allowed"),
        (jwt.encode({"iss": "https://issuer.example"}, None, algorithm="none"), "'none' is not allowed"),
    ],
)
def test_anything_else_is_refused_with_a_reason(password: str, words: str) -> None:
    problem = token_shape_problem(password)
    assert problem is not None and words in problem
    assert not password or password not in problem  # never quoted back

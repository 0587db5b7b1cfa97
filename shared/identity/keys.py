"""Airlock-issued keys: ``ak_<key_id>_<secret>``.

The secret is 32 random bytes (urlsafe base64, 43 characters); only its SHA-256 is stored. A salted
slow hash buys nothing for 256-bit random secrets, and a fast hash keeps authorize cheap. The key id is
not secret: it is the lookup key in the api-keys table, so verification is one read plus one
constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from pydantic import SecretStr

KEY_PREFIX = "ak_"
_SECRET_BYTES = 32
_KEY_RE = re.compile(r"^ak_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43,})$")


class KeyFormatError(ValueError):
    """The presented password looks like an Airlock key but is malformed (never carries the key)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: ``token`` goes to the user once, ``secret_hash`` to storage."""

    key_id: str
    token: SecretStr
    secret_hash: str


@dataclass(frozen=True, slots=True)
class PresentedKey:
    key_id: str
    secret: SecretStr


def looks_like_key(token: str) -> bool:
    """True if the password should be treated as an Airlock key rather than a JWT."""
    return token.startswith(KEY_PREFIX)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> NewKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    token = SecretStr(f"{KEY_PREFIX}{key_id}_{secret}")
    return NewKey(key_id=key_id, token=token, secret_hash=hash_secret(secret))


def parse_key(token: str) -> PresentedKey:
    """Split a presented key into id and secret; ``KeyFormatError`` if it is not well formed."""
    m = _KEY_RE.match(token)
    if m is None:
        raise KeyFormatError("malformed Airlock key (expected ak_<key id>_<secret>)")
    return PresentedKey(key_id=m["key_id"], secret=SecretStr(m["secret"]))


def secret_matches(presented: PresentedKey, stored_hash: str) -> bool:
    """Constant-time comparison of the presented secret's hash with the stored hash."""
    return hmac.compare_digest(hash_secret(presented.secret.get_secret_value()), stored_hash)

"""What replaces a sensitive value: redaction, partial (last 4 kept) or a keyed token.

Two shapes: *text* replacements for strings, and *numeric* ones for values a client decodes as numbers
(int8 / numeric columns, bare JSON numbers), which must stay numbers: redact gives 0, partial the last
four digits, token a stable number derived from the HMAC. Text replacements also come as bytes
(``mask_bytes``) for the per-column fast paths; for ASCII input they are the same characters.
"""

from __future__ import annotations

import hashlib
import re

from shared.masking.rules import MaskAction

REDACTED = "****"
TOKEN_PREFIX = "tok_"
_ALNUM = re.compile(r"[^\W_]")  # letters and digits, any script
_REDACTED = REDACTED.encode()
_TOKEN_PREFIX = TOKEN_PREFIX.encode()
_SURROGATE = "surrogateescape"
_BLOCK = 64  # SHA-256 block size, for the HMAC pads
# Base32 (RFC 4648, lower case) of every 10-bit group: a token's 80 bits are 8 lookups.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [(_B32[i >> 5] + _B32[i & 31]).encode() for i in range(1024)]
_ASCII_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_STARS = bytes.maketrans(_ASCII_ALNUM, b"*" * len(_ASCII_ALNUM))


class Tokenizer:
    """HMAC-SHA256 under the policy's key: the same input gives the same token in every session.

    The HMAC is computed from two SHA-256 states primed with the key's inner and outer pads (RFC 2104,
    as the standard library's pure-Python HMAC does): copying a primed state is cheaper than keying
    OpenSSL's HMAC on every value."""

    __slots__ = ("_inner", "_key", "_outer")

    def __init__(self, key: bytes | None) -> None:
        self._key = key
        secret = key or b""
        block = (hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret).ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    @property
    def keyed(self) -> bool:
        return bool(self._key)

    def mac(self, message: bytes) -> bytes:
        if not self._key:
            raise ValueError("masking action 'token' needs a token key (masking.token_key_ref)")
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def token(self, message: bytes) -> bytes:
        """``tok_`` and the base32 of the first 80 bits of the HMAC."""
        n = int.from_bytes(self.mac(message)[:10], "big")
        p = _B32_PAIRS
        return b"".join(
            (
                _TOKEN_PREFIX,
                p[n >> 70],
                p[(n >> 60) & 1023],
                p[(n >> 50) & 1023],
                p[(n >> 40) & 1023],
                p[(n >> 30) & 1023],
                p[(n >> 20) & 1023],
                p[(n >> 10) & 1023],
                p[n & 1023],
            )
        )

    def text(self, value: str) -> str:
        return self.token(value.encode("utf-8", _SURROGATE)).decode("ascii")

    def number(self, value: str, digits: int = 15) -> int:
        return int.from_bytes(self.mac(value.encode("utf-8", _SURROGATE))[:8], "big") % int(10**digits)


def partial(value: str) -> str:
    """Keep the last 4 letters/digits; every earlier one becomes '*'; separators and length stay."""
    if value.isascii():
        return partial_bytes(value.encode()).decode()
    keep = 4
    cut = len(value)
    while cut and keep:
        cut -= 1
        if value[cut].isalnum():
            keep -= 1
    return _ALNUM.sub("*", value[:cut]) + value[cut:]


def partial_bytes(value: bytes) -> bytes:
    """``partial`` of a value's UTF-8 bytes (bytes that are not UTF-8 are kept as they are)."""
    if not value.isascii():
        return partial(value.decode("utf-8", _SURROGATE)).encode("utf-8", _SURROGATE)
    if len(value) <= 4:
        return value
    cut = len(value) - 4
    if not value[cut:].isalnum():  # separators among the last characters: find the 4th letter/digit
        keep = 4
        cut = len(value)
        while cut and keep:
            cut -= 1
            if value[cut : cut + 1].isalnum():
                keep -= 1
    return value[:cut].translate(_STARS) + value[cut:]


def mask_text(action: MaskAction, value: str, normalized: str, tokens: Tokenizer) -> str:
    if action is MaskAction.PARTIAL:
        return partial(value)
    if action is MaskAction.TOKEN:
        return tokens.text(normalized)
    return REDACTED


def mask_bytes(action: MaskAction, value: bytes, normalized: bytes, tokens: Tokenizer) -> bytes:
    """``mask_text`` on UTF-8 bytes: the same characters, without decoding."""
    if action is MaskAction.PARTIAL:
        return partial_bytes(value)
    if action is MaskAction.TOKEN:
        return tokens.token(normalized)
    return _REDACTED


def mask_number(action: MaskAction, digits: str, tokens: Tokenizer, width: int = 15) -> int:
    """A replacement that is still a number; ``width`` bounds it (int2 and int4 columns are small)."""
    if action is MaskAction.PARTIAL:
        tail = "".join(ch for ch in digits if ch.isdigit())[-4:]
        return int(tail or "0")
    if action is MaskAction.TOKEN:
        return tokens.number(digits.lstrip("+-"), width)
    return 0

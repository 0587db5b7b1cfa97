"""What replaces a sensitive value: redaction, partial (last 4 kept) or a keyed token.

Two shapes: *text* replacements for strings, and *numeric* ones for values a client decodes as numbers
(int8 / numeric columns, bare JSON numbers), which must stay numbers: redact gives 0, partial the last
four digits, token a stable number derived from the HMAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from shared.masking.rules import MaskAction

REDACTED = "****"
TOKEN_PREFIX = "tok_"
_ALNUM = re.compile(r"[^\W_]")  # letters and digits, any script


class Tokenizer:
    """HMAC-SHA256 under the policy's key: the same input gives the same token in every session."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def digest(self, value: str) -> bytes:
        if not self._key:
            raise ValueError("masking action 'token' needs a token key (masking.token_key_ref)")
        return hmac.new(self._key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def text(self, value: str) -> str:
        return TOKEN_PREFIX + base64.b32encode(self.digest(value)[:10]).decode().lower()

    def number(self, value: str, digits: int = 15) -> int:
        return int.from_bytes(self.digest(value)[:8], "big") % int(10**digits)


def partial(value: str) -> str:
    """Keep the last 4 letters/digits; every earlier one becomes '*'; separators and length stay."""
    keep = 4
    cut = len(value)
    while cut and keep:
        cut -= 1
        if value[cut].isalnum():
            keep -= 1
    return _ALNUM.sub("*", value[:cut]) + value[cut:]


def mask_text(action: MaskAction, value: str, normalized: str, tokens: Tokenizer) -> str:
    if action is MaskAction.PARTIAL:
        return partial(value)
    if action is MaskAction.TOKEN:
        return tokens.text(normalized)
    return REDACTED


def mask_number(action: MaskAction, digits: str, tokens: Tokenizer, width: int = 15) -> int:
    """A replacement that is still a number; ``width`` bounds it (int2 and int4 columns are small)."""
    if action is MaskAction.PARTIAL:
        tail = "".join(ch for ch in digits if ch.isdigit())[-4:]
        return int(tail or "0")
    if action is MaskAction.TOKEN:
        return tokens.number(digits.lstrip("+-"), width)
    return 0

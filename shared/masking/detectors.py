"""Sensitive-value detectors: one regex pass per value, then a validator per candidate.

All detectors share one compiled alternation (``_CANDIDATES``), so a value is scanned once whatever the
number of detectors. Candidates are confirmed by checksums and structure where the value has them (Luhn
and issuer ranges for cards via python-stdnum, SSA rules for SSNs, ISO 7064 for IBANs, a JSON header for
JWTs); secrets without a checksum need a distinctive prefix or, for AWS secret keys, a naming context.

``PREFILTER`` is the bytes-level superset used on whole read buffers: if it finds nothing, no detector
can match anywhere in the buffer (text and text-like binary values are bytes of the same characters).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn


class Detector(StrEnum):
    CARD = "card"
    SSN = "ssn"
    EMAIL = "email"
    IBAN = "iban"
    AWS_ACCESS_KEY = "aws_access_key"
    AWS_SECRET_KEY = "aws_secret_key"
    GITHUB_TOKEN = "github_token"
    SLACK_TOKEN = "slack_token"
    PRIVATE_KEY = "private_key"
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Match:
    detector: Detector
    start: int
    end: int


# Order matters where shapes overlap at one position: SSN before card, secrets with fixed prefixes before
# e-mail (whose local part would also accept them).
_CANDIDATES = re.compile(
    r"(?P<ssn>(?<!\d)\d{3}(?P<ssn_sep>[- ])\d{2}(?P=ssn_sep)\d{4}(?!\d))"
    + r"|(?P<card>(?<![\d])\d(?:[ -]?\d){12,22}(?!\d))"
    + r"|(?P<private_key>-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*))"
    + r"|(?P<aws_access_key>(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}"
    r"(?![A-Z0-9]))"
    + r"|(?P<aws_secret_key>(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"'\s:=>]{1,6}"
    r"(?P<aws_secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+]))"
    + r"|(?P<github_token>(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}))"
    + r"|(?P<slack_token>(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,})"
    + r"|(?P<jwt>(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)"
    + r"|(?P<iban>(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}(?![A-Za-z0-9]))"
    + r"|(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
    re.DOTALL,
)

PREFILTER = re.compile(
    rb"\d(?:[ -]?\d){12}|\d{3}[- ]\d\d[- ]\d{4}|[A-Za-z0-9._%+-]@[A-Za-z0-9-]|[A-Z]{2}\d\d ?[A-Z0-9]{4}"
    rb"|A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA)[A-Z0-9]{16}|(?i:secret)|eyJ|gh[pousr]_|github_pat_"
    rb"|xox[abposr]-|-----BEGIN"
)

# Issuer (IIN) ranges of the card networks, as (low, high, lengths) on the leading digits.
_ISSUERS: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})), ("2221", "2720", frozenset({16})),  # Mastercard
    ("34", "34", frozenset({15})), ("37", "37", frozenset({15})),  # American Express
    ("6011", "6011", frozenset(range(16, 20))), ("644", "649", frozenset(range(16, 20))),  # Discover
    ("65", "65", frozenset(range(16, 20))),
    ("3528", "3589", frozenset(range(16, 20))),  # JCB
    ("300", "305", frozenset(range(14, 20))), ("36", "36", frozenset(range(14, 20))),  # Diners Club
    ("38", "39", frozenset(range(16, 20))),
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("50", "50", frozenset(range(12, 20))), ("56", "69", frozenset(range(12, 20))),  # Maestro
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
)


def is_card_number(digits: str) -> bool:
    """13-19 digits, a known issuer range, and a valid Luhn check digit."""
    if not 13 <= len(digits) <= 19 or not digits.isdigit():
        return False
    for low, high, lengths in _ISSUERS:
        if len(digits) in lengths and low <= digits[: len(low)] <= high:
            return bool(luhn.is_valid(digits))
    return False


def _prefixes(candidate: str) -> list[str]:
    """The candidate, then shorter prefixes cut at separators (a card followed by " 12/25" or a group of
    other digits), longest first."""
    cuts = [i for i, ch in enumerate(candidate) if ch in " -"]
    return [candidate] + [candidate[:i] for i in reversed(cuts)]


def _card_span(candidate: str) -> int:
    for prefix in _prefixes(candidate):
        if is_card_number(prefix.replace(" ", "").replace("-", "")):
            return len(prefix)
    return 0


def _iban_span(candidate: str) -> int:
    for prefix in _prefixes(candidate):
        if stdnum_iban.is_valid(prefix):
            return len(prefix)
    return 0


def _is_jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(decoded, dict) and ("alg" in decoded or "typ" in decoded)


def find(text: str, enabled: frozenset[Detector]) -> list[Match]:
    """Confirmed matches of the enabled detectors, left to right, non-overlapping."""
    out: list[Match] = []
    pos = 0
    search = _CANDIDATES.search
    while True:
        m = search(text, pos)
        if m is None:
            return out
        kind = m.lastgroup
        start, end = m.start(), m.end()
        if kind == "aws_secret_key":
            start, end = m.start("aws_secret"), m.end("aws_secret")
        detector = Detector(kind or "")
        length = end - start
        if detector is Detector.CARD:
            length = _card_span(m.group())
        elif detector is Detector.IBAN:
            length = _iban_span(m.group())
        elif detector is Detector.SSN:
            length = length if stdnum_ssn.is_valid(m.group()) else 0
        elif detector is Detector.JWT:
            length = length if _is_jwt(m.group()) else 0
        if length and detector in enabled:
            out.append(Match(detector, start, start + length))
            pos = start + length
        else:
            # Not confirmed: another detector may still start inside this candidate (an e-mail after
            # digits), so resume one character later rather than after the whole candidate.
            pos = m.start() + 1


def normalize(detector: Detector, value: str) -> str:
    """The canonical form tokens are computed from, so "4111 1111 ..." and "4111-1111-..." join."""
    if detector in (Detector.CARD, Detector.SSN, Detector.IBAN):
        return "".join(ch for ch in value if ch.isalnum()).upper()
    if detector is Detector.EMAIL:
        return value.lower()
    return value

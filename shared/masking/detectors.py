"""Sensitive-value detectors: one regex pass per value, then a validator per candidate.

All detectors share one compiled alternation (``_CANDIDATES``), so a value is scanned once whatever the
number of detectors. Candidates are confirmed by checksums and structure where the value has them (Luhn
and issuer ranges for cards via python-stdnum, SSA rules for SSNs, ISO 7064 for IBANs, a JSON header for
JWTs); secrets without a checksum need a distinctive prefix or, for AWS secret keys, a naming context.

``candidates`` is the bytes-level prefilter used on whole read buffers: if it finds nothing, no detector
can match anywhere in the buffer (text and text-like binary values are bytes of the same characters).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

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
    + r"|(?P<card>(?<!\d)\d{4}[ -]?\d{4}(?:[ -]?\d){5,15}(?!\d))"
    # The body may follow real newlines or escaped ones (JSON strings, COPY text format).
    + r"|(?P<private_key>-----BEGIN [A-Z ]*PRIVATE KEY-----(?:\s|\\[nr])*[A-Za-z0-9+/=]{20}"
    r"(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*))"
    + r"|(?P<aws_access_key>(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9]))"
    + r"|(?P<aws_secret_key>(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"'\s:=>]{1,6}"
    r"(?P<aws_secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+]))"
    + r"|(?P<github_token>(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}))"
    + r"|(?P<slack_token>(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{15,})"
    + r"|(?P<jwt>(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)"
    + r"|(?P<iban>(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}(?![A-Za-z0-9]))",
    re.DOTALL,
)
# E-mail addresses are found from their '@' outwards: a regex that tries a local part at every position
# costs a microsecond per character.
_EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# The prefilter works on two translations of the buffer (bytes.translate runs at memory speed) and a
# handful of substring searches, rather than one regex: CPython's re scans a row-data buffer at 10-50 MB/s
# whatever the pattern, which would cost more than the whole proxy. It is a superset of the detectors:
# - cards (a 4-digit group then 4 more digits), IBANs (every IBAN format has 8 consecutive digits in its
#   BBAN; printed ones then show "dddd dddd") and SSNs: digit shapes in _DIGITS;
# - e-mail: an '@' between address characters;
# - cloud keys, GitHub/Slack tokens, JWTs, PEM bodies, AWS secret keys: a run of 20+ token characters.
def _table(classes: dict[bytes, bytes], default: bytes) -> bytes:
    table = bytearray(default * 256)
    for chars, cls in classes.items():
        for ch in chars:
            table[ch] = cls[0]
    return bytes(table)


_DIGITS_ = b"0123456789"
_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHAPES = _table({_DIGITS_: b"0", _LETTERS + b"_.%+": b"a", b" -": b"-", b"@": b"@"}, b".")
_TOKENS = _table({_DIGITS_ + _LETTERS + b"_+/=.-": b"a"}, b" ")
# None of these occurs in a date or a timestamp ("dddd-dd-dd dd:dd:dd").
_DIGIT_SHAPES = (b"00000000", b"0000-0000", b"000-00-0000")
_TOKEN_RUN = b"a" * 20
_EMAIL_NEIGHBOURS = frozenset(b"a0-")


def candidates(data: bytes) -> bool:
    """True if any detector might match somewhere in ``data``; False guarantees none can."""
    return bool(candidate_spans(data, first=True))


def candidate_spans(data: bytes, *, first: bool = False) -> list[tuple[int, int]]:
    """(start, end) byte spans of the prefilter's hits: a detector match overlaps at least one of them.

    With ``first``, stops at the first hit (enough for a yes/no answer)."""
    spans: list[tuple[int, int]] = []
    shapes = data.translate(_SHAPES)
    for needle in _DIGIT_SHAPES:
        _all(shapes, needle, spans, first)
        if first and spans:
            return spans
    at = shapes.find(b"@")
    while at > 0:  # '@' is also a length byte (64): check its neighbours
        if shapes[at - 1] in _EMAIL_NEIGHBOURS and shapes[at + 1 : at + 2] and shapes[at + 1] in _EMAIL_NEIGHBOURS:
            spans.append((at - 1, at + 2))
            if first:
                return spans
        at = shapes.find(b"@", at + 1)
    _all(data.translate(_TOKENS), _TOKEN_RUN, spans, first)
    return spans


def _all(haystack: bytes, needle: bytes, spans: list[tuple[int, int]], first: bool) -> None:
    pos = haystack.find(needle)
    while pos >= 0:
        spans.append((pos, pos + len(needle)))
        if first:
            return
        pos = haystack.find(needle, pos + len(needle))


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


_ISSUERS_BY_DIGIT = {d: tuple(i for i in _ISSUERS if i[0][0] == d) for d in "0123456789"}


@lru_cache(maxsize=65536)  # result sets repeat card numbers (joins, one customer per many rows)
def is_card_number(digits: str) -> bool:
    """13-19 digits, a known issuer range, and a valid Luhn check digit."""
    if not 13 <= len(digits) <= 19 or not digits.isdigit():
        return False
    for low, high, lengths in _ISSUERS_BY_DIGIT[digits[0]]:
        if len(digits) in lengths and low <= digits[: len(low)] <= high:
            return bool(luhn.is_valid(digits))
    return False


def _prefixes(candidate: str) -> list[str]:
    """The candidate, then shorter prefixes cut at separators (a card followed by " 12/25" or a group of
    other digits), longest first."""
    if " " not in candidate and "-" not in candidate:
        return [candidate]
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
    return len(token) >= 20 and isinstance(decoded, dict) and ("alg" in decoded or "typ" in decoded)


def find(text: str, enabled: frozenset[Detector]) -> list[Match]:
    """Confirmed matches of the enabled detectors, left to right, non-overlapping."""
    found = _structured(text, enabled)
    if Detector.EMAIL in enabled and "@" in text:
        found = _merge(found, _emails(text))
    return found


def _emails(text: str) -> list[Match]:
    out: list[Match] = []
    at = text.find("@")
    while at > 0:
        start = at
        while start > 0 and at - start < 64 and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if start < at and domain is not None:
            out.append(Match(Detector.EMAIL, start, domain.end()))
        at = text.find("@", at + 1)
    return out


def _merge(first: list[Match], second: list[Match]) -> list[Match]:
    """Both lists sorted and overlap-free on their own; on overlap the earlier (then longer) match wins."""
    out: list[Match] = []
    for m in sorted(first + second, key=lambda m: (m.start, -m.end)):
        if not out or m.start >= out[-1].end:
            out.append(m)
    return out


_BY_GROUP = {d.value: d for d in Detector}


def _structured(text: str, enabled: frozenset[Detector]) -> list[Match]:
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
        detector = _BY_GROUP[kind or ""]
        length = end - start
        if detector is Detector.CARD:
            length = _card_span(m.group())
        elif detector is Detector.IBAN:
            length = _iban_span(m.group())
        elif detector is Detector.SSN:
            length = length if stdnum_ssn.is_valid(m.group().replace(" ", "-")) else 0
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
        return value.replace(" ", "").replace("-", "").upper()
    if detector is Detector.EMAIL:
        return value.lower()
    return value

"""Sensitive-value detectors: one regex pass per value, then a validator per candidate.

All detectors share one compiled alternation (``_CANDIDATES``), so a value is scanned once whatever the
number of detectors. Candidates are confirmed by checksums and structure where the value has them (Luhn
and issuer ranges for cards; SSA rules for SSNs and ISO 7064 for IBANs via python-stdnum; a JSON header for
JWTs); secrets without a checksum need a distinctive prefix or, for AWS secret keys, a naming context.

``candidates`` is the bytes-level prefilter used on whole read buffers: if it finds nothing, no detector
can match anywhere in the buffer (text and text-like binary values are bytes of the same characters).
Buffers longer than a value are scanned by one compiled Hyperscan pass where the wheel exists
(shared/masking/scanner.py), by the same questions asked in Python otherwise.
``candidate_kinds`` is the same test on one value, telling an e-mail-only candidate from the rest.

Values are also looked at the ways a query can disguise them cheaply: a card number or SSN written
backwards (``reverse(...)``), with other separators (``replace(ssn, '-', '/')``), or encoded as hex
(``encode(..., 'hex')``, a bytea's ``\\x...`` text) or base64; a ``Match`` says which (``encoding``) so
the replacement is made in the same encoding. What a value-based detector cannot see (a value translated
to letters, split across columns, computed) is left to column rules, which follow lineage.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import AnyStr

from stdnum import iban as stdnum_iban
from stdnum.us import ssn as stdnum_ssn

from shared.masking.scanner import BufferScanner, byte_class


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


class Encoding(StrEnum):
    """How a match is written in the text: as itself, backwards, or encoded."""

    PLAIN = ""
    REVERSED = "reversed"
    HEX = "hex"
    BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class Match:
    detector: Detector
    start: int
    end: int
    encoding: Encoding = Encoding.PLAIN


# Order matters where shapes overlap at one position: SSN before card, secrets with fixed prefixes before
# e-mail (whose local part would also accept them).
# Separators a card number or SSN may be printed with (an SSN uses one kind throughout).
SEPARATORS = " -./_:|"
_SEP = "[ ./_:|-]"
_CANDIDATES = re.compile(
    rf"(?P<ssn>(?<!\d)\d{{3}}(?P<ssn_sep>{_SEP})\d{{2}}(?P=ssn_sep)\d{{4}}(?!\d))"
    + rf"|(?P<ssn_rev>(?<!\d)\d{{4}}(?P<rev_sep>{_SEP})\d{{2}}(?P=rev_sep)\d{{3}}(?!\d))"
    + rf"|(?P<card>(?<!\d)\d{{4}}{_SEP}?\d{{4}}(?:{_SEP}?\d){{5,15}}(?!\d))"
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
# Encoded runs that may hold a value: hex (11 bytes or more: an SSN's length; after a bytea's "\\x" too)
# and base64 (16 characters or more; PostgreSQL's encode() pads). Shorter encodings are not decoded (the
# cost would fall on every word).
_ENCODED = re.compile(r"(?<![A-Za-z0-9+/=])(?=[A-Za-z0-9+/=]{16})[A-Za-z0-9+/]+={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"x?((?:[0-9A-Fa-f]{2}){11,})")
_MIN_ENCODED = 16
# E-mail addresses are found from their '@' outwards: a regex that tries a local part at every position
# costs a microsecond per character.
_EMAIL_LOCAL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# For ASCII values as bytes: an address around one '@' (its local part: at most 64 _EMAIL_LOCAL), and
# the same language ("L(.L)*.AA+" is "(L.)+AA+", the form re matches faster) for addresses of at most 19
# characters on either side of the '@'.
_EMAIL_ADDRESS = re.compile(rb"[A-Za-z0-9._%+-]{1,64}@" + _EMAIL_DOMAIN.pattern.encode())
_LONE_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]{1,19}@(?=[A-Za-z0-9.-]{1,19}\Z)(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")


# The prefilter works on two translations of the buffer (bytes.translate runs at memory speed) and a
# handful of substring searches, rather than one regex: CPython's re scans a row-data buffer at 10-50 MB/s
# whatever the pattern, which would cost more than the whole proxy. It is a superset of the detectors:
# - cards (a 4-digit group then 4 more digits, any separator), IBANs (every IBAN format has 8 consecutive
#   digits in its BBAN; printed ones then show "dddd dddd") and SSNs (either way round): digit shapes;
# - e-mail: an '@' between address characters;
# - cloud keys, GitHub/Slack tokens, JWTs, PEM bodies, AWS secret keys, hex and base64 encodings: a run
#   of 16+ token characters.
def _table(classes: dict[bytes, bytes], default: bytes) -> bytes:
    table = bytearray(default * 256)
    for chars, cls in classes.items():
        for ch in chars:
            table[ch] = cls[0]
    return bytes(table)


_DIGITS_ = b"0123456789"
_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_WORDISH = _LETTERS + b"_.%+"
_SEPARATORS = SEPARATORS.encode()
_TOKEN_CHARS = _DIGITS_ + _LETTERS + b"_+/=.-"
_SHAPES = _table({_DIGITS_: b"0", _WORDISH: b"a", _SEPARATORS: b"-", b"@": b"@"}, b".")
_TOKENS = _table({_TOKEN_CHARS: b"a"}, b" ")
_BASE64_CHARS = _table({_DIGITS_ + _LETTERS + b"+/": b"a"}, b" ")
# Searched for in the translations: digit shapes ("0000", then the whole ones: 8 digits, two groups of
# four, an SSN forwards and backwards; none occurs in a date or a timestamp, "dddd-dd-dd dd:dd:dd") and a
# run of 16 token characters (a hex or base64 encoding long enough to hold a value, and every secret).
_TOKEN_RUN = 16
_NEEDLES = ("0000", "00000000", "0000-0000", "000-00-0000", "0000-00-000", "a" * _TOKEN_RUN)
_NEEDLES_BYTES = tuple(n.encode() for n in _NEEDLES)
_EMAIL_NEIGHBOURS = frozenset(["a", "0", "-", b"a", b"0", b"-"])
# Values are searched as str: ``in`` on a str is a plain search, while bytes.find parses its arguments the
# slow way and ``in`` on bytes first tries an int (and pays for a TypeError). Whole buffers are searched as
# bytes: there those costs vanish next to the search, and a decode would not.
_SHORT = 512


# What the prefilter saw, as bits: a match of any detector but e-mail overlaps a digit shape or a token
# run (STRUCTURED); an e-mail match holds an '@' between address characters (EMAIL_AT).
STRUCTURED = 1
EMAIL_AT = 2

# The same questions as one compiled automaton (shared/masking/scanner.py), for buffers longer than
# _SHORT: "0000" then "0000" or "-0000"; "000-00-0000" and "0000-00-000"; 16 token characters; '@' between
# address characters ('a', '0' or '-' in the shapes). None where Hyperscan is not installed.
_DIGIT, _SEP_CLASS = byte_class(_DIGITS_), byte_class(_SEPARATORS)
_NEIGHBOUR = byte_class(_WORDISH + _DIGITS_ + _SEPARATORS)
BUFFER_PATTERNS: tuple[tuple[bytes, int], ...] = (
    (_DIGIT + b"{4}" + _SEP_CLASS + b"?" + _DIGIT + b"{4}", STRUCTURED),
    (_DIGIT + b"{3}" + _SEP_CLASS + _DIGIT + b"{2}" + _SEP_CLASS + _DIGIT + b"{4}", STRUCTURED),
    (_DIGIT + b"{4}" + _SEP_CLASS + _DIGIT + b"{2}" + _SEP_CLASS + _DIGIT + b"{3}", STRUCTURED),
    (byte_class(_TOKEN_CHARS) + b"{%d}" % _TOKEN_RUN, STRUCTURED),
    (_NEIGHBOUR + b"@" + _NEIGHBOUR, EMAIL_AT),
)
_BUFFER_SCANNER = BufferScanner.build(BUFFER_PATTERNS)


def candidates(data: bytes) -> bool:
    """True if any detector might match somewhere in ``data``; False guarantees none can."""
    if len(data) <= _SHORT:
        return _kinds(data, data.translate(_SHAPES).decode(), _NEEDLES, "@", first=True) != 0
    if _BUFFER_SCANNER is not None:
        return _BUFFER_SCANNER.kinds(data, first=True) != 0
    return python_kinds(data, first=True) != 0


def candidate_kinds(data: bytes) -> int:
    """The prefilter by kind: which detectors might match in ``data`` (0: none can)."""
    if len(data) <= _SHORT:
        return _kinds(data, data.translate(_SHAPES).decode(), _NEEDLES, "@", first=False)
    if _BUFFER_SCANNER is not None:
        return _BUFFER_SCANNER.kinds(data, first=False)
    return python_kinds(data, first=False)


def python_kinds(data: bytes, *, first: bool) -> int:
    """The prefilter in pure Python (translations and substring searches), on any length."""
    return _kinds(data, data.translate(_SHAPES), _NEEDLES_BYTES, b"@", first=first)


def _kinds(data: bytes, shapes: AnyStr, needles: tuple[AnyStr, ...], at_sign: AnyStr, *, first: bool) -> int:
    kinds = STRUCTURED if _structured_shape(data, shapes, needles) else 0
    if kinds and first:
        return kinds
    at = shapes.find(at_sign)
    while at >= 0:  # '@' is also a length byte (64): check its neighbours (one at 0 has none before it)
        if at and shapes[at - 1 : at] in _EMAIL_NEIGHBOURS and shapes[at + 1 : at + 2] in _EMAIL_NEIGHBOURS:
            return kinds | EMAIL_AT
        at = shapes.find(at_sign, at + 1)
    return kinds


def _structured_shape(data: bytes, shapes: AnyStr, needles: tuple[AnyStr, ...]) -> bool:
    """A digit shape or a token run."""
    four, eight, groups, ssn, reversed_ssn, run = needles
    if four in shapes and (eight in shapes or groups in shapes or ssn in shapes or reversed_ssn in shapes):
        return True
    if len(data) < len(run):
        return False
    tokens = data.translate(_TOKENS)
    return run in tokens.decode() if isinstance(run, str) else run in tokens


# Issuer (IIN) ranges of the card networks, as (low, high, lengths, principal lengths) on the leading
# digits. The principal lengths are what the network issues today: a number column (int8, numeric, a JSON
# number) is a card only at one of them, since random identifiers hit the wider ranges too often.
# fmt: off
_ISSUERS: tuple[tuple[str, str, frozenset[int], frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19}), frozenset({16})),  # Visa
    ("51", "55", frozenset({16}), frozenset({16})), ("2221", "2720", frozenset({16}), frozenset({16})),  # Mastercard
    ("34", "34", frozenset({15}), frozenset({15})), ("37", "37", frozenset({15}), frozenset({15})),  # Amex
    ("6011", "6011", frozenset(range(16, 20)), frozenset({16})),  # Discover
    ("644", "649", frozenset(range(16, 20)), frozenset({16})), ("65", "65", frozenset(range(16, 20)), frozenset({16})),
    ("3528", "3589", frozenset(range(16, 20)), frozenset({16})),  # JCB
    ("300", "305", frozenset(range(14, 20)), frozenset({14, 16})),  # Diners Club
    ("36", "36", frozenset(range(14, 20)), frozenset({14, 16})),
    ("38", "39", frozenset(range(16, 20)), frozenset({16})),
    ("62", "62", frozenset(range(16, 20)), frozenset({16})),  # UnionPay
    ("50", "50", frozenset(range(12, 20)), frozenset({16})),  # Maestro
    ("56", "69", frozenset(range(12, 20)), frozenset({16})),
    ("2200", "2204", frozenset(range(16, 20)), frozenset({16})),  # Mir
)
# fmt: on


_ISSUERS_BY_DIGIT = {d: tuple(i for i in _ISSUERS if i[0][0] == d) for d in "0123456789"}


@lru_cache(maxsize=65536)  # result sets repeat card numbers (joins, one customer per many rows)
def is_card_number(digits: str, strict: bool = False) -> bool:
    """13-19 ASCII digits, a known issuer range, and a valid Luhn check digit. ``strict`` (numbers: no
    sign, no fraction, checked by the caller) also wants one of the issuer's principal lengths."""
    if not 13 <= len(digits) <= 19 or not digits.isascii() or not digits.isdigit():
        return False
    for low, high, lengths, principal in _ISSUERS_BY_DIGIT[digits[0]]:
        if len(digits) in (principal if strict else lengths) and low <= digits[: len(low)] <= high:
            return luhn_valid(digits)
    return False


def is_card_number_value(number: str) -> bool:
    """Whether a whole number, as written (``-4111...``, ``4111....5``, ``41e14``), is a card number: no
    sign, no fraction or exponent, and the strict test. A negative number is never a card number."""
    return number.isdigit() and is_card_number(number, strict=True)


# Luhn doubles every second digit from the right and adds the digits of the product: 5 -> 10 -> 1.
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def luhn_valid(digits: str) -> bool:
    """``stdnum.luhn.is_valid`` for ASCII digits, summed by C loops instead of a generator per digit."""
    raw = digits.encode()
    kept, doubled = raw[-1::-2], raw[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(kept) - 48 * len(kept) + sum(doubled)) % 10 == 0


_UNSEPARATED = str.maketrans("", "", SEPARATORS)


def _prefixes(candidate: str) -> list[str]:
    """The candidate, then shorter prefixes cut at separators (a card followed by " 12/25" or a group of
    other digits), longest first."""
    cuts = [i for i, ch in enumerate(candidate) if ch in SEPARATORS]
    return [candidate] + [candidate[:i] for i in reversed(cuts)]


def _card_span(candidate: str) -> tuple[int, Encoding]:
    """The length of the card number the candidate starts with (0: none), and whether it is backwards."""
    if candidate.isdigit():  # the usual case: no separators, no prefixes to try
        if is_card_number(candidate):
            return len(candidate), Encoding.PLAIN
        return (len(candidate), Encoding.REVERSED) if is_card_number(candidate[::-1]) else (0, Encoding.PLAIN)
    for prefix in _prefixes(candidate):
        digits = prefix.translate(_UNSEPARATED)
        if is_card_number(digits):
            return len(prefix), Encoding.PLAIN
        if is_card_number(digits[::-1]):
            return len(prefix), Encoding.REVERSED
    return 0, Encoding.PLAIN


def _is_ssn(candidate: str) -> bool:
    return bool(stdnum_ssn.is_valid(candidate[:3] + "-" + candidate[4:6] + "-" + candidate[7:]))


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


def find(text: str, enabled: frozenset[Detector], *, encoded: bool = True) -> list[Match]:
    """Confirmed matches of the enabled detectors, left to right, non-overlapping. ``encoded``: also
    decode hex and base64 runs and report the matches inside them (one per run)."""
    found = _structured(text, enabled)
    if Detector.EMAIL in enabled and "@" in text:
        found = _merge(found, _emails(text))
    # An encoded run lies outside every match: with fewer than _MIN_ENCODED characters left, none can.
    if encoded and len(text) - sum(m.end - m.start for m in found) >= _MIN_ENCODED:
        found = _merge(found, _encoded(text, enabled, found))
    return found


def decode(encoding: Encoding, text: str) -> str:
    """The text an encoded match stands for (``Encoding.PLAIN``: itself)."""
    if encoding is Encoding.REVERSED:
        return text[::-1]
    if encoding is Encoding.HEX:
        return bytes.fromhex(text).decode("utf-8", "surrogateescape")
    if encoding is Encoding.BASE64:
        return base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "surrogateescape")
    return text


def encode(encoding: Encoding, text: str, like: str) -> str:
    """``text`` written the way ``like`` was (hex keeps its letter case)."""
    if encoding is Encoding.REVERSED:
        return text[::-1]
    if encoding is Encoding.HEX:
        out = text.encode("utf-8", "surrogateescape").hex()
        return out.upper() if like.isupper() else out
    if encoding is Encoding.BASE64:
        out = base64.b64encode(text.encode("utf-8", "surrogateescape")).decode()
        return out if like.endswith("=") else out.rstrip("=")
    return text


def _encoded(text: str, enabled: frozenset[Detector], found: list[Match]) -> list[Match]:
    """Hex and base64 runs (not inside a match already) whose decoded text holds a match."""
    out: list[Match] = []
    for m in _ENCODED.finditer(text):
        start, end = m.span()
        if any(f.start < end and start < f.end for f in found):
            continue
        tries = [(Encoding.BASE64, start)]
        hexed = _HEX.fullmatch(m.group())
        if hexed is not None:
            tries.insert(0, (Encoding.HEX, start + hexed.start(1)))
        for encoding, begin in tries:
            try:
                inner = decode(encoding, text[begin:end])
            except (ValueError, binascii.Error):
                continue
            if candidates(inner.encode("utf-8", "surrogateescape")):
                inside = find(inner, enabled, encoded=False)
                if inside:
                    out.append(Match(inside[0].detector, begin, end, encoding))
                    break
    return out


def _emails(text: str) -> list[Match]:
    out: list[Match] = []
    at = text.find("@")
    while at >= 0:
        before = text[max(0, at - 64) : at]  # the local part: up to 64 address characters before the '@'
        start = at - (len(before) - len(before.rstrip(_EMAIL_LOCAL)))
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if start < at and domain is not None:
            out.append(Match(Detector.EMAIL, start, domain.end()))
        at = text.find("@", at + 1)
    return out


def is_lone_email(value: bytes) -> bool:
    """Whether ``value`` is one e-mail address and nothing else a detector could match; then ``find``
    reports one e-mail match, over the whole value.

    Why: a full match puts the only '@' after at most 64 address characters (where _emails starts) and a
    domain up to the end; _EMAIL_DOMAIN's first match ends there too, because its labels are whole (a
    shorter label leaves no '.' for what follows) and its last label is all letters. At most 19 characters
    on either side of the '@' leave no room for a token run, and no four digits in a row none for a digit
    shape; and no run of 16 base64 characters (between its dots), none for an encoded value: no other
    detector can match."""
    return (
        _LONE_EMAIL.fullmatch(value) is not None
        and "0000" not in value.translate(_SHAPES).decode()
        and b"a" * _TOKEN_RUN not in value.translate(_BASE64_CHARS)
    )


def find_emails(value: bytes) -> list[tuple[int, int]]:
    """The (start, end) spans ``find`` reports in an ASCII value in which the prefilter saw nothing but
    an '@' (``candidate_kinds(value) == EMAIL_AT``): then no other detector can match, so this is all."""
    at = value.find(b"@")
    if value.find(b"@", at + 1) < 0:
        # One '@': the leftmost match from 64 characters before it starts where _email_spans starts.
        match = _EMAIL_ADDRESS.search(value, max(0, at - 64))
        return [] if match is None else [match.span()]
    return [(m.start, m.end) for m in _merge([], _emails(value.decode("ascii")))]


def _merge(first: list[Match], second: list[Match]) -> list[Match]:
    """Both lists sorted and overlap-free on their own; on overlap the earlier (then longer) match wins."""
    out: list[Match] = []
    for m in sorted(first + second, key=lambda m: (m.start, -m.end)):
        if not out or m.start >= out[-1].end:
            out.append(m)
    return out


_BY_GROUP = {d.value: d for d in Detector} | {"ssn_rev": Detector.SSN}


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
        encoding = Encoding.PLAIN
        if detector is Detector.CARD:
            length, encoding = _card_span(m.group())
        elif detector is Detector.IBAN:
            length = _iban_span(m.group())
        elif detector is Detector.SSN:
            candidate = m.group()
            if kind == "ssn_rev":
                candidate, encoding = candidate[::-1], Encoding.REVERSED
            length = length if _is_ssn(candidate) else 0
        elif detector is Detector.JWT:
            length = length if _is_jwt(m.group()) else 0
        if length and detector in enabled:
            out.append(Match(detector, start, start + length, encoding))
            pos = start + length
        else:
            # Not confirmed: another detector may still start inside this candidate (an e-mail after
            # digits), so resume one character later rather than after the whole candidate.
            pos = m.start() + 1


def normalize(detector: Detector, value: str) -> str:
    """The canonical form tokens are computed from, so "4111 1111 ..." and "4111-1111-..." join."""
    if detector in (Detector.CARD, Detector.SSN, Detector.IBAN):
        return value.translate(_UNSEPARATED).upper()
    if detector is Detector.EMAIL:
        return value.lower()
    return value

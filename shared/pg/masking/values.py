"""Masking one value: how a column's values are read, searched and replaced, by type and format.

Each result column gets a ``Mode`` once, from its type oid and format code. What masking yields is a
value the column's type can hold, in the format the client decodes (see docs/policy.md, "Masked values
by type"):

- strings (text, varchar, char, name, xml, unknown types in text format): masked text;
- int2/int4/int8/numeric/float (text or binary) and bare JSON numbers: a number (redact 0, partial the
  last four digits, token a stable number); a number is a card number only with strict evidence (no sign,
  no fraction, an issuer's principal length, Luhn);
- json/jsonb: JSON that parses (a masked string stays a string, a masked number a number; a document a
  detector would leave unparseable is replaced whole by the JSON string ``"****"``);
- bytea (hex or escape text, binary): decoded, searched as bytes, masked and encoded the same way;
- arrays: element by element (binary) or in place with their structure kept (text);
- every other type: when a rule or lineage says mask, NULL, the one value every client decodes for every
  type; when a detector matches but the value cannot be read, NULL too (fail closed).
"""

from __future__ import annotations

import json
import re
import struct
from enum import IntEnum

from shared.masking.actions import REDACTED, Tokenizer, mask_bytes, mask_number, mask_text
from shared.masking.detectors import (
    Detector,
    Encoding,
    candidates,
    decode,
    encode,
    find,
    is_card_number_value,
    normalize,
)
from shared.masking.rules import MaskAction
from shared.pg.masking import binary as b

UNDECODABLE = "undecodable"  # count key for fail-closed replacements
_SURROGATE = "surrogateescape"  # round-trips bytes that are not UTF-8 untouched
_CARD_MIN = 10**12  # no card number is smaller than 13 digits
_JSON_REDACTED = json.dumps(REDACTED)


class Mode(IntEnum):
    SKIP = 0
    TEXT = 1  # text format of a string-ish type, or text-like binary
    NUMBER_TEXT = 2  # text format of int8 / numeric
    JSON_TEXT = 3  # json text (both formats) / jsonb text format
    ARRAY_TEXT = 4  # text format of an array: {a,"b c"}
    NUMBER_ARRAY_TEXT = 5  # text format of int8[] / numeric[]
    JSONB_BINARY = 6
    INT_BINARY = 7
    NUMERIC_BINARY = 8
    FLOAT_BINARY = 9
    ARRAY_BINARY = 10
    OPAQUE = 11  # binary of a type the masker cannot read or write
    BYTEA_TEXT = 12  # \x<hex> (or the escape format)
    BYTEA_BINARY = 13
    OTHER_TEXT = 14  # text format of a type the masker does not know (records, enums, extension types)


def mode_for(type_oid: int, fmt: int) -> Mode:
    if type_oid == b.BYTEA:
        return Mode.BYTEA_BINARY if fmt else Mode.BYTEA_TEXT
    if fmt == 0:
        if type_oid in (b.INT8, b.NUMERIC):  # int2/int4 cannot hold 13 digits
            return Mode.NUMBER_TEXT
        if type_oid in (b.JSON, b.JSONB):
            return Mode.JSON_TEXT
        if type_oid in (1016, 1231):
            return Mode.NUMBER_ARRAY_TEXT
        if type_oid in b.ARRAY_ELEMENT:
            return Mode.ARRAY_TEXT
        if type_oid in b.NEVER_SENSITIVE_TEXT:
            return Mode.SKIP
        return Mode.TEXT if type_oid in b.TEXT_LIKE else Mode.OTHER_TEXT
    if type_oid in b.TEXT_LIKE:
        return Mode.TEXT
    if type_oid == b.JSON:
        return Mode.JSON_TEXT
    if type_oid == b.JSONB:
        return Mode.JSONB_BINARY
    if type_oid in (b.INT2, b.INT4, b.INT8):
        return Mode.INT_BINARY
    if type_oid == b.NUMERIC:
        return Mode.NUMERIC_BINARY
    if type_oid in (b.FLOAT4, b.FLOAT8):
        return Mode.FLOAT_BINARY
    if type_oid in b.ARRAY_ELEMENT:
        return Mode.ARRAY_BINARY
    return Mode.OPAQUE


# Modes whose raw bytes show every character a detector looks for, so a bytes prefilter is exact.
PREFILTERABLE = frozenset(
    {Mode.TEXT, Mode.NUMBER_TEXT, Mode.JSON_TEXT, Mode.ARRAY_TEXT, Mode.NUMBER_ARRAY_TEXT, Mode.JSONB_BINARY,
     Mode.BYTEA_BINARY, Mode.OTHER_TEXT}
)
# Modes that hide characters (binary numbers, arrays of them, hex-encoded bytea) and so are decoded on
# every row.
ALWAYS_DECODE = frozenset({Mode.INT_BINARY, Mode.NUMERIC_BINARY, Mode.ARRAY_BINARY, Mode.BYTEA_TEXT})


# Characters that end a value's structure; an unterminated PEM block is cut there.
_STOPS = {Mode.JSON_TEXT: '"', Mode.ARRAY_TEXT: '",}', Mode.NUMBER_ARRAY_TEXT: ",}", Mode.OTHER_TEXT: '",)'}
# Modes whose card numbers, when a whole token, are numbers (a record's int8 field, an int8[] element).
_NUMBER_TOKENS = frozenset({Mode.NUMBER_ARRAY_TEXT, Mode.OTHER_TEXT})
# How a value of a type the masker does not know starts when it has structure no "****" could keep
# (a record, a range, a point, an array).
_STRUCTURED = ("(", "[", "{", "<")
# What may stand next to a number that is a whole token (a JSON number, an element of a number array).
_NUMBER_CHARS = frozenset("0123456789.eE+-")


def rule_mode(type_oid: int, fmt: int) -> Mode:
    """How a column rule reads a value: numbers stay numbers in text format too (int4, float8, ...)."""
    return Mode.NUMBER_TEXT if fmt == 0 and type_oid in b.NUMBERS else mode_for(type_oid, fmt)


class ValueMasker:
    """Searches and replaces inside values; notes what it masked in ``found``, one name per value masked
    (detector "card", column rule "column:ssn", "lineage-unknown", "undecodable"), for the caller to count."""

    def __init__(self, detectors: dict[Detector, MaskAction], tokens: Tokenizer) -> None:
        self.actions = {d: a for d, a in detectors.items() if a is not MaskAction.OFF}
        self.enabled = frozenset(self.actions)
        self.tokens = tokens
        self.found: list[str] = []  # never rebound: cells keep a reference to it

    # ---------------------------------------------------------------- detectors inside values

    def scan(self, mode: Mode, value: bytes, *, prefiltered: bool = False) -> bytes | None:
        """The masked value, or None when nothing in it needs masking. Raises ValueError if undecodable.

        ``prefiltered``: the caller already knows the prefilter hit inside this value."""
        if mode in PREFILTERABLE:
            if not prefiltered and not candidates(value):
                return None
            if mode is Mode.BYTEA_BINARY:
                return self.scan_bytes(value)
            if mode is Mode.JSONB_BINARY:
                if value[:1] != b.JSONB_VERSION:
                    raise ValueError("unsupported jsonb version")
                out = self.json(value[1:].decode("utf-8", _SURROGATE))
                return None if out is None else b.JSONB_VERSION + out.encode("utf-8", _SURROGATE)
            s = value.decode("utf-8", _SURROGATE)
            if mode is Mode.NUMBER_TEXT:
                return self._number_text(s)
            if mode is Mode.JSON_TEXT:
                out = self.json(s)
            else:
                out = self.text(s, numbers=mode in _NUMBER_TOKENS, stop=_STOPS.get(mode, ""))
            return None if out is None else out.encode("utf-8", _SURROGATE)
        if mode is Mode.BYTEA_TEXT:
            return self._bytea_text(value)
        if mode is Mode.ARRAY_BINARY:
            return self._array(value, None)
        if Detector.CARD not in self.enabled:
            return None  # what follows only looks for card numbers hidden in binary numbers
        if mode is Mode.INT_BINARY:
            n = b.decode_int(value)
            if n < _CARD_MIN or not is_card_number_value(str(n)):
                return None
            return b.encode_int(self._card_number(str(n), 15), len(value))
        if mode is Mode.NUMERIC_BINARY:
            digits, dscale = b.decode_numeric(value)
            if digits is None or dscale or not is_card_number_value(digits):
                return None
            return b.encode_numeric(self._card_number(digits, 15), dscale)
        return None

    def text(self, s: str, *, json_context: bool = False, numbers: bool = False, stop: str = "") -> str | None:
        """Mask detector matches in a string. A card that is a whole number token (a bare JSON number with
        ``json_context``, an element with ``numbers``) is masked only with strict evidence, as a number."""
        matches = find(s, self.enabled)
        if not matches:
            return None
        parts: list[str] = []
        pos = 0
        changed = False
        for m in matches:
            end = m.end
            if stop and m.detector is Detector.PRIVATE_KEY:
                # An unterminated PEM block must not swallow the JSON/array/COPY structure after it.
                cut = min((i for i in (s.find(c, m.start) for c in stop) if i >= 0), default=end)
                end = min(end, cut)
            if end < pos:
                continue
            found = s[m.start : end]
            bare = numbers or (json_context and not _in_json_string(s, m.start))
            if m.detector is Detector.CARD and found.isdigit() and bare:
                if (m.encoding is not Encoding.PLAIN or not _whole_number(s, m.start, end)
                        or not is_card_number_value(found)):
                    continue  # a number that is not a card (negative, fractional, reversed, ...)
                parts += (s[pos : m.start], str(self._card_number(found, 15)))
                pos, changed = end, True
                continue
            new = self._replace(m.detector, m.encoding, found)
            if new is None:
                continue
            parts += (s[pos : m.start], new)
            pos, changed = end, True
        if not changed:
            return None
        parts.append(s[pos:])
        return "".join(parts)

    def json(self, s: str) -> str | None:
        """``text`` on a JSON document, which must still parse afterwards (or it is replaced whole)."""
        out = self.text(s, json_context=True, stop='"')
        if out is None:
            return None
        try:
            json.loads(out)
        except ValueError:
            return _JSON_REDACTED
        return out

    def scan_bytes(self, raw: bytes) -> bytes | None:
        """Detectors inside raw bytes (bytea), read as UTF-8 where they are; the same bytes elsewhere."""
        if not candidates(raw):
            return None
        out = self.text(raw.decode("utf-8", _SURROGATE))
        return None if out is None else out.encode("utf-8", _SURROGATE)

    def _replace(self, detector: Detector, encoding: Encoding, found: str) -> str | None:
        """What replaces one match, written the way the match was (backwards, hex, base64)."""
        if encoding is Encoding.PLAIN:
            self.found.append(detector.value)
            return mask_text(self.actions[detector], found, normalize(detector, found), self.tokens)
        try:
            inner = decode(encoding, found)
        except ValueError:
            return None
        if encoding is Encoding.REVERSED:
            self.found.append(detector.value)
            masked = mask_text(self.actions[detector], inner, normalize(detector, inner), self.tokens)
        else:
            masked = self.text(inner) or inner  # counts what it masks
        return encode(encoding, masked, found)

    def _number_text(self, s: str) -> bytes | None:
        digits = s.strip()
        if Detector.CARD not in self.enabled or not is_card_number_value(digits):
            return None
        return str(self._card_number(digits, 15)).encode()

    def _card_number(self, digits: str, width: int) -> int:
        """A card number's numeric replacement (callers check that the card detector is on)."""
        self.found.append(Detector.CARD.value)
        return mask_number(self.actions[Detector.CARD], normalize(Detector.CARD, digits), self.tokens, width)

    def _bytea_text(self, value: bytes) -> bytes | None:
        if value.startswith(b"\\x"):
            new = self.scan_bytes(bytes.fromhex(value[2:].decode("ascii")))
            return None if new is None else b"\\x" + new.hex().encode()
        new = self.scan_bytes(unescape_bytea(value))
        return None if new is None else escape_bytea(new)

    def _array(self, value: bytes, rule: MaskAction | None, counted: str = "") -> bytes | None:
        header, elem, elements = b.decode_array(value)
        elem_mode = mode_for(elem, 1)
        changed = False
        for i, e in enumerate(elements):
            if e is None:
                continue
            try:
                new = self.scan(elem_mode, e) if rule is None else self.apply(rule, elem, 1, e, counted)
            except (ValueError, struct.error, UnicodeError):
                self.found.append(UNDECODABLE)
                elements[i], changed = None, True
                continue
            if new is not None or rule is not None:
                elements[i], changed = new, True
        return b.encode_array(header, elements) if changed else None

    # ---------------------------------------------------------------- column rules (whole values)

    def apply(self, action: MaskAction, type_oid: int, fmt: int, value: bytes, counted: str) -> bytes | None:
        """Replace a whole value under a column rule; None means "send NULL" (no safe replacement)."""
        mode = rule_mode(type_oid, fmt)
        if mode is Mode.ARRAY_BINARY:  # counted per element
            out = self._array(value, action, counted)
            return value if out is None else out
        self.found.append(counted)
        if mode in (Mode.NUMBER_TEXT, Mode.INT_BINARY, Mode.NUMERIC_BINARY, Mode.FLOAT_BINARY):
            return self._apply_number(action, type_oid, mode, value)
        if mode in (Mode.BYTEA_TEXT, Mode.BYTEA_BINARY):
            raw = value if mode is Mode.BYTEA_BINARY else _bytea_bytes(value)
            if action is MaskAction.PARTIAL and not _is_utf8(raw):
                action = MaskAction.REDACT  # "keep the last four characters" means nothing in binary data
            new = mask_bytes(action, raw, raw, self.tokens)
            return new if mode is Mode.BYTEA_BINARY else b"\\x" + new.hex().encode()
        if mode is Mode.OTHER_TEXT and value.lstrip()[:1].decode("latin-1") in _STRUCTURED:
            return None
        if mode in (Mode.TEXT, Mode.OTHER_TEXT, Mode.JSON_TEXT, Mode.JSONB_BINARY):
            if mode is Mode.JSONB_BINARY and value[:1] != b.JSONB_VERSION:
                return None
            raw = value[1:] if mode is Mode.JSONB_BINARY else value
            s = raw.decode("utf-8", _SURROGATE)
            masked = mask_text(action, s, s, self.tokens)
            if mode in (Mode.TEXT, Mode.OTHER_TEXT):
                return masked.encode("utf-8", _SURROGATE)
            encoded = json.dumps(masked).encode()
            return b.JSONB_VERSION + encoded if mode is Mode.JSONB_BINARY else encoded
        return None

    def _apply_number(self, action: MaskAction, type_oid: int, mode: Mode, value: bytes) -> bytes | None:
        width = {b.INT2: 4, b.INT4: 9}.get(type_oid, 15)
        if mode is Mode.NUMBER_TEXT:
            return str(mask_number(action, value.decode("ascii").strip(), self.tokens, width)).encode()
        if mode is Mode.INT_BINARY:
            return b.encode_int(mask_number(action, str(b.decode_int(value)), self.tokens, width), len(value))
        if mode is Mode.NUMERIC_BINARY:
            digits, dscale = b.decode_numeric(value)
            return b.encode_numeric(mask_number(action, digits or "0", self.tokens, width), dscale)
        number = float(
            mask_number(action, repr(struct.unpack("!d" if len(value) == 8 else "!f", value)[0]), self.tokens, 6)
        )
        return struct.pack("!d" if len(value) == 8 else "!f", number)


# ---------------------------------------------------------------------------------------- bytea text

_OCTAL = re.compile(rb"\\(\\|[0-3][0-7]{2})")


def unescape_bytea(value: bytes) -> bytes:
    """bytea's escape output format (``bytea_output = escape``) to bytes."""
    return _OCTAL.sub(lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1), 8)]), value)


def escape_bytea(raw: bytes) -> bytes:
    """Bytes in bytea's escape format, as the server writes it."""
    return b"".join(
        b"\\\\" if c == 0x5C else bytes([c]) if 0x20 <= c < 0x7F else b"\\%03o" % c for c in raw
    )


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bytea_bytes(value: bytes) -> bytes:
    return bytes.fromhex(value[2:].decode("ascii")) if value.startswith(b"\\x") else unescape_bytea(value)


# ---------------------------------------------------------------------------------------- helpers


def _in_json_string(s: str, pos: int) -> bool:
    """Whether ``pos`` lies inside a JSON string literal (quotes before it, escapes honoured)."""
    inside = False
    i = 0
    while True:
        j = s.find('"', i, pos)
        if j < 0:
            return inside
        k = j
        while k > 0 and s[k - 1] == "\\":
            k -= 1
        if (j - k) % 2 == 0:
            inside = not inside
        i = j + 1


def _whole_number(s: str, start: int, end: int) -> bool:
    """Whether ``s[start:end]`` is a whole number token: no sign, fraction or exponent around it."""
    return (start == 0 or s[start - 1] not in _NUMBER_CHARS) and (end == len(s) or s[end] not in _NUMBER_CHARS)

"""Masking one value: how a column's values are read, searched and replaced, by type and format.

Each result column gets a ``Mode`` once, from its type oid and format code. What a replacement looks like
depends on what the client will decode: a string stays a string; an int8/numeric (text or binary) and a
bare JSON number stay numbers; a binary jsonb keeps its version byte. A value that must be masked but
cannot be decoded, or whose type has no safe replacement (a uuid, a date, bytea, ...), becomes NULL,
the only value every client can decode for every type (fail closed).
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum

from shared.masking.actions import Tokenizer, mask_number, mask_text
from shared.masking.detectors import Detector, candidates, find, is_card_number, normalize
from shared.masking.rules import MaskAction
from shared.pg.masking import binary as b

UNDECODABLE = "undecodable"  # count key for fail-closed replacements
_SURROGATE = "surrogateescape"  # round-trips bytes that are not UTF-8 untouched
_CARD_MIN = 10**12  # no card number is smaller than 13 digits


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


def mode_for(type_oid: int, fmt: int) -> Mode:
    if fmt == 0:
        if type_oid in (b.INT8, b.NUMERIC):  # int2/int4 cannot hold 13 digits
            return Mode.NUMBER_TEXT
        if type_oid in (b.JSON, b.JSONB):
            return Mode.JSON_TEXT
        if type_oid in (1016, 1231):
            return Mode.NUMBER_ARRAY_TEXT
        if type_oid in b.ARRAY_ELEMENT:
            return Mode.ARRAY_TEXT
        return Mode.SKIP if type_oid in b.NEVER_SENSITIVE_TEXT else Mode.TEXT
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
    {Mode.TEXT, Mode.NUMBER_TEXT, Mode.JSON_TEXT, Mode.ARRAY_TEXT, Mode.NUMBER_ARRAY_TEXT, Mode.JSONB_BINARY}
)
# Binary modes that hide digits (int8, numeric, arrays of them) and so are decoded on every row.
ALWAYS_DECODE = frozenset({Mode.INT_BINARY, Mode.NUMERIC_BINARY, Mode.ARRAY_BINARY})


# Characters that end a value's structure; an unterminated PEM block is cut there.
_STOPS = {Mode.JSON_TEXT: '"', Mode.ARRAY_TEXT: '",}', Mode.NUMBER_ARRAY_TEXT: ",}"}


def rule_mode(type_oid: int, fmt: int) -> Mode:
    """How a column rule reads a value: numbers stay numbers in text format too (int4, float8, ...)."""
    return Mode.NUMBER_TEXT if fmt == 0 and type_oid in b.NUMBERS else mode_for(type_oid, fmt)


class ValueMasker:
    """Searches and replaces inside values; notes what it masked in ``found``, one name per value masked
    (detector "card", column rule "column:ssn", "undecodable"), for the caller to count."""

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
            if mode is Mode.JSONB_BINARY:
                if value[:1] != b.JSONB_VERSION:
                    raise ValueError("unsupported jsonb version")
                out = self.text(value[1:].decode("utf-8", _SURROGATE), json_context=True, stop='"')
                return None if out is None else b.JSONB_VERSION + out.encode("utf-8", _SURROGATE)
            s = value.decode("utf-8", _SURROGATE)
            if mode is Mode.NUMBER_TEXT:
                return self._number_text(s)
            out = self.text(
                s,
                json_context=mode is Mode.JSON_TEXT,
                numbers=mode is Mode.NUMBER_ARRAY_TEXT,
                stop=_STOPS.get(mode, ""),
            )
            return None if out is None else out.encode("utf-8", _SURROGATE)
        if mode is Mode.ARRAY_BINARY:
            return self._array(value, None)
        if Detector.CARD not in self.enabled:
            return None  # what follows only looks for card numbers hidden in binary numbers
        if mode is Mode.INT_BINARY:
            n = b.decode_int(value)
            if abs(n) < _CARD_MIN or not is_card_number(str(abs(n))):
                return None
            return b.encode_int(self._card_number(str(n), 15), len(value))
        if mode is Mode.NUMERIC_BINARY:
            digits, dscale = b.decode_numeric(value)
            if digits is None or not is_card_number(digits.lstrip("-")):
                return None
            return b.encode_numeric(self._card_number(digits, 15), dscale)
        return None

    def text(
        self, s: str, *, json_context: bool = False, numbers: bool = False, stop: str = "", delimiter: str = ""
    ) -> str | None:
        """Mask detector matches in a string. In JSON, a matched bare number becomes a JSON string; with
        ``numbers`` (int8[] text) or ``delimiter`` (a whole COPY field), a card becomes a number."""
        matches = find(s, self.enabled)
        if not matches:
            return None
        parts: list[str] = []
        pos = 0
        for m in matches:
            end = m.end
            if stop and m.detector is Detector.PRIVATE_KEY:
                # An unterminated PEM block must not swallow the JSON/array/COPY structure after it.
                cut = min((i for i in (s.find(c, m.start) for c in stop) if i >= 0), default=end)
                end = min(end, cut)
            if end < pos:
                continue
            parts.append(s[pos : m.start])
            found = s[m.start : end]
            as_number = (
                m.detector is Detector.CARD
                and found.isdigit()
                and (numbers or (delimiter and _whole_field(s, m.start, end, delimiter)))
            )
            if as_number:
                parts.append(str(self._card_number(found, 15)))
            else:
                action = self.actions[m.detector]
                new = mask_text(action, found, normalize(m.detector, found), self.tokens)
                bare = json_context and found[:1].isdigit() and not _in_json_string(s, m.start)
                parts.append(json.dumps(new) if bare else new)
                self.found.append(m.detector.value)
            pos = end
        parts.append(s[pos:])
        return "".join(parts)

    def _number_text(self, s: str) -> bytes | None:
        digits = s.strip()
        if Detector.CARD not in self.enabled or not is_card_number(digits.lstrip("+-")):
            return None
        return str(self._card_number(digits, 15)).encode()

    def _card_number(self, digits: str, width: int) -> int:
        """A card number's numeric replacement (callers check that the card detector is on)."""
        self.found.append(Detector.CARD.value)
        return mask_number(self.actions[Detector.CARD], normalize(Detector.CARD, digits), self.tokens, width)

    def _array(self, value: bytes, rule: MaskAction | None, column: str = "") -> bytes | None:
        header, elem, elements = b.decode_array(value)
        elem_mode = mode_for(elem, 1)
        changed = False
        for i, e in enumerate(elements):
            if e is None:
                continue
            try:
                new = self.scan(elem_mode, e) if rule is None else self.apply(rule, elem, 1, e, column)
            except (ValueError, struct.error):
                self.found.append(UNDECODABLE)
                elements[i], changed = None, True
                continue
            if new is not None:
                elements[i], changed = new, True
        return b.encode_array(header, elements) if changed else None

    # ---------------------------------------------------------------- column rules (whole values)

    def apply(self, action: MaskAction, type_oid: int, fmt: int, value: bytes, column: str) -> bytes | None:
        """Replace a whole value under a column rule; None means "send NULL" (no safe replacement)."""
        mode = rule_mode(type_oid, fmt)
        if mode is Mode.ARRAY_BINARY:  # counted per element
            out = self._array(value, action, column)
            return value if out is None else out
        self.found.append(f"column:{column}")
        if mode in (Mode.NUMBER_TEXT, Mode.INT_BINARY, Mode.NUMERIC_BINARY, Mode.FLOAT_BINARY):
            return self._apply_number(action, type_oid, mode, value)
        if mode in (Mode.TEXT, Mode.JSON_TEXT, Mode.JSONB_BINARY):
            if mode is Mode.JSONB_BINARY and value[:1] != b.JSONB_VERSION:
                return None
            raw = value[1:] if mode is Mode.JSONB_BINARY else value
            s = raw.decode("utf-8", _SURROGATE)
            new = mask_text(action, s, s, self.tokens)
            if mode is Mode.TEXT:
                return new.encode("utf-8", _SURROGATE)
            encoded = json.dumps(new).encode()
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


def _whole_field(s: str, start: int, end: int, delimiter: str) -> bool:
    before = s[start - 1] if start else delimiter
    after = s[end] if end < len(s) else delimiter
    return before == delimiter and after in (delimiter, "\n", "\r")

"""Column plans: what the masker does with each column of a result, decided once per RowDescription and
lineage (``lineage.sources_for``: which columns a rule covers, whole or by the rule's own action).

A plan holds one *cell* per column: a callable that takes a value's bytes and returns the wire piece that
replaces it (length word and new value, or NULL), or None when the value passes unchanged; columns that
can never change have no cell. Cells are specialised when the plan is made, so the per-row loop does no
type dispatch:

- a text column under a column rule (or masked whole by lineage) is a bytes transform (redact is a
  constant, partial a translate, token an HMAC), falling back to the string path for values that are not
  ASCII;
- a text column scanned by detectors first runs the value prefilter; when an '@' is all it saw in an
  ASCII value, only the e-mail detector can match and the value is masked as bytes; a value that is one
  whole address (an e-mail column) is recognised by one regex, before the prefilter;
- a text int8/numeric column is looked at only when a value is long enough to be a card number;
- every other combination goes through ``ValueMasker`` as it is, failing closed: a value that must be
  masked but cannot be decoded becomes NULL and is counted as "undecodable".

Cells note what they masked in the ``ValueMasker``'s ``found`` list (one name per masked value).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from shared.masking.actions import REDACTED, mask_bytes, partial_bytes
from shared.masking.detectors import EMAIL_AT, Detector, candidate_kinds, candidates, find_emails, is_lone_email
from shared.masking.rules import MaskAction, MaskingPolicy
from shared.pg.masking.coverage import ColumnSource
from shared.pg.masking.values import ALWAYS_DECODE, PREFILTERABLE, UNDECODABLE, Mode, ValueMasker, mode_for, rule_mode
from shared.pg.wire.messages import Field

Cell = Callable[[bytes], bytes | None]

_I32 = struct.Struct("!i")
_NULL = _I32.pack(-1)
_DECODE_ERRORS = (ValueError, struct.error, UnicodeError)
_CARD_DIGITS = 13  # no card number is shorter


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    name: str
    type_oid: int
    format: int
    mode: Mode
    source: ColumnSource | None  # a column rule (by lineage or by name) masks every value of the column


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    columns: tuple[Column, ...]
    active: Mapping[int, Column]  # columns that may need masking, by index
    forced: bool  # some active column must be decoded on every row (the buffer prefilter cannot tell)
    # The plan belongs to the masker that made it: its cells hold that masker's key and count for it.
    cells: tuple[Cell | None, ...] = ()  # by column index; None where the column never changes
    space: bytes = b""  # this plan's key prefix in the row memo

    @property
    def inert(self) -> bool:
        """No row of this result can ever change: the proxy may skip the masker for it entirely."""
        return not self.active

    def needs_rows(self, buffer_has_candidates: bool) -> bool:
        """Whether the DataRows of a buffer must go through ``mask_data_row``."""
        return bool(self.active) and (self.forced or buffer_has_candidates)


def build_plan(
    fields: Sequence[Field],
    policy: MaskingPolicy,
    values: ValueMasker,
    space: bytes,
    sources: Sequence[ColumnSource | None],
) -> ColumnPlan:
    columns = []
    for i, f in enumerate(fields):
        source = sources[i] if policy.enabled else None
        mode = mode_for(f.type_oid, f.format) if policy.enabled and values.enabled else Mode.SKIP
        columns.append(Column(i, f.name, f.type_oid, f.format, mode, source))
    active = {c.index: c for c in columns if c.source is not None or c.mode not in (Mode.SKIP, Mode.OPAQUE)}
    forced = any(c.source is not None or c.mode in ALWAYS_DECODE for c in active.values())
    cells = tuple(_cell(c, values) if c.index in active else None for c in columns)
    return ColumnPlan(tuple(columns), active, forced, cells, space)


def _wire(value: bytes | None) -> bytes:
    """A value as DataRow carries it: int32 length and bytes, or -1 for NULL."""
    return _NULL if value is None else _I32.pack(len(value)) + value


def _cell(col: Column, values: ValueMasker) -> Cell:
    source = col.source
    if source is not None:
        text = rule_mode(col.type_oid, col.format) is Mode.TEXT
        if text and (source.action is not MaskAction.TOKEN or values.tokens.keyed):
            return _text_rule(source.action, source.counted, values)
        return _rule(col, source, values)
    if col.mode is Mode.TEXT:
        return _text_scan(values)
    if col.mode is Mode.NUMBER_TEXT:
        return _number_scan(values)
    return _scan(col.mode, values, candidates if col.mode in PREFILTERABLE else None)


def _text_rule(action: MaskAction, counted: str, values: ValueMasker) -> Cell:
    """``ValueMasker.apply`` on a text value: ``mask_text`` of the value's characters, as bytes."""
    found, tokens = values.found, values.tokens
    if action is MaskAction.REDACT:
        redacted = _wire(REDACTED.encode())

        def redact(value: bytes) -> bytes:
            found.append(counted)
            return redacted

        return redact
    transform = partial_bytes if action is MaskAction.PARTIAL else tokens.token

    def replace(value: bytes) -> bytes:
        found.append(counted)
        new = transform(value)
        return _I32.pack(len(new)) + new

    return replace


def _rule(col: Column, source: ColumnSource, values: ValueMasker) -> Cell:
    action, counted = source.action, source.counted

    def apply(value: bytes) -> bytes:
        try:
            return _wire(values.apply(action, col.type_oid, col.format, value, counted))
        except _DECODE_ERRORS:
            # Fail closed: what cannot be read cannot be shown.
            values.found.append(UNDECODABLE)
            return _NULL

    return apply


def _scan(mode: Mode, values: ValueMasker, worth: Callable[[bytes], bool] | None) -> Cell:
    """Detectors inside a value of any mode; ``worth`` tells which values can hold a match at all."""

    def scan(value: bytes) -> bytes | None:
        if worth is not None and not worth(value):
            return None
        try:
            new = values.scan(mode, value, prefiltered=True)
        except _DECODE_ERRORS:
            values.found.append(UNDECODABLE)
            return _NULL
        return None if new is None else _wire(new)

    return scan


def _number_scan(values: ValueMasker) -> Cell:
    """Text int8/numeric: only a card number can match, and it has at least 13 digits."""
    general = _scan(Mode.NUMBER_TEXT, values, None)

    def scan(value: bytes) -> bytes | None:
        return None if len(value) < _CARD_DIGITS else general(value)

    return scan


def _text_scan(values: ValueMasker) -> Cell:
    found = values.found
    email = values.actions.get(Detector.EMAIL)
    address = _address_masker(email, values)
    general = _scan(Mode.TEXT, values, None)
    # Columns hold one kind of text: try the e-mail column's shortcut first while the last value took it.
    lone = address is not None

    def scan(value: bytes) -> bytes | None:
        nonlocal lone
        if lone and address is not None:
            if is_lone_email(value):  # the whole value is one address, and nothing else can match
                found.append(Detector.EMAIL.value)
                new = address(value)
                return _I32.pack(len(new)) + new
            lone = False
        kinds = candidate_kinds(value)
        if not kinds:
            return None
        if kinds == EMAIL_AT:  # only an e-mail can match
            if email is None:
                return None
            if address is not None and value.isascii():
                spans = find_emails(value)
                lone = spans == [(0, len(value))]
                return _mask_addresses(value, spans, address, found)
        return general(value)

    return scan


def _mask_addresses(
    value: bytes, spans: list[tuple[int, int]], address: Callable[[bytes], bytes], found: list[str]
) -> bytes | None:
    if not spans:
        return None
    parts: list[bytes] = []
    pos = 0
    for start, end in spans:
        parts += (value[pos:start], address(value[start:end]))
        found.append(Detector.EMAIL.value)
        pos = end
    parts.append(value[pos:])
    return _wire(b"".join(parts))


def _address_masker(action: MaskAction | None, values: ValueMasker) -> Callable[[bytes], bytes] | None:
    """What replaces an ASCII e-mail address (``mask_text`` of the address and its normalized form), or
    None when the bytes path cannot stand in for the string path."""
    tokens = values.tokens
    if action is None or (action is MaskAction.TOKEN and not tokens.keyed):
        return None
    if action is MaskAction.TOKEN:
        return lambda address: tokens.token(address.lower())
    return lambda address: mask_bytes(action, address, address, tokens)

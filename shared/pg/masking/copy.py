"""COPY TO STDOUT: rows split into fields, each field masked like a result column, then written back.

COPY has no RowDescription: its fields' lineage and options come from the COPY statement itself
(``copy_plan``), their types from the catalog when COPY names a table, and otherwise from what each value
looks like (a number, a bytea's ``\\x`` hex, a JSON document, an array): enough to give every masked value
a form its column's type accepts, so the masked output loads back with ``COPY ... FROM``. The server sends
one CopyData message per row, which is what ``CopyMasker.mask`` takes.

Text format: fields separated by the delimiter, backslash escapes, ``\\N`` for NULL. CSV: quotes (a
doubled quote or the escape character inside), NULL as the unquoted null string (empty by default).
Binary: the file header in the first message, then per row a field count and length-prefixed fields,
then the trailer.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pglast import ast

from shared.masking.detectors import candidates
from shared.masking.rules import MaskAction
from shared.pg.masking import binary as b
from shared.pg.masking.coverage import Col, ColumnSource, StatementRef, align, decide
from shared.pg.masking.lineage import LineageAnalyzer, statement_node
from shared.pg.masking.values import UNDECODABLE, Mode, ValueMasker, mode_for
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.messages import frame

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"
_SURROGATE = "surrogateescape"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_HEX_BYTEA = re.compile(r"\\x(?:[0-9A-Fa-f]{2})*")
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_TEXT_OUT = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


class UndecodableCopyData(ProtocolViolation):
    """A binary COPY tuple the masker cannot parse: the proxy must not forward it (fail closed)."""


@dataclass(frozen=True, slots=True)
class CopyFormat:
    """How COPY TO STDOUT rows look. ``kind`` comes from the COPY statement (text / csv / binary; the
    CopyOutResponse only says text or binary); ``statement`` is the COPY, for its options and lineage.
    ``column_types`` (binary COPY) gives fields' type oids when the caller knows them."""

    kind: str = "text"
    delimiter: str = ""
    column_types: tuple[int, ...] | None = None
    statement: StatementRef | None = None


@dataclass(frozen=True, slots=True)
class CopyOptions:
    kind: str
    delimiter: str
    null: str
    quote: str
    escape: str
    header: bool


def copy_options(fmt: CopyFormat, node: ast.CopyStmt | None) -> CopyOptions:
    """The format options of a COPY, from its statement where it parses (defaults otherwise)."""
    given: dict[str, object] = {}
    for option in (node.options or ()) if node is not None else ():
        if isinstance(option, ast.DefElem) and option.defname:
            arg = option.arg
            given[option.defname] = getattr(arg, "sval", getattr(arg, "boolval", True)) if arg is not None else True
    kind = fmt.kind
    csv = kind == "csv"
    delimiter = str(given.get("delimiter") or fmt.delimiter or ("," if csv else "\t"))
    quote = str(given.get("quote") or '"')
    header = given.get("header") not in (None, False, "false", "off", "0")
    return CopyOptions(
        kind,
        delimiter,
        str(given.get("null", "" if csv else "\\N")),
        quote,
        str(given.get("escape") or quote),
        bool(header) and kind != "binary",
    )


class CopyMasker:
    """Masks the rows of one COPY TO STDOUT."""

    def __init__(
        self,
        fmt: CopyFormat,
        values: ValueMasker,
        analyzer: LineageAnalyzer | None,
        rule_for: Callable[[str], MaskAction | None],
    ) -> None:
        node = None
        if fmt.statement is not None:
            parsed = statement_node(fmt.statement.text, fmt.statement.index)
            node = parsed if isinstance(parsed, ast.CopyStmt) else None
        self.options = copy_options(fmt, node)
        self.values = values
        self._rule_for = rule_for
        self._types = fmt.column_types
        self._outputs = None
        self._traced = analyzer is None  # no column rules: nothing to trace
        if analyzer is not None and node is not None:
            outputs, types = analyzer.copy_outputs(node)
            self._outputs, self._traced = outputs, outputs is not None
            self._types = types or self._types
        self._analyzer = analyzer
        self._sources: tuple[ColumnSource | None, ...] | None = None
        self._rows = 0

    def mask(self, data: bytes) -> bytes | None:
        """A new CopyData message for one CopyData body, or None when it passes through unchanged."""
        self._rows += 1
        if self.options.kind == "binary":
            return self._binary(data)
        if self.options.header and self._rows == 1:
            return None
        return self._text(data)

    def _sources_for(self, width: int) -> tuple[ColumnSource | None, ...]:
        sources = self._sources
        if sources is None or len(sources) != width:
            if self._analyzer is None:
                sources = (None,) * width
            else:
                outputs = self._outputs if self._traced else None
                flows = align(outputs, width)
                # Field names (for rules on result names) where every output is one known column.
                names = [o.name or "" if isinstance(o, Col) else "" for o in outputs or ()]
                if len(names) != width:
                    names = [""] * width
                sources = tuple(decide(f, None, names[i], self._rule_for) for i, f in enumerate(flows))
            self._sources = sources
        return sources

    # ------------------------------------------------------------ text and CSV

    def _text(self, data: bytes) -> bytes | None:
        line = data.decode("utf-8", _SURROGATE)
        end = len(line) - (1 if line.endswith("\n") else 0)
        split = _split_csv if self.options.kind == "csv" else _split_text
        spans = split(line, end, self.options)
        sources = self._sources_for(len(spans))
        if not any(sources) and not candidates(data):
            return None
        pieces: list[str] = []
        last = 0
        for i, (start, stop) in enumerate(spans):
            raw = line[start:stop]
            source = sources[i]
            if source is None and not candidates(raw.encode("utf-8", _SURROGATE)):
                continue
            value = self._decode(raw)
            if value is None:
                continue
            new = self._field(i, value, source)
            if new is not None:
                pieces += (line[last:start], new)
                last = stop
        if not pieces:
            return None
        pieces.append(line[last:])
        return frame(b"d", "".join(pieces).encode("utf-8", _SURROGATE))

    def _field(self, i: int, value: str, source: ColumnSource | None) -> str | None:
        """A field's masked text as the format writes it, or None when it stays as it is."""
        type_oid = (self._types[i] if self._types and i < len(self._types) else 0) or _shape_type(value)
        raw = value.encode("utf-8", _SURROGATE)
        try:
            if source is not None:
                new = self.values.apply(source.action, type_oid, 0, raw, source.counted)
                return self.options.null if new is None else self._encode(new.decode("utf-8", _SURROGATE))
            mode = mode_for(type_oid, 0)
            if mode is Mode.SKIP:
                return None  # a date, a boolean, ...: nothing a detector looks for fits in it
            new = self.values.scan(mode, raw)
        except (ValueError, struct.error, UnicodeError):
            self.values.found.append(UNDECODABLE)
            return self.options.null
        return None if new is None else self._encode(new.decode("utf-8", _SURROGATE))

    def _decode(self, raw: str) -> str | None:
        o = self.options
        if o.kind == "csv":
            if raw == o.null:
                return None
            if raw.startswith(o.quote) and len(raw) >= 2:
                inner = raw[1:-1]
                if o.escape != o.quote:
                    inner = inner.replace(o.escape + o.quote, o.quote).replace(o.escape + o.escape, o.escape)
                return inner.replace(o.quote * 2, o.quote)
            return raw
        if raw == o.null:
            return None
        return _unescape_text(raw)

    def _encode(self, value: str) -> str:
        o = self.options
        if o.kind == "csv":
            special = (o.delimiter, o.quote, "\n", "\r", o.escape)
            if value == "" or value == o.null or any(c in value for c in special if c):
                escaped = value.replace(o.escape, o.escape * 2) if o.escape != o.quote else value
                return o.quote + escaped.replace(o.quote, o.escape + o.quote) + o.quote
            return value
        out = "".join(_TEXT_OUT.get(c, c) for c in value)
        return out.replace(o.delimiter, "\\" + o.delimiter) if o.delimiter not in _TEXT_OUT else out

    # ------------------------------------------------------------ binary

    def _binary(self, data: bytes) -> bytes | None:
        pos = 0
        if data.startswith(_SIGNATURE):
            if len(data) < 19:
                raise UndecodableCopyData("truncated binary COPY header")
            pos = 19 + _I32.unpack_from(data, 15)[0]
        if data[pos:] in (b"", _TRAILER):
            return None
        try:
            (count,) = _I16.unpack_from(data, pos)
            sources = self._sources_for(count)
            hidden = self._types and any(mode_for(t, 1) in _HIDDEN for t in self._types)
            if not any(sources) and not hidden and not candidates(data):
                return None
            pieces, last, pos = [], 0, pos + 2
            for i in range(count):
                (n,) = _I32.unpack_from(data, pos)
                start, end = pos + 4, pos + 4 + max(n, 0)
                if n >= 0:
                    if end > len(data):
                        raise UndecodableCopyData("truncated binary COPY field")
                    new = self._binary_field(i, data[start:end], sources[i])
                    if new is not None:
                        pieces += [data[last:pos], new]
                        last = end
                pos = end
        except struct.error as e:
            raise UndecodableCopyData("truncated binary COPY tuple") from e
        if pos != len(data):
            raise UndecodableCopyData("binary COPY tuple has trailing bytes")
        return frame(b"d", b"".join([*pieces, data[last:]])) if pieces else None

    def _binary_field(self, i: int, value: bytes, source: ColumnSource | None) -> bytes | None:
        """A field's masked wire piece (length word and bytes, or -1 for NULL), or None when unchanged."""
        type_oid = (self._types[i] if self._types and i < len(self._types) else 0) or _binary_shape_type(value)
        try:
            if source is not None:
                if type_oid is None:  # unreadable and must be masked: NULL
                    self.values.found.append(source.counted)
                    return _NULL_FIELD
                new = self.values.apply(source.action, type_oid, 1, value, source.counted)
            elif type_oid is None:
                return None  # not text; without a type there is nothing to read
            else:
                new = self.values.scan(mode_for(type_oid, 1), value)
                if new is None:
                    return None
        except (ValueError, struct.error, UnicodeError) as e:
            raise UndecodableCopyData("undecodable binary COPY field") from e
        return _NULL_FIELD if new is None else _I32.pack(len(new)) + new


_NULL_FIELD = _I32.pack(-1)
_HIDDEN = frozenset({Mode.INT_BINARY, Mode.NUMERIC_BINARY, Mode.ARRAY_BINARY})


def _split_text(line: str, end: int, o: CopyOptions) -> list[tuple[int, int]]:
    """Field spans of a text-format row: delimiters not escaped by a backslash."""
    spans: list[tuple[int, int]] = []
    start = i = 0
    delimiter = o.delimiter
    while True:
        j = line.find(delimiter, i, end)
        k = line.find("\\", i, end)
        if 0 <= k < j or (k >= 0 and j < 0):
            i = k + 2
            continue
        if j < 0:
            spans.append((start, end))
            return spans
        spans.append((start, j))
        start = i = j + len(delimiter)


def _split_csv(line: str, end: int, o: CopyOptions) -> list[tuple[int, int]]:
    """Field spans of a CSV row (quoted fields keep their quotes: ``_decode`` removes them)."""
    spans: list[tuple[int, int]] = []
    i = 0
    while True:
        start = i
        if line.startswith(o.quote, i):
            i += 1
            while i < end:
                if line.startswith(o.escape, i) and o.escape != o.quote and i + 1 < end:
                    i += 2
                    continue
                if line.startswith(o.quote, i):
                    if o.escape == o.quote and line.startswith(o.quote, i + 1):
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
        j = line.find(o.delimiter, i, end)
        if j < 0:
            spans.append((start, end))
            return spans
        spans.append((start, j))
        i = j + len(o.delimiter)


def _unescape_text(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != "\\" or i + 1 >= len(raw):
            out.append(c)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in _TEXT_ESCAPES:
            out.append(_TEXT_ESCAPES[nxt])
            i += 2
        elif nxt.isdigit() and nxt < "8":
            digits = re.match(r"[0-7]{1,3}", raw[i + 1 :])
            assert digits is not None
            out.append(chr(int(digits.group(), 8)))
            i += 1 + len(digits.group())
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def _shape_type(value: str) -> int:
    """The type a text value of unknown type can be masked as and still load back: numbers stay numbers,
    bytea stays bytea, JSON stays JSON, arrays keep their braces; anything else is text."""
    if _NUMBER.fullmatch(value):
        return b.NUMERIC
    if value.startswith("\\x") and _HEX_BYTEA.fullmatch(value):
        return b.BYTEA
    if _is_json_document(value):
        return b.JSONB
    if value.startswith("{") and value.endswith("}"):
        return 1009  # text[]: masked in place, braces and separators kept
    return b.TEXT


def _binary_shape_type(value: bytes) -> int | None:
    """A binary field of unknown type: jsonb, and printable text (json and text send it as it is); anything
    else (binary numbers, dates, ...) cannot be read."""
    if value[:1] == b.JSONB_VERSION and value[1:2] in (b"{", b"["):
        return b.JSONB
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isprintable():
        return None
    return b.JSON if _is_json_document(text) else b.TEXT


def _is_json_document(text: str) -> bool:
    if text[:1] not in ("{", "[", '"'):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True

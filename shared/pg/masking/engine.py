"""The result masker: rewrites DataRow, CopyData and error fields on their way to the agent.

Theory of operation. The proxy keeps one ``ResultMasker`` per session. For each read buffer from the
server it asks ``prefilter(buffer)``: one pass of translations and substring searches over the whole
buffer. When it finds no candidate and the current ``ColumnPlan`` has no column that must be looked at on
every row (a column-name rule, or a binary int8/numeric column whose digits are not visible as bytes), the
whole buffer is forwarded untouched. Otherwise each DataRow body goes through ``mask_data_row``: a lookup
in the process-wide row memo (see ``memo``), else a walk of the row by offsets that hands each active
column's value to the cell the plan made for it (see ``plan``), and a re-framed message, or None when the
row must pass through byte-identical. RowDescription yields the plan (``on_row_description``); COPY TO
STDOUT has no column metadata, so ``mask_copy_data`` applies detectors only (see ``CopyFormat``).

Counts: what a row masked is a tuple of names (one per masked value) that travels with the memo entry, so
a row served from the memo counts the same as a row masked here; tuples are tallied per session and
expanded into a Counter only when ``counts`` is read.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.masking.actions import Tokenizer
from shared.masking.detectors import candidates
from shared.masking.rules import MaskingPolicy
from shared.pg.masking import memo as row_memo
from shared.pg.masking.plan import Column, ColumnPlan, build_plan
from shared.pg.masking.values import ALWAYS_DECODE, Mode, ValueMasker, mode_for
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.messages import Field, frame

__all__ = ["Column", "ColumnPlan", "CopyFormat", "ResultMasker", "UndecodableCopyData"]

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_TRAILER = b"\xff\xff"
# ErrorResponse / NoticeResponse fields that can quote data: message, detail, hint, context, query.
_ERROR_TEXT_FIELDS = "MDHWq"
_MAX_PLANS = 256
_MAX_TALLY = 256


@dataclass(frozen=True, slots=True)
class CopyFormat:
    """How COPY TO STDOUT rows look. ``kind`` comes from the COPY statement (text / csv / binary; the
    CopyOutResponse only says text or binary). Binary COPY fields are scanned as text when they are
    UTF-8; int8/numeric fields are decoded only when ``column_types`` gives their type oids."""

    kind: str = "text"
    delimiter: str = ""
    column_types: tuple[int, ...] | None = None

    @property
    def field_delimiter(self) -> str:
        return self.delimiter or ("," if self.kind == "csv" else "\t")


class UndecodableCopyData(ProtocolViolation):
    """A binary COPY tuple the masker cannot parse: the proxy must not forward it (fail closed)."""


class ResultMasker:
    """Masks one session's results under one policy.

    ``memo_bytes``: None (the default) shares the process-wide row memo with every masker of the same
    policy and key; a number gives this masker a memo of its own of that many bytes (0: none)."""

    def __init__(self, policy: MaskingPolicy, token_key: bytes | None = None, *, memo_bytes: int | None = None) -> None:
        if policy.enabled and policy.uses_tokens and not token_key:
            raise ValueError("masking policy uses 'token' but no token key was provided")
        self.policy = policy
        self.values = ValueMasker(policy.detectors if policy.enabled else {}, Tokenizer(token_key))
        self._found = self.values.found
        self._counts: Counter[str] = Counter()
        self._tally: dict[tuple[str, ...], int] = {}  # names masked per row -> rows
        self._plans: dict[tuple[Field, ...], ColumnPlan] = {}
        self._memo = row_memo.SHARED if memo_bytes is None else row_memo.RowMemo(memo_bytes) if memo_bytes else None
        self._identity = row_memo.identity(policy, token_key) if self._memo is not None else b""

    @property
    def counts(self) -> Counter[str]:
        """Masked values so far, by detector ("card", ...), column rule ("column:ssn") and "undecodable"."""
        self._fold_tally()
        self._settle()
        return self._counts

    def take_counts(self) -> dict[str, int]:
        """The counts since the last call (for a decision event), then reset."""
        if not (self._tally or self._found or self._counts):  # nothing masked: every statement asks
            return {}
        out = {k: v for k, v in self.counts.items() if v}
        self._counts.clear()
        return out

    def prefilter(self, data: bytes) -> bool:
        """True if any detector might match somewhere in ``data`` (a whole read buffer)."""
        return self.policy.enabled and candidates(data)

    # ---------------------------------------------------------------- query results

    def on_row_description(self, fields: Sequence[Field]) -> ColumnPlan:
        key = tuple(fields)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            space = self._memo.space(self._identity, key) if self._memo is not None else b""
            plan = self._plans[key] = build_plan(key, self.policy, self.values, space)
        return plan

    def mask_data_row(self, plan: ColumnPlan, body: bytes) -> bytes | None:
        """A new DataRow message, or None when the row needs nothing (forward it byte-identical).

        ``plan`` must come from this masker's ``on_row_description`` (its cells hold this masker's key)."""
        if not plan.active or (not plan.forced and not candidates(body)):
            return None  # no value of the row can hold a match
        memo = self._memo
        if memo is not None:
            key = plan.space + body
            hit = memo.get(key)
            if hit is not None:
                if hit[1]:
                    self._count(hit[1])
                return hit[0]
        found = self._found
        try:
            result = self._mask_data_row(plan, body)
        except BaseException:
            found.clear()  # the row is not sent, so nothing in it was masked
            raise
        names: tuple[str, ...] = ()
        if found:
            names = tuple(found)
            found.clear()
            self._count(names)
        if memo is not None:
            memo.put(key, (result, names))
        return result

    def _count(self, names: tuple[str, ...]) -> None:
        """Count one row's masked values (tallied per distinct tuple: cheaper per row than a Counter)."""
        tally = self._tally
        tally[names] = tally.get(names, 0) + 1
        if len(tally) > _MAX_TALLY:
            self._fold_tally()

    def _fold_tally(self) -> None:
        counts = self._counts
        for names, rows in self._tally.items():
            for name in names:
                counts[name] += rows
        self._tally.clear()

    def _settle(self) -> None:
        """Count what was masked outside rows (COPY data, error fields)."""
        self._counts.update(self._found)
        self._found.clear()

    def _mask_data_row(self, plan: ColumnPlan, body: bytes) -> bytes | None:
        cells = plan.cells
        pieces: list[bytes] = []
        last = 0
        pos = 2
        unpack = _I32.unpack_from
        try:
            if _I16.unpack_from(body)[0] != len(cells):
                raise ProtocolViolation("DataRow does not match its RowDescription")
            for cell in cells:
                n = unpack(body, pos)[0]
                pos += 4
                if n < 0:
                    if n != -1:
                        raise ProtocolViolation("invalid DataRow value length")
                elif cell is None:
                    pos += n
                else:
                    # A length past the end gives a short slice here, and the checks below reject the row.
                    end = pos + n
                    piece = cell(body[pos:end])
                    if piece is not None:
                        pieces += (body[last : pos - 4], piece)
                        last = end
                    pos = end
        except struct.error as e:
            raise ProtocolViolation("invalid DataRow") from e
        if pos != len(body):
            raise ProtocolViolation("invalid DataRow: trailing bytes or a value past its end")
        if not pieces:
            return None
        pieces.append(body[last:])
        out = b"".join(pieces)
        return b"D" + _I32.pack(len(out) + 4) + out

    # ---------------------------------------------------------------- COPY TO STDOUT

    def mask_copy_data(self, fmt: CopyFormat, data: bytes) -> bytes | None:
        """A new CopyData message for one CopyData body, or None when it passes through unchanged."""
        if not self.policy.enabled or not self.values.enabled:
            return None
        try:
            if fmt.kind == "binary":
                return self._copy_binary(fmt, data)
            return self._copy_text(fmt, data)
        finally:
            self._settle()

    def _copy_text(self, fmt: CopyFormat, data: bytes) -> bytes | None:
        if not candidates(data):
            return None
        s = data.decode("utf-8", "surrogateescape")
        delimiter = fmt.field_delimiter
        out = self.values.text(s, delimiter=delimiter, stop=delimiter + ('"' if fmt.kind == "csv" else ""))
        return None if out is None else frame(b"d", out.encode("utf-8", "surrogateescape"))

    def _copy_binary(self, fmt: CopyFormat, data: bytes) -> bytes | None:
        types = fmt.column_types
        if not (types and any(mode_for(t, 1) in ALWAYS_DECODE for t in types)) and not candidates(data):
            return None
        pos = 0
        if data.startswith(_COPY_SIGNATURE):
            if len(data) < 19:
                raise UndecodableCopyData("truncated binary COPY header")
            pos = 19 + _I32.unpack_from(data, 15)[0]
        if data[pos:] in (b"", _COPY_TRAILER):
            return None
        try:
            (count,) = _I16.unpack_from(data, pos)
            pieces, last, pos = [], 0, pos + 2
            for i in range(count):
                (n,) = _I32.unpack_from(data, pos)
                start, end = pos + 4, pos + 4 + max(n, 0)
                if n >= 0:
                    if end > len(data):
                        raise UndecodableCopyData("truncated binary COPY field")
                    new = self._copy_field(types[i] if types and i < len(types) else None, data[start:end])
                    if new is not None:
                        pieces += [data[last:pos], _I32.pack(len(new)) + new]
                        last = end
                pos = end
        except struct.error as e:
            raise UndecodableCopyData("truncated binary COPY tuple") from e
        if pos != len(data):
            raise UndecodableCopyData("binary COPY tuple has trailing bytes")
        return frame(b"d", b"".join([*pieces, data[last:]])) if pieces else None

    def _copy_field(self, type_oid: int | None, value: bytes) -> bytes | None:
        if type_oid is not None:
            mode = mode_for(type_oid, 1)
        else:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return None  # not text; without a type there is nothing to read
            mode = Mode.TEXT
        try:
            return self.values.scan(mode, value)
        except (ValueError, struct.error) as e:
            raise UndecodableCopyData("undecodable binary COPY field") from e

    # ---------------------------------------------------------------- errors and notices

    def mask_error_fields(self, fields: Mapping[str, str]) -> dict[str, str] | None:
        """ErrorResponse / NoticeResponse fields with values masked (a unique violation's DETAIL quotes the
        key), or None when nothing changed."""
        if not self.policy.enabled or not self.values.enabled:
            return None
        out = dict(fields)
        changed = False
        for code in _ERROR_TEXT_FIELDS:
            value = fields.get(code)
            if value and candidates(value.encode("utf-8", "surrogateescape")):
                new = self.values.text(value)
                if new is not None:
                    out[code], changed = new, True
        self._settle()
        return out if changed else None

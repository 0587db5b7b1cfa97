"""The result masker: rewrites DataRow, CopyData and error fields on their way to the agent.

Theory of operation. The proxy keeps one ``ResultMasker`` per session. For each read buffer from the
server it asks ``prefilter(buffer)``: one compiled bytes regex over the whole buffer. When it finds no
candidate and the current ``ColumnPlan`` has no column that must be looked at on every row (a column-name
rule, or a binary int8/numeric column whose digits are not visible as bytes), the whole buffer is
forwarded untouched. Otherwise each DataRow body goes through ``mask_data_row``; it walks the row by
offsets, decodes only the columns the plan marks, and returns a re-framed message, or None when the row
must pass through byte-identical. RowDescription yields the plan (``on_row_description``); COPY TO
STDOUT has no column metadata, so ``mask_copy_data`` applies detectors only (see ``CopyFormat``).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from shared.masking.actions import Tokenizer
from shared.masking.detectors import candidate_spans, candidates
from shared.masking.rules import MaskAction, MaskingPolicy
from shared.masking.values import ALWAYS_DECODE, UNDECODABLE, Mode, ValueMasker, mode_for
from shared.pgwire.errors import ProtocolViolation
from shared.pgwire.messages import Field, frame

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_NULL = _I32.pack(-1)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_TRAILER = b"\xff\xff"
# ErrorResponse / NoticeResponse fields that can quote data: message, detail, hint, context, query.
_ERROR_TEXT_FIELDS = "MDHWq"


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    name: str
    type_oid: int
    format: int
    mode: Mode
    rule: MaskAction | None  # a column-name rule masks every value of the column


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    columns: tuple[Column, ...]
    active: Mapping[int, Column]  # columns that may need masking, by index
    forced: bool  # some active column must be decoded on every row (the buffer prefilter cannot tell)

    @property
    def inert(self) -> bool:
        """No row of this result can ever change: the proxy may skip the masker for it entirely."""
        return not self.active

    def needs_rows(self, buffer_has_candidates: bool) -> bool:
        """Whether the DataRows of a buffer must go through ``mask_data_row``."""
        return bool(self.active) and (self.forced or buffer_has_candidates)


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


class _Memo:
    """A FIFO-bounded memo of masking results, bounded by the bytes it holds."""

    __slots__ = ("_budget", "_items", "_size")

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._items: dict[tuple[int, bytes], tuple[bytes | None, tuple[tuple[str, int], ...]]] = {}
        self._size = 0

    def get(self, key: tuple[int, bytes]) -> tuple[bytes | None, tuple[tuple[str, int], ...]] | None:
        return self._items.get(key)

    def put(self, key: tuple[int, bytes], value: tuple[bytes | None, tuple[tuple[str, int], ...]], size: int) -> None:
        if size > self._budget // 16:
            return  # huge rows are not worth keeping
        self._items[key] = value
        self._size += size
        while self._size > self._budget and self._items:
            oldest = next(iter(self._items))
            old_result, _ = self._items.pop(oldest)
            self._size -= len(oldest[1]) + (len(old_result) if old_result else 0)

    def clear(self) -> None:
        self._items.clear()
        self._size = 0


class ResultMasker:
    def __init__(self, policy: MaskingPolicy, token_key: bytes | None = None, *, memo_bytes: int = 4 << 20) -> None:
        if policy.enabled and policy.uses_tokens and not token_key:
            raise ValueError("masking policy uses 'token' but no token key was provided")
        self.policy = policy
        self.values = ValueMasker(policy.detectors if policy.enabled else {}, Tokenizer(token_key))
        self._plans: dict[tuple[Field, ...], ColumnPlan] = {}
        self._plan_serial: dict[int, int] = {}
        self._memo = _Memo(memo_bytes)
        self._memo_hits: dict[tuple[tuple[str, int], ...], int] = {}

    @property
    def counts(self) -> Counter[str]:
        """Masked values so far, by detector ("card", ...), column rule ("column:ssn") and "undecodable"."""
        for counts, times in self._memo_hits.items():
            for name, n in counts:
                self.values.counts[name] += n * times
        self._memo_hits.clear()
        return self.values.counts

    def take_counts(self) -> dict[str, int]:
        """The counts since the last call (for a decision event), then reset."""
        out = {k: v for k, v in self.counts.items() if v}
        self.values.counts.clear()
        return out

    def prefilter(self, data: bytes) -> bool:
        """True if any detector might match somewhere in ``data`` (a whole read buffer)."""
        return self.policy.enabled and candidates(data)

    # ---------------------------------------------------------------- query results

    def on_row_description(self, fields: Sequence[Field]) -> ColumnPlan:
        key = tuple(fields)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key)
            if len(self._plans) >= 256:
                self._plans.clear()
                self._plan_serial.clear()
                self._memo.clear()
            self._plans[key] = plan
        return plan

    def _plan(self, fields: tuple[Field, ...]) -> ColumnPlan:
        columns = []
        for i, f in enumerate(fields):
            rule = None
            if self.policy.enabled:
                name = f.name.lower()
                rule = next((r.action for r in self.policy.columns if fnmatchcase(name, r.name)), None)
                if rule is MaskAction.OFF:
                    rule = None
            mode = mode_for(f.type_oid, f.format) if self.policy.enabled and self.values.enabled else Mode.SKIP
            columns.append(Column(i, f.name, f.type_oid, f.format, mode, rule))
        active = {c.index: c for c in columns if c.rule is not None or c.mode not in (Mode.SKIP, Mode.OPAQUE)}
        forced = any(c.rule is not None or c.mode in ALWAYS_DECODE for c in active.values())
        return ColumnPlan(tuple(columns), active, forced)

    def mask_data_row(self, plan: ColumnPlan, body: bytes) -> bytes | None:
        """A new DataRow message, or None when the row needs nothing (forward it byte-identical).

        Masking is a pure function of (plan, row), so results are remembered (bounded, per masker, so
        per session): agents re-read the same rows, and a hit costs a dict lookup instead of a decode."""
        if not plan.active:
            return None
        serial = self._plan_serial.get(id(plan))
        if serial is None:
            serial = self._plan_serial[id(plan)] = len(self._plan_serial)
            self._memo.clear()  # serials restart when plans are dropped: never mix generations
        key = (serial, body)
        hit = self._memo.get(key)
        if hit is not None:
            result, counts = hit
            if counts:
                # Tallied per distinct count tuple and expanded when counts are read: cheaper per row.
                hits = self._memo_hits
                hits[counts] = hits.get(counts, 0) + 1
            return result
        saved, self.values.counts = self.values.counts, Counter()
        try:
            result = self._mask_data_row(plan, body)
            counts = tuple(self.values.counts.items())
        finally:
            saved.update(self.values.counts)
            self.values.counts = saved
        self._memo.put(key, (result, counts), len(body) + (len(result) if result else 0))
        return result

    def _mask_data_row(self, plan: ColumnPlan, body: bytes) -> bytes | None:
        active = plan.active
        # Prefilter hits locate the values worth decoding; a row without any skips the walk entirely.
        hits = sorted(candidate_spans(body))
        if not hits and not plan.forced:
            return None
        if len(body) < 2 or _I16.unpack_from(body)[0] != len(plan.columns):
            raise ProtocolViolation("DataRow does not match its RowDescription")
        pieces: list[bytes] = []
        last = 0
        pos = 2
        unpack = _I32.unpack_from
        size = len(body)
        hit = 0
        for i in range(len(plan.columns)):
            if pos + 4 > size:
                raise ProtocolViolation("invalid DataRow")
            (n,) = unpack(body, pos)
            start = pos + 4
            if n < 0:
                if n != -1:
                    raise ProtocolViolation("invalid DataRow value length")
                pos = start
                continue
            end = start + n
            if end > size:
                raise ProtocolViolation("invalid DataRow value length")
            col = active.get(i)
            if col is not None:
                while hit < len(hits) and hits[hit][1] <= start:
                    hit += 1
                flagged = hit < len(hits) and hits[hit][0] < end
                if flagged or col.rule is not None or col.mode in ALWAYS_DECODE:
                    changed, new = self._value(col, body[start:end])
                    if changed:
                        pieces.append(body[last:pos])
                        pieces.append(_NULL if new is None else _I32.pack(len(new)) + new)
                        last = end
            pos = end
        if pos != size:
            raise ProtocolViolation("invalid DataRow: trailing bytes")
        if not pieces:
            return None
        pieces.append(body[last:])
        return frame(b"D", b"".join(pieces))

    def _value(self, col: Column, value: bytes) -> tuple[bool, bytes | None]:
        """(changed, new value or None for NULL)."""
        try:
            if col.rule is not None:
                return True, self.values.apply(col.rule, col.type_oid, col.format, value, col.name)
            new = self.values.scan(col.mode, value, prefiltered=True)
        except (ValueError, struct.error, UnicodeError):
            # Fail closed: what cannot be read cannot be shown.
            self.values.counts[UNDECODABLE] += 1
            return True, None
        return (new is not None), new

    # ---------------------------------------------------------------- COPY TO STDOUT

    def mask_copy_data(self, fmt: CopyFormat, data: bytes) -> bytes | None:
        """A new CopyData message for one CopyData body, or None when it passes through unchanged."""
        if not self.policy.enabled or not self.values.enabled:
            return None
        if fmt.kind == "binary":
            return self._copy_binary(fmt, data)
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
        return out if changed else None

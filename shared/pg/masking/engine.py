"""The result masker: rewrites DataRow, CopyData and error fields on their way to the agent.

Theory of operation. The proxy keeps one ``ResultMasker`` per session. For each RowDescription the relay
gives it the statement that produced the result (``on_row_description(fields, statement)``); lineage
(``lineage.py``, under the target's catalog) says which columns a column rule covers, whole or by the
rule's own action, and the plan (``plan.py``) gets one cell per column. Plans are cached by the fields and
those decisions, so the same RowDescription under another lineage gets another plan (and another space in
the row memo). For each read buffer from the server the proxy asks ``prefilter(buffer)``: one pass of
translations and substring searches over the whole buffer. When it finds no candidate and the current
plan has no column that must be looked at on every row (a column rule, or a binary int8/numeric column
whose digits are not visible as bytes), the whole buffer is forwarded untouched. Otherwise each DataRow
body goes through ``mask_data_row``: a lookup in the process-wide row memo (see ``memo``), else a walk of
the row by offsets that hands each active column's value to the cell the plan made for it, and a
re-framed message, or None when the row must pass through byte-identical. COPY TO STDOUT has no column
metadata: its statement gives lineage and options (see ``copy.py``).

Schema changes: a statement that may change what relations mean (DDL, DO, CALL, ...) invalidates the
catalog (``statement_done``). Until its transaction ends (``ready`` with status 'I') the catalog cannot
see it: relations it created (CREATE TABLE, CREATE TABLE AS, SELECT INTO, CREATE VIEW) are layered over
the catalog from their own statements; after any other change, lineage through relations is unknown
(fail closed).

Counts: what a row masked is a tuple of names (one per masked value) that travels with the memo entry, so
a row served from the memo counts the same as a row masked here; tuples are tallied per session and
expanded into a Counter only when ``counts`` is read.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from functools import lru_cache

from shared.masking.actions import REDACTED, Tokenizer
from shared.masking.detectors import candidates
from shared.masking.rules import MaskAction, MaskingPolicy
from shared.pg.masking import memo as row_memo
from shared.pg.masking.catalog import Catalog, CatalogView, Relation
from shared.pg.masking.copy import CopyFormat, CopyMasker, UndecodableCopyData
from shared.pg.masking.coverage import LINEAGE_UNKNOWN, ColumnSource, StatementRef
from shared.pg.masking.lineage import LineageAnalyzer, shape
from shared.pg.masking.plan import Column, ColumnPlan, build_plan
from shared.pg.masking.values import ValueMasker
from shared.pg.sql.classify import classify
from shared.pg.sql.kinds import StatementKind
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.messages import Field, frame, parse_row_description

__all__ = ["Column", "ColumnPlan", "CopyFormat", "ResultMasker", "StatementRef", "UndecodableCopyData"]

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
# ErrorResponse / NoticeResponse fields that can quote data: message, detail, hint, context, query.
_ERROR_TEXT_FIELDS = "MDHWq"
_MAX_PLANS = 256
_MAX_TALLY = 256
_MAX_ANALYZERS = 64
# Errors about a value: data exceptions (class 22) and PL/pgSQL's (P0) quote it in the message,
# integrity violations (23) in the detail, as "(key)=(value)" or "contains (row values)"; messages of
# class 23 quote only identifiers (a constraint's name).
# The context field of what user code raised (RAISE in PL/pgSQL, an SQL function's statements).
_RAISED_IN = ("PL/pgSQL function", "SQL function", "PL/pgSQL inline code block")
_QUOTED_VALUES = {
    "22": re.compile(r'"(?:[^"]|"")*"'),
    "P0": re.compile(r'"(?:[^"]|"")*"'),
    "23": re.compile(r"=\((?:[^()]|\([^()]*\))*\)|contains \((?:[^()]|\([^()]*\))*\)"),
}
K = StatementKind
# Statements that may change what a relation, column or function name means.
SCHEMA_CHANGES = frozenset({
    K.DDL_CREATE, K.DDL_ALTER, K.DROP, K.CREATE_FUNCTION, K.DO_BLOCK, K.CALL, K.LOAD, K.EXECUTE, K.UNKNOWN,
})
# Kinds that never change the schema, whatever they hold (a statement of another kind is classified).
_PLAIN = frozenset(k.value for k in (
    K.SELECT, K.INSERT, K.UPDATE, K.DELETE, K.UPDATE_NO_WHERE, K.DELETE_NO_WHERE, K.MERGE, K.COPY_TO_CLIENT,
    K.COPY_FROM_CLIENT, K.SET, K.SHOW, K.TRANSACTION, K.PREPARE, K.DEALLOCATE, K.CURSOR, K.LISTEN, K.NOTIFY,
    K.LOCK, K.VACUUM, K.ANALYZE,
))
# One analyzer (and so one lineage cache) per catalog snapshot and set of rules, shared by sessions.
_ANALYZERS: dict[tuple[int, tuple[tuple[str, MaskAction], ...]], tuple[Catalog | None, LineageAnalyzer]] = {}


class ResultMasker:
    """Masks one session's results under one policy.

    ``catalog``: where the target's catalog is read (None: lineage through relations is unknown, so with
    column rules every column read from a relation is masked whole). ``memo_bytes``: None (the default)
    shares the process-wide row memo with every masker of the same policy and key; a number gives this
    masker a memo of its own of that many bytes (0: none)."""

    def __init__(
        self,
        policy: MaskingPolicy,
        token_key: bytes | None = None,
        *,
        catalog: CatalogView | None = None,
        memo_bytes: int | None = None,
    ) -> None:
        if policy.enabled and policy.uses_tokens and not token_key:
            raise ValueError("masking policy uses 'token' but no token key was provided")
        self.policy = policy
        self.catalog = catalog
        self.values = ValueMasker(policy.detectors if policy.enabled else {}, Tokenizer(token_key))
        self._found = self.values.found
        self._counts: Counter[str] = Counter()
        self._tally: dict[tuple[str, ...], int] = {}  # names masked per row -> rows
        self._plans: dict[tuple[tuple[Field, ...], tuple[ColumnSource | None, ...]], ColumnPlan] = {}
        self._plans_by_body: dict[tuple[bytes, tuple[str, int] | None, object], ColumnPlan] = {}
        self._memo = row_memo.SHARED if memo_bytes is None else row_memo.RowMemo(memo_bytes) if memo_bytes else None
        self._identity = row_memo.identity(policy, token_key) if self._memo is not None else b""
        self._rules = tuple((r.name, r.action) for r in policy.columns) if policy.enabled else ()
        self.rule_for = _rule_lookup(self._rules)
        # Relations this session's open transaction made, which the catalog cannot see yet (None: it changed
        # the schema in a way lineage cannot follow), and the analyzer that sees them.
        self._pending: list[Relation] | None = []
        self._pending_analyzer: tuple[Catalog | None, int, LineageAnalyzer] | None = None
        self._copy: tuple[CopyFormat, CopyMasker] | None = None

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

    def on_row_description(self, fields: Sequence[Field], statement: StatementRef | None) -> ColumnPlan:
        """The plan for a result, given the statement that produced it (None: not known, so with column
        rules every column whose origin RowDescription does not name is masked whole)."""
        sources = self.sources(fields, statement)
        key = (tuple(fields), sources)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            space = self._memo.space(self._identity, key) if self._memo is not None else b""
            plan = self._plans[key] = build_plan(key[0], self.policy, self.values, space, sources)
        return plan

    def plan_for(self, body: bytes, statement: StatementRef | None) -> ColumnPlan:
        """``on_row_description`` for a RowDescription body: agents repeat the same queries, so plans are
        remembered by the body's bytes and the statement's shape (its text with literals replaced)."""
        shaped = None
        if self._rules and statement is not None:
            shaped = (shape(statement.text), statement.index)
        key = (body, shaped, self.lineage_epoch)
        plan = self._plans_by_body.get(key)
        if plan is None:
            plan = self.on_row_description(parse_row_description(body), statement)
            if len(self._plans_by_body) >= _MAX_PLANS:
                self._plans_by_body.clear()
            self._plans_by_body[key] = plan
        return plan

    def sources(self, fields: Sequence[Field], statement: StatementRef | None) -> tuple[ColumnSource | None, ...]:
        """Which columns a column rule covers, by lineage (see ``coverage.sources_for``)."""
        analyzer = self.lineage()
        if analyzer is None:
            return (None,) * len(fields)
        catalog = self.catalog
        return analyzer.sources(
            statement,
            fields,
            pending=bool(self._pending),
            unknown_relation=catalog.unknown_relation if catalog is not None else None,
        )

    def lineage(self) -> LineageAnalyzer | None:
        """The analyzer for the current catalog, or None when the policy has no column rules."""
        if not self._rules:
            return None
        snapshot = self.catalog.snapshot if self.catalog is not None else None
        if self._pending is None:  # this transaction changed the schema in ways lineage cannot follow
            snapshot = None
        elif self._pending:
            return self._pending_lineage(snapshot)
        key = (id(snapshot), self._rules)
        entry = _ANALYZERS.get(key)
        if entry is None or entry[0] is not snapshot:
            if len(_ANALYZERS) >= _MAX_ANALYZERS:
                _ANALYZERS.clear()
            entry = _ANALYZERS[key] = (snapshot, LineageAnalyzer(snapshot, self.rule_for))
        return entry[1]

    def _pending_lineage(self, snapshot: Catalog | None) -> LineageAnalyzer:
        """This session's own analyzer: the catalog and the relations its open transaction made."""
        pending = self._pending or []
        known = self._pending_analyzer
        if known is None or known[0] is not snapshot or known[1] != len(pending):
            base = snapshot or Catalog()
            overlay = Catalog(base.relations + tuple(pending), base.functions, base.generation)
            known = self._pending_analyzer = (snapshot, len(pending), LineageAnalyzer(overlay, self.rule_for))
        return known[2]

    @property
    def lineage_epoch(self) -> object:
        """Changes whenever the same statement may get other lineage (a new catalog, a schema change)."""
        if not self._rules:
            return None
        snapshot = self.catalog.snapshot if self.catalog is not None else None
        pending = -1 if self._pending is None else len(self._pending)
        return (snapshot.generation if snapshot is not None else -1, pending)

    def statement_done(self, text: str, kind: str = "") -> None:
        """A statement finished: if it may have changed the schema, the catalog is read again, and until
        its transaction ends lineage sees the relations it made (or, for changes it cannot describe,
        nothing: lineage through relations is unknown). ``kind``: the statement's kind when guardrails
        classified it (saves a parse for plain DML)."""
        if not self._rules or not text or kind in _PLAIN:
            return
        if not any(c.kinds & SCHEMA_CHANGES for c in classify(text)):
            return
        if self.catalog is not None:
            self.catalog.invalidate()
        if self._pending is not None:
            analyzer = self.lineage()
            created = analyzer.created_relations(text) if analyzer is not None else None
            self._pending = None if created is None else self._pending + created

    def ready(self, tx_status: bytes) -> None:
        """ReadyForQuery: outside a transaction, this session's schema changes are committed (or gone)."""
        if self._pending != [] and tx_status == b"I":
            self._pending = []
            self._pending_analyzer = None
            if self.catalog is not None:
                self.catalog.invalidate()

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
        if not self.policy.enabled or not (self.values.enabled or self._rules):
            return None
        copy = self._copy
        if copy is None or copy[0] is not fmt:
            copy = self._copy = (fmt, CopyMasker(fmt, self.values, self.lineage(), self.rule_for))
        try:
            return copy[1].mask(data)
        finally:
            self._settle()

    # ---------------------------------------------------------------- errors and notices

    def mask_notification(self, body: bytes) -> bytes | None:
        """A NotificationResponse (``pg_notify``, a trigger's NOTIFY) with detectors applied to its payload,
        or None when nothing changed. Bytes throughout: the payload is in the session's encoding."""
        # NotificationResponse: int32 pid, cstring channel, cstring payload
        channel_end = body.find(b"\0", 4)
        payload_end = body.find(b"\0", channel_end + 1) if channel_end >= 0 else -1
        if payload_end < 0 or not self.policy.enabled or not self.values.enabled:
            return None
        new = self.values.scan_bytes(body[channel_end + 1 : payload_end])
        self._settle()
        if new is None:
            return None
        return frame(b"A", body[: channel_end + 1] + new.replace(b"\0", b"") + b"\0")

    def mask_error_fields(
        self, fields: Mapping[str, str], statement: StatementRef | None = None
    ) -> dict[str, str] | None:
        """ErrorResponse / NoticeResponse fields with values masked, or None when nothing changed.

        Detectors look into every text field (a unique violation's DETAIL quotes the key). When the
        ``statement`` reads a rule-covered column anywhere, or runs code the proxy cannot see into, or is
        not known (fail closed), what an error or notice quotes may be a value lineage cannot follow
        (``translate(card)::int``): an error about a value (SQLSTATE classes 22 data exception, 23
        integrity, P0 raised) has its quoted values redacted, and what PL/pgSQL or an SQL function raised
        or noticed (its context says so) has its message, detail and hint redacted whole."""
        if not self.policy.enabled:
            return None
        out = dict(fields)
        changed = False
        if self.values.enabled:
            for code in _ERROR_TEXT_FIELDS:
                value = fields.get(code)
                if value and candidates(value.encode("utf-8", "surrogateescape")):
                    new = self.values.text(value)
                    if new is not None:
                        out[code], changed = new, True
        analyzer = self.lineage()
        quoted = _QUOTED_VALUES.get(fields.get("C", "")[:2])
        raised = any(marker in fields.get("W", "") for marker in _RAISED_IN)
        if (
            analyzer is not None
            and (quoted is not None or raised)
            and (statement is None or analyzer.touches(statement.text, statement.index))
        ):
            redacted = False
            for code in "MDH" if raised else "MD":
                value = out.get(code, "")
                new = REDACTED if raised and value else quoted.sub(_redacted_quote, value) if quoted else value
                if new != value:
                    out[code], redacted = new, True
            if redacted:
                changed = True
                self._found.append(LINEAGE_UNKNOWN if statement is None else "error-value")
        self._settle()
        return out if changed else None


def _rule_lookup(rules: tuple[tuple[str, MaskAction], ...]) -> Callable[[str], MaskAction | None]:
    """The first rule whose glob matches a column name (case-insensitively); ``off`` means no rule."""

    @lru_cache(maxsize=4096)
    def rule_for(name: str) -> MaskAction | None:
        lowered = name.lower()
        action = next((a for glob, a in rules if fnmatchcase(lowered, glob)), None)
        return None if action is MaskAction.OFF else action

    return rule_for


def _redacted_quote(match: re.Match[str]) -> str:
    quoted = match.group()
    if quoted.startswith('"'):
        return '"****"'
    return "=(****)" if quoted.startswith("=") else "contains (****)"

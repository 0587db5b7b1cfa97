"""The session layer of an established PostgreSQL session: judge, rewrite, account; never do I/O.

Theory of operation. The I/O layer feeds each side's framed chunk in (``from_agent`` /
``from_backend``) and gets back what to write to the other side, plus ``events`` (decisions and
finished statements) for the recording and the audit trail.

Agent -> backend. Every Query and Parse is judged by the guardrails. A blocked statement never reaches
the backend: its text is swapped for a statement that cannot parse (``AIRLOCK_DENIED_<nonce>``), so the
*backend itself* raises the error at exactly that point of the stream. Transaction state is therefore
exactly what a server-side error gives (ReadyForQuery 'E' inside a block, 25P02 until ROLLBACK; the
extended protocol discards until Sync), and responses stay in order. When the backend's syntax error for
the nonce comes back, it is replaced by Airlock's own ErrorResponse (SQLSTATE 42501 naming the rule).
A simple Query holding several statements is judged statement by statement and refused whole if any is
blocked (nothing of it runs, as with a string that fails to parse). FunctionCall (the fast-path
protocol calls a function by OID, beyond any SQL rule) is refused the same way when guardrails apply.

Backend -> agent. Responses are matched to requests in order (a FIFO of expected responses), so each
DataRow is read against the RowDescription and result formats that apply to it: a simple Query's own
RowDescription, or for an Execute its portal's (from Describe, or the statement's description plus the
Bind's result formats). When masking is on and a portal was never described, a Describe is injected
before the Execute and its answer swallowed, so binary rows are never guessed at. Rows that need nothing
are forwarded byte-identical: a chunk with no change is forwarded as the same bytes object.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field

from shared.pg.masking.engine import ColumnPlan, CopyFormat, ResultMasker, StatementRef
from shared.pg.sql.classify import classify
from shared.pg.sql.engine import Decision, GuardrailEngine, first_block
from shared.pg.sql.kinds import ClassifiedStatement, StatementKind
from shared.pg.sql.prepared import PreparedStatements
from shared.pg.wire import messages as m
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Frame

DENIED_TOKEN = "AIRLOCK_DENIED_"
_FIRST_STATEMENT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse every statement of one agent chunk for a reason that is not a rule (e.g. strict recording
    could not make the statement durable). Quacks like a blocking ``Decision`` where the relay needs it."""

    sqlstate: str
    message: str
    statement: str = ""
    rule: str = ""

    def error_response(self) -> bytes:
        return m.build_error("ERROR", self.sqlstate, self.message)


Blocker = Decision | Refusal


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    decision: Decision
    protocol: str  # "simple" or "extended"


@dataclass(frozen=True, slots=True)
class StatementEvent:
    """One statement finished (or failed): what the audit trail records."""

    text: str
    kind: str
    decision: str  # allow / deny / hold / "" (no guardrails)
    rows: int | None
    duration_ns: int
    error_code: str | None
    rule: str = ""


@dataclass(frozen=True, slots=True)
class MaskEvent:
    counts: dict[str, int]


RelayEvent = DecisionEvent | StatementEvent | MaskEvent


@dataclass(slots=True)
class Output:
    to_peer: list[bytes] = field(default_factory=list)
    # Agent side: requests that each owe one ReadyForQuery (Query, Sync, FunctionCall); Terminate seen.
    requests: int = 0
    terminate: bool = False
    # Backend side: ReadyForQuery messages seen, and the last transaction status they carried.
    ready: int = 0
    tx_status: bytes = b""
    # Replies that go back to the side that sent (used for nothing yet; kept for holds).
    to_sender: list[bytes] = field(default_factory=list)
    events: list[RelayEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Statement:
    """What a statement of the stream is, for accounting and masking."""

    text: str
    kind: str
    decision: str
    rule: str
    started_ns: int
    copy_format: str | None = None


@dataclass(slots=True)
class _Prepared:
    """One Parse of a (named or unnamed) statement. Objects, not names: a name is reused by later
    Parses while responses to earlier ones are still on their way."""

    statement: _Statement
    fields: list[m.Field] | None = None  # from Describe('S')
    describing: bool = False


@dataclass(slots=True)
class _Portal:
    """One Bind of a portal."""

    prepared: _Prepared | None
    formats: tuple[int, ...]
    plan: ColumnPlan | None = None
    described: bool = False  # a Describe('P') answer is on its way or arrived
    has_plan: bool = False


@dataclass(slots=True)
class _Expect:
    """One request whose response the backend still owes, in order."""

    kind: str  # "query", "parse", "bind", "describe", "execute", "close", "sync", "call"
    statements: list[_Statement] = field(default_factory=list)  # query: one per statement; execute: one
    prepared: _Prepared | None = None  # describe('S')
    portal: _Portal | None = None  # describe('P') / execute
    swallow: bool = False  # an injected Describe: its answer is not the agent's
    done: int = 0  # query: statements of it already completed (simple Queries may be pipelined)


class Relay:
    """Sans-I/O relay for one session. ``guard`` and ``masker`` are optional (None = not configured)."""

    def __init__(self, guard: GuardrailEngine | None = None, masker: ResultMasker | None = None) -> None:
        self.guard = guard
        self.masker = masker
        self.prepared = PreparedStatements()
        self._expect: deque[_Expect] = deque()
        self._denials: dict[str, Blocker] = {}
        self._refusal: Refusal | None = None
        self._prepared: dict[str, _Prepared] = {}
        self._portals: dict[str, _Portal] = {}
        self._plan: ColumnPlan | None = None
        self._copy: CopyFormat | None = None
        self._next_masker: tuple[ResultMasker | None] | None = None  # set: replaces masker at the next 'Z'
        self.statements = 0

    def replace_masker(self, masker: ResultMasker | None) -> None:
        """Mask with ``masker`` from the next statement on (a new policy version, at grant renewal).

        A result being relayed keeps the plan its RowDescription got, so the swap waits for the next
        ReadyForQuery unless nothing is in flight. A portal described under the old masker keeps its
        plan; one described with no masker has none, and its rows end the session (fail closed)."""
        if masker is self.masker:
            self._next_masker = None
        elif not self._expect and self._plan is None:
            self._use_masker(masker)
        else:
            self._next_masker = (masker,)

    def _use_masker(self, masker: ResultMasker | None) -> None:
        self.masker = masker
        self._next_masker = None

    # ------------------------------------------------------------------ agent -> backend

    def from_agent(self, chunk: bytes, frames: list[Frame], now_ns: int, refuse: Refusal | None = None) -> Output:
        """``refuse``: no statement of this chunk may reach the backend (each gets that error instead)."""
        self._refusal = refuse
        out = Output()
        replaced: list[tuple[int, int, bytes]] = []  # (start, end, replacement) of whole messages
        for mtype, start, end in frames:
            handler = _AGENT_HANDLERS.get(mtype)
            if handler is None:
                if mtype == 88:  # 'X' Terminate
                    out.terminate = True
                continue
            if mtype in _REQUESTS:
                out.requests += 1
            replacement = handler(self, chunk[start:end], now_ns, out)
            if replacement is not None:
                replaced.append((start - 5, end, replacement))
        out.to_peer = _splice(chunk, replaced)
        return out

    def _on_query(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        sql = m.parse_query(body)
        self.prepared.on_simple_query()
        decisions: list[Decision] = []
        if self.guard is not None:
            decisions = self.guard.judge(sql, self.prepared)
            out.events.extend(DecisionEvent(d, "simple") for d in decisions)
        block = first_block(decisions) if decisions else None
        if decisions:
            statements = [
                _Statement(d.statement, d.kind.value, d.action.value, d.rule, now_ns, d.classified.copy_format)
                for d in decisions
            ]
        else:
            statements = [_Statement(sql, "", "", "", now_ns)]
        if block is not None:
            statements = [_Statement(block.statement, block.kind.value, block.action.value, block.rule, now_ns)]
        elif self._refusal is not None:
            statements = [_Statement(sql, statements[0].kind, "refuse", "", now_ns)]
        self._expect.append(_Expect("query", statements))
        blocker: Blocker | None = block or self._refusal
        return None if blocker is None else m.build_query(self._deny(blocker))

    def _on_parse(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        parse = m.parse_parse(body)
        self._expect.append(_Expect("parse"))
        if self.guard is None:
            self._prepared[parse.name] = _Prepared(_Statement(parse.query, "", "", "", now_ns))
            return None if self._refusal is None else m.build_parse(parse.name, self._deny(self._refusal))
        decision = self.guard.judge_parse(parse.name, parse.query, self.prepared)
        out.events.append(DecisionEvent(decision, "extended"))
        self._prepared[parse.name] = _Prepared(
            _Statement(
                parse.query,
                decision.kind.value,
                decision.action.value,
                decision.rule,
                now_ns,
                decision.classified.copy_format,
            )
        )
        blocker: Blocker | None = decision if decision.blocks else self._refusal
        return None if blocker is None else m.build_parse(parse.name, self._deny(blocker))

    def _on_bind(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        bind = m.parse_bind(body)
        self._expect.append(_Expect("bind"))
        self._portals[bind.portal] = _Portal(self._prepared.get(bind.statement), bind.result_formats)
        return None

    def _on_describe(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        kind, name = m.parse_describe_or_close(body)
        if kind == "S":
            prepared = self._prepared.get(name)
            if prepared is not None:
                prepared.describing = True
            self._expect.append(_Expect("describe", prepared=prepared))
        else:
            portal = self._portals.get(name)
            if portal is not None:
                portal.described = True
            self._expect.append(_Expect("describe", portal=portal))
        return None

    def _on_execute(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        name, _ = m.parse_execute(body)
        portal = self._portals.get(name)
        known = portal.prepared.statement if portal is not None and portal.prepared is not None else None
        statement = (
            _Statement(known.text, known.kind, known.decision, known.rule, now_ns, known.copy_format)
            if known
            else _Statement("", "", "", "", now_ns)
        )
        injected = None
        if (
            self.masker is not None
            and self.masker.policy.enabled
            and portal is not None
            and not (portal.described or (portal.prepared is not None and portal.prepared.describing))
        ):
            # Never guess how rows look: ask the backend, and keep its answer to ourselves.
            portal.described = True
            self._expect.append(_Expect("describe", portal=portal, swallow=True))
            injected = m.build_describe("P", name) + m.frame(b"E", body)
        self._expect.append(_Expect("execute", [statement], portal=portal))
        return injected

    def _on_close(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        kind, name = m.parse_describe_or_close(body)
        if kind == "S":
            self.prepared.close(name)
            self._prepared.pop(name, None)
        else:
            self._portals.pop(name, None)
        self._expect.append(_Expect("close"))
        return None

    def _on_sync(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        self._expect.append(_Expect("sync"))
        return None

    def _on_function_call(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        statement = _Statement("<fast-path function call>", StatementKind.UNKNOWN.value, "", "", now_ns)
        self._expect.append(_Expect("call", [statement]))
        blocker: Blocker | None = self._refusal
        if self.guard is not None:
            decision = self.guard.decide(_function_call_statement())
            out.events.append(DecisionEvent(decision, "function_call"))
            statement.decision, statement.rule = decision.action.value, decision.rule
            if decision.blocks:
                blocker = decision
        return None if blocker is None else m.build_query(self._deny(blocker))

    def _deny(self, decision: Blocker) -> str:
        nonce = secrets.token_hex(8)
        self._denials[nonce] = decision
        return f"{DENIED_TOKEN}{nonce}"

    # ------------------------------------------------------------------ backend -> agent

    def from_backend(self, chunk: bytes, frames: list[Frame], now_ns: int) -> Output:
        out = Output()
        masker = self.masker
        masking = masker is not None and masker.policy.enabled
        # A buffer with no candidate value anywhere needs no row decoding (column rules force it).
        scan_rows = masking and masker is not None and masker.prefilter(chunk)
        mask_row = masker.mask_data_row if masker is not None else _no_masking
        replaced: list[tuple[int, int, bytes]] = []
        # Whether this run of DataRows goes through the masker (``row_plan``, None: no): decided at its
        # first row, again after any other message (a RowDescription or a completion changes the plan).
        row_plan: ColumnPlan | None = None
        decided = not masking
        for mtype, start, end in frames:
            if mtype == 68:  # 'D' DataRow: the hot path
                if not decided:
                    plan = self._plan if self._plan is not None else self._execute_plan()
                    row_plan = plan if plan.active and (scan_rows or plan.forced) else None
                    decided = True
                if row_plan is None:
                    continue
                new = mask_row(row_plan, chunk[start:end])
                if new is not None:
                    replaced.append((start - 5, end, new))
                continue
            if masking:
                decided = False
            replacement = self._on_backend_message(mtype, chunk[start:end], now_ns, out)
            if replacement is not None:
                replaced.append((start - 5, end, replacement))
        out.to_peer = _splice(chunk, replaced)
        return out

    def _execute_plan(self) -> ColumnPlan:
        """The plan for rows of the Execute at the head of the queue (fail closed if unknown)."""
        head = self._expect[0] if self._expect else None
        portal = head.portal if head is not None and head.kind == "execute" else None
        plan = None
        if portal is not None:
            if portal.plan is None and portal.prepared is not None and portal.prepared.fields is not None:
                fields = _apply_formats(portal.prepared.fields, portal.formats)
                portal.plan = self._make_plan(fields, _portal_statement(portal))
            plan = portal.plan
        if plan is None:
            raise ProtocolViolation("Airlock cannot tell how this result is formatted; refusing to relay it")
        self._plan = plan
        return plan

    def _on_backend_message(self, mtype: int, body: bytes, now_ns: int, out: Output) -> bytes | None:
        head = self._expect[0] if self._expect else None
        kind = head.kind if head else ""
        if mtype == ord("T"):
            if kind != "describe":
                self._plan = self._result_plan(body)  # a simple Query's result set
                return None
            # Column shapes matter only to the masker: without one, skip building them.
            fields = m.parse_row_description(body) if self.masker is not None else []
            if head is not None:
                self._expect.popleft()
                if head.prepared is not None:
                    head.prepared.fields = fields
                elif head.portal is not None:
                    head.portal.plan = self._make_plan(fields, _portal_statement(head.portal))
                return b"" if head.swallow else None
        if mtype == ord("n"):  # NoData
            if kind == "describe" and head is not None:
                self._expect.popleft()
                if head.prepared is not None:
                    head.prepared.fields = []
                elif head.portal is not None:
                    head.portal.plan = self._make_plan([], None)
                return b"" if head.swallow else None
            return None
        if mtype == ord("t"):  # ParameterDescription (first half of Describe S)
            return None
        if mtype in (ord("1"), ord("2"), ord("3")):  # ParseComplete, BindComplete, CloseComplete
            if self._expect:
                self._expect.popleft()
            return None
        if mtype in (ord("C"), ord("I"), ord("s")):
            self._complete(m.parse_command_complete(body) if mtype == ord("C") else "", None, now_ns, out)
            return None
        if mtype == ord("E"):
            return self._on_error(body, now_ns, out)
        if mtype == ord("N"):
            return self._mask_error(mtype, body, self._result_statement())
        if mtype == ord("Z"):
            out.ready += 1
            out.tx_status = body[:1]
            self._on_ready(now_ns, out)
            return None
        if mtype == ord("H"):  # CopyOutResponse
            self._copy = self._copy_format(body)
            return None
        if mtype == ord("d") and self._copy is not None and self.masker is not None and self.masker.policy.enabled:
            return self.masker.mask_copy_data(self._copy, body)
        if mtype == ord("c"):
            self._copy = None
        if mtype == ord("A") and self.masker is not None:  # NotificationResponse: its payload may quote data
            return self.masker.mask_notification(body)
        return None

    def _current_statement(self) -> _Statement | None:
        head = self._expect[0] if self._expect else None
        if head is None or not head.statements:
            return None
        if head.kind == "query":
            return head.statements[min(head.done, len(head.statements) - 1)]
        return head.statements[0]

    def _complete(self, tag: str, error: str | None, now_ns: int, out: Output) -> None:
        """A statement finished: CommandComplete / EmptyQuery / PortalSuspended / ErrorResponse."""
        statement = self._current_statement()
        head = self._expect[0] if self._expect else None
        if statement is not None:
            self.statements += 1
            if self.masker is not None and error is None:  # a statement that failed changed no schema
                self.masker.statement_done(statement.text, statement.kind)
            out.events.append(
                StatementEvent(
                    statement.text[:_FIRST_STATEMENT_CHARS],
                    statement.kind,
                    statement.decision,
                    _rows(tag),
                    max(now_ns - statement.started_ns, 0),
                    error,
                    statement.rule,
                )
            )
        if head is not None and head.kind == "query":
            head.done += 1
            self._plan = None
        elif head is not None and head.kind == "execute":
            self._expect.popleft()
            self._plan = None
        self._copy = None

    def _on_error(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        source = self._result_statement()  # before _complete moves on to the next one
        fields = m.parse_error_fields(body)
        replacement: bytes | None = None
        denied: Blocker | None = None
        if self._denials and DENIED_TOKEN in fields.get("M", ""):
            nonce = fields["M"].split(DENIED_TOKEN, 1)[1][:16]
            denied = self._denials.pop(nonce, None)
            if denied is not None:
                replacement = denied.error_response()
                fields = m.parse_error_fields(replacement[5:])
        code = fields.get("C")
        head = self._expect[0] if self._expect else None
        if head is not None and head.kind in ("query", "call"):
            self._complete("", code, now_ns, out)
        else:
            statement = self._current_statement() if head is not None and head.kind == "execute" else None
            if statement is not None:
                self._complete("", code, now_ns, out)
            elif head is not None and head.kind == "parse" and denied is not None:
                # A denied Parse: the statement it would have prepared is accounted as refused.
                self.statements += 1
                kind, action = (
                    (denied.kind.value, denied.action.value) if isinstance(denied, Decision) else ("", "refuse")
                )
                out.events.append(
                    StatementEvent(denied.statement[:_FIRST_STATEMENT_CHARS], kind, action, None, 0, code, denied.rule)
                )
            # The backend now discards everything up to the next Sync: so do our expectations.
            while self._expect and self._expect[0].kind != "sync":
                self._expect.popleft()
        if replacement is not None:
            return replacement
        return self._mask_error(ord("E"), body, source)

    def _on_ready(self, now_ns: int, out: Output) -> None:
        while self._expect:
            head = self._expect.popleft()
            if head.kind in ("query", "sync", "call"):
                break
        self._denials.clear()
        self._plan = None
        self._copy = None
        if self.masker is not None and self.masker.policy.enabled:
            self.masker.ready(out.tx_status)
            counts = self.masker.take_counts()
            if counts:
                out.events.append(MaskEvent(counts))
        if self._next_masker is not None:
            self._use_masker(self._next_masker[0])

    def _mask_error(self, mtype: int, body: bytes, statement: StatementRef | None) -> bytes | None:
        if self.masker is None or not self.masker.policy.enabled:
            return None
        fields = m.parse_error_fields(body)
        masked = self.masker.mask_error_fields(fields, statement)
        return None if masked is None else m.build_error_fields(bytes([mtype]), masked)

    def _result_plan(self, body: bytes) -> ColumnPlan | None:
        """The plan for a simple Query's RowDescription body and the statement that produced it."""
        if self.masker is None or not self.masker.policy.enabled:
            return None
        return self.masker.plan_for(body, self._result_statement())

    def _make_plan(self, fields: list[m.Field], statement: StatementRef | None) -> ColumnPlan | None:
        if self.masker is None or not self.masker.policy.enabled:
            return None
        return self.masker.on_row_description(fields, statement)

    def _result_statement(self) -> StatementRef | None:
        """The statement whose result (or COPY data) the backend is sending; None when not known."""
        head = self._expect[0] if self._expect else None
        if head is None:
            return None
        if head.kind == "execute":
            return _portal_statement(head.portal)
        if head.kind != "query" or not head.statements:
            return None
        i = min(head.done, len(head.statements) - 1)
        # Without guardrails a Query's whole string is one entry: its done-th statement is answering.
        return StatementRef(head.statements[i].text, head.done - i)

    def _copy_format(self, body: bytes) -> CopyFormat:
        overall, _ = m.parse_copy_response(body)
        statement = self._current_statement()
        kind = statement.copy_format if statement else None
        if kind is None and statement is not None and statement.text and self.masker is not None:
            # No guardrails classified it: text and CSV look alike on the wire, so ask the grammar.
            kind = next((c.copy_format for c in classify(statement.text) if c.copy_format), None)
        return CopyFormat(kind=kind or ("binary" if overall else "text"), statement=self._result_statement())


def _no_masking(plan: ColumnPlan, body: bytes) -> bytes | None:
    return None


def _portal_statement(portal: _Portal | None) -> StatementRef | None:
    """The statement a portal runs (None: prepared before Airlock saw it, or never)."""
    if portal is None or portal.prepared is None or not portal.prepared.statement.text:
        return None
    return StatementRef(portal.prepared.statement.text)


def _apply_formats(fields: list[m.Field], formats: tuple[int, ...]) -> list[m.Field]:
    """A statement's columns as a portal bound with these result formats returns them."""
    if not formats:
        chosen = [0] * len(fields)
    elif len(formats) == 1:
        chosen = [formats[0]] * len(fields)
    else:
        chosen = list(formats) + [0] * (len(fields) - len(formats))
    return [
        m.Field(f.name, f.table_oid, f.column, f.type_oid, f.type_size, f.type_modifier, fmt)
        for f, fmt in zip(fields, chosen, strict=False)
    ]


def _rows(tag: str) -> int | None:
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else None


def _splice(chunk: bytes, replaced: list[tuple[int, int, bytes]]) -> list[bytes]:
    """The chunk with whole messages replaced (b"" drops one); the same object when nothing changed."""
    if not replaced:
        return [chunk] if chunk else []
    pieces: list[bytes] = []
    pos = 0
    for start, end, new in replaced:
        if start > pos:
            pieces.append(chunk[pos:start])
        if new:
            pieces.append(new)
        pos = end
    if pos < len(chunk):
        pieces.append(chunk[pos:])
    return pieces


def _function_call_statement() -> ClassifiedStatement:
    return ClassifiedStatement(
        StatementKind.UNKNOWN,
        frozenset({StatementKind.UNKNOWN}),
        "<fast-path function call>",
        (0, 0),
        "a fast-path function call",
        error="the fast-path FunctionCall protocol bypasses SQL guardrails",
    )


_REQUESTS = frozenset(b"QSF")  # each owes exactly one ReadyForQuery
# What a pass-through relay counts as bytes go by (``Framer(watch=...)``, ``Framer.count``): the agent's
# requests and Terminate, the backend's ReadyForQuery.
PASSTHROUGH_AGENT_WATCH = _REQUESTS | {ord("X")}
PASSTHROUGH_BACKEND_WATCH = frozenset(b"Z")
_AGENT_HANDLERS = {
    ord("Q"): Relay._on_query,
    ord("P"): Relay._on_parse,
    ord("B"): Relay._on_bind,
    ord("D"): Relay._on_describe,
    ord("E"): Relay._on_execute,
    ord("C"): Relay._on_close,
    ord("S"): Relay._on_sync,
    ord("F"): Relay._on_function_call,
}


class PassthroughRelay(Relay):
    """The relay of a session that nothing inspects: no guardrails, no masking, no recording.

    Chunks pass through as they are; only what the I/O layer needs is counted (requests owed a
    ReadyForQuery, ReadyForQuery seen and its transaction status, Terminate). Statements are not tracked:
    with no recording there is nobody to account them to. A guard set later (a policy change at renewal)
    needs the full ``Relay``: the session swaps it in (see ``with_protections``). The proxy's relay loop
    does not call these methods for such a session: its framers count the same messages as they frame
    (``Framer.count`` with ``PASSTHROUGH_*_WATCH``), so no frame list or ``Output`` is built per read."""

    def from_agent(self, chunk: bytes, frames: list[Frame], now_ns: int, refuse: Refusal | None = None) -> Output:
        if refuse is not None:
            return super().from_agent(chunk, frames, now_ns, refuse)
        out = Output([chunk] if chunk else [])
        for mtype, _, _ in frames:
            if mtype in _REQUESTS:
                out.requests += 1
            elif mtype == 88:  # 'X' Terminate
                out.terminate = True
        return out

    def from_backend(self, chunk: bytes, frames: list[Frame], now_ns: int) -> Output:
        out = Output([chunk] if chunk else [])
        for mtype, start, _ in frames:
            if mtype == 90:  # 'Z' ReadyForQuery
                out.ready += 1
                out.tx_status = chunk[start : start + 1]
        return out


def with_protections(relay: Relay, guard: GuardrailEngine | None, masker: ResultMasker | None) -> Relay:
    """``relay`` judging with ``guard`` and masking with ``masker`` from now on (a new policy version at
    grant renewal; see ``Relay.replace_masker`` for when the masker takes over). A pass-through relay
    becomes a full one when either appears."""
    if isinstance(relay, PassthroughRelay):
        if guard is None and masker is None:
            return relay
        return Relay(guard, masker)
    relay.guard = guard
    relay.replace_masker(masker)
    return relay

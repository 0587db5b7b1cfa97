"""The session layer of an established PostgreSQL session: judge, rewrite, account; never do I/O.

Theory of operation. The I/O layer feeds each side's framed chunk in (``from_agent`` /
``from_backend``) and gets back what to write to the other side, plus ``events`` (decisions and
finished statements) for the recording and the audit trail.

Agent -> backend. Every statement is judged by the guardrails when it is sent and when it runs: a Query
and a Parse by their text, a Bind and an Execute (and SQL ``EXECUTE``) by every body the server may hold
under the name they run (``shared/pg/sql/prepared.py``: names are tracked from the server's replies, not
from what was sent). A blocked statement never reaches the backend: its message is swapped for a Parse
or Query of a statement that cannot parse (``AIRLOCK_DENIED_<nonce>``), so the *backend itself* raises
the error at exactly that point of the stream. Transaction state is therefore exactly what a server-side
error gives (ReadyForQuery 'E' inside a block, 25P02 until ROLLBACK; the extended protocol discards until
Sync), and responses stay in order. When the backend's syntax error for the nonce comes back, it is
replaced by Airlock's own ErrorResponse (SQLSTATE 42501 naming the rule). A simple Query holding several
statements is judged statement by statement and refused whole if any is blocked. FunctionCall (the
fast-path protocol calls a function by OID, beyond any SQL rule) is refused the same way.

SQL text is read as the server will read it (``shared/pg/sql/lexing.py``): in the client_encoding and
under the standard_conforming_strings the server last reported. A statement whose reading depends on
those settings waits (``Output.deferred``: the I/O layer keeps the rest of the stream and stops reading
the agent) while a request that may change them is in flight, and is judged once the server has
answered it (``Output.resume``); inside one extended-protocol batch, where the server reports changes
only at its end, such a statement is not judged at all (``unknown``). A change the server reports that
nothing announced (code Airlock cannot see, such as a trigger) while such a statement was in flight
ends the session (``Output.fatal``).

Backend -> agent. Responses are matched to requests in order (a FIFO of expected responses), so each
DataRow is read against the RowDescription and result formats that apply to it: a simple Query's own
RowDescription, or for an Execute its portal's (from Describe, or the statement's description plus the
Bind's result formats). When masking is on and a portal was never described (or Airlock cannot tell
which statement it holds), a Describe is injected before the Execute and its answer swallowed, so binary
rows are never guessed at. Rows that need nothing are forwarded byte-identical: a chunk with no change is
forwarded as the same bytes object.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from dataclasses import dataclass, field

from shared.guard.verdict import Action
from shared.pg.masking.engine import ColumnPlan, CopyFormat, ResultMasker, StatementRef
from shared.pg.sql.classify import classify
from shared.pg.sql.engine import Decision, GuardrailEngine
from shared.pg.sql.kinds import ClassifiedStatement, Effect, StatementKind
from shared.pg.sql.lexing import LEXING_SETTINGS, LexingState, Unjudgeable, sensitive
from shared.pg.sql.prepared import Namespace, PendingChange, observe_sql, resolve_all
from shared.pg.wire import messages as m
from shared.pg.wire.errors import ProtocolViolation
from shared.pg.wire.framing import Frame

DENIED_TOKEN = "AIRLOCK_DENIED_"
_FIRST_STATEMENT_CHARS = 4096
# Words in a Query that may change the prepared-statement namespace (checked before classifying a Query
# when no guardrails classify every statement anyway).
_NAMESPACE_WORDS = (b"prepare", b"deallocate", b"discard")
_APPROVED = "approved"  # a held statement's decision once an approver let it through
_IN_BATCH = (
    "it contains non-ASCII characters or backslashes and follows, in the same pipeline and before a Sync, a "
    "statement that may change how the server reads SQL (the server reports such changes only at the Sync); "
    "send a Sync first, or pass values as parameters"
)


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


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """Something that should never happen did: the recording keeps it, the log says it loudly."""

    reason: str
    detail: dict[str, object] = field(default_factory=dict)


RelayEvent = DecisionEvent | StatementEvent | MaskEvent | AlertEvent


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """A statement the guardrails hold: what to ask an approver about."""

    decision: Decision
    text: str  # the whole request held (a Query's text, or the bound statement's)
    kinds: tuple[str, ...]
    tables: tuple[str, ...]
    protocol: str  # "simple" or "extended"
    key: str  # identifies the held message when it is fed in again


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
    # Agent side: the offset in the chunk of the first message not handled; it and everything after it
    # must wait (keep it, stop reading the agent) until a backend Output says ``resume``.
    deferred: int | None = None
    # Backend side: the waiting agent messages may be fed in again now.
    resume: bool = False
    # End the session with this FATAL (sqlstate, message).
    fatal: tuple[str, str] | None = None
    # Agent side: a statement is held for approval (it is the first message of ``deferred``): ask, then
    # ``settle_hold`` and feed the deferred messages in again.
    hold: HoldRequest | None = None


@dataclass(slots=True)
class _Statement:
    """What a statement of the stream is, for accounting and masking."""

    text: str
    kind: str
    decision: str
    rule: str
    started_ns: int
    copy_format: str | None = None
    change: PendingChange[_Prepared] | None = None  # what it proposes to the prepared-statement names


@dataclass(slots=True, eq=False)
class _Prepared:
    """One Parse (or SQL PREPARE) of a statement. Objects, not names: a name is reused by later Parses
    while responses to earlier ones are still on their way."""

    statement: _Statement
    sql: str  # as the server reads it ("" when it could not be read: ``problem``)
    classified: ClassifiedStatement | None = None  # classified on first use when no guardrails judged it
    problem: str | None = None  # why the text could not be read as the server reads it
    fields: list[m.Field] | None = None  # from Describe('S')
    describing: bool = False
    verdict: tuple[GuardrailEngine, Decision] | None = None  # the last decision, and by which engine

    def statement_for_judging(self) -> ClassifiedStatement:
        if self.classified is None:
            if self.problem is not None:
                self.classified = _unknown_statement(self.statement.text, self.problem)
            else:
                found = classify(self.sql)
                self.classified = found[0] if len(found) == 1 else _unknown_statement(
                    self.sql, "several statements in one Parse" if found else "Parse message with no statement")
        return self.classified


@dataclass(slots=True, eq=False)
class _Portal:
    """One Bind of a portal."""

    prepared: _Prepared | None  # the statement it bound, when Airlock knows which one
    formats: tuple[int, ...]
    plan: ColumnPlan | None = None
    described: bool = False  # a Describe('P') answer is on its way or arrived
    has_plan: bool = False
    options: tuple[_Prepared | None, ...] = ()  # every statement the Bind may have bound


@dataclass(slots=True)
class _Expect:
    """One request whose response the backend still owes, in order."""

    kind: str  # "query", "parse", "bind", "describe", "execute", "close", "sync", "call"
    statements: list[_Statement] = field(default_factory=list)  # query: one per statement; execute: one
    prepared: _Prepared | None = None  # describe('S')
    portal: _Portal | None = None  # describe('P') / execute
    swallow: bool = False  # an injected Describe: its answer is not the agent's
    done: int = 0  # query: statements of it already completed (simple Queries may be pipelined)
    # parse / bind / close: the change to the server's names that its reply settles; a query: the drop of
    # the unnamed statement it causes.
    change: PendingChange[_Prepared] | PendingChange[_Portal] | None = None
    names: Namespace[_Prepared] | Namespace[_Portal] | None = None  # the namespace ``change`` belongs to
    changes_lexing: bool = False  # query / sync: a request it answers for may change how SQL is read
    sensitive: bool = False  # query / parse: its text reads differently under other lexing settings
    exposed: bool = False  # sync: its batch sent a statement that depends on lexing after an Execute
    nonces: list[str] = field(default_factory=list)  # denials sent for it (forgotten once it is answered)


class Relay:
    """Sans-I/O relay for one session. ``guard`` and ``masker`` are optional (None = not configured)."""

    def __init__(self, guard: GuardrailEngine | None = None, masker: ResultMasker | None = None) -> None:
        self.guard = guard
        self.masker = masker
        self.lexing = LexingState()
        # What the server holds: prepared statements and portals, as its replies confirm them.
        self.names: Namespace[_Prepared] = Namespace()
        self.portals: Namespace[_Portal] = Namespace()
        self._expect: deque[_Expect] = deque()
        self._denials: dict[str, Blocker] = {}
        self._refusal: Refusal | None = None
        self._plan: ColumnPlan | None = None
        self._copy: CopyFormat | None = None
        self._next_masker: tuple[ResultMasker | None] | None = None  # set: replaces masker at the next 'Z'
        # Lexing settings in flight: requests owed a ReadyForQuery that may change them, whether the
        # current extended batch (since the last Sync) holds one or has executed anything, and whether the
        # agent's stream waits for them to settle.
        self._unsettled = 0
        self._batch_changes_lexing = False
        self._batch_executed = False
        self._batch_exposed = False
        self._waiting = False  # the agent's stream waits: for lexing settings, or for an approval
        self._holding: HoldRequest | None = None
        self._settled: tuple[str, Refusal | None] | None = None  # a held message's outcome: (key, refusal)
        # An extended-protocol message of this batch was refused: the server skips the rest up to the Sync.
        self._skipping = False
        self._query_changes: list[PendingChange[_Prepared] | None] = []
        self._now_ns = 0
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

    def observe_parameter(self, name: str, value: str) -> None:
        """A ParameterStatus the server sent before the relay started (the start-up greeting)."""
        self.lexing.observe(name, value)

    def settle_hold(self, hold: HoldRequest, refusal: Refusal | None) -> None:
        """The held statement was approved (``refusal`` None) or must be refused with ``refusal``. The
        I/O layer then feeds the deferred messages in again; the held one is judged afresh (a new policy
        may deny it now) and, if still held, goes through or is refused as settled here."""
        if self._holding is not None and self._holding.key == hold.key:
            self._holding = None
            self._waiting = False
        self._settled = (hold.key, refusal)

    @property
    def holding(self) -> HoldRequest | None:
        return self._holding

    # ------------------------------------------------------------------ agent -> backend

    def from_agent(self, chunk: bytes, frames: list[Frame], now_ns: int, refuse: Refusal | None = None) -> Output:
        """``refuse``: no statement of this chunk may reach the backend (each gets that error instead)."""
        self._refusal = refuse
        out = Output()
        replaced: list[tuple[int, int, bytes]] = []  # (start, end, replacement) of whole messages
        end_of_handled = len(chunk)
        for mtype, start, end in frames:
            handler = _AGENT_HANDLERS.get(mtype)
            if self._waiting:
                replacement: bytes | _Wait | None = _WAIT
            elif handler is None:
                if mtype == 88:  # 'X' Terminate
                    out.terminate = True
                continue
            else:
                replacement = handler(self, chunk[start:end], now_ns, out)
            if replacement is _WAIT:  # this message and the rest of the stream wait (``deferred``)
                out.deferred = end_of_handled = start - 5
                break
            if mtype in _REQUESTS:
                out.requests += 1
            if isinstance(replacement, bytes):
                replaced.append((start - 5, end, replacement))
        out.to_peer = _splice(chunk if end_of_handled == len(chunk) else chunk[:end_of_handled], replaced)
        return out

    # A Query or Parse whose reading depends on the lexing settings (``lexing.sensitive``) while the
    # server may still change them: judged when the requests ahead of it are answered (``resume``), or
    # not at all when the change could come from the same extended batch.

    def _read_sql(self, raw: bytes, in_batch: bool) -> tuple[str, str | None] | None:
        """(text, problem) for SQL bytes, or None when the statement must wait for the settings."""
        if self.guard is None:
            return raw.decode(self.lexing.python_codec, "replace"), None
        is_sensitive = sensitive(raw)
        if is_sensitive and in_batch and self._batch_changes_lexing:
            return raw.decode(self.lexing.python_codec, "replace"), _IN_BATCH
        if is_sensitive and self._unsettled:
            self._waiting = True
            return None
        try:
            return self.lexing.decode(raw), None
        except Unjudgeable as e:
            return raw.decode(self.lexing.python_codec, "replace"), str(e)

    def _on_query(self, body: bytes, now_ns: int, out: Output) -> bytes | _Wait | None:
        self._now_ns = now_ns
        raw = m.parse_query_bytes(body)
        read = self._read_sql(raw, in_batch=False)
        if read is None:
            return _WAIT
        sql, problem = read
        self.names.new_batch()
        self.portals.new_batch()
        self._batch_changes_lexing = self._batch_executed = self._batch_exposed = False
        unnamed = self.names.propose("", None)  # a simple Query destroys the unnamed prepared statement
        decisions: list[Decision] = []
        self._query_changes = []
        if self.guard is not None:
            decisions = [self.guard.unjudgeable(sql, problem)] if problem else self.guard.judge(sql, self._sql_names)
        elif any(w in raw.lower() for w in _NAMESPACE_WORDS):
            for stmt in classify(sql):
                self._sql_names.observe(stmt)
        block: Blocker | None = next((d for d in decisions if d.blocks and d.action is Action.DENY), None)
        held = next((d for d in decisions if d.blocks and d.action is Action.HOLD), None)
        approved = False
        if block is None and held is not None:
            outcome = self._held(held, raw, sql, "simple", out)
            if isinstance(outcome, _Wait):  # the whole Query waits for a human; nothing of it was sent
                out.events.extend(DecisionEvent(d, "simple") for d in decisions)
                for change in (unnamed, *self._query_changes):
                    self.names.drop(change)
                return _WAIT
            block, approved = outcome, outcome is None
        out.events.extend(DecisionEvent(d, "simple") for d in decisions if not (d.action is Action.HOLD and d.blocks))
        changes = self._query_changes if self._query_changes else []
        if decisions:
            statements = [
                _Statement(d.statement, d.kind.value, _APPROVED if approved and d.action is Action.HOLD else
                           d.action.value, d.rule, now_ns, d.classified.copy_format,
                           changes[i] if i < len(changes) else None)
                for i, d in enumerate(decisions)
            ]
        else:
            statements = [_Statement(sql, "", "", "", now_ns, change=changes[0] if len(changes) == 1 else None)]
            for extra in changes[1:]:
                self.names.drop(extra)  # statements not accounted one by one: confirm nothing optimistically
        blocker: Blocker | None = block or self._refusal
        if blocker is not None:
            for st in statements:
                self.names.drop(st.change)
            if isinstance(block, Decision):
                statements = [_Statement(block.statement, block.kind.value, block.action.value, block.rule, now_ns)]
            elif block is not None:  # a held statement an approver (or time) refused
                statements = [_Statement(sql, statements[0].kind, Action.HOLD.value, block.rule, now_ns)]
            else:
                statements = [_Statement(sql, statements[0].kind, "refuse", "", now_ns)]
        lexing = blocker is None and self.guard is not None and (
            bool(problem) or any(d.classified.may_change_lexing for d in decisions)
        )
        expect = _Expect("query", statements, change=unnamed, names=self.names, changes_lexing=lexing,
                         sensitive=sensitive(raw))
        self._push(expect)
        return None if blocker is None else m.build_query(self._deny(blocker))

    def _on_parse(self, body: bytes, now_ns: int, out: Output) -> bytes | _Wait | None:
        if self._skipping:
            self._skipped("parse")
            return None
        parse = m.parse_parse(body)
        read = self._read_sql(parse.query_bytes, in_batch=True)
        if read is None:
            return _WAIT
        sql, problem = read
        is_sensitive = sensitive(parse.query_bytes)
        expect = _Expect("parse", sensitive=is_sensitive)
        if is_sensitive and self._batch_executed:
            self._batch_exposed = True  # read before the server could report what the batch changed
        blocker: Blocker | None = self._refusal
        if self.guard is None:
            prepared = _Prepared(_Statement(sql, "", "", "", now_ns), sql, problem=problem)
        else:
            if problem:
                decision = self.guard.unjudgeable(sql, problem)
                stmt = decision.classified
            else:
                stmt, decision = self.guard.judge_one(sql)
                if stmt.session_dependent:  # Parse of "EXECUTE p": judged by what p may be now
                    decision = self.guard.decide_any(resolve_all(stmt, self._bodies))
            out.events.append(DecisionEvent(decision, "extended"))
            prepared = _Prepared(
                _Statement(sql, decision.kind.value, decision.action.value, decision.rule, now_ns,
                           decision.classified.copy_format),
                sql, classified=stmt, problem=problem, verdict=(self.guard, decision),
            )
            # A Parse runs nothing: a hold waits for the statement's execution (Bind / Execute).
            if decision.blocks and decision.action is Action.DENY:
                blocker = decision
        if blocker is None:
            expect.change, expect.names = self.names.propose(parse.name, prepared), self.names
        elif parse.name == "":
            # A failed Parse of the unnamed statement still drops the one before it: so does the denial.
            expect.change, expect.names = self.names.propose("", None), self.names
        self._push(expect)
        if blocker is None:
            return None
        self._skipping = True
        return m.build_parse(parse.name, self._deny(blocker))

    def _on_bind(self, body: bytes, now_ns: int, out: Output) -> bytes | _Wait | None:
        if self._skipping:
            self._skipped("bind")
            return None
        bind = m.parse_bind(body)
        options = tuple(self.names.possible(bind.statement))
        portal = _Portal(options[0] if len(options) == 1 else None, bind.result_formats, options=options)
        expect = _Expect("bind")
        judged = self._judge_run(options, body, out)
        if isinstance(judged, _Wait):
            return _WAIT
        blocker = judged
        if blocker is None:
            expect.change, expect.names = self.portals.propose(bind.portal, portal), self.portals
        self._push(expect)
        return None if blocker is None else self._denial_parse(blocker, now_ns, out)

    def _on_describe(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        kind, name = m.parse_describe_or_close(body)
        if kind == "S":
            prepared = self.names.only(name)
            if prepared is not None:
                prepared.describing = True
            self._push(_Expect("describe", prepared=prepared))
        else:
            portal = self.portals.only(name)
            if portal is not None:
                portal.described = True
            self._push(_Expect("describe", portal=portal))
        return None

    def _on_execute(self, body: bytes, now_ns: int, out: Output) -> bytes | _Wait | None:
        if self._skipping:
            self._skipped("execute", [_Statement("", "", "", "", now_ns)])
            return None
        name, _ = m.parse_execute(body)
        portals = self.portals.possible(name)
        portal = portals[0] if len(portals) == 1 else None
        options = tuple(p for q in portals for p in (q.options if q is not None else (None,)))
        judged = self._judge_run(options, body, out)
        if isinstance(judged, _Wait):
            return _WAIT
        blocker = judged
        if blocker is not None:
            return self._denial_parse(blocker, now_ns, out)
        self._batch_executed = True
        if any(o is None or o.statement_for_judging().may_change_lexing for o in options):
            self._batch_changes_lexing = True
        known = portal.prepared.statement if portal is not None and portal.prepared is not None else None
        statement = (
            _Statement(known.text, known.kind, known.decision, known.rule, now_ns, known.copy_format)
            if known
            else _Statement("", "", "", "", now_ns)
        )
        injected = None
        if self.masker is not None and self.masker.policy.enabled and (
            portal is None or not (portal.described or (portal.prepared is not None and portal.prepared.describing))
        ):
            # Never guess how rows look: ask the backend, and keep its answer to ourselves.
            if portal is None:  # Airlock cannot tell which statement the portal holds: its answer says
                portal = _Portal(None, ())
            portal.described = True
            self._push(_Expect("describe", portal=portal, swallow=True))
            injected = m.build_describe("P", name) + m.frame(b"E", body)
        self._push(_Expect("execute", [statement], portal=portal))
        return injected

    def _on_close(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        kind, name = m.parse_describe_or_close(body)
        expect = _Expect("close")
        if kind == "S":
            expect.change, expect.names = self.names.propose(name, None), self.names
        else:
            expect.change, expect.names = self.portals.propose(name, None), self.portals
        self._push(expect)
        return None

    def _on_sync(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        self._push(_Expect("sync", changes_lexing=self._batch_changes_lexing, exposed=self._batch_exposed))
        self._batch_changes_lexing = self._batch_executed = self._batch_exposed = self._skipping = False
        self.names.new_batch()
        self.portals.new_batch()
        return None

    def _skipped(self, kind: str, statements: list[_Statement] | None = None) -> None:
        """A message the server will skip (an earlier one of its batch was refused): relayed as it is,
        unjudged, since nothing of it runs; its answer never comes."""
        self._push(_Expect(kind, statements or []))

    def _on_function_call(self, body: bytes, now_ns: int, out: Output) -> bytes | None:
        statement = _Statement("<fast-path function call>", StatementKind.UNKNOWN.value, "", "", now_ns)
        blocker: Blocker | None = self._refusal
        if self.guard is not None:
            decision = self.guard.decide(_function_call_statement())
            out.events.append(DecisionEvent(decision, "function_call"))
            statement.decision, statement.rule = decision.action.value, decision.rule
            if decision.blocks:
                blocker = decision
        self._push(_Expect("call", [statement], changes_lexing=blocker is None))
        return None if blocker is None else m.build_query(self._deny(blocker))

    def _push(self, expect: _Expect) -> None:
        if expect.changes_lexing:
            self._unsettled += 1
        self._expect.append(expect)

    def _judge_run(
        self, options: tuple[_Prepared | None, ...], message: bytes, out: Output
    ) -> Blocker | _Wait | None:
        """Bind / Execute: the strictest decision over every statement the name may run, under the
        current grant; the blocker when it must not run, ``_WAIT`` while it is held for approval."""
        if self.guard is None:
            return self._refusal
        guard = self.guard
        decision: Decision | None = None
        if len(options) == 1 and options[0] is not None and options[0].verdict is not None \
                and options[0].verdict[0] is guard and not options[0].statement_for_judging().session_dependent:
            decision = options[0].verdict[1]
        if decision is None:
            candidates: list[ClassifiedStatement] = []
            for option in options:
                stmt = option.statement_for_judging() if option is not None else _unknown_name()
                candidates.extend(resolve_all(stmt, self._bodies))
            decision = guard.decide_any(candidates)
            if len(options) == 1 and options[0] is not None:
                options[0].verdict = (guard, decision)
        if decision.blocks and decision.action is Action.HOLD:
            text = next((o.statement.text for o in options if o is not None), "")
            outcome = self._held(decision, message, text, "extended", out)
            if isinstance(outcome, _Wait):
                out.events.append(DecisionEvent(decision, "extended"))
                return _WAIT
            return outcome or self._refusal
        if decision.action is not Action.ALLOW:
            out.events.append(DecisionEvent(decision, "extended"))
        return decision if decision.blocks else self._refusal

    def _held(
        self, decision: Decision, message: bytes, text: str, protocol: str, out: Output
    ) -> Refusal | _Wait | None:
        """A statement the guardrails hold: ``_WAIT`` until ``settle_hold``; then None when it was approved,
        or the refusal it was settled with."""
        key = protocol[0] + hashlib.sha256(message).hexdigest()
        settled = self._settled
        if settled is not None and settled[0] == key:
            self._settled = None
            return settled[1]
        stmt = decision.classified
        hold = HoldRequest(decision, text, tuple(sorted(k.value for k in stmt.kinds)),
                           tuple(sorted({t.qualified.lower() for t in stmt.tables})), protocol, key)
        self._holding, self._waiting, out.hold = hold, True, hold
        return _WAIT

    def _denial_parse(self, blocker: Blocker, now_ns: int, out: Output) -> bytes:
        """Replace a Bind or Execute with a Parse that fails, under a name nothing uses: the server raises
        the error at this point and skips to the Sync, and its names stay as they are."""
        self._push(_Expect("parse"))
        nonce = self._deny(blocker)
        self._skipping = True
        return m.build_parse(f"airlock_denied_{nonce.rsplit('_', 1)[-1]}", nonce)

    @property
    def _sql_names(self) -> _SqlNames:
        return _SqlNames(self)

    def _bodies(self, name: str) -> list[ClassifiedStatement | None]:
        return [p.statement_for_judging() if p is not None else None for p in self.names.possible(name)]

    def _deny(self, decision: Blocker) -> str:
        """The text that makes the backend fail where ``decision`` refuses; its error is then replaced.
        Called right after the request's expectation is queued: the nonce lives as long as it does."""
        nonce = secrets.token_hex(8)
        self._denials[nonce] = decision
        self._expect[-1].nonces.append(nonce)
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
            if head is not None:
                self._expect.popleft()
                if head.names is not None:
                    head.names.confirm(head.change)  # type: ignore[arg-type]
            return None
        if mtype == ord("S"):
            self._on_parameter(body, out)
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
            return head.statements[head.done] if head.done < len(head.statements) else None
        return head.statements[0]

    def _complete(self, tag: str, error: str | None, now_ns: int, out: Output) -> None:
        """A statement finished: CommandComplete / EmptyQuery / PortalSuspended / ErrorResponse."""
        statement = self._current_statement()
        head = self._expect[0] if self._expect else None
        if statement is None and head is not None and head.kind == "query" and head.statements:
            # The server completed more statements than Airlock read in this Query: never account the extra
            # one to another statement, and say loudly that the two readings differ.
            statement = _Statement(f"(statement {head.done + 1} of a Query Airlock read as {len(head.statements)}"
                                   f" statement(s); the server reported {tag or 'an error'})",
                                   StatementKind.UNKNOWN.value, "", "", head.statements[-1].started_ns)
            out.events.append(AlertEvent("statement count mismatch", {
                "query": head.statements[0].text[:_FIRST_STATEMENT_CHARS], "read_as": len(head.statements),
                "server_tag": tag, "completion": head.done + 1}))
        if statement is not None:
            self.statements += 1
            if error is None:
                self.names.confirm(statement.change)
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
            # The backend now discards everything up to the next Sync: so do our expectations, and the
            # changes to the server's names that they proposed never happen.
            while self._expect and self._expect[0].kind != "sync":
                self._settle_skipped(self._expect.popleft())
        if replacement is not None:
            return replacement
        return self._mask_error(ord("E"), body, source)

    def _on_ready(self, now_ns: int, out: Output) -> None:
        while self._expect:
            head = self._expect.popleft()
            for nonce in head.nonces:
                self._denials.pop(nonce, None)
            if head.kind == "query":
                for statement in head.statements:  # statements an error skipped never ran
                    self.names.drop(statement.change)
                self.names.confirm(head.change)  # type: ignore[arg-type]
            else:
                self._settle_skipped(head)
            if head.changes_lexing:
                self._unsettled -= 1
            if head.kind in ("query", "sync", "call"):
                break
        if out.tx_status == b"I":
            self.portals.clear()  # a transaction's end drops its portals
        if self._waiting and not self._unsettled:
            self._waiting = False
            out.resume = True
        self._plan = None
        self._copy = None
        if self.masker is not None and self.masker.policy.enabled:
            self.masker.ready(out.tx_status)
            counts = self.masker.take_counts()
            if counts:
                out.events.append(MaskEvent(counts))
        if self._next_masker is not None:
            self._use_masker(self._next_masker[0])

    def _settle_skipped(self, expect: _Expect) -> None:
        """``expect`` was never answered (an error made the server skip it): its change never happens,
        except that a Parse of the unnamed statement drops the previous one even when it fails."""
        for nonce in expect.nonces:
            self._denials.pop(nonce, None)
        if expect.names is None or expect.change is None:
            return
        expect.names.drop(expect.change)  # type: ignore[arg-type]
        if expect.kind == "parse" and expect.change.name == "" and expect.names is self.names:
            self.names.confirm(self.names.propose("", None))

    def _on_parameter(self, body: bytes, out: Output) -> None:
        name, value = m.parse_parameter_status(body)
        if name not in LEXING_SETTINGS and name != "server_encoding":
            return
        if self.lexing.observe(name, value) and self._exposed():
            message = (f"Airlock ended this session: the server changed {name} to {value!r}, which nothing sent "
                       "announced (code Airlock cannot see, such as a trigger, may have set it), while statements "
                       "whose reading depends on it were on their way")
            out.events.append(AlertEvent("lexing settings changed unannounced", {"setting": name, "value": value}))
            out.fatal = ("42501", message)

    def _exposed(self) -> bool:
        """Whether a statement read under the previous settings may have been lexed under the new ones.
        The change belongs to the request being answered (the head group): statements sent after it, and
        statements of its own batch sent after one of its Executes, were read too early."""
        head_group = True
        for expect in self._expect:
            if head_group:
                if expect.kind in ("query", "sync", "call"):
                    if expect.exposed:
                        return True
                    head_group = False
            elif expect.sensitive:
                return True
        return False

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


class _Wait:
    """The sentinel a handler returns when its message must wait (``Output.deferred``)."""


_WAIT = _Wait()


class _SqlNames:
    """The relay's prepared-statement names as the guardrail engine sees them while judging a Query."""

    __slots__ = ("_relay",)

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def observe(self, stmt: ClassifiedStatement) -> PendingChange[_Prepared] | None:
        relay = self._relay
        change = observe_sql(relay.names, stmt, lambda body: _Prepared(
            _Statement(stmt.text, body.kind.value, "", "", relay._now_ns, body.copy_format), stmt.text,
            classified=body))
        relay._query_changes.append(change)
        return change

    def resolve_all(self, stmt: ClassifiedStatement) -> list[ClassifiedStatement]:
        return resolve_all(stmt, self._relay._bodies)


def _unknown_statement(text: str, error: str) -> ClassifiedStatement:
    return ClassifiedStatement(StatementKind.UNKNOWN, frozenset({StatementKind.UNKNOWN}), text, (0, len(text)),
                               "statement", error=error, effects=(Effect(StatementKind.UNKNOWN),))


def _unknown_name() -> ClassifiedStatement:
    return _unknown_statement("", "the statement or portal it runs is unknown to Airlock")


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
        full = Relay(guard, masker)
        full.lexing = relay.lexing  # what the server reported so far still holds
        return full
    relay.guard = guard
    relay.replace_masker(masker)
    return relay

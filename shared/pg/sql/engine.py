"""Judge statements against a session's guardrails: one ``Decision`` per statement.

Each effect of a statement (``kinds.Effect``: a relation read or written, a function called, the
statement itself) is judged on its own, and the statement takes the strictest verdict of its effects
(``shared/guard/verdict.py``: deny > hold > allow). Per effect:
1. an effect that could not be established (kind ``unknown``: a syntax error, an unknown prepared
   statement, SQL computed at run time) gets the policy's ``unknown`` action; no rule can allow it by
   accident;
2. with ``access: read_only``, an effect that can change something (``Effect.changes``) is denied;
3. otherwise the first rule (in policy order) that matches it decides, made stricter by any deny or hold
   rule before it that *may* match (an unqualified name against a rule naming a schema);
4. otherwise the policy's ``default`` action, except for a call of a built-in that only computes a
   value (kind ``function``), which changes nothing and is allowed unless a rule says otherwise.
With ``dry_run`` every decision is still made and recorded, but ``enforced`` is False.

Decisions are cached per query string (LRU, bounded), so a repeated statement costs a dict lookup. A
string whose verdict depends on session state (``EXECUTE x``) is re-resolved against the session's
prepared statements on every call; only its parse is cached.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from pglast import parser

from shared.guard.verdict import STRICTNESS, Action, EffectVerdict, judge_effect, stricter, strictest
from shared.pg.sql.classify import MAX_CACHED_SQL, classify
from shared.pg.sql.functions import RELATION_FUNCTIONS, SQL_TEXT_FUNCTIONS
from shared.pg.sql.kinds import ClassifiedStatement, Effect, StatementKind
from shared.pg.sql.prepared import PreparedStatements
from shared.pg.sql.rules import GuardrailsPolicy, GuardRule
from shared.pg.wire.messages import build_error

K = StatementKind


class SessionNames(Protocol):
    """What the engine needs of a session's prepared statements (``prepared.PreparedStatements``)."""

    def observe(self, stmt: ClassifiedStatement) -> object: ...

    def resolve_all(self, stmt: ClassifiedStatement) -> list[ClassifiedStatement]: ...


INSUFFICIENT_PRIVILEGE = "42501"
SYNTAX_ERROR = "42601"
INVALID_STATEMENT_NAME = "26000"
UNKNOWN_RULE = "unknown"  # the rule name reported when the unknown action decided
DEFAULT_RULE = "default"
READ_ONLY_RULE = "read_only"
READ_ONLY_REASON = "this session is read-only: only statements that change nothing may run"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    rule: str  # the rule's name, or "unknown" / "default" / "read_only"
    reason: str
    kind: StatementKind
    statement: str
    enforced: bool  # False under dry_run: record what would have happened, do not block
    classified: ClassifiedStatement
    effect: Effect | None = None  # the effect that decided (None: the statement had none)

    @property
    def blocks(self) -> bool:
        """The proxy must not forward this statement (deny, or a hold until it is approved)."""
        return self.enforced and self.action is not Action.ALLOW

    def message(self) -> str:
        """What the agent reads, e.g. ``Airlock denied DROP TABLE: rule "no-ddl": ask for a CR``."""
        what = self.classified.label
        if self.rule == UNKNOWN_RULE:
            head = f"Airlock {_verb(self.action)} a statement whose effect it could not establish"
        else:
            effect = self.effect
            itself = effect is None or _is_statement_itself(effect, self.classified)
            detail = "" if itself or effect is None else f" ({effect.describe()})"
            head = f"Airlock {_verb(self.action)} {what}{detail}: rule \"{self.rule}\""
        return f"{head}: {self.reason}" if self.reason else head

    @property
    def sqlstate(self) -> str:
        """42501 for a refusal by policy; where Airlock refuses for the reason the server would have
        errored (a syntax error, a prepared statement that does not exist), the server's own SQLSTATE, so
        clients that branch on it keep working."""
        if self.rule == UNKNOWN_RULE:
            error = self.classified.error or ""
            if error.startswith("syntax error"):
                return SYNTAX_ERROR
            if error.startswith("prepared statement") and error.endswith("is unknown to Airlock"):
                return INVALID_STATEMENT_NAME
        return INSUFFICIENT_PRIVILEGE

    def error_response(self) -> bytes:
        """ErrorResponse for a blocked statement; the session continues."""
        hint = None
        if self.action is Action.HOLD:
            hint = "approvals are not available on this connection yet, so a held statement is refused"
        return build_error("ERROR", self.sqlstate, self.message(), hint=hint)


def _verb(action: Action) -> str:
    return {Action.ALLOW: "allowed", Action.DENY: "denied", Action.HOLD: "held"}[action]


class GuardrailEngine:
    """Stateless apart from its decision cache; share one per policy snapshot (grant)."""

    def __init__(
        self,
        policy: GuardrailsPolicy,
        *,
        identity: str | None = None,
        target: str | None = None,
        database: str | None = None,
    ) -> None:
        self.policy = policy
        # Scope is fixed per grant, so rules for other identities/targets are dropped once, here.
        self.rules: tuple[GuardRule, ...] = tuple(
            r for r in policy.rules if r.match.in_scope(identity, target, database)
        )
        self._cache: OrderedDict[str, tuple[Decision, ...]] = OrderedDict()
        self._parsed: OrderedDict[str, tuple[tuple[ClassifiedStatement, ...], str | None]] = OrderedDict()
        self._shape_decisions: OrderedDict[str, Decision] = OrderedDict()
        self._shapes: OrderedDict[str, ClassifiedStatement] = OrderedDict()
        self._by_name = {r.name: r for r in self.rules}
        self.read_only = policy.access == "read_only"
        self._default_reason = "" if policy.default is Action.ALLOW else "not allowed by default"
        self.hits = 0
        self.misses = 0

    def rule(self, name: str) -> GuardRule | None:
        """The in-scope rule called ``name`` (None for "default", "unknown", "read_only")."""
        return self._by_name.get(name)

    def judge(self, sql: str, session: SessionNames | None = None) -> list[Decision]:
        """One decision per statement of ``sql`` (an empty list for an empty query).

        With a ``session``, each statement is shown to it as it is judged (``observe``: PREPARE /
        DEALLOCATE / DISCARD ALL propose changes to its names), and EXECUTE is judged by every body the
        session may hold under its name (``resolve_all``); without one, EXECUTE is unknown.
        """
        cached = self._cache.get(sql)
        if cached is not None:
            self.hits += 1
            self._cache.move_to_end(sql)
            if session is not None:
                for d in cached:
                    session.observe(d.classified)
            return list(cached)
        self.misses += 1
        tracker: SessionNames = session if session is not None else PreparedStatements()
        decisions = []
        dependent = False
        statements, shape = self._classify(sql)
        for stmt in statements:
            if shape:
                decisions.append(self._decide_shaped(stmt, shape))
            elif stmt.session_dependent:
                dependent = True
                decisions.append(self.decide_any(tracker.resolve_all(stmt)))
            else:
                decisions.append(self.decide(stmt))
            tracker.observe(stmt)
        if not dependent and self.policy.cache_size and len(sql) <= MAX_CACHED_SQL:
            self._cache[sql] = tuple(decisions)
            if len(self._cache) > self.policy.cache_size:
                self._cache.popitem(last=False)
        return decisions

    def judge_one(self, sql: str) -> tuple[ClassifiedStatement, Decision]:
        """An extended-protocol Parse: its one statement and its decision (a Parse may hold only one)."""
        statements, shape = self._classify(sql)
        if len(statements) != 1:
            error = "Parse message with no statement" if not statements else "several statements in one Parse"
            stmt = ClassifiedStatement(K.UNKNOWN, frozenset({K.UNKNOWN}), sql, (0, len(sql)), "statement",
                                       error=error, effects=(Effect(K.UNKNOWN),))
            return stmt, self.decide(stmt)
        stmt = statements[0]
        return stmt, self._decide_shaped(stmt, shape) if shape else self.decide(stmt)

    def decide_any(self, options: list[ClassifiedStatement]) -> Decision:
        """The strictest decision over ``options``: what a name may run (see ``prepared``)."""
        worst: Decision | None = None
        for option in options:
            decision = self.decide(option)
            if worst is None or STRICTNESS[decision.action] > STRICTNESS[worst.action]:
                worst = decision
        assert worst is not None, "a name always has at least one possibility"
        return worst

    def unjudgeable(self, text: str, reason: str) -> Decision:
        """The decision for text Airlock cannot read as the server will (the policy's ``unknown``)."""
        stmt = ClassifiedStatement(K.UNKNOWN, frozenset({K.UNKNOWN}), text, (0, len(text)), "statement",
                                   error=reason, effects=(Effect(K.UNKNOWN),))
        return self.decide(stmt)

    def classify(self, sql: str) -> list[ClassifiedStatement]:
        """``classify(sql)``, remembered: by exact text, and for statements whose verdict cannot depend
        on their literal values, by the statement with its constants replaced by parameters (pg_query's
        normalization; not its fingerprint, which also ignores schema names: ``vault.keys`` and
        ``public.keys`` must not share a verdict), so that
        agents that inline values (``WHERE id = 4711``) do not pay for a parse on every statement."""
        return self._classify(sql)[0]

    def _classify(self, sql: str) -> tuple[list[ClassifiedStatement], str | None]:
        """(statements, the shape when ``sql`` is one literal-independent statement)."""
        hit = self._parsed.get(sql)
        if hit is not None:
            self._parsed.move_to_end(sql)
            return list(hit[0]), hit[1]
        key = _shape(sql) if len(sql) <= MAX_CACHED_SQL else None
        template = self._shapes.get(key) if key else None
        shape = None
        if template is not None:
            statements, shape = [_with_text(template, sql)], key
        else:
            statements = classify(sql)
            if key and len(statements) == 1 and _literal_independent(statements[0]):
                self._remember(self._shapes, key, statements[0])
                shape = key
        if len(sql) <= MAX_CACHED_SQL:
            self._remember(self._parsed, sql, (tuple(statements), shape))
        return statements, shape

    def _decide_shaped(self, stmt: ClassifiedStatement, shape: str) -> Decision:
        """``decide`` for a literal-independent statement: the same shape gets the same verdict."""
        template = self._shape_decisions.get(shape)
        if template is None:
            template = self.decide(stmt)
            self._remember(self._shape_decisions, shape, template)
            return template
        t = template
        return Decision(t.action, t.rule, t.reason, t.kind, stmt.text, t.enforced, stmt, t.effect)

    def _remember(self, cache: OrderedDict[str, Any], key: str, value: Any) -> None:
        cache[key] = value
        if len(cache) > max(self.policy.cache_size, 1):
            cache.popitem(last=False)

    def decide(self, stmt: ClassifiedStatement) -> Decision:
        """The decision for one classified (and, for EXECUTE, resolved) statement."""
        verdicts = [self._judge_effect(e, stmt) for e in stmt.effects]
        worst = strictest(verdicts)
        if worst is None:  # no effect at all (cannot happen for a parsed statement): unknown, fail closed
            return self._decision(stmt, self.policy.unknown, UNKNOWN_RULE, stmt.error or "no effect", None)
        return self._decision(stmt, worst.action, worst.rule, worst.reason, worst.effect)

    def _judge_effect(self, effect: Effect, stmt: ClassifiedStatement) -> EffectVerdict[Effect]:
        if effect.kind is StatementKind.UNKNOWN:
            return EffectVerdict(effect, self.policy.unknown, UNKNOWN_RULE, stmt.error or "unrecognised statement")
        if effect.kind is StatementKind.FUNCTION:
            verdict = judge_effect(effect, self.rules, Action.ALLOW)
        else:
            verdict = judge_effect(effect, self.rules, self.policy.default, DEFAULT_RULE, self._default_reason)
        if self.read_only and effect.changes:
            verdict = stricter(verdict, EffectVerdict(effect, Action.DENY, READ_ONLY_RULE, READ_ONLY_REASON))
        return verdict

    def _decision(
        self, stmt: ClassifiedStatement, action: Action, rule: str, reason: str, effect: Effect | None
    ) -> Decision:
        return Decision(action, rule, reason, stmt.kind, stmt.text, not self.policy.dry_run, stmt, effect)


def _is_statement_itself(effect: Effect, stmt: ClassifiedStatement) -> bool:
    """Whether naming the effect in a message would only repeat the statement's own label."""
    return effect.kind is stmt.kind and effect.function is None


# Kinds whose classification depends only on the statement's shape, never on a constant's value.
_SHAPE_KINDS = frozenset({StatementKind.SELECT, StatementKind.INSERT, StatementKind.UPDATE, StatementKind.DELETE,
                          StatementKind.UPDATE_NO_WHERE, StatementKind.DELETE_NO_WHERE, StatementKind.MERGE,
                          StatementKind.FUNCTION})
# Functions whose constant arguments Airlock reads (a setting name, SQL text, a relation name).
_LITERAL_FUNCTIONS = frozenset({"set_config"}) | SQL_TEXT_FUNCTIONS | RELATION_FUNCTIONS


def _literal_independent(stmt: ClassifiedStatement) -> bool:
    return (
        stmt.error is None
        and not stmt.session_dependent
        and stmt.kinds <= _SHAPE_KINDS
        and not any(f.rpartition(".")[2] in _LITERAL_FUNCTIONS for f in stmt.functions)
    )


def _with_text(t: ClassifiedStatement, sql: str) -> ClassifiedStatement:
    """The shape's classification for this text (``dataclasses.replace`` without its per-call cost)."""
    return ClassifiedStatement(
        t.kind, t.kinds, sql, (0, len(sql)), t.label, t.tables, t.functions, t.name, t.body, t.copy_format, t.error,
        t.effects,
    )


def _shape(sql: str) -> str | None:
    """``sql`` with every constant replaced by a parameter: statements of one shape differ only in literals."""
    try:
        return str(parser.normalize(sql))
    except Exception:  # not parseable: classify() reports it as unknown
        return None


def first_block(decisions: list[Decision]) -> Decision | None:
    """The decision that refuses a multi-statement string, if any: the server runs all or nothing of a
    simple Query only inside its implicit transaction, so the proxy refuses the whole string."""
    return next((d for d in decisions if d.blocks), None)

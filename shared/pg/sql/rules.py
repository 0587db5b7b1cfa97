"""The policy's ``guardrails`` section: ordered rules that map each effect of a statement to allow /
deny / hold.

```yaml
guardrails:
  dry_run: false          # decide and record, never block (for rolling out rules)
  access: read_write      # or read_only: only effects that change nothing are admitted
  default: allow          # the action of an effect no rule matched
  unknown: deny           # an effect that could not be established (checked before any rule)
  rules:
    - name: no-ddl
      match: {kinds: [ddl_create, ddl_alter, drop, truncate]}
      action: deny
      reason: schema changes need a change request
    - name: payments-writes-need-approval
      match: {tables: ["payments.*"], access: write}
      action: hold
```
``guardrails: read_only`` is shorthand for ``{access: read_only}``.

A statement's effects are judged one by one (``shared/guard/verdict.py``): each takes the action of the
first rule that matches it (or the default) and the statement takes the strictest. A rule matches an
effect when *every* criterion it names matches that effect; within a criterion, any listed value may
match. Globs are fnmatch patterns, compared case-insensitively.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.guard.scope import RuleScope
from shared.guard.verdict import Action, Match
from shared.pg.sql.kinds import Effect, StatementKind, TableRef


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleMatch(RuleScope):
    """What a rule applies to: criteria on one effect, plus its scope (identities, targets, databases)."""

    # The effect's kind (``update_no_where`` also counts as ``update``, ``delete_no_where`` as ``delete``).
    kinds: list[StatementKind] = Field(default_factory=list)
    # Globs on "schema.table" of the relation the effect reads or writes. A glob without a dot names the
    # table in any schema. An unqualified table in a statement may live in any schema of the session's
    # search_path, which Airlock does not track: against a glob naming a schema it *may* match (a deny or
    # hold rule applies, an allow rule does not).
    tables: list[str] = Field(default_factory=list)
    schemas: list[str] = Field(default_factory=list)
    # Globs on the function called, as written ("schema.name") or bare; a glob naming a schema may match
    # an unqualified call (the search path decides).
    functions: list[str] = Field(default_factory=list)
    # read: effects that change nothing; write: effects that change something (a relation written, DDL,
    # a side-effect or opaque function, SET ROLE, ...); see ``Effect.changes``.
    access: Literal["read", "write", "any"] = "any"

    @field_validator("tables", "schemas", "functions")
    @classmethod
    def _lowercase(cls, values: list[str]) -> list[str]:
        return [v.lower() for v in values]

    def test(self, effect: Effect) -> Match:
        if self.kinds and effect.kinds.isdisjoint(self.kinds):
            return Match.NO
        if self.access != "any" and effect.changes is (self.access == "read"):
            return Match.NO
        result = Match.YES
        if self.tables or self.schemas:
            table = effect.table
            if table is None:
                return Match.NO
            if self.tables:
                result = min(result, max(_table_match(table, g) for g in self.tables))
            if self.schemas:
                result = min(result, max(_schema_match(table, g) for g in self.schemas))
        if self.functions:
            if effect.function is None:
                return Match.NO
            result = min(result, max(_function_match(effect.function, g) for g in self.functions))
        return result


def _table_match(table: TableRef, glob: str) -> Match:
    name = table.name.lower()
    schema_glob, dot, name_glob = glob.rpartition(".")
    if not dot:  # a bare table glob: any schema
        return Match.YES if fnmatchcase(name, glob) else Match.NO
    if table.schema is not None:
        return Match.YES if fnmatchcase(f"{table.schema.lower()}.{name}", glob) else Match.NO
    if not fnmatchcase(name, name_glob):
        return Match.NO
    return Match.YES if schema_glob == "*" else Match.MAYBE


def _schema_match(table: TableRef, glob: str) -> Match:
    if table.schema is None:
        return Match.YES if glob == "*" else Match.MAYBE
    return Match.YES if fnmatchcase(table.schema.lower(), glob) else Match.NO


def _function_match(function: str, glob: str) -> Match:
    _, dot, bare = function.rpartition(".")
    if fnmatchcase(function, glob):
        return Match.YES
    if "." not in glob:
        return Match.YES if fnmatchcase(bare, glob) else Match.NO
    if not dot and fnmatchcase(bare, glob.rpartition(".")[2]):
        return Match.MAYBE  # an unqualified call: which schema's function runs is the search path's choice
    return Match.NO


class GuardRule(_Strict):
    name: str = Field(min_length=1, max_length=128)
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: Action
    # Shown to the agent with a deny or hold: say what to do instead.
    reason: str = ""

    def test(self, effect: Effect) -> Match:
        return self.match.test(effect)


class GuardrailsPolicy(_Strict):
    """Rules are tried in order for each effect (see ``shared.pg.sql.engine``)."""

    rules: list[GuardRule] = Field(default_factory=list)
    access: Literal["read_write", "read_only"] = "read_write"
    default: Action = Action.ALLOW
    unknown: Action = Action.DENY
    dry_run: bool = False
    cache_size: int = Field(default=4096, ge=0, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``guardrails: read_only``: read-only access, every other setting at its default."""
        if data == "read_only":
            return {"access": "read_only"}
        return data

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[GuardRule]) -> list[GuardRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return rules

    def warnings(self) -> list[str]:
        """Rules that say less than they seem to: criteria that match every statement."""
        out = []
        for i, rule in enumerate(self.rules):
            where = f"guardrails.rules[{i}] ({rule.name})"
            m = rule.match
            if not (m.kinds or m.tables or m.schemas or m.functions) and m.access == "any":
                out.append(f"{where}: matches every effect of every statement{' in its scope' if m.scoped() else ''}")
            elif any(g in ("*", "*.*") for g in m.tables) and not (m.kinds or m.schemas or m.functions):
                out.append(f"{where}: tables {m.tables} match every relation")
            elif set(m.kinds) >= set(StatementKind) - {StatementKind.UNKNOWN}:
                out.append(f"{where}: kinds lists every kind")
        return out
